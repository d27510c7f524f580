"""cocotb testbench of `PointwiseArray` against the golden conv2d (1x1) / fully_connected.

A *case* is a `Config` plus a list of runs, written by the pytest side with `write_case` to an
``.npz`` whose path reaches the simulator in ``$PW_CASE``. Each run holds the int8 input pixels
(P, K), weights (O, K), per-channel bias/multiplier/shift, the per-tensor parameters, the stall
probabilities of the input source and output sink, and the expected (P, O) int8 output, which
`make_run` computes with ``verif/golden`` only (never from the hardware).

The cocotb test loads weights and tables through the load ports (with stalls), starts the run,
streams the pixels, collects every output word and compares; runs follow each other on the same
hardware without reset, so a stale weight, table, counter or zero point would show. Cycles from
``start`` to the last output of every run go to the JSON file named by ``$PW_STATS`` (if set).
"""

import json
import os
import random
from dataclasses import asdict

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge
from cocotb.utils import get_sim_time

from dwfuse.hdl.config import Config
from dwfuse.hdl.pointwise import geometry, pack_tables, pack_weights, pointwise_layouts
from dwfuse.verif.golden.arithmetic import quantize_multiplier, quantize_multiplier_smaller_than_one_exp
from dwfuse.verif.golden.ops import add, conv2d, fully_connected
from dwfuse.verif.streams import StreamSink, StreamSource, pack

__all__ = ["make_run", "write_case", "read_case", "CASE_ENV", "STATS_ENV"]

CASE_ENV = "PW_CASE"
STATS_ENV = "PW_STATS"
LEFT_SHIFT = 20  # TFLite's int8 ADD (reference_integer_ops::Add)
_ARRAYS = ("x", "w", "bias", "multiplier", "shift", "expected", "res")
_SCALARS = ("in_zp", "out_zp", "act_min", "act_max", "idle", "stall", "golden", "add")


def make_run(rng, *, k, o, pixels, in_zp=None, out_zp=None, act=None, idle=0.3, stall=0.3,
             extreme=True, golden="fc", residual=False):
    """A random run with its expected output from verif/golden.

    Multipliers are TFLite-like (``quantize_multiplier`` of a scale that keeps outputs mostly
    inside int8, so rounding errors show) except, with ``extreme``, a few channels with the
    largest/smallest multipliers and shifts and int32-extreme biases. ``golden`` picks the
    reference op: ``"fc"`` (fully_connected on (P, K)) or ``"conv"`` (conv2d with 1x1 kernels on
    a 1 x P x 1 x K image). With ``residual`` the conv output goes through a TFLite ADD with a
    random (P, O) int8 residual: parameters derived as TFLite's Prepare does from random scales
    (golden ``add``).
    """
    x = rng.integers(-128, 128, (pixels, k), dtype=np.int8)
    w = rng.integers(-128, 128, (o, k), dtype=np.int8)
    in_zp = int(rng.integers(-128, 128)) if in_zp is None else in_zp
    out_zp = int(rng.integers(-128, 128)) if out_zp is None else out_zp
    bias = rng.integers(-(1 << 16), 1 << 16, o).astype(np.int64)
    scale = 40.0 / (np.sqrt(k) * 74.0 * 74.0) * np.exp(rng.uniform(-1.5, 1.5, o))
    mult, shift = map(np.array, zip(*(quantize_multiplier(s) for s in scale)))
    if extreme:
        specials = [  # (bias, multiplier, shift)
            (-(1 << 31), (1 << 31) - 1, 0), ((1 << 31) - 1, (1 << 31) - 1, 31),
            (0, 1 << 30, -32), (12345, 0, 0), (-7, (1 << 31) - 1, 1), (3, 1 << 30, -31),
            (0, -(1 << 31), -3), (-(1 << 20), 1 << 30, 5),
        ]
        for c in rng.choice(o, size=min(o, 3), replace=False):
            b, mu, sh = specials[int(rng.integers(len(specials)))]
            bias[c], mult[c], shift[c] = b, mu, sh
    if act is None:  # a residual block's projection has no activation (its ADD may)
        act = "none" if residual else ["none", "relu", "range"][int(rng.integers(3))]
    if act == "none":
        act_min, act_max = -128, 127
    elif act == "relu":
        act_min, act_max = max(-128, out_zp), 127
    else:
        lo, hi = sorted(int(v) for v in rng.integers(-128, 128, 2))
        act_min, act_max = lo, hi
    kwargs = dict(in_zp=in_zp, out_zp=out_zp, multiplier=mult, shift=shift, act_min=act_min, act_max=act_max)
    if golden == "fc":
        expected = fully_connected(x, w, bias, **kwargs)
    elif golden == "conv":
        expected = conv2d(x.reshape(1, pixels, 1, k), w.reshape(o, 1, 1, k), bias, **kwargs).reshape(pixels, o)
    else:
        raise ValueError(f"golden must be 'fc' or 'conv', not {golden!r}")
    run = dict(x=x, w=w, bias=bias, multiplier=mult.astype(np.int64), shift=shift.astype(np.int64),
               expected=expected, in_zp=in_zp, out_zp=out_zp, act_min=act_min, act_max=act_max,
               idle=idle, stall=stall, golden=golden, add=None,
               res=np.zeros((pixels, o), np.int8))
    if residual:
        run["res"] = rng.integers(-128, 128, (pixels, o), dtype=np.int8)
        run["add"] = _add_params(rng)
        run["expected"] = add(expected, run["res"], a_zp=out_zp, left_shift=LEFT_SHIFT, **run["add"])
    return run


