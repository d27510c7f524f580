"""cocotb testbench of `LayerEngine`: whole layers (or fused groups) in every mode vs verif/golden.

A *case* is a list of layer runs for one `Config`, written by the pytest side with `write_case`
(a pickle whose path reaches the simulator in ``$ENGINE_CASE``). `make_run` builds a run from the
layers' int8 tensors and integer parameters (random ones from `pw_layer` / `dw_layer` /
`conv3_layer`, or real ones cut from a model) and computes the expected output with
``verif/golden`` only (`golden_output`), never from the hardware.

The cocotb test runs every run back to back on one DUT without reset: loads the PE weights and
tables and the depthwise parameters through their ports (with stalls), sets ``cfg``, pulses
``start``, streams ``i`` (and ``res``) with random idle cycles while the output sink stalls at
random, then compares every output word with the golden tensor (channels past the layer's
count, which the hardware pads, are not compared) and checks the ``last`` flag. Cycles from
``start`` to the last output word of every run go to ``$ENGINE_STATS`` (JSON) if set.
"""

import json
import os
import pickle
import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge, SimTimeoutError, with_timeout
from cocotb.utils import get_sim_time

from dwfuse.hdl.depthwise import pack_params
from dwfuse.hdl.engine import Mode, conv3_weights, engine_cfg, engine_layouts
from dwfuse.hdl.pointwise import pack_tables, pack_weights
from dwfuse.verif.golden.arithmetic import quantize_multiplier
from dwfuse.verif.golden.ops import add, conv2d, depthwise_conv2d
from dwfuse.verif.streams import StreamSink, StreamSource, pack
from dwfuse.verif.tb_pointwise import CLOCK_NS, LEFT_SHIFT, _add_params, _wait_idle

__all__ = ["pw_layer", "dw_layer", "conv3_layer", "add_layer", "golden_output", "make_run",
           "write_case", "read_case", "CASE_ENV", "STATS_ENV"]

CASE_ENV = "ENGINE_CASE"
STATS_ENV = "ENGINE_STATS"
_ZPS = (-128, 127)


def _zp(rng):
    return int(rng.choice([-128, 127, int(rng.integers(-128, 128))]))


def _clamp(rng, out_zp):
    kind = int(rng.integers(3))
    if kind == 0:
        return -128, 127
    if kind == 1:
        return max(-128, out_zp), 127   # ReLU
    return max(-128, out_zp), min(127, out_zp + int(rng.integers(40, 200)))   # ReLU6-like


def _requant(rng, o, fan_in):
    """TFLite-like per-channel multipliers for an int8 x int8 sum of ``fan_in`` products."""
    scale = 40.0 / (np.sqrt(fan_in) * 74.0 * 74.0) * np.exp(rng.uniform(-1.5, 1.5, o))
    mult, shift = zip(*(quantize_multiplier(s) for s in scale))
    return np.array(mult, np.int64), np.array(shift, np.int64)


def _layer(rng, w_shape, fan_in, o, in_zp, out_zp):
    in_zp = _zp(rng) if in_zp is None else in_zp
    out_zp = _zp(rng) if out_zp is None else out_zp
    act_min, act_max = _clamp(rng, out_zp)
    mult, shift = _requant(rng, o, fan_in)
    return {"w": rng.integers(-128, 128, w_shape).astype(np.int8),
            "bias": rng.integers(-(1 << 16), 1 << 16, o).astype(np.int64),
            "multiplier": mult, "shift": shift, "in_zp": in_zp, "out_zp": out_zp,
            "act_min": act_min, "act_max": act_max}


def pw_layer(rng, k, o, in_zp=None, out_zp=None):
    """Random 1x1 conv / FC: ``w`` (O, K)."""
    return _layer(rng, (o, k), k, o, in_zp, out_zp)


def dw_layer(rng, c, in_zp=None, out_zp=None):
    """Random 3x3 depthwise conv: ``w`` (1, 3, 3, C)."""
    return _layer(rng, (1, 3, 3, c), 9, c, in_zp, out_zp)


def conv3_layer(rng, i, o, in_zp=None, out_zp=None):
    """Random 3x3 conv: ``w`` (O, 3, 3, I)."""
    return _layer(rng, (o, 3, 3, i), 9 * i, o, in_zp, out_zp)


def add_layer(rng):
    """TFLite ADD parameters (golden ``add`` keywords without ``a_zp`` / ``left_shift``)."""
    return _add_params(rng)


