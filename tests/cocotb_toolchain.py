"""cocotb half of the toolchain smoke test: random stalls on both sides of a stream accumulator.

Expected sums are computed here in plain Python from the packets this test makes up, not from
the design.  ``SMOKE_EXPECT_OFFSET`` (default 0) is added to every expected sum so the harness
test can prove that a wrong expectation really fails.
"""

import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

__all__ = ["accumulates_packets"]

PACKETS = 40
MAX_CYCLES = 5000


def _wrap(value: int, bits: int) -> int:
    """Two's-complement wrap, the accumulator's overflow behaviour."""
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


@cocotb.test()
async def accumulates_packets(dut) -> None:
    """Every packet's wrapped sum comes out once, in order, whatever the stalls."""
    offset = int(os.environ.get("SMOKE_EXPECT_OFFSET", "0"))
    out_bits = len(dut.o__payload)
    packets = [
        [random.randint(-128, 127) for _ in range(random.randint(1, 7))] for _ in range(PACKETS)
    ]
    packets[0] = [127] * 300  # long enough to overflow 16 bits
    beats = [(v, i == len(p) - 1) for p in packets for i, v in enumerate(p)]
    expected = [_wrap(sum(p), out_bits) + offset for p in packets]

    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    dut.i__valid.value = 0
    dut.o__ready.value = 0
    for _ in range(2):
        await RisingEdge(dut.clk)
    dut.rst.value = 0

    got: list[int] = []
    sent = 0
    presenting = False
    held = None  # payload of a sum offered but not yet taken
    for _ in range(MAX_CYCLES):
        await RisingEdge(dut.clk)
        if not presenting and sent < len(beats) and random.random() < 0.7:
            value, last = beats[sent]
            dut.i__payload.value = (value & 0xFF) | (int(last) << 8)
            presenting = True
        dut.i__valid.value = int(presenting)
        dut.o__ready.value = int(random.random() < 0.5)
        await ReadOnly()
        if int(dut.o__valid.value):
            payload = dut.o__payload.value.to_signed()
            assert held is None or held == payload, "output changed while stalled"
            held = payload
            if int(dut.o__ready.value):
                got.append(payload)
                held = None
        if presenting and int(dut.i__ready.value):
            sent += 1
            presenting = False
        if len(got) == len(expected):
            break
    assert len(got) == len(expected), f"timed out: {len(got)} of {len(expected)} sums out"
    bad = [(i, g, e) for i, (g, e) in enumerate(zip(got, expected, strict=True)) if g != e]
    assert not bad, f"{len(bad)} wrong sums, first (packet, got, expected): {bad[0]}"
