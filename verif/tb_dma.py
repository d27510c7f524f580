"""cocotb testbench of `Dma` (hdl/dma.py) against cocotbext-axi's AxiRam with random pauses.

The expected values come from the RAM model's own contents (written by the bench before the
run), never from the design. Every AXI channel (AW, W, B, AR, R) pauses at random, and the
command and data streams stall at random (verif/streams.py). ``$DMA_CASE`` holds a JSON dict
with ``bus_bytes``, ``addr_width`` and ``pause`` (probability).
"""

import json
import os
import random

import cocotb
from amaranth import unsigned
from amaranth.lib import data
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge
from cocotbext.axi import AxiBus, AxiRam

from dwfuse.hdl.dma_command import ERR_NONE, ERR_WINDOW, command_layout
from dwfuse.verif.streams import StreamSink, StreamSource, pause_axi_channels

__all__ = ["CASE_ENV"]

CASE_ENV = "DMA_CASE"
RAM_BYTES = 1 << 16


async def _setup(dut):
    case = json.loads(os.environ[CASE_ENV])
    rng = random.Random(int(os.environ["COCOTB_RANDOM_SEED"]))
    bb, aw = case["bus_bytes"], case["addr_width"]
    Clock(dut.clk, 10, unit="ns").start()
    ram = AxiRam(AxiBus.from_prefix(dut, "m_axi_"), dut.clk, dut.rst, size=RAM_BYTES)
    pause_axi_channels(ram, case["pause"], rng)
    cmd = command_layout(aw)
    env = dict(
        rng=rng, bb=bb, ram=ram,
        rd_cmd=StreamSource(dut, "rd_cmd", cmd, dut.clk, random.Random(rng.random()), idle=0.3),
        rd_data=StreamSink(dut, "rd_data", data.StructLayout({"data": unsigned(bb * 8), "last": 1}),
                           dut.clk, random.Random(rng.random()), stall=0.3),
        wr_cmd=StreamSource(dut, "wr_cmd", cmd, dut.clk, random.Random(rng.random()), idle=0.3),
        wr_data=StreamSource(dut, "wr_data", data.StructLayout({"data": unsigned(bb * 8)}), dut.clk,
                             random.Random(rng.random()), idle=0.3),
    )
    dut.drain.value = 0
    await _reset(dut)
    return env


async def _reset(dut):
    dut.rst.value = 1
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    await RisingEdge(dut.clk)


async def _wait_idle(dut, limit=20000):
    for _ in range(limit):
        await ReadOnly()
        if dut.idle.value:
            return
        await RisingEdge(dut.clk)
    raise AssertionError(f"DMA not idle after {limit} cycles")