def _requant_kwargs(layer):
    return {name: layer[name] for name in ("in_zp", "out_zp", "multiplier", "shift", "act_min",
                                           "act_max")}


def _pw(x, layer):
    o, k = layer["w"].shape
    return conv2d(x, layer["w"].reshape(o, 1, 1, k), layer["bias"], **_requant_kwargs(layer))


def golden_output(mode, x, *, pe=None, dw=None, expand=None, stride=1, padding="SAME", add_params=None):
    """The layer's (group's) output tensor (OH, OW, O) from verif/golden, x: (H, W, I) int8."""
    mode = Mode(mode)
    s = (stride, stride)
    y = x[None]
    if mode == Mode.PW_DW_PW:
        y = _pw(y, expand)
    if mode in (Mode.DW, Mode.DW_PW, Mode.PW_DW_PW):
        y = depthwise_conv2d(y, dw["w"], dw["bias"], stride=s, padding=padding, **_requant_kwargs(dw))
    if mode == Mode.CONV3:
        y = conv2d(y, pe["w"], pe["bias"], stride=s, padding=padding, **_requant_kwargs(pe))
    elif mode != Mode.DW:
        y = _pw(y, pe)
    if add_params:
        y = add(y, x[None], a_zp=pe["out_zp"], left_shift=LEFT_SHIFT, **add_params)
    return y[0]


def _ctx(layer, weight_base=0, table_base=0):
    return {"in_zp": layer["in_zp"], "out_zp": layer["out_zp"], "act_min": layer["act_min"],
            "act_max": layer["act_max"], "weight_base": weight_base, "table_base": table_base}


def make_run(config, mode, x, *, pe=None, dw=None, expand=None, stride=1, padding="SAME",
             add_params=None, expected=None, idle=0.3, stall=0.3, name=""):
    """One engine run: load beats, ``cfg``, input and residual tensors, expected output.

    ``expected`` defaults to `golden_output`; a caller with a reference tensor (a model's
    intermediate) passes it to check both.
    """
    mode = Mode(mode)
    x = np.asarray(x, np.int8)
    h, w, c_in = x.shape
    golden = golden_output(mode, x, pe=pe, dw=dw, expand=expand, stride=stride, padding=padding,
                           add_params=add_params)
    if expected is not None and not np.array_equal(np.asarray(expected), golden):
        raise AssertionError(f"{name}: golden_output disagrees with the given reference")
    wload, tload, pload = [], [], []
    pe_ctx = expand_ctx = None

    def load_pw(w_ok, layer, wbase, tbase):
        words = pack_weights(w_ok, config)
        wload.extend({"addr": wbase + a, "data": d} for a, d in enumerate(words))
        rows = pack_tables(layer["bias"], layer["multiplier"], layer["shift"], config)
        tload.extend({**r, "addr": r["addr"] + tbase} for r in rows)
        return len(words), len(rows)

    if mode != Mode.DW:
        w_pe = conv3_weights(pe["w"], config) if mode == Mode.CONV3 else pe["w"]
        n_words, n_rows = load_pw(w_pe, pe, 0, 0)
        pe_ctx = _ctx(pe)
        if mode == Mode.PW_DW_PW:
            load_pw(expand["w"], expand, n_words, n_rows)
            expand_ctx = {**_ctx(expand, n_words, n_rows), "channels": expand["w"].shape[0]}
    if dw is not None:
        pload = pack_params(dw["w"], dw["bias"], dw["multiplier"], dw["shift"], config)
    cfg = engine_cfg(config, mode, width=w, height=h, in_channels=c_in,
                     out_channels=golden.shape[2], pe=pe_ctx, expand=expand_ctx,
                     dw=None if dw is None else {k: dw[k] for k in ("in_zp", "out_zp", "act_min", "act_max")},
                     stride=stride, padding=padding, add=add_params)
    return {"mode": int(mode), "x": x, "expected": golden, "cfg": cfg, "wload": wload,
            "tload": tload, "pload": pload, "residual": add_params is not None,
            "mid": None if expand is None else expand["w"].shape[0],
            "idle": idle, "stall": stall, "name": name or mode.name,
            "stride": stride, "padding": padding}


def write_case(path, config, runs):
    with open(path, "wb") as fh:
        pickle.dump({"config": config, "runs": runs}, fh)


def read_case(path):
    with open(path, "rb") as fh:
        case = pickle.load(fh)
    return case["config"], case["runs"]


