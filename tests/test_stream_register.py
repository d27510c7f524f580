# amaranth: UnusedElaboratable=no
"""StreamRegister in Amaranth's simulator: every word passes once, in order, under random valid
and ready stalls; at full rate it passes one word per cycle after one cycle of latency; i.ready,
o.valid and o.payload never depend combinationally on the other side."""

import random

import pytest
from amaranth import unsigned
from amaranth.lib import data
from amaranth.sim import Simulator

from dwfuse.hdl.stream_register import StreamRegister

LAYOUT = data.StructLayout({"data": unsigned(16), "last": 1})


def _run(seed, p_valid, p_ready, n_words=300, groups=1):
    dut = StreamRegister(LAYOUT, groups=groups)
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    rng = random.Random(seed)
    sent = [{"data": rng.randrange(1 << 16), "last": int(k == n_words - 1)} for k in range(n_words)]
    got = []
    cycles = []

    async def bench(ctx):
        k = 0
        cycle = 0
        while len(got) < n_words:
            offer = k < n_words and rng.random() < p_valid
            take = rng.random() < p_ready
            ctx.set(dut.i.valid, offer)
            if offer:
                ctx.set(dut.i.payload, sent[k])
            ctx.set(dut.o.ready, take)
            # registered outputs: read before the edge, they must not follow this cycle's inputs
            i_ready, o_valid = ctx.get(dut.i.ready), ctx.get(dut.o.valid)
            o_payload = ctx.get(dut.o.payload)
            if o_valid and take:
                got.append({"data": o_payload.data, "last": o_payload.last})
                cycles.append(cycle)
            if offer and i_ready:
                k += 1
            await ctx.tick()
            cycle += 1
            assert cycle < 20 * n_words, f"seed {seed}: stuck after {len(got)} words"

    sim.add_testbench(bench)
    sim.run()
    return sent, got, cycles


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("p_valid, p_ready", [(0.5, 0.5), (0.9, 0.3), (0.3, 0.9)])
@pytest.mark.parametrize("groups", [1, 3])   # 3: 17 payload bits in slices of 6, 6, 5
def test_random_stalls_keep_every_word_in_order(seed, p_valid, p_ready, groups):
    sent, got, _ = _run(seed, p_valid, p_ready, groups=groups)
    assert got == sent, f"seed {seed}"


def test_full_rate_one_word_per_cycle():
    sent, got, cycles = _run(4, 1.0, 1.0, n_words=50)
    assert got == sent
    assert cycles == list(range(1, 51))     # latency 1, no bubbles


def test_ready_and_valid_are_registered():
    """With o.ready low the slice takes exactly two words, then i.ready falls; o.valid rises
    only on the edge after the first word is offered."""
    dut = StreamRegister(LAYOUT)
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    seen = []

    async def bench(ctx):
        ctx.set(dut.o.ready, 0)
        for n in range(4):
            ctx.set(dut.i.valid, 1)
            ctx.set(dut.i.payload, {"data": n, "last": 0})
            seen.append((ctx.get(dut.i.ready), ctx.get(dut.o.valid)))
            await ctx.tick()

    sim.add_testbench(bench)
    sim.run()
    assert seen == [(1, 0), (1, 1), (0, 1), (0, 1)]
