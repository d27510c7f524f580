"""cocotb bench of verif/models/axi_ram_sim.v, the simulator-resident DRAM, driven through `Dma`.

`Dma` is already checked against cocotbext-axi's AxiRam (verif/tb_dma.py); here the same reads
and writes go to the Verilog model, whose memory the bench fills and inspects directly
(``dut.dram.mem``), with the model's own random stalls on. Out-of-range bursts must answer an
error and write nothing.
"""

import os
import random

import cocotb
from amaranth import unsigned
from amaranth.lib import data
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

from dwfuse.hdl.dma_command import ERR_BUS, ERR_NONE, command_layout
from dwfuse.verif.streams import StreamSink, StreamSource

__all__ = ["WORDS", "BUS_BYTES"]

WORDS = 4096
BUS_BYTES = 8


@cocotb.test()
async def dma_through_the_verilog_dram(dut):
    rng = random.Random(int(os.environ["COCOTB_RANDOM_SEED"]))
    bb = BUS_BYTES
    Clock(dut.clk, 10, unit="ns").start()
    cmd = command_layout(32)
    rd_cmd = StreamSource(dut, "rd_cmd", cmd, dut.clk, random.Random(rng.random()), idle=0.2)
    rd_data = StreamSink(dut, "rd_data", data.StructLayout({"data": unsigned(bb * 8), "last": 1}),
                         dut.clk, random.Random(rng.random()), stall=0.2)
    wr_cmd = StreamSource(dut, "wr_cmd", cmd, dut.clk, random.Random(rng.random()), idle=0.2)
    wr_data = StreamSource(dut, "wr_data", data.StructLayout({"data": unsigned(bb * 8)}), dut.clk,
                           random.Random(rng.random()), idle=0.2)
    dut.rst.value = 1
    await ClockCycles(dut.clk, 3)
    image = [rng.getrandbits(bb * 8) for _ in range(WORDS)]
    for k, v in enumerate(image):
        dut.dram.mem[k].value = v
    dut.rst.value = 0
    await RisingEdge(dut.clk)

    half = WORDS // 2
    reads = []
    for _ in range(10):
        n = rng.randint(1, 300)
        reads.append((rng.randrange(0, half - n), n))
    writes = []
    for _ in range(10):
        n = rng.randint(1, 300)
        writes.append((rng.randrange(half, WORDS - n), n, [rng.getrandbits(bb * 8) for _ in range(n)]))
    grant = dict(base=0, end=(1 << 32) - 1)
    cocotb.start_soon(rd_cmd.send([dict(addr=a * bb, beats=n, **grant) for a, n in reads]))
    cocotb.start_soon(wr_cmd.send([dict(addr=a * bb, beats=n, **grant) for a, n, _ in writes]))
    cocotb.start_soon(wr_data.send([{"data": v} for _, _, p in writes for v in p]))
    total = sum(n for _, n in reads)
    got = await rd_data.receive(total, timeout_cycles=20 * total + 5000)
    want = [image[a + j] for a, n in reads for j in range(n)]
    assert [g["data"] for g in got] == want, "read data differs from the DRAM image"
    for _ in range(20000):
        await ReadOnly()
        if dut.idle.value:
            break
        await RisingEdge(dut.clk)
    else:
        raise AssertionError("DMA never idle")
    expect = list(image)
    for a, n, p in writes:
        expect[a:a + n] = p
    await RisingEdge(dut.clk)
    mem = [int(dut.dram.mem[k].value) for k in range(WORDS)]
    assert mem == expect, f"DRAM differs first at word {next(k for k in range(WORDS) if mem[k] != expect[k])}"
    assert int(dut.rd_error.value) == ERR_NONE and int(dut.wr_error.value) == ERR_NONE

    # Past the end of the model's memory (inside the window the command grants): DECERR.
    cocotb.start_soon(rd_cmd.send([dict(addr=(WORDS - 2) * bb, beats=4, **grant)]))
    await rd_data.receive(4, timeout_cycles=2000)
    assert int(dut.rd_error.value) == ERR_BUS