def _words(t, lanes, rng):
    """(H, W, C) int8 → NHWC word payloads, channels padded with junk to a multiple of lanes."""
    h, w, c = t.shape
    chunks = -(-c // lanes)
    tp = rng.integers(-128, 128, (h, w, chunks * lanes)).astype(np.int64)
    tp[:, :, :c] = t
    return [{"data": row.tolist()} for row in tp.reshape(-1, lanes)]


async def _run_one(dut, config, lay, run, n, srcs, sink, nprng):
    wsrc, tsrc, psrc, isrc, rsrc = srcs
    for s in srcs:
        s.idle = run["idle"]
    sink.stall = run["stall"]
    lanes = config.lanes
    await wsrc.send(run["wload"])
    await tsrc.send(run["tload"])
    await psrc.send(run["pload"])
    dut.cfg.value = pack(lay.cfg, run["cfg"])
    dut.start.value = 1
    await RisingEdge(dut.clk)
    dut.start.value = 0
    t0 = get_sim_time("ns")

    exp = run["expected"]
    oh, ow, oc = exp.shape
    n_out = oh * ow * -(-oc // lanes)
    feeder = cocotb.start_soon(isrc.send(_words(run["x"], lanes, nprng)))
    res_feeder = None
    if run["residual"]:
        res_feeder = cocotb.start_soon(rsrc.send(_words(run["x"], lanes, nprng)))
    x = run["x"]
    budget = 2000 + 60 * (x.size + exp.size) + 200 * oh * ow * max(1, x.shape[2] // lanes)
    got = await sink.receive(n_out, timeout_cycles=budget)
    cycles = round((get_sim_time("ns") - t0) / CLOCK_NS)
    for task, what in ((feeder, "i"), (res_feeder, "res")):
        if task is not None:   # every input word must have been taken by now
            try:
                await with_timeout(task, 200 * CLOCK_NS, "ns")
            except SimTimeoutError:
                raise AssertionError(f"run {n} ({run['name']}): {what} words left untaken "
                                     "after the last output") from None
    await _wait_idle(dut, 50)
    for _ in range(5):
        await ReadOnly()
        assert not dut.o__valid.value, f"run {n} ({run['name']}): output beyond {n_out} words"
        await RisingEdge(dut.clk)
    lasts = [b["last"] for b in got]
    assert lasts == [0] * (n_out - 1) + [1], f"run {n} ({run['name']}): last flags wrong"
    out = np.array([b["data"] for b in got], np.int64).reshape(oh, ow, -1)[:, :, :oc]
    if not np.array_equal(out, exp):
        bad = np.argwhere(out != exp)
        y, xx, c = bad[0]
        raise AssertionError(
            f"run {n} ({run['name']}, input {run['x'].shape}, stride {run['stride']}, padding "
            f"{run['padding']}): {len(bad)} of {out.size} outputs differ; first at row {y} col {xx} "
            f"channel {c}: got {out[y, xx, c]}, golden {exp[y, xx, c]}")
    return {"run": n, "name": run["name"], "mode": Mode(run["mode"]).name,
            "input": list(run["x"].shape), "output": list(exp.shape), "stride": run["stride"],
            "idle": run["idle"], "stall": run["stall"], "cycles": cycles}


@cocotb.test()
async def engine_runs(dut):
    """Every run of the case, back to back on one DUT, against verif/golden."""
    config, runs = read_case(os.environ[CASE_ENV])
    lay = engine_layouts(config)
    seed = int(os.environ["COCOTB_RANDOM_SEED"])
    rng = random.Random(seed)
    nprng = np.random.default_rng(seed)
    Clock(dut.clk, CLOCK_NS, unit="ns").start()
    dut.rst.value = 1
    dut.start.value = 0
    dut.cfg.value = 0
    srcs = (StreamSource(dut, "wload", lay.wload, dut.clk, rng),
            StreamSource(dut, "tload", lay.tload, dut.clk, rng),
            StreamSource(dut, "pload", lay.pload, dut.clk, rng),
            StreamSource(dut, "i", lay.i, dut.clk, rng),
            StreamSource(dut, "res", lay.res, dut.clk, rng))
    sink = StreamSink(dut, "o", lay.o, dut.clk, rng)
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    await RisingEdge(dut.clk)
    stats = []
    for n, run in enumerate(runs):
        stats.append(await _run_one(dut, config, lay, run, n, srcs, sink, nprng))
        dut._log.info("run %d: %s", n, stats[-1])
    if os.environ.get(STATS_ENV):
        with open(os.environ[STATS_ENV], "w") as fh:
            json.dump(stats, fh)


# ---- real layers cut from a model ------------------------------------------------------------


def _op_layer(op, graph):
    """An op's weights and integer parameters in the form `make_run` takes."""
    p = op.params
    w = graph.tensors[op.inputs[1]].data
    if op.kind == "CONV_2D" and w.shape[1:3] == (1, 1):
        w = w.reshape(w.shape[0], w.shape[3])
    elif op.kind == "DEPTHWISE_CONV_2D" and graph.tensors[op.inputs[0]].shape[3] == 1 \
            and p["depth_multiplier"] > 1:
        w = w.transpose(3, 1, 2, 0)   # one input channel: a standard conv (O, 3, 3, 1)
    channels = len(np.atleast_1d(p["multiplier"]))
    bias = np.zeros(channels, np.int64) if p["bias"] is None else p["bias"]
    return {"w": np.asarray(w, np.int8), "bias": np.asarray(bias, np.int64),
            "multiplier": np.asarray(p["multiplier"], np.int64),
            "shift": np.asarray(p["shift"], np.int64), "in_zp": int(p["in_zp"]),
            "out_zp": int(p["out_zp"]), "act_min": int(p["act_min"]), "act_max": int(p["act_max"])}


def _add_operands(op, project_output):
    """The ADD's parameters with ``a`` = the projection output (the PE array's side)."""
    p = dict(op.params)
    if op.inputs[0] != project_output:
        for name in ("zp", "multiplier", "shift"):
            p[f"a_{name}"], p[f"b_{name}"] = p[f"b_{name}"], p[f"a_{name}"]
    return {k: v for k, v in p.items() if k not in ("a_zp", "left_shift")}


def group_run(graph, grp, x, config, *, padding=None, expected=None, name="", idle=0.1, stall=0.1):
    """The run of one accelerator group (`dwfuse.fusion.Group`) of ``graph`` on input ``x``.

    ``padding`` overrides the group's (e.g. for a cut of a few rows); ``expected`` is checked
    against the golden output when given.
    """
    ops = [op for op in grp.ops if op.kind not in ("PAD", "PADV2")]
    kw = dict(expected=expected, idle=idle, stall=stall, name=name)
    conv = {"DW": 0, "DW_PW": 0, "CONV3": 0, "PW_DW_PW": 1}.get(grp.mode)
    if conv is not None:
        kw["stride"] = ops[conv].options["stride"][0]
        kw["padding"] = grp.pad if padding is None else padding
    layers = [_op_layer(op, graph) for op in ops[:3]]
    if grp.mode == "PW":
        if x.ndim < 3:   # FULLY_CONNECTED: one pixel
            x = x.reshape(1, 1, -1)
            if expected is not None:
                kw["expected"] = expected.reshape(1, 1, -1)
        return make_run(config, Mode.PW, x, pe=layers[0], **kw)
    if grp.mode == "DW":
        return make_run(config, Mode.DW, x, dw=layers[0], **kw)
    if grp.mode == "CONV3":
        return make_run(config, Mode.CONV3, x, pe=layers[0], **kw)
    if grp.mode == "DW_PW":
        return make_run(config, Mode.DW_PW, x, dw=layers[0], pe=layers[1], **kw)
    add_params = _add_operands(ops[3], ops[2].outputs[0]) if grp.residual >= 0 else None
    return make_run(config, Mode.PW_DW_PW, x, expand=layers[0], dw=layers[1], pe=layers[2],
                    add_params=add_params, **kw)


def model_runs(graph, values, config, modes=("DW_PW", "PW_DW_PW", "CONV3"), idle=0.1,
               stall=0.1):
    """One run per accelerator group of ``graph`` whose mode is in ``modes``.

    ``values``: every tensor of one inference (`dwfuse.run_graph(..., keep_all=True)`); the
    group's input tensor is the run's input and its output tensor the reference the golden
    output must equal. Returns a list of runs named "<model> group <n> <mode> <input shape>".
    """
    from dwfuse.fusion import plan
    runs = []
    for n, grp in enumerate(plan(graph)):
        if grp.mode not in modes:
            continue
        x = values[grp.input][0]
        runs.append(group_run(graph, grp, x, config, expected=values[grp.output][0], idle=idle,
                              stall=stall,
                              name=f"{graph.name} group {n} {grp.mode} {'x'.join(map(str, x.shape))}"))
    return runs
