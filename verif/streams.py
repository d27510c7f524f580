"""cocotb helpers for Amaranth `stream` ports: payload packing, a stalling source and sink.

Amaranth's Verilog flattens a stream port `i` into `i__valid`, `i__ready` and `i__payload`
(the payload's layout packed LSB-first). `pack`/`unpack` convert between that bit vector and
Python values using the same `amaranth.lib.data` layout the component declares, so testbenches
never hard-code bit offsets:

- a plain shape ↔ int (signed shapes as negative ints),
- a `StructLayout` ↔ dict of field name → value,
- an `ArrayLayout` ↔ list.

`StreamSource` and `StreamSink` obey the stream rules (valid held with a stable payload until
the transfer; valid never depends on ready) and insert random idle/stall cycles from a seeded
`random.Random`, so every testbench runs with backpressure on both sides. `pause_axi_channels`
does the same for the five channels of a cocotbext-axi master or RAM.
"""

import random

from amaranth.hdl import Shape
from amaranth.lib import data
from cocotb.triggers import ReadOnly, RisingEdge

from ..hdl import descriptor as D

__all__ = ["pack", "unpack", "layout_width", "StreamSource", "StreamSink", "pause_axi_channels"]


def pause_axi_channels(endpoint, probability, rng):
    """Pause AW, W, B, AR and R of a cocotbext-axi endpoint (AxiRam, AxiLiteMaster, ...) in each
    cycle with ``probability``; every channel draws from its own generator seeded by ``rng``."""
    def pauses(r):
        while True:
            yield r.random() < probability
    w, r = endpoint.write_if, endpoint.read_if
    for ch in (w.aw_channel, w.w_channel, w.b_channel, r.ar_channel, r.r_channel):
        ch.set_pause_generator(pauses(random.Random(rng.random())))


def layout_width(layout):
    if isinstance(layout, data.Layout):
        return layout.size
    return Shape.cast(layout).width


def pack(layout, value):
    """Python value → unsigned int holding the payload bits (every struct field required)."""
    return D.pack(layout, value, missing_ok=False)


#: Unsigned int of payload bits → Python value (inverse of `pack`).
unpack = D.unpack


class StreamSource:
    """Drives `<prefix>__valid/__payload`; idles a random cycle with probability `idle`."""

    def __init__(self, dut, prefix, layout, clk, rng=None, idle=0.3):
        self.valid = getattr(dut, f"{prefix}__valid")
        self.ready = getattr(dut, f"{prefix}__ready")
        self.payload = getattr(dut, f"{prefix}__payload")
        self.layout, self.clk = layout, clk
        self.rng = rng or random.Random(0)
        self.idle = idle
        self.valid.value = 0

    async def send(self, values):
        """Send every value in order; returns when the last one has been taken."""
        for v in values:
            while self.rng.random() < self.idle:
                self.valid.value = 0
                await RisingEdge(self.clk)
            self.valid.value = 1
            self.payload.value = pack(self.layout, v)
            while True:
                await ReadOnly()
                taken = bool(self.ready.value)
                await RisingEdge(self.clk)
                if taken:
                    break
        self.valid.value = 0


class StreamSink:
    """Drives `<prefix>__ready` (low with probability `stall`) and collects payloads."""

    def __init__(self, dut, prefix, layout, clk, rng=None, stall=0.3):
        self.valid = getattr(dut, f"{prefix}__valid")
        self.ready = getattr(dut, f"{prefix}__ready")
        self.payload = getattr(dut, f"{prefix}__payload")
        self.layout, self.clk = layout, clk
        self.rng = rng or random.Random(1)
        self.stall = stall
        self.ready.value = 0

    async def receive(self, count, timeout_cycles=None):
        """Collect `count` payloads; raises AssertionError after `timeout_cycles` cycles."""
        got = []
        cycles = 0
        while len(got) < count:
            self.ready.value = int(self.rng.random() >= self.stall)
            await ReadOnly()
            if self.valid.value and self.ready.value:
                got.append(unpack(self.layout, self.payload.value))
            await RisingEdge(self.clk)
            cycles += 1
            if timeout_cycles is not None and cycles > timeout_cycles:
                raise AssertionError(f"timeout: {len(got)} of {count} outputs after {cycles} cycles")
        self.ready.value = 0
        return got