def _random_span(rng, bb, max_beats, lo=0, hi=RAM_BYTES):
    beats = rng.randint(1, max_beats)
    addr = rng.randrange(lo // bb, (hi - beats * bb) // bb + 1) * bb
    return addr, beats


@cocotb.test()
async def reads_and_writes_in_parallel(dut):
    """Random reads from the lower half while writes go to the upper half, with 4 KiB crossings."""
    env = await _setup(dut)
    rng, bb, ram = env["rng"], env["bb"], env["ram"]
    half = RAM_BYTES // 2
    image = bytes(rng.getrandbits(8) for _ in range(RAM_BYTES))
    ram.write(0, image)

    reads = [_random_span(rng, bb, rng.choice([1, 3, 17, 300]), 0, half) for _ in range(12)]
    writes = []
    for _ in range(12):
        addr, beats = _random_span(rng, bb, rng.choice([1, 5, 16, 33, 520]), half, RAM_BYTES)
        payload = [rng.getrandbits(bb * 8) for _ in range(beats)]
        writes.append((addr, beats, payload))
    grant = dict(base=0, end=RAM_BYTES)

    rcmd = cocotb.start_soon(env["rd_cmd"].send([dict(addr=a, beats=n, **grant) for a, n in reads]))
    wcmd = cocotb.start_soon(env["wr_cmd"].send([dict(addr=a, beats=n, **grant) for a, n, _ in writes]))
    wdat = cocotb.start_soon(env["wr_data"].send([{"data": v} for _, _, p in writes for v in p]))
    total = sum(n for _, n in reads)
    got = await env["rd_data"].receive(total, timeout_cycles=40 * total + 5000)
    await rcmd
    await wcmd
    await wdat
    await _wait_idle(dut)
    dut._log.info("%d words read in %d commands, %d written in %d", total, len(reads),
                  sum(n for _, n, _ in writes), len(writes))

    at = 0
    for k, (addr, beats) in enumerate(reads):
        for j in range(beats):
            word = got[at + j]
            want = int.from_bytes(image[addr + j * bb: addr + (j + 1) * bb], "little")
            assert word["data"] == want, f"read {k} ({addr:#x}, {beats} beats): word {j} differs"
            assert word["last"] == (j == beats - 1), f"read {k}: last flag wrong on word {j}"
        at += beats
    expect = bytearray(image)
    for addr, beats, payload in writes:
        for j, v in enumerate(payload):
            expect[addr + j * bb: addr + (j + 1) * bb] = v.to_bytes(bb, "little")
    after = ram.read(0, RAM_BYTES)
    if after != bytes(expect):
        first = next(i for i in range(RAM_BYTES) if after[i] != expect[i])
        raise AssertionError(f"RAM differs from the expected image first at byte {first:#x}")
    assert int(dut.rd_error.value) == ERR_NONE and int(dut.wr_error.value) == ERR_NONE
    assert int(dut.beats_read.value) == total
    assert int(dut.beats_written.value) == sum(n for _, n, _ in writes)


@cocotb.test()
async def commands_outside_their_window_do_nothing(dut):
    """Each kind of bad command: error code ERR_WINDOW, no bus transaction, RAM unchanged."""
    env = await _setup(dut)
    rng, bb, ram = env["rng"], env["bb"], env["ram"]
    image = bytes(rng.getrandbits(8) for _ in range(RAM_BYTES))
    base, end = 0x2000, 0x3000
    bad = [
        dict(addr=base - bb, beats=4, base=base, end=end),          # starts below the window
        dict(addr=end - 2 * bb, beats=3, base=base, end=end),       # runs past its end
        dict(addr=base + 1, beats=1, base=base, end=end),           # not bus aligned
        dict(addr=base, beats=0, base=base, end=end),               # empty
        dict(addr=RAM_BYTES - bb, beats=(1 << 24) - 1, base=0, end=RAM_BYTES),  # wraps the sum
    ]
    for k, cmd in enumerate(bad):
        for side in ("rd", "wr"):
            ram.write(0, image)
            await _reset(dut)
            sender = cocotb.start_soon(env[f"{side}_cmd"].send([cmd]))
            data_task = None
            if side == "wr":
                data_task = cocotb.start_soon(env["wr_data"].send([{"data": 0x5A5A} for _ in range(4)]))
            await sender
            for _ in range(200):
                await RisingEdge(dut.clk)
                await ReadOnly()
                assert not dut.m_axi__arvalid.value and not dut.m_axi__awvalid.value, \
                    f"bad {side} command {k} {cmd}: a burst was issued"
            assert int(getattr(dut, f"{side}_error").value) == ERR_WINDOW, f"bad {side} command {k}: no error"
            assert ram.read(0, RAM_BYTES) == image, f"bad {side} command {k}: RAM changed"
            await RisingEdge(dut.clk)
            if data_task is not None:  # the refused command's data is never taken
                data_task.cancel()
                dut.wr_data__valid.value = 0
    # After a reset the engine works again.
    await _reset(dut)
    addr, beats = base, 8
    cocotb.start_soon(env["rd_cmd"].send([dict(addr=addr, beats=beats, base=base, end=end)]))
    got = await env["rd_data"].receive(beats, timeout_cycles=5000)
    assert [g["data"] for g in got] == [int.from_bytes(image[addr + j * bb: addr + (j + 1) * bb], "little")
                                        for j in range(beats)]


@cocotb.test()
async def abort_drains_the_bus(dut):
    """Abort in the middle of long reads and writes: the engines finish what the bus owes (no
    strobed write beat after the abort), go idle, and after a reset work normally."""
    env = await _setup(dut)
    rng, bb, ram = env["rng"], env["bb"], env["ram"]
    image = bytes(rng.getrandbits(8) for _ in range(RAM_BYTES))
    ram.write(0, image)
    dut.drain.value = 0
    grant = dict(base=0, end=RAM_BYTES)
    tasks = [cocotb.start_soon(env["rd_cmd"].send([dict(addr=0, beats=2000, **grant)])),
             cocotb.start_soon(env["wr_cmd"].send([dict(addr=RAM_BYTES // 2, beats=2000, **grant)])),
             cocotb.start_soon(env["wr_data"].send([{"data": (1 << (8 * bb)) - 1} for _ in range(2000)]))]
    env["rd_data"].stall = 0.5
    reader = cocotb.start_soon(env["rd_data"].receive(2000))
    await ClockCycles(dut.clk, rng.randint(100, 400))
    dut.drain.value = 1
    strobed = []

    async def watch():
        while True:
            await RisingEdge(dut.clk)
            if dut.m_axi__wvalid.value and dut.m_axi__wready.value and int(dut.m_axi__wstrb.value):
                strobed.append(1)

    watcher = cocotb.start_soon(watch())
    for t in tasks + [reader]:
        t.cancel()
    for sig in ("rd_cmd__valid", "wr_cmd__valid", "wr_data__valid"):
        getattr(dut, sig).value = 0
    dut.rd_data__ready.value = 0
    await RisingEdge(dut.clk)   # a beat taken in the abort's first cycle was already loaded
    await ReadOnly()
    # the one beat already in the W register (checked data, inside the window) may still go
    held = int(bool(dut.m_axi__wvalid.value) and bool(int(dut.m_axi__wstrb.value)))
    strobed.clear()
    await RisingEdge(dut.clk)
    await _wait_idle(dut)
    watcher.cancel()
    assert len(strobed) <= held, f"{len(strobed)} write beats with strobes after the abort"
    await RisingEdge(dut.clk)
    dut.drain.value = 0
    await _reset(dut)
    addr, beats = 64 * bb, 40
    cocotb.start_soon(env["rd_cmd"].send([dict(addr=addr, beats=beats, **grant)]))
    got = await env["rd_data"].receive(beats, timeout_cycles=5000)
    assert [g["data"] for g in got] == [int.from_bytes(image[addr + j * bb: addr + (j + 1) * bb], "little")
                                        for j in range(beats)]
