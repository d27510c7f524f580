"""SerialMultiplier in Amaranth's simulator against Python's integer product: random and extreme
operands, a restart in the middle of a product, the cycle count (one per bit of ``b``); and
``constant_product`` against ``value * k`` with no multiplier left in the design."""

import random

import pytest
from amaranth import Module, Signal
from amaranth.back import rtlil
from amaranth.sim import Simulator

from dwfuse.hdl.serial_multiplier import SerialMultiplier, constant_product


def _products(a_width, b_width, pairs, restart_after=None):
    """Runs every (a, b) through one multiplier; returns [(product, busy cycles)]."""
    dut = SerialMultiplier(a_width, b_width)
    results = []
    sim = Simulator(dut)
    sim.add_clock(1e-6)

    async def bench(ctx):
        for a, b in pairs:
            if restart_after is not None:      # a different product, abandoned part-way
                ctx.set(dut.a, (1 << a_width) - 1)
                ctx.set(dut.b, (1 << b_width) - 1)
                ctx.set(dut.start, 1)
                await ctx.tick()
                ctx.set(dut.start, 0)
                for _ in range(restart_after):
                    await ctx.tick()
            ctx.set(dut.a, a)
            ctx.set(dut.b, b)
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            ctx.set(dut.a, 0)          # operands are sampled at start only
            ctx.set(dut.b, 0)
            busy = 0
            while ctx.get(dut.busy):
                busy += 1
                await ctx.tick()
                assert busy <= b_width, f"a={a} b={b}: still busy after {busy} cycles"
            results.append((ctx.get(dut.product), busy))

    sim.add_testbench(bench)
    sim.run()
    return results


@pytest.mark.parametrize("a_width, b_width", [(32, 17), (8, 3), (1, 1), (5, 12)])
def test_products_and_cycles(a_width, b_width):
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    amax, bmax = (1 << a_width) - 1, (1 << b_width) - 1
    pairs = [(0, 0), (amax, bmax), (amax, 1), (1, bmax), (0, bmax), (amax, 0), (1, 1 << (b_width - 1))]
    pairs += [(rng.randrange(amax + 1), rng.randrange(bmax + 1)) for _ in range(40)]
    for (a, b), (product, busy) in zip(pairs, _products(a_width, b_width, pairs)):
        assert product == a * b, f"seed {seed}: {a} * {b} gave {product}"
        assert busy == b.bit_length(), f"seed {seed}: {a} * {b} took {busy} cycles"


@pytest.mark.parametrize("restart_after", [0, 1, 5])
def test_start_while_busy_restarts(restart_after):
    pairs = [(123456789, 65537), (7, 3), (0xFFFFFFFF, 0)]
    for (a, b), (product, _) in zip(pairs, _products(32, 17, pairs, restart_after=restart_after)):
        assert product == a * b


def test_bad_widths():
    with pytest.raises(ValueError, match="at least 1"):
        SerialMultiplier(0, 4)


@pytest.mark.parametrize("k", [0, 1, 2, 9, 16, 43691, 255])
def test_constant_product(k):
    value = Signal(16)
    out = Signal(40)
    m = Module()
    m.d.comb += out.eq(constant_product(value, k))
    assert "$mul" not in rtlil.convert(m, ports=[value, out])
    sim = Simulator(m)

    async def bench(ctx):
        for v in (0, 1, 3, 0xFFFF, 12345):
            ctx.set(value, v)
            assert ctx.get(out) == v * k

    sim.add_testbench(bench)
    sim.run()
    with pytest.raises(ValueError):
        constant_product(value, -1)
