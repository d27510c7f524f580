"""Width converters between the AXI data bus and the datapath's words and parameter items.

Why: DRAM is read and written in bus beats (``bus_bytes``), while the engine moves activation
words of ``lanes`` bytes and loads weight words, table rows and depthwise parameter items that
are many beats wide. Both converters are little-endian (the first beat is the least significant
part), matching hdl/descriptor.py's DRAM formats, and pass one beat per cycle.

- `Upsizer`: ``ratio`` input beats → one output item (its low ``out_bits``; the rest of the last
  beat is padding, as `descriptor.item_bytes` pads items to whole beats).
- `Downsizer`: one input beat → ``ratio`` output words.
"""

from amaranth import Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["Upsizer", "Downsizer", "bus_word_ratio"]


def bus_word_ratio(bus_bytes, word_bytes):
    """(kind, ratio) to go from bus beats to words: ``("same", 1)``, ``("up", n)`` or ``("down", n)``."""
    if word_bytes == bus_bytes:
        return "same", 1
    if word_bytes > bus_bytes and word_bytes % bus_bytes == 0:
        return "up", word_bytes // bus_bytes
    if bus_bytes % word_bytes == 0:
        return "down", bus_bytes // word_bytes
    raise ValueError(f"words of {word_bytes} bytes and beats of {bus_bytes} bytes do not divide")


class Upsizer(wiring.Component):
    """Collect ``ratio`` beats of ``in_bits`` into one item of ``out_bits`` (<= ratio * in_bits).

    ``i``/``o`` payloads are ``{"data": bits}``; a skid-free design: ``i.ready`` is high while
    the item being collected is not yet complete or the output register is free.
    """

    def __init__(self, in_bits, out_bits, ratio):
        if not 0 < out_bits <= ratio * in_bits or out_bits <= (ratio - 1) * in_bits:
            raise ValueError(f"an item of {out_bits} bits does not need exactly {ratio} beats of {in_bits}")
        self._in_bits, self._out_bits, self._ratio = in_bits, out_bits, ratio
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({"data": unsigned(in_bits)}))),
            "o": Out(stream.Signature(data.StructLayout({"data": unsigned(out_bits)}))),
        })

    def elaborate(self, platform):
        m = Module()
        n, ib = self._ratio, self._in_bits
        if n == 1:
            m.d.comb += [self.o.valid.eq(self.i.valid), self.o.payload.data.eq(self.i.payload.data),
                         self.i.ready.eq(self.o.ready)]
            return m
        buf = Signal(n * ib)
        count = Signal(range(n))
        full = Signal()
        m.d.comb += [
            self.o.valid.eq(full),
            self.o.payload.data.eq(buf[:self._out_bits]),
            self.i.ready.eq(~full | self.o.ready),
        ]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += full.eq(0)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [buf.eq((buf >> ib) | (self.i.payload.data << ((n - 1) * ib))),
                         count.eq(Mux(count == n - 1, 0, count + 1))]
            with m.If(count == n - 1):
                m.d.sync += full.eq(1)
        return m


class Downsizer(wiring.Component):
    """Split one beat of ``ratio * out_bits`` into ``ratio`` words of ``out_bits``, low part first."""

    def __init__(self, out_bits, ratio):
        self._out_bits, self._ratio = out_bits, ratio
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({"data": unsigned(out_bits * ratio)}))),
            "o": Out(stream.Signature(data.StructLayout({"data": unsigned(out_bits)}))),
        })

    def elaborate(self, platform):
        m = Module()
        n, ob = self._ratio, self._out_bits
        if n == 1:
            m.d.comb += [self.o.valid.eq(self.i.valid), self.o.payload.data.eq(self.i.payload.data),
                         self.i.ready.eq(self.o.ready)]
            return m
        part = Signal(range(n))
        m.d.comb += [
            self.o.valid.eq(self.i.valid),
            self.o.payload.data.eq(self.i.payload.data.word_select(part, ob)),
            self.i.ready.eq(self.o.ready & (part == n - 1)),
        ]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += part.eq(Mux(part == n - 1, 0, part + 1))
        return m
