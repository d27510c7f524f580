"""WordSplitter: the PE array's C-channel output words → ``lanes``-channel activation words.

Why: every tensor in DRAM (and every line-buffer row) has one format, NHWC words of ``lanes``
int8 channels. The PE array emits one word of ``pe_cols`` channels per (pixel, output tile);
this splits each into ``pe_cols // lanes`` words and drops the words past the layer's
``ceil(O / lanes)`` in a pixel's last tile (channels that exist only because O was padded up
to whole tiles), so the output needs no further compaction.
"""

from amaranth import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import bits_for, ceil_log2

from .config import Config
from .pointwise import geometry

__all__ = ["WordSplitter", "split_cfg", "final_word_flag"]


def _parts(config):
    if not isinstance(config, Config):
        raise TypeError(f"config must be a Config, not {config!r}")
    if config.pe_cols % config.lanes:
        raise ValueError(f"pe_cols {config.pe_cols} is not a multiple of lanes {config.lanes}")
    return config.pe_cols // config.lanes


def split_cfg(out_channels, config):
    """``cfg`` value (dict) for a layer with ``out_channels`` outputs: tiles and last-tile words."""
    parts = _parts(config)
    tiles = -(-out_channels // config.pe_cols)
    words = -(-out_channels // config.lanes)
    return {"tiles": tiles, "last_words": words - (tiles - 1) * parts}


def final_word_flag(m, cfg, w, t, parts, step):
    """A register: word ``w`` is the last one of tile ``t`` of a pixel (``parts`` words a tile,
    ``cfg.last_words`` in the pixel's last tile, ``cfg.tiles``). Computed from the next ``w`` and
    ``t`` on ``step`` (w steps, wrapping to the next tile after its last word) and from the
    current ones otherwise, against registered copies of ``cfg``'s last indices, so it is right
    two cycles after ``cfg`` changes, and the handshakes that use it start at a flip-flop
    instead of at ``cfg``'s decode.
    """
    tiles_m1, tiles_m2 = Signal.like(cfg.tiles, name="tiles_m1"), Signal.like(cfg.tiles, name="tiles_m2")
    words_m1 = Signal.like(cfg.last_words, name="last_words_m1")
    m.d.sync += [tiles_m1.eq(cfg.tiles - 1), tiles_m2.eq(cfg.tiles - 2), words_m1.eq(cfg.last_words - 1)]
    last_tile = t == tiles_m1
    flag = Signal(name="final_word")
    m.d.sync += flag.eq(w == Mux(last_tile, words_m1, parts - 1))
    with m.If(step):
        with m.If(flag):       # to word 0 of the next tile (the first tile after the last)
            next_last = Mux(last_tile, tiles_m1 == 0, t == tiles_m2)
            m.d.sync += flag.eq(Mux(next_last, words_m1 == 0, parts == 1))
        with m.Else():
            m.d.sync += flag.eq(w + 1 == Mux(last_tile, words_m1, parts - 1))
    return flag


class WordSplitter(wiring.Component):
    """Split ``pe_cols``-channel words into ``lanes``-channel words, one out per cycle.

    The output word is a mux of a buffered input word (one ``pe_cols``-channel register).

    Parameters
    ----------
    config : Config
        ``pe_cols`` must be a multiple of ``lanes``.

    Attributes
    ----------
    cfg : In(layout)
        ``tiles`` (C-words per pixel) and ``last_words`` (1..pe_cols/lanes: words kept of a
        pixel's last tile); see `split_cfg`. Set two cycles before the first word and held stable
        while words pass; the counters return to zero after every whole pixel.
    i : In(stream.Signature({"data": int8[pe_cols], "last": 1}))
    o : Out(stream.Signature({"data": int8[lanes], "last": 1}))
        ``last`` on the final word kept of an input word flagged ``last``.
    """

    def __init__(self, config):
        parts = _parts(config)
        self._config = config
        g = geometry(config)
        self._cfg_layout = data.StructLayout({
            "tiles": unsigned(ceil_log2(g.max_tiles + 1)),
            "last_words": unsigned(bits_for(parts)),
        })
        super().__init__({
            "cfg": In(self._cfg_layout),
            "i": In(stream.Signature(data.StructLayout({
                "data": data.ArrayLayout(signed(8), config.pe_cols), "last": 1}))),
            "o": Out(stream.Signature(data.StructLayout({
                "data": data.ArrayLayout(signed(8), config.lanes), "last": 1}))),
        })

    @property
    def cfg_layout(self):
        return self._cfg_layout

    def elaborate(self, platform):
        m = Module()
        config = self._config
        parts, lanes = config.pe_cols // config.lanes, config.lanes
        g = geometry(config)
        t = Signal(range(max(2, g.max_tiles)))
        w = Signal(range(max(2, parts)))
        # The input word is taken into a buffer at once, so the PE array's output register is
        # free again the next cycle: holding it while the words go out one by one would stall
        # the PE array's requantizers (measured: one lost cycle per output tile).
        buf = Signal(data.ArrayLayout(signed(8), config.pe_cols))
        buf_last = Signal()
        last_tile = t == self.cfg.tiles - 1
        send = self.o.valid & self.o.ready
        final = final_word_flag(m, self.cfg, w, t, parts, send)
        m.d.comb += [
            self.i.ready.eq(~self.o.valid | (self.o.ready & final)),
            self.o.payload.data.eq(buf.as_value().word_select(w, lanes * 8)),
            self.o.payload.last.eq(buf_last & final),
        ]
        with m.If(send):
            with m.If(final):
                m.d.sync += [self.o.valid.eq(0), w.eq(0), t.eq(Mux(last_tile, 0, t + 1))]
            with m.Else():
                m.d.sync += w.eq(w + 1)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [buf.eq(self.i.payload.data), buf_last.eq(self.i.payload.last),
                         self.o.valid.eq(1)]
        return m
