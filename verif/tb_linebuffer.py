# amaranth: UnusedElaboratable=no
"""cocotb testbench of `LineBuffer`: windows against a numpy reference built on verif/golden.

The case comes from the environment (set by tests/test_linebuffer.py, or by hand):

``LB_CASE``
    JSON: ``{"config": preset name, "overrides": {Config field: value}, "bank_depth": int or
    null, "max_height": int, optional "ram": "infer" | "ecp5", "runs": [run, ...], "metrics": path or null}``, each run ``{"width", "height", "chunks",
    "stride", "padding": "SAME" | "VALID" | [top, bottom, left, right], "pad_value",
    "idle", "stall", optional "start_again_after": cycles}`` (a stray start pulse mid-run, to
    be ignored). The runs go back to back through one simulation, each with its own cfg,
    so the later ones prove that ``start`` resets every counter.
``COCOTB_RANDOM_SEED``
    Seeds the activations and the stall patterns.

The expected windows are computed here from the input tensor with `verif.golden.ops` (TFLite's
SAME/VALID padding, padding with the zero point), never from the design. When ``metrics`` names
a file, runs without idle or stall cycles write their cycle counts to it (JSON).
"""

import dataclasses
import json
import os
import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

from dwfuse.hdl.config import preset
from dwfuse.hdl.linebuffer import LineBuffer
from dwfuse.verif.golden import ops
from dwfuse.verif.streams import StreamSink, StreamSource, pack

__all__ = ["expected_windows", "make_linebuffer", "reference_pads", "windows"]


def make_linebuffer(case):
    """The `LineBuffer` a case describes (the same object the pytest wrapper converts)."""
    config = dataclasses.replace(preset(case["config"]), **case.get("overrides", {}))
    return LineBuffer(config, bank_depth=case.get("bank_depth"),
                      max_height=case.get("max_height", 4096), ram=case.get("ram", "infer"))


def reference_pads(height, width, stride, padding):
    """(top, bottom, left, right) straight from TFLite's rules in verif/golden."""
    if isinstance(padding, str):
        _, top, bottom = ops.conv_padding(height, 3, stride, 1, padding)
        _, left, right = ops.conv_padding(width, 3, stride, 1, padding)
        return top, bottom, left, right
    return tuple(int(p) for p in padding)


def expected_windows(x, stride, padding, pad_value, lanes):
    """Windows of ``x`` (H, W, chunks * lanes) as an (n, 9, lanes) array in the stream's order.

    Order: out row, out column, chunk; taps in TFLite filter order (dy * 3 + dx).
    """
    h, w, c = x.shape
    chunks = c // lanes
    top, bottom, left, right = reference_pads(h, w, stride, padding)
    xp = ops.pad(x, [(top, bottom), (left, right), (0, 0)], pad_value)
    win = np.lib.stride_tricks.sliding_window_view(xp, (3, 3), axis=(0, 1))[::stride, ::stride]
    oh, ow = win.shape[:2]                                   # (oh, ow, c, 3, 3)
    win = win.transpose(0, 1, 3, 4, 2).reshape(oh, ow, 9, chunks, lanes)
    return win.transpose(0, 1, 3, 2, 4).reshape(oh * ow * chunks, 9, lanes)


def windows(got, lanes):
    """Received payload dicts → (taps (n, 9, lanes), chunk (n,), last (n,)) arrays."""
    taps = np.array([g["taps"] for g in got], dtype=np.int64).reshape(len(got), 9, lanes)
    return taps, np.array([g["chunk"] for g in got]), np.array([g["last"] for g in got])


class _Monitor:
    """Counts cycles and records when words go in and windows come out (for the benchmark)."""

    def __init__(self, dut):
        self.dut = dut
        self.cycle = 0
        self.out_cycles = []
        self.in_cycles = []
        self.in_refused = 0

    def reset(self):
        self.cycle, self.out_cycles, self.in_cycles, self.in_refused = 0, [], [], 0

    async def run(self):
        dut = self.dut
        while True:
            await ReadOnly()
            if dut.o__valid.value and dut.o__ready.value:
                self.out_cycles.append(self.cycle)
            if dut.i__valid.value:
                if dut.i__ready.value:
                    self.in_cycles.append(self.cycle)
                else:
                    self.in_refused += 1
            await RisingEdge(dut.clk)
            self.cycle += 1


def _describe(index, oh_ow_chunks):
    oh, ow, chunks = oh_ow_chunks
    k = index % chunks
    ox = index // chunks % ow
    oy = index // chunks // ow
    return f"window {index} (out row {oy}, out col {ox}, chunk {k})"