def _add_params(rng):
    """TFLite ADD Prepare (int8) from random input/output scales: QuantizeMultiplierSmallerThanOneExp."""
    s_a, s_b = np.exp(rng.uniform(-3, 0, 2))
    s_out = max(s_a, s_b) * np.exp(rng.uniform(-0.5, 1.5))
    twice_max = 2 * max(s_a, s_b)
    a_m, a_s = quantize_multiplier_smaller_than_one_exp(s_a / twice_max)
    b_m, b_s = quantize_multiplier_smaller_than_one_exp(s_b / twice_max)
    o_m, o_s = quantize_multiplier_smaller_than_one_exp(twice_max / ((1 << LEFT_SHIFT) * s_out))
    out_zp = int(rng.integers(-128, 128))
    lo, hi = (-128, 127) if rng.random() < 0.5 else (max(-128, out_zp), 127)
    return dict(b_zp=int(rng.integers(-128, 128)), out_zp=out_zp, a_multiplier=a_m, a_shift=a_s,
                b_multiplier=b_m, b_shift=b_s, out_multiplier=o_m, out_shift=o_s, act_min=lo, act_max=hi)


def write_case(path, config, runs):
    arrays = {f"run{n}_{a}": run[a] for n, run in enumerate(runs) for a in _ARRAYS}
    meta = {"config": asdict(config), "runs": [{s: run[s] for s in _SCALARS} for run in runs]}
    np.savez(path, meta=json.dumps(meta), **arrays)


def read_case(path):
    with np.load(path) as f:
        meta = json.loads(str(f["meta"]))
        runs = [{**scalars, **{a: f[f"run{n}_{a}"] for a in _ARRAYS}} for n, scalars in enumerate(meta["runs"])]
    return Config(**meta["config"]), runs


CLOCK_NS = 10


async def _wait_idle(dut, limit):
    for _ in range(limit):
        await ReadOnly()
        idle = not dut.busy.value
        await RisingEdge(dut.clk)
        if idle:
            return
    raise AssertionError(f"busy still high {limit} cycles after the last output")


