"""cocotb half of test_streams: the shared StreamSource/StreamSink against the smoke-test accumulator."""

import os
import random

import cocotb
from amaranth import signed
from amaranth.lib import data
from cocotb.clock import Clock
from cocotb.triggers import RisingEdge

from dwfuse.verif.streams import StreamSink, StreamSource

IN = data.StructLayout({"data": signed(8), "last": 1})


@cocotb.test()
async def source_and_sink_with_stalls(dut):
    rng = random.Random(int(os.environ["COCOTB_RANDOM_SEED"]))
    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    src = StreamSource(dut, "i", IN, dut.clk, rng, idle=0.4)
    sink = StreamSink(dut, "o", signed(16), dut.clk, rng, stall=0.4)
    for _ in range(2):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    packets = [[rng.randint(-128, 127) for _ in range(rng.randint(1, 6))] for _ in range(50)]
    beats = [{"data": v, "last": int(i == len(p) - 1)} for p in packets for i, v in enumerate(p)]
    cocotb.start_soon(src.send(beats))
    got = await sink.receive(len(packets), timeout_cycles=10000)
    assert got == [sum(p) for p in packets], "sums differ"
