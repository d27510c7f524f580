"""Im2col: CONV3's window-to-words serialiser, a shift register of the window's words.

Why: the PE array takes one word (``lanes`` values) per cycle, and a 3x3 conv's input vector is
a whole line-buffer window, 9 words (or fewer, densely packed, for a first layer with fewer
channels than lanes). Selecting word ``tap`` of the window with a 9:1 multiplexer, behind the
dense packing's ``lanes``:1 multiplexers, gave every bit of the PE array's input word ~70 window
bits as inputs, and the router's heat map of the whole LayerEngine named that funnel among its
most congested nets. Here the window is loaded into 9 word registers at once, the dense packing
in the load, and shifted out one word per cycle: each register bit sees its own tap bits and
its neighbour, the output word is a flip-flop, and a window is taken on the cycle its
predecessor's last word leaves, so the stream runs at one word per cycle with no bubbles.

Word order is TFLite's filter order: word ``q`` is tap ``q`` (``lanes`` channels of the chunk);
dense (``cfg.dense``, one chunk of ``dense_cin <= lanes`` real channels): value ``n`` of the
``dense_words`` words is tap ``n // dense_cin``, channel ``n % dense_cin``, and the unused tail
of the last word is zero (its weights are zero too, see `engine.conv3_weights`).
"""

from amaranth import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import bits_for

__all__ = ["Im2col"]


class Im2col(wiring.Component):
    """Windows in, their words out, one per cycle.

    Parameters
    ----------
    config : Config
        ``lanes``: values per word.
    window_layout : Layout
        The input payload: a struct with ``taps`` (9 words of ``lanes`` int8) and ``last``, e.g.
        `LineBuffer.window_layout` (further fields are ignored).

    Attributes
    ----------
    cfg : In(cfg_layout)
        ``dense``, ``dense_cin`` (1..lanes), ``dense_words`` (``ceil(9 * dense_cin / lanes)``);
        held for the run, from at least one cycle before its first window (the packing is
        selected by flip-flops decoded from it).
    i : In(stream.Signature(window_layout))
        ``i.ready`` depends on flip-flops and ``o.ready`` only.
    o : Out(stream.Signature({"data": lanes x int8, "last": 1}))
        ``o.valid`` and ``o.payload.data`` are flip-flops; ``last`` marks the last word of a
        window whose ``last`` was set.
    """

    def __init__(self, config, window_layout):
        self._lanes = config.lanes
        word = data.ArrayLayout(signed(8), config.lanes)
        self._cfg_layout = data.StructLayout({
            "dense": 1,
            "dense_cin": unsigned(bits_for(config.lanes)),
            "dense_words": unsigned(bits_for(9)),
        })
        super().__init__({
            "cfg": In(self._cfg_layout),
            "i": In(stream.Signature(window_layout)),
            "o": Out(stream.Signature(data.StructLayout({"data": word, "last": 1}))),
        })

    @property
    def cfg_layout(self):
        return self._cfg_layout

    def _load_words(self, m):
        """The 9 words a window loads: its taps, or (dense) its first dense_cin channels packed.

        The packing is selected by flip-flops decoded from ``cfg`` (which is held for the run,
        long before the first window), one set per word register (``*_dup*``): the decode of
        ``dense_cin`` would otherwise be a handful of nets each reaching ~500 LUTs.
        """
        lanes, cfg, taps = self._lanes, self.cfg, self.i.payload.taps
        words = []
        for q in range(9):
            plain = Signal(name=f"plain_dup{q}")                       # not dense
            dense = [None] + [Signal(name=f"dense_dup{q}_{c}") for c in range(1, lanes + 1)]  # dense, cin c
            m.d.sync += [plain.eq(~cfg.dense),
                         *(dense[c].eq(cfg.dense & (cfg.dense_cin == c)) for c in range(1, lanes + 1))]
            lanes_bits = []
            for lane in range(lanes):
                n = q * lanes + lane
                # source (tap, channel) of this value -> the selects that pick it
                sources = {(q, lane): [plain]}
                for c in range(1, lanes + 1):
                    if n < 9 * c:
                        sources.setdefault((n // c, n % c), []).append(dense[c])
                value = 0
                for (t, ch), selects in sources.items():
                    pick = selects[0] if len(selects) == 1 else Cat(*selects).any()
                    value = value | Mux(pick, taps[t][ch].as_unsigned(), 0)
                lanes_bits.append(value[:8])
            word = Signal(8 * lanes, name=f"load_word{q}")
            m.d.comb += word.eq(Cat(*lanes_bits))
            words.append(word)
        return words

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        words = self._load_words(m)
        n_words = Mux(cfg.dense, cfg.dense_words, 9)

        # held[q]: register q holds a word still to send; head = held[0], second = held[1].
        # Each word register decides its own load/shift from its own copies of head and second
        # (``*_dup*``, kept apart by synthesis), so no one enable net spans all 9 x lanes x 8
        # flip-flops.
        held = [Signal(name=f"held{q}") for q in range(9)]
        head_copies = [Signal(name=f"head_dup{q}") for q in range(9)]
        second_copies = [Signal(name=f"second_dup{q}") for q in range(9)]
        regs = [Signal(8 * self._lanes, name=f"word{q}", reset_less=True) for q in range(9)]
        last = Signal()
        head, second = held[0], held[1]

        take = Signal()    # a window is loaded this cycle
        m.d.comb += [
            self.i.ready.eq(~head | (self.o.ready & ~second)),
            take.eq(self.i.valid & self.i.ready),
            self.o.valid.eq(head),
            self.o.payload.data.eq(regs[0]),
            self.o.payload.last.eq(last & ~second),
        ]

        for q in range(9):
            ready_q = ~head_copies[q] | (self.o.ready & ~second_copies[q])
            with m.If(self.i.valid & ready_q):
                m.d.sync += regs[q].eq(words[q])
            with m.Elif(self.o.ready & head_copies[q]):
                if q < 8:
                    m.d.sync += regs[q].eq(regs[q + 1])

        def flags(value_of):
            """Assign held[q] and the copies from ``value_of(q)``."""
            out = []
            for q in range(9):
                out.append(held[q].eq(value_of(q)))
            out += [c.eq(value_of(0)) for c in head_copies]
            out += [c.eq(value_of(1)) for c in second_copies]
            return out

        with m.If(take):
            m.d.sync += flags(lambda q: n_words > q)
            m.d.sync += last.eq(self.i.payload.last)
        with m.Elif(self.o.ready & head):
            m.d.sync += flags(lambda q: held[q + 1] if q < 8 else 0)
        return m