@cocotb.test()
async def windows_match_golden(dut):
    """Every run's windows equal the reference, in order, with ``last`` on the final one."""
    case = json.loads(os.environ["LB_CASE"])
    seed = int(os.environ["COCOTB_RANDOM_SEED"])
    lb = make_linebuffer(case)
    lanes = lb.config.lanes
    rng = random.Random(seed)
    nprng = np.random.default_rng(seed)

    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    dut.start.value = 0
    src = StreamSource(dut, "i", lb.word_layout, dut.clk, rng)
    sink = StreamSink(dut, "o", lb.window_layout, dut.clk, rng)
    for _ in range(3):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    monitor = _Monitor(dut)
    cocotb.start_soon(monitor.run())
    metrics = []

    for n, run in enumerate(case["runs"]):
        w, h, chunks, stride = run["width"], run["height"], run["chunks"], run["stride"]
        padding = run["padding"] if isinstance(run["padding"], str) else tuple(run["padding"])
        pad_value = run["pad_value"]
        what = f"run {n} {json.dumps(run)}"
        cfg = lb.cfg_for(w, h, chunks, stride, padding, pad_value)
        assert (cfg["pad_top"], cfg["pad_bottom"], cfg["pad_left"], cfg["pad_right"]) == \
            reference_pads(h, w, stride, padding), f"{what}: window_geometry pads differ from ops"

        x = nprng.integers(-128, 128, size=(h, w, chunks * lanes), dtype=np.int8)
        expected = expected_windows(x, stride, padding, pad_value, lanes)
        assert expected.shape[0] == cfg["out_width"] * cfg["out_height"] * chunks, \
            f"{what}: window_geometry out size differs from the reference's"
        words = [list(map(int, x[r, c, k * lanes:(k + 1) * lanes]))
                 for r in range(h) for c in range(w) for k in range(chunks)]

        # a new run: wait for the previous one to end, then start with the new cfg
        while True:
            await ReadOnly()
            if not dut.busy.value:
                break
            await RisingEdge(dut.clk)
        await RisingEdge(dut.clk)
        dut.cfg.value = pack(lb.cfg_layout, cfg)
        dut.start.value = 1
        await RisingEdge(dut.clk)
        dut.start.value = 0
        monitor.reset()

        src.idle, sink.stall = run["idle"], run["stall"]
        sender = cocotb.start_soon(src.send(words))
        if run.get("start_again_after"):
            cocotb.start_soon(_pulse_start(dut, run["start_again_after"]))
        budget = 40 * (len(words) + len(expected)) + 200
        got = await sink.receive(len(expected), timeout_cycles=budget)
        for _ in range(budget):
            if sender.done():
                break
            await RisingEdge(dut.clk)
        assert sender.done(), f"{what}: input not all taken ({len(monitor.in_cycles)} of {len(words)})"

        taps, chunk, last = windows(got, lanes)
        bad = np.nonzero((taps != expected).any(axis=(1, 2)))[0]
        shape = (cfg["out_height"], cfg["out_width"], chunks)
        if bad.size:
            i = int(bad[0])
            raise AssertionError(
                f"{what}: {bad.size} of {len(expected)} windows differ; first is "
                f"{_describe(i, shape)}:\n got      {taps[i].tolist()}\n expected {expected[i].tolist()}")
        assert (chunk == np.tile(np.arange(chunks), len(expected) // chunks)).all(), \
            f"{what}: chunk fields wrong: {chunk.tolist()[:40]}"
        want_last = np.zeros(len(expected), dtype=int)
        want_last[-1] = 1
        assert (last == want_last).all(), f"{what}: last at {np.nonzero(last)[0].tolist()}"

        # the run ends cleanly: busy falls, nothing more comes out, no more input is taken
        for _ in range(8):
            await ReadOnly()
            assert not dut.o__valid.value, f"{what}: an extra window after the last"
            assert not dut.i__ready.value, f"{what}: input still accepted after the run's words"
            await RisingEdge(dut.clk)
        await ReadOnly()
        assert not dut.busy.value, f"{what}: busy still high after the run"

        if run["idle"] == 0 and run["stall"] == 0:
            metrics.append(_throughput(run, cfg, monitor, len(words)))
            dut._log.info(f"throughput: {metrics[-1]}")
        await RisingEdge(dut.clk)

    if case.get("metrics"):
        with open(case["metrics"], "w") as fh:
            json.dump(metrics, fh, indent=1)


async def _pulse_start(dut, cycles):
    """A stray ``start`` in mid-run, which the line buffer must ignore."""
    for _ in range(cycles):
        await RisingEdge(dut.clk)
    dut.start.value = 1
    await RisingEdge(dut.clk)
    dut.start.value = 0


def _throughput(run, cfg, monitor, n_words):
    """Cycle counts of an unstalled run; steady state = out rows 1 .. out_height-2."""
    out = monitor.out_cycles
    per_row = cfg["out_width"] * run["chunks"]
    result = {**{k: run[k] for k in ("width", "height", "chunks", "stride", "padding")},
              "windows": len(out), "words": n_words,
              "first_window_cycle": out[0], "last_window_cycle": out[-1],
              "input_refused_cycles": monitor.in_refused,
              "cycles_per_window_total": round((out[-1] + 1) / len(out), 4)}
    if cfg["out_height"] >= 3:
        a, b = out[per_row], out[per_row * (cfg["out_height"] - 1)]
        result["cycles_per_window_steady"] = round((b - a) / (per_row * (cfg["out_height"] - 2)), 4)
        taken = sum(1 for c in monitor.in_cycles if a <= c < b)
        result["cycles_per_input_word_steady"] = round((b - a) / taken, 4) if taken else None
    return result
