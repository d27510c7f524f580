"""WordPacker: ``lanes``-channel activation words → the PE array's C-channel residual words.

Why: the residual ADD at the PE array's output takes one ``pe_cols``-channel word per (pixel,
output tile), but the block input it adds is stored in DRAM as NHWC words of ``lanes``
channels. This gathers ``pe_cols // lanes`` of them per tile, fewer in a pixel's last tile
(the layer has only ``ceil(O / lanes)`` words per pixel), the rest of that word don't-care.
"""

from amaranth import Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .word_splitter import WordSplitter, _parts, final_word_flag

__all__ = ["WordPacker"]


class WordPacker(wiring.Component):
    """Gather ``lanes``-channel words into ``pe_cols``-channel words (the inverse of `WordSplitter`).

    Same parameters and ``cfg`` as `WordSplitter`; ``i`` carries ``{"data": int8[lanes]}``,
    ``o`` ``{"data": int8[pe_cols]}``, one per (pixel, tile).
    """

    def __init__(self, config):
        parts = _parts(config)
        self._config = config
        self._parts = parts
        splitter = WordSplitter(config)
        splitter._MustUse__silence = True   # built only for its cfg layout
        super().__init__({
            "cfg": In(splitter.cfg_layout),
            "i": In(stream.Signature(data.StructLayout({
                "data": data.ArrayLayout(signed(8), config.lanes)}))),
            "o": Out(stream.Signature(data.StructLayout({
                "data": data.ArrayLayout(signed(8), config.pe_cols)}))),
        })

    def elaborate(self, platform):
        m = Module()
        config, parts = self._config, self._parts
        lanes = config.lanes
        t = Signal(range(max(2, -(-config.max_out_channels // config.pe_cols))))
        w = Signal(range(max(2, parts)))
        last_tile = t == self.cfg.tiles - 1
        gather = Signal(data.ArrayLayout(signed(8), config.pe_cols))
        take = Signal()
        final = final_word_flag(m, self.cfg, w, t, parts, take)
        m.d.comb += [
            self.i.ready.eq(~final | ~self.o.valid | self.o.ready),
            take.eq(self.i.valid & self.i.ready),
        ]
        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(take):
            m.d.sync += gather.as_value().word_select(w, lanes * 8).eq(self.i.payload.data)
            with m.If(final):
                m.d.sync += [w.eq(0), t.eq(Mux(last_tile, 0, t + 1)), self.o.valid.eq(1)]
                for p in range(parts):
                    word = self.o.payload.data.as_value().word_select(p, lanes * 8)
                    new = self.i.payload.data.as_value()
                    old = gather.as_value().word_select(p, lanes * 8)
                    m.d.sync += word.eq(Mux(w == p, new, old))
            with m.Else():
                m.d.sync += w.eq(w + 1)
        return m
