"""cocotb testbench of `CsrSlave` (hdl/csr.py) under cocotbext-axi's AxiLiteMaster with pauses.

The design under test is built by tests/test_csr.py with registers ``ident`` (ro), ``ctrl``
(wo), ``scratch`` (rw), ``status`` (ro). Expected values are what the bench itself wrote or
drove, never read from the design.
"""

import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge
from cocotbext.axi import AxiLiteBus, AxiLiteMaster
from cocotbext.axi.constants import AxiResp

from dwfuse.verif.streams import pause_axi_channels

__all__ = ["REGS"]

REGS = [("ident", "ro"), ("ctrl", "wo"), ("scratch", "rw"), ("status", "ro")]
OFF = {name: 4 * k for k, (name, _) in enumerate(REGS)}


@cocotb.test()
async def registers_behave(dut):
    rng = random.Random(int(os.environ["COCOTB_RANDOM_SEED"]))
    Clock(dut.clk, 10, unit="ns").start()
    dut.ident.value = 0x44574631
    dut.status.value = 0
    dut.ctrl_rd.value = 0
    dut.rst.value = 1
    master = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil_"), dut.clk, dut.rst)
    pause_axi_channels(master, 0.4, rng)
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0

    strobes = []

    async def watch_ctrl():
        while True:
            await RisingEdge(dut.clk)
            if dut.ctrl_we.value:
                strobes.append(int(dut.ctrl.value))

    cocotb.start_soon(watch_ctrl())

    assert int.from_bytes(await master.read(OFF["ident"], 4), "little") == 0x44574631
    shadow = 0
    for _ in range(40):
        what = rng.random()
        if what < 0.4:
            value = rng.getrandbits(32)
            await master.write(OFF["scratch"], value.to_bytes(4, "little"))
            shadow = value
        elif what < 0.55:   # one byte lane: the others keep their bytes
            lane, byte = rng.randrange(4), rng.getrandbits(8)
            await master.write(OFF["scratch"] + lane, bytes([byte]))
            shadow = (shadow & ~(0xFF << 8 * lane)) | byte << 8 * lane
        elif what < 0.8:
            value = rng.getrandbits(32)
            n = len(strobes)
            await master.write(OFF["ctrl"], value.to_bytes(4, "little"))
            await ClockCycles(dut.clk, 2)
            assert strobes[n:] == [value], f"ctrl write {value:#x}: strobes {strobes[n:]}"
        else:
            value = rng.getrandbits(32)
            dut.status.value = value
            dut.ctrl_rd.value = value ^ 0xFFFF
            await RisingEdge(dut.clk)
            assert int.from_bytes(await master.read(OFF["status"], 4), "little") == value
            assert int.from_bytes(await master.read(OFF["ctrl"], 4), "little") == value ^ 0xFFFF
        got = int.from_bytes(await master.read(OFF["scratch"], 4), "little")
        assert got == shadow, f"scratch reads {got:#x}, wrote {shadow:#x}"

    # Outside the map: SLVERR both ways, and nothing changes.
    n = len(strobes)
    wr = await master.write_if.write(4 * len(REGS), b"\xff\xff\xff\xff")
    assert wr.resp == AxiResp.SLVERR, wr
    rd = await master.read_if.read(4 * len(REGS) + 8, 4)
    assert rd.resp == AxiResp.SLVERR, rd
    assert strobes[n:] == []
    assert int.from_bytes(await master.read(OFF["scratch"], 4), "little") == shadow
