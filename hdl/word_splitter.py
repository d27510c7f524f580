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

__all__ = ["WordSplitter", "split_cfg"]


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


class WordSplitter(wiring.Component):
    """Split ``pe_cols``-channel words into ``lanes``-channel words, one out per cycle.

    Parameters
    ----------
    config : Config
        ``pe_cols`` must be a multiple of ``lanes``.

    Attributes
    ----------
    cfg : In(layout)
        ``tiles`` (C-words per pixel) and ``last_words`` (1..pe_cols/lanes: words kept of a
        pixel's last tile); see `split_cfg`. Held stable while words pass; the counters return
        to zero after every whole pixel.
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
        last_tile = t == self.cfg.tiles - 1
        final = w == Mux(last_tile, self.cfg.last_words - 1, parts - 1)
        load = Signal()
        m.d.comb += [
            load.eq(self.i.valid & (~self.o.valid | self.o.ready)),
            self.i.ready.eq(load & final),
        ]
        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(load):
            m.d.sync += [
                self.o.valid.eq(1),
                self.o.payload.data.eq(self.i.payload.data.as_value().word_select(w, lanes * 8)),
                self.o.payload.last.eq(self.i.payload.last & final),
            ]
            with m.If(final):
                m.d.sync += [w.eq(0), t.eq(Mux(last_tile, 0, t + 1))]
            with m.Else():
                m.d.sync += w.eq(w + 1)
        return m