async def _run_one(dut, config, lay, run, n, srcs, sink):
    wsrc, tsrc, isrc, rsrc = srcs
    R, C = config.lanes, config.pe_cols
    pixels, k = run["x"].shape
    o = run["w"].shape[0]
    kw, tiles = -(-k // R), -(-o // C)
    g = geometry(config)
    for s in srcs:
        s.idle = run["idle"]
    sink.stall = run["stall"]

    words = pack_weights(run["w"], config)
    assert len(words) == tiles * kw <= config.weight_words, "case does not fit the weight buffer"
    assert tiles <= g.max_tiles and kw <= g.max_k_words, "case exceeds the build's maxima"
    await wsrc.send([{"addr": a, "data": d} for a, d in enumerate(words)])
    await tsrc.send(pack_tables(run["bias"], run["multiplier"], run["shift"], config))

    add_params = run["add"] or {}
    dut.cfg.value = pack(lay.cfg, {
        "k_words": kw, "out_tiles": tiles, "in_zp": run["in_zp"], "out_zp": run["out_zp"],
        "act_min": run["act_min"], "act_max": run["act_max"], "residual": int(bool(add_params)),
        "add": {name: add_params.get(name, 0) for name, _ in lay.cfg["add"].shape}})
    dut.start.value = 1
    await RisingEdge(dut.clk)
    dut.start.value = 0
    dut.cfg.value = 0  # sampled at start only
    t0 = get_sim_time("ns")
    await ReadOnly()
    assert dut.busy.value == 1, f"run {n}: busy not set after start"
    assert dut.tload__ready.value == 0, f"run {n}: table port ready while busy"
    await RisingEdge(dut.clk)
    # The next job's weights may arrive while this one runs (the sequencer's prefetch): junk
    # into every weight word this run does not use must not change its results.
    spare = range(len(words), config.weight_words)
    junk_rng = np.random.default_rng(n + 200)
    prefetch = cocotb.start_soon(wsrc.send([
        {"addr": a, "data": int.from_bytes(junk_rng.bytes(R * C), "little")}
        for a in spare[:64]]))

    # Pad K with junk: the packed weights are zero there, so it must not matter.
    xp = np.asarray(
        np.random.default_rng(n).integers(-128, 128, (pixels, kw * R)), dtype=np.int8)
    xp[:, :k] = run["x"]
    beats = [{"data": [int(v) for v in xp[p, q * R:(q + 1) * R]], "last": int(p == pixels - 1 and q == kw - 1)}
             for p in range(pixels) for q in range(kw)]
    feeder = cocotb.start_soon(isrc.send(beats))
    res_feeder = None
    if add_params:  # one residual word per output word, junk in channels past O
        rp = np.asarray(np.random.default_rng(n + 100).integers(-128, 128, (pixels, tiles * C)), np.int8)
        rp[:, :o] = run["res"]
        res_words = [{"data": [int(v) for v in rp[p, t * C:(t + 1) * C]]} for p in range(pixels) for t in range(tiles)]
        res_feeder = cocotb.start_soon(rsrc.send(res_words))
    budget = 200 + pixels * tiles * max(kw, C) * 20
    got = await sink.receive(pixels * tiles, timeout_cycles=budget)
    cycles = round((get_sim_time("ns") - t0) / CLOCK_NS)
    await feeder
    await prefetch
    if res_feeder is not None:
        await res_feeder
    await _wait_idle(dut, 50)
    for _ in range(5):
        await ReadOnly()
        assert not dut.o__valid.value, f"run {n}: output beyond the expected {pixels * tiles} words"
        await RisingEdge(dut.clk)

    lasts = [b["last"] for b in got]
    assert lasts == [0] * (len(got) - 1) + [1], f"run {n}: last flags {lasts}"
    out = np.array([b["data"] for b in got], dtype=np.int64).reshape(pixels, tiles * C)[:, :o]
    exp = run["expected"].astype(np.int64)
    if not np.array_equal(out, exp):
        bad = np.argwhere(out != exp)
        p, c = bad[0]
        raise AssertionError(
            f"run {n} (K={k}, O={o}, P={pixels}, in_zp={run['in_zp']}, out_zp={run['out_zp']}, "
            f"act=[{run['act_min']}, {run['act_max']}], add={run['add']}): {len(bad)} of {out.size} outputs differ; "
            f"first pixel {p} channel {c}: got {out[p, c]}, golden {exp[p, c]} "
            f"(bias {run['bias'][c]}, multiplier {run['multiplier'][c]}, shift {run['shift'][c]})")
    return {"run": n, "k": k, "o": o, "pixels": pixels, "k_words": kw, "out_tiles": tiles,
            "residual": bool(add_params),
            "slices": config.pe_cols // (config.residual_lanes or config.requant_lanes) if add_params else g.slices,
            "idle": run["idle"], "stall": run["stall"], "cycles": cycles}


@cocotb.test()
async def pointwise_runs(dut):
    """Every run of the case, back to back on one DUT, against verif/golden."""
    config, runs = read_case(os.environ[CASE_ENV])
    lay = pointwise_layouts(config)
    rng = random.Random(int(os.environ["COCOTB_RANDOM_SEED"]))
    Clock(dut.clk, CLOCK_NS, unit="ns").start()
    dut.rst.value = 1
    dut.start.value = 0
    dut.cfg.value = 0
    srcs = (StreamSource(dut, "wload", lay.wload, dut.clk, rng),
            StreamSource(dut, "tload", lay.tload, dut.clk, rng),
            StreamSource(dut, "i", lay.i, dut.clk, rng),
            StreamSource(dut, "res", lay.res, dut.clk, rng))
    sink = StreamSink(dut, "o", lay.o, dut.clk, rng)
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    await RisingEdge(dut.clk)
    stats = []
    for n, run in enumerate(runs):
        stats.append(await _run_one(dut, config, lay, run, n, srcs, sink))
        dut._log.info("run %d: %s", n, stats[-1])
    if os.environ.get(STATS_ENV):
        with open(os.environ[STATS_ENV], "w") as fh:
            json.dump(stats, fh)
