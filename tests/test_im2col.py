# amaranth: UnusedElaboratable=no
"""Im2col in Amaranth's simulator against a plain-Python im2col: every window's words in
TFLite's (tap, channel) order, dense packing for every channel count up to lanes, under random
valid and ready stalls; at full rate one word per cycle with no bubbles between windows;
i.ready, o.valid and o.data are registered or depend on o.ready only."""

import random

import pytest
from amaranth.sim import Simulator

from dwfuse.hdl.config import preset
from dwfuse.hdl.im2col import Im2col
from dwfuse.hdl.linebuffer import LineBuffer


def _window_layout(config):
    lb = LineBuffer(config)
    lb._MustUse__silence = True
    return lb.window_layout


def expected_words(taps, lanes, dense_cin):
    """Reference: the window's words as the PE array must see them (lists of lanes ints)."""
    if dense_cin is None:
        return [list(tap) for tap in taps]
    flat = [taps[t][c] for t in range(9) for c in range(dense_cin)]
    flat += [0] * (-len(flat) % lanes)
    return [flat[k:k + lanes] for k in range(0, len(flat), lanes)]


def _run(config, seed, dense_cin, p_valid, p_ready, n_windows=12):
    lanes = config.lanes
    dut = Im2col(config, _window_layout(config))
    rng = random.Random(seed)
    windows = [[[rng.randrange(-128, 128) for _ in range(lanes)] for _ in range(9)]
               for _ in range(n_windows)]
    want = []
    for k, taps in enumerate(windows):
        words = expected_words(taps, lanes, dense_cin)
        want += [(w, int(k == n_windows - 1 and j == len(words) - 1)) for j, w in enumerate(words)]
    got, cycles = [], []
    sim = Simulator(dut)
    sim.add_clock(1e-6)

    async def bench(ctx):
        ctx.set(dut.cfg.dense, dense_cin is not None)
        ctx.set(dut.cfg.dense_cin, dense_cin or lanes)
        ctx.set(dut.cfg.dense_words, -(-9 * (dense_cin or lanes) // lanes))
        await ctx.tick()      # cfg is decoded into flip-flops: set a cycle before the first window
        k, cycle = 0, 0
        while len(got) < len(want):
            offer = k < n_windows and rng.random() < p_valid
            take = rng.random() < p_ready
            ctx.set(dut.i.valid, offer)
            if offer:
                ctx.set(dut.i.payload.taps, windows[k])
                ctx.set(dut.i.payload.last, k == n_windows - 1)
            ctx.set(dut.o.ready, take)
            i_ready, o_valid = ctx.get(dut.i.ready), ctx.get(dut.o.valid)
            if o_valid and take:
                got.append((list(ctx.get(dut.o.payload.data)), ctx.get(dut.o.payload.last)))
                cycles.append(cycle)
            if offer and i_ready:
                k += 1
            await ctx.tick()
            cycle += 1
            assert cycle < 50 * len(want), f"seed {seed}: stuck after {len(got)} words"

    sim.add_testbench(bench)
    sim.run()
    return want, got, cycles


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("p_valid, p_ready", [(0.5, 0.5), (0.9, 0.3), (0.3, 0.9)])
@pytest.mark.parametrize("config_name", ["tiny", "ecp5"])
def test_words_in_tflite_order_under_stalls(config_name, seed, p_valid, p_ready):
    config = preset(config_name)
    rng = random.Random(seed)
    for dense_cin in [None, 1, rng.randrange(2, config.lanes + 1), config.lanes]:
        want, got, _ = _run(config, seed, dense_cin, p_valid, p_ready)
        assert got == want, f"seed {seed}, dense_cin {dense_cin}"


@pytest.mark.parametrize("dense_cin, words", [(None, 9), (3, 4), (1, 2), (8, 9)])
def test_full_rate_one_word_per_cycle(dense_cin, words):
    """ecp5 (8 lanes): an RGB window is 27 values, 4 words; back-to-back windows leave no gap."""
    want, got, cycles = _run(preset("ecp5"), 5, dense_cin, 1.0, 1.0, n_windows=6)
    assert got == want
    assert len(want) == 6 * words
    assert cycles == list(range(1, 1 + 6 * words))   # latency 1, no bubbles


def test_outputs_do_not_follow_inputs_combinationally():
    """o.valid/o.data change only on clock edges; i.ready falls while a window is held and
    o.ready is low, and rises with o.ready when the last word is at the head."""
    config = preset("tiny")
    dut = Im2col(config, _window_layout(config))
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    seen = []

    async def bench(ctx):
        ctx.set(dut.cfg.dense, 1)
        ctx.set(dut.cfg.dense_cin, 1)
        ctx.set(dut.cfg.dense_words, 3)     # 9 values on 4 lanes: 3 words
        await ctx.tick()
        ctx.set(dut.i.payload.taps, [[t] * 4 for t in range(9)])
        ctx.set(dut.i.valid, 1)
        ctx.set(dut.o.ready, 0)
        seen.append((ctx.get(dut.i.ready), ctx.get(dut.o.valid)))     # empty: takes it
        await ctx.tick()
        ctx.set(dut.i.valid, 0)
        seen.append((ctx.get(dut.i.ready), ctx.get(dut.o.valid)))     # held, o stalled
        ctx.set(dut.o.ready, 1)
        seen.append((ctx.get(dut.i.ready), ctx.get(dut.o.valid)))     # 3 words: not yet
        data = list(ctx.get(dut.o.payload.data))
        await ctx.tick()
        await ctx.tick()
        seen.append((ctx.get(dut.i.ready), ctx.get(dut.o.valid)))     # last word at the head
        assert data == [0, 1, 2, 3]

    sim.add_testbench(bench)
    sim.run()
    assert seen == [(1, 0), (0, 1), (0, 1), (1, 1)]
