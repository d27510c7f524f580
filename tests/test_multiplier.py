# amaranth: UnusedElaboratable=no
"""RegisteredMultiplier kinds against Python's product, in Amaranth's simulator.

The LUT kind (shift-and-add, latency from the tree depth) is checked against ``a * b`` for
signed and unsigned operands of several widths, extremes included, at its reported latency;
the inferred kind runs through the same bench so the bench itself is checked at latency 2.
(The ECP5 kind needs the Verilog DSP model: the DepthwiseEngine and requantizer cocotb
benches cover it.)
"""

import random

import pytest
from amaranth import signed, unsigned
from amaranth.sim import Simulator

from dwfuse.hdl.multiplier import DSP_KINDS, MULTIPLIER_KINDS, RegisteredMultiplier


def _check(a_shape, b_shape, kind, cycles=200, seed=1):
    dut = RegisteredMultiplier(a_shape, b_shape, dsp=kind)
    latency = dut.latency
    sim = Simulator(dut)
    sim.add_clock(1e-6)

    def bounds(shape):
        return ((-(1 << (shape.width - 1)), (1 << (shape.width - 1)) - 1) if shape.signed
                else (0, (1 << shape.width) - 1))

    async def bench(ctx):
        rng = random.Random(seed)
        expected = []
        (alo, ahi), (blo, bhi) = bounds(a_shape), bounds(b_shape)
        for cycle in range(cycles):
            a = rng.choice([alo, ahi, rng.randint(alo, ahi)])
            b = rng.choice([blo, bhi, rng.randint(blo, bhi)])
            ctx.set(dut.a, a)
            ctx.set(dut.b, b)
            expected.append(a * b)
            stall = cycle % 7 == 3          # a disabled edge holds every stage
            ctx.set(dut.en, 0 if stall else 1)
            if stall:
                expected.pop()
                expected.append(None)
            await ctx.tick()
            done = [e for e in expected if e is not None]
            if len(done) >= latency:
                want = done[len(done) - latency]
                assert ctx.get(dut.p) == want, (a_shape, b_shape, kind, cycle)

    sim.add_testbench(bench)
    sim.run()
    return latency


@pytest.mark.parametrize("a_shape, b_shape, latency", [
    (signed(9), signed(8), 4),      # the depthwise taps: operands + 3 adder levels
    (unsigned(5), signed(3), 3),
    (signed(7), unsigned(4), 3),
    (unsigned(4), unsigned(1), 2),
    (signed(8), signed(2), 2),
    (signed(5), signed(1), 2),      # the lone partial product is the negative one
    (unsigned(16), signed(16), 5),
])
def test_lut_kind_matches_product(a_shape, b_shape, latency):
    assert _check(a_shape, b_shape, "lut") == latency
    assert RegisteredMultiplier.latency_for("lut", b_shape) == latency


def test_infer_kind_through_the_same_bench():
    assert _check(signed(9), signed(8), "infer") == 2
    assert RegisteredMultiplier.latency_for("ecp5", signed(8)) == 2


def test_kinds():
    assert "lut" in MULTIPLIER_KINDS and "lut" not in DSP_KINDS
    with pytest.raises(ValueError, match="dsp must be one of"):
        RegisteredMultiplier(signed(8), signed(8), dsp="xilinx")
    with pytest.raises(ValueError, match="dsp must be one of"):
        RegisteredMultiplier.latency_for("xilinx", signed(8))


@pytest.mark.parametrize("kind, latency", [("infer", 10), ("lut", 13)])
def test_quantized_multiplier_lut_kind_matches_golden(kind, latency):
    """MultiplyByQuantizedMultiplier with LUT multipliers (the ecp5 depthwise requantizer):
    bit-exact with verif/golden at its longer latency, extremes included."""
    from dwfuse.hdl.quantized_multiplier import MultiplyByQuantizedMultiplier
    from dwfuse.verif.golden.arithmetic import multiply_by_quantized_multiplier

    dut = MultiplyByQuantizedMultiplier(dsp=kind)
    assert dut.latency == latency == MultiplyByQuantizedMultiplier.latency_for(kind)
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    lo, hi = -(1 << 31), (1 << 31) - 1

    async def bench(ctx):
        rng = random.Random(2)
        expected = []
        for cycle in range(300):
            x = rng.choice([lo, hi, 0, rng.randint(lo, hi)])
            mult = rng.choice([lo, hi, 1 << 30, rng.randint(lo, hi)])
            shift = rng.randint(-32, 31)
            ctx.set(dut.x, x)
            ctx.set(dut.multiplier, mult)
            ctx.set(dut.shift, shift)
            expected.append(int(multiply_by_quantized_multiplier(x, mult, shift)))
            await ctx.tick()
            if cycle >= latency - 1:
                assert ctx.get(dut.y) == expected[cycle - latency + 1], (kind, cycle)

    sim.add_testbench(bench)
    sim.run()
