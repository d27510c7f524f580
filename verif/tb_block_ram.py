"""cocotb testbench of `BlockRAM`: random writes, addresses and enables against a Python model.

`BlockRAMBench` puts one `BlockRAM` of each shape in `BENCH_SHAPES` side by side (ports
``ram<k>__...``), covering every DP16KD tiling of ``primitive="ecp5"``: the 36-, 18- and 9-bit
modes, several width tiles, and several depth tiles behind the output mux. The same bench is
built with ``primitive="infer"`` and ``"ecp5"`` (tests/test_block_ram.py), and both must match
the model below, which is the behaviour the module docstring of hdl/block_ram.py promises:
a write on an edge is not seen by a read on that edge; ``r_en`` latches ``mem[r_addr]``,
``r_oe`` moves the latched word to ``r_data``; everything starts at zero.
"""

import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, RisingEdge
from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import Out, flipped

from dwfuse.hdl.block_ram import BlockRAM

__all__ = ["BENCH_SHAPES", "BlockRAMBench", "INPUT_REGS_ENV"]

#: Environment variable: "1" when the bench was built with ``input_regs=True``.
INPUT_REGS_ENV = "BRAM_INPUT_REGS"

#: (width, depth) of each RAM; comments: the ecp5 tiling (mode, width tiles x depth tiles).
BENCH_SHAPES = (
    (40, 300),    # 36 x 512, 2 x 1
    (16, 1500),   # 9 x 2048, 2 x 1 (ties with 18 x 1024, 1 x 2: fewer depth tiles win)
    (18, 700),    # 18 x 1024, 1 x 1
    (64, 1100),   # 36 x 512, 2 x 3: output mux over three depth tiles
)


class BlockRAMBench(wiring.Component):
    """One `BlockRAM` per `BENCH_SHAPES` entry, each port exposed as ``ram<k>__<port>``."""

    def __init__(self, primitive, input_regs=False):
        self._rams = [BlockRAM(w, d, primitive=primitive, input_regs=input_regs)
                      for w, d in BENCH_SHAPES]
        super().__init__({f"ram{k}": Out(ram.signature) for k, ram in enumerate(self._rams)})

    def elaborate(self, platform):
        m = Module()
        for k, ram in enumerate(self._rams):
            m.submodules[f"ram{k}"] = ram
            wiring.connect(m, flipped(getattr(self, f"ram{k}")), ram)
        return m


class _Model:
    def __init__(self, width, depth, input_regs):
        self.width, self.depth = width, depth
        self.mem = [0] * depth
        self.latch = 0
        self.out = 0
        self.input_regs = input_regs
        self.held = dict(w_en=0, w_addr=0, w_data=0, r_en=0, r_addr=0)   # registered inputs

    def edge(self, w_en, w_addr, w_data, r_en, r_addr, r_oe):
        if self.input_regs:   # the RAM sees last edge's inputs (but r_oe)
            now = dict(w_en=w_en, w_addr=w_addr, w_data=w_data, r_en=r_en, r_addr=r_addr)
            w_en, w_addr, w_data, r_en, r_addr = self.held.values()
            self.held = now
        if r_oe:
            self.out = self.latch
        if r_en:
            self.latch = self.mem[r_addr]   # before this edge's write
        if w_en:
            self.mem[w_addr] = w_data


async def _drive(dut, k, width, depth, cycles, rng):
    port = lambda name: getattr(dut, f"ram{k}__{name}")  # noqa: E731
    model = _Model(width, depth, bool(int(os.environ.get(INPUT_REGS_ENV, "0"))))
    hot = [rng.randrange(depth) for _ in range(8)]        # addresses written and read often
    p_w, p_en, p_oe = rng.choice([0.5, 0.9]), rng.choice([0.5, 0.9]), rng.choice([0.5, 0.9])
    for cycle in range(cycles):
        await FallingEdge(dut.clk)
        got = int(port("r_data").value)
        assert got == model.out, (f"ram{k} ({width} x {depth}) cycle {cycle}: r_data "
                                  f"{got:#x}, expected {model.out:#x}")
        addr = lambda: rng.choice(hot) if rng.random() < 0.5 else rng.randrange(depth)  # noqa: E731
        inputs = dict(w_en=int(rng.random() < p_w), w_addr=addr(), w_data=rng.getrandbits(width),
                      r_en=int(rng.random() < p_en), r_addr=addr(), r_oe=int(rng.random() < p_oe))
        if cycle % 97 == 0:   # read the address being written, on the same edge
            inputs.update(w_en=1, r_en=1, r_addr=inputs["w_addr"])
        for name, value in inputs.items():
            port(name).value = value
        model.edge(**inputs)


@cocotb.test()
async def random_traffic(dut):
    """Every RAM of the bench under random writes and read enables, checked every cycle."""
    rng = random.Random(cocotb.RANDOM_SEED)
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 0
    for k, (width, depth) in enumerate(BENCH_SHAPES):
        for name in ("w_en", "w_addr", "w_data", "r_addr"):
            getattr(dut, f"ram{k}__{name}").value = 0
        getattr(dut, f"ram{k}__r_en").value = 0
        getattr(dut, f"ram{k}__r_oe").value = 0
    await RisingEdge(dut.clk)
    tasks = [cocotb.start_soon(_drive(dut, k, w, d, 3000, random.Random(rng.random())))
             for k, (w, d) in enumerate(BENCH_SHAPES)]
    for task in tasks:
        await task
