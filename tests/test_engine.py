"""LayerEngine (hdl/engine.py): every layer mode against verif/golden under Verilator.

Random layers (odd sizes, channel counts that are not multiples of lanes or pe_cols, stride 2
on odd sizes, SAME / VALID / explicit pads, zero points at -128 and 127, random stalls on i,
res and o) run back to back on one DUT per test; the seed is in every failure message. Real
layers cut from ../shared/models (every DW->PW pair of person_detect, every inverted-residual
block of mobilenet_v2_a035_96, and both first-layer 3x3 convs) run on the ecp5 preset: the
small ones in CI, all of them under ``-m slow``.
"""

import json

import numpy as np
import pytest

from dwfuse.hdl.config import Config, preset
from dwfuse.hdl.engine import LayerEngine, Mode, _above, conv3_weights, engine_cfg
from dwfuse.hdl.word_splitter import split_cfg
from dwfuse.verif.sim import design_sources, run_cocotb
from dwfuse.verif.tb_engine import (CASE_ENV, STATS_ENV, add_layer, conv3_layer, dw_layer,
                                    make_run, model_runs, pw_layer, write_case)
from shared_models import shared_model

TOPLEVEL = "layer_engine"


def simulate(tmp_path, config, runs, seed, dsp="infer"):
    """Run ``runs`` on one engine build; returns the per-run statistics."""
    case, stats = tmp_path / "case.pkl", tmp_path / "stats.json"
    write_case(case, config, runs)
    run_cocotb(design_sources(LayerEngine(config, dsp=dsp), TOPLEVEL), TOPLEVEL,
               "dwfuse.verif.tb_engine", seed=seed,
               extra_env={CASE_ENV: str(case), STATS_ENV: str(stats)})
    return json.loads(stats.read_text())


def _x(rng, h, w, c):
    return rng.integers(-128, 128, (h, w, c)).astype(np.int8)


def _padding(rng):
    return [ "SAME", "VALID", (1, 1, 1, 1), (0, 1, 1, 0), (2, 0, 0, 2)][int(rng.integers(5))]


def _size(rng, padding, lo=1, hi=8):
    if padding == "VALID":
        lo = 3
    elif not isinstance(padding, str):
        lo = max(lo, 3 - min(padding[0] + padding[1], padding[2] + padding[3]))
    return int(rng.integers(lo, hi)), int(rng.integers(lo, hi))


def random_run(rng, config, mode, *, idle=0.3, stall=0.3, zps=None):
    """A random layer of ``mode`` within the tiny preset's limits."""
    lanes = config.lanes
    zp_in, zp_out = zps or (None, None)
    stride = int(rng.choice([1, 2]))
    padding = _padding(rng)
    h, w = _size(rng, padding)
    kw = dict(idle=idle, stall=stall)
    if mode == "FC":
        k, o = int(rng.integers(1, 4 * lanes * 3)), int(rng.integers(1, 3 * config.pe_cols + 2))
        return make_run(config, Mode.PW, _x(rng, 1, 1, k), pe=pw_layer(rng, k, o, zp_in, zp_out),
                        name="FC", **kw)
    if mode == "PW":
        k, o = int(rng.integers(1, 5 * lanes)), int(rng.integers(1, 3 * config.pe_cols + 2))
        return make_run(config, Mode.PW, _x(rng, h, w, k), pe=pw_layer(rng, k, o, zp_in, zp_out),
                        **kw)
    if mode == "DW":
        c = int(rng.integers(1, 4 * lanes))
        return make_run(config, Mode.DW, _x(rng, h, w, c), dw=dw_layer(rng, c, zp_in, zp_out),
                        stride=stride, padding=padding, **kw)
    if mode == "CONV3":
        c = int(rng.choice([1, 3, int(rng.integers(1, 2 * lanes + 2))]))
        o = int(rng.integers(1, 3 * config.pe_cols))
        return make_run(config, Mode.CONV3, _x(rng, h, w, c), pe=conv3_layer(rng, c, o, zp_in, zp_out),
                        stride=stride, padding=padding, **kw)
    if mode == "DW_PW":
        c, o = int(rng.integers(1, 4 * lanes)), int(rng.integers(1, 3 * config.pe_cols))
        dw = dw_layer(rng, c, zp_in)
        pe = pw_layer(rng, c, o, dw["out_zp"], zp_out)
        return make_run(config, Mode.DW_PW, _x(rng, h, w, c), dw=dw, pe=pe, stride=stride,
                        padding=padding, **kw)
    if mode in ("PW_DW_PW", "PW_DW_PW_ADD"):
        residual = mode.endswith("ADD")
        c = int(rng.integers(1, 3 * lanes))
        mid = int(rng.integers(1, 4 * lanes))
        o = c if residual else int(rng.integers(1, 3 * config.pe_cols))
        expand = pw_layer(rng, c, mid, zp_in)
        dw = dw_layer(rng, mid, expand["out_zp"])
        pe = pw_layer(rng, mid, o, dw["out_zp"], zp_out)
        if residual:
            stride, padding = 1, "SAME"
        return make_run(config, Mode.PW_DW_PW, _x(rng, h, w, c), expand=expand, dw=dw, pe=pe,
                        stride=stride, padding=padding,
                        add_params=add_layer(rng) if residual else None, name=mode, **kw)
    raise ValueError(mode)


MODES = ["PW", "FC", "DW", "CONV3", "DW_PW", "PW_DW_PW", "PW_DW_PW_ADD"]


# ---- pure Python ---------------------------------------------------------------------------


def test_above_matches_signed_compare():
    """Rule A's compares without a carry chain equal ``x > k`` for every 6-bit value."""
    from amaranth import Module, Signal, signed
    from amaranth.sim import Simulator
    m = Module()
    x = Signal(signed(6))
    outs = {k: Signal(name=f"above_{k + 2}") for k in (-2, -1, 0, 1)}
    for k, o in outs.items():
        m.d.comb += o.eq(_above(x, k))
    wrong = []

    async def bench(ctx):
        for v in range(-32, 32):
            ctx.set(x, v)
            wrong.extend((v, k) for k, o in outs.items() if ctx.get(o) != (v > k))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    assert not wrong, f"(value, k) pairs where _above differs from x > k: {wrong[:10]}"
    with pytest.raises(ValueError, match="-2..1"):
        _above(x, 2)


def test_conv3_weights_order():
    config = preset("tiny")  # 4 lanes
    w = np.arange(2 * 9 * 5, dtype=np.int64).reshape(2, 3, 3, 5).astype(np.int8)
    m = conv3_weights(w, config)
    assert m.shape == (2, 2 * 9 * 4)
    # element (k * 9 + tap) * lanes + l is channel k * lanes + l at tap dy * 3 + dx
    assert m[1, (1 * 9 + 7) * 4 + 0] == w[1, 2, 1, 4]
    assert m[0, (0 * 9 + 3) * 4 + 2] == w[0, 1, 0, 2]
    assert m[0, (1 * 9 + 3) * 4 + 1] == 0   # channel 5 does not exist
    rgb = w[:, :, :, :3]   # I <= lanes: dense, the filter in TFLite's (tap, channel) order
    assert np.array_equal(conv3_weights(rgb, config), rgb.reshape(2, 27))


def test_split_cfg():
    config = preset("ecp5")  # 8 lanes, 16 columns: 2 words per tile
    assert split_cfg(24, config) == {"tiles": 2, "last_words": 1}
    assert split_cfg(32, config) == {"tiles": 2, "last_words": 2}
    assert split_cfg(3, config) == {"tiles": 1, "last_words": 1}


def test_engine_cfg_rejects_oversized_layers():
    config = preset("tiny")
    ctx = {"in_zp": 0, "out_zp": 0, "act_min": -128, "act_max": 127}
    with pytest.raises(ValueError, match="max_k"):
        engine_cfg(config, Mode.PW, width=1, height=1, in_channels=config.max_k + 1,
                   out_channels=4, pe=ctx)
    with pytest.raises(ValueError, match="weight_words"):
        engine_cfg(config, Mode.PW, width=1, height=1, in_channels=config.max_k,
                   out_channels=config.max_out_channels, pe=ctx)


def test_engine_cfg_rejects_rows_over_the_line_buffer():
    config = preset("tiny")   # max_width 32, max_channels 64
    dw = {"in_zp": 0, "out_zp": 0, "act_min": -128, "act_max": 127}
    with pytest.raises(ValueError, match="width 33"):
        engine_cfg(config, Mode.DW, width=33, height=4, in_channels=4, out_channels=4, dw=dw)
    with pytest.raises(ValueError, match="does not fit the line buffer"):
        engine_cfg(config, Mode.DW, width=8, height=4, in_channels=65, out_channels=65, dw=dw)


# ---- RTL -----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2])
def test_tiny_every_mode_with_stalls(tmp_path, seed):
    """One random layer per mode, back to back, with stalls; zero points at the int8 ends."""
    config = preset("tiny")
    rng = np.random.default_rng(seed)
    runs = []
    for n, mode in enumerate(MODES):
        zps = [(-128, 127), (127, -128), None][(n + seed) % 3]
        runs.append(random_run(rng, config, mode, zps=zps, idle=0.3, stall=0.4))
    simulate(tmp_path, config, runs, seed)


def test_ecp5_lanes_every_mode(tmp_path):
    """The ecp5 preset (8 lanes, 16 PE columns: 2 output words per tile) in every mode."""
    config = preset("ecp5")
    rng = np.random.default_rng(17)
    runs = [random_run(rng, config, mode, zps=[(-128, 127), (127, -128)][n % 2], idle=0.2, stall=0.3)
            for n, mode in enumerate(MODES)]
    simulate(tmp_path, config, runs, 17)


# ---- real layers ---------------------------------------------------------------------------


def real_runs(model, config):
    """`model_runs` of one inference of a shared model: person_detect on person.bmp (raw
    pixels), the others on a seeded random int8 input."""
    import dwfuse
    from dwfuse.inputs import load_input
    graph = dwfuse.load(shared_model(model))
    tensor = graph.tensors[graph.inputs[0]]
    if model == "person_detect.tflite":
        x = load_input(shared_model("person.bmp"), tensor, preprocess="raw")
    else:
        x = np.random.default_rng(0).integers(-128, 128, tensor.shape).astype(tensor.dtype)
    _, values = dwfuse.run_graph(graph, x, keep_all=True)
    return model_runs(graph, values, config)


def _small(run):
    return run["x"].shape[0] <= 6


def _distinct(runs):
    """One run per (mode, input shape, output shape, stride, residual): the CI subset."""
    seen, out = set(), []
    for r in runs:
        key = (r["mode"], r["x"].shape, r["expected"].shape, r["stride"], r["residual"])
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out


MODELS = {"person_detect": "person_detect.tflite",
          "mobilenet_v2": "mobilenet_v2_a035_96_int8.tflite"}


@pytest.mark.parametrize("model", MODELS)
def test_real_layers_small(tmp_path, model):
    """The distinct group shapes of a real model with inputs up to 6x6 (CI subset): 0 mismatches."""
    config = preset("ecp5")
    runs = _distinct([r for r in real_runs(MODELS[model], config) if _small(r)])
    assert len(runs) >= 3
    simulate(tmp_path, config, runs, 23)


@pytest.mark.slow
@pytest.mark.parametrize("model", MODELS)
def test_real_layers_all(tmp_path, model):
    """Every DW_PW / PW_DW_PW(+ADD) / CONV3 group of a real model: 0 mismatches."""
    config = preset("ecp5")
    runs = real_runs(MODELS[model], config)
    simulate(tmp_path, config, runs, 29)


def test_tiny_block_edges(tmp_path):
    """PW_DW_PW corners: a trailing input row no window reads (VALID, stride 2, even height:
    rule C), 1x1 and 1-row inputs, the largest explicit pads, a wide expansion (several tiles),
    and heavy backpressure on o and res while the expand results must still drain."""
    config = preset("tiny")
    rng = np.random.default_rng(41)

    def block(h, w, c, mid, o, stride, padding, residual=False, **kw):
        expand = pw_layer(rng, c, mid, -128)
        dw = dw_layer(rng, mid, expand["out_zp"], 127)
        pe = pw_layer(rng, mid, o, dw["out_zp"])
        return make_run(config, Mode.PW_DW_PW, _x(rng, h, w, c), expand=expand, dw=dw, pe=pe,
                        stride=stride, padding=padding,
                        add_params=add_layer(rng) if residual else None, **kw)

    runs = [
        block(6, 5, 3, 9, 6, 2, "VALID", idle=0.2, stall=0.3),
        block(1, 1, 5, 7, 5, 1, "SAME", residual=True, idle=0.0, stall=0.0),
        block(1, 7, 4, 6, 3, 2, (2, 0, 1, 1), idle=0.3, stall=0.2),
        block(5, 4, 6, 30, 6, 1, "SAME", residual=True, idle=0.1, stall=0.8),
        block(7, 7, 2, 13, 9, 2, (0, 2, 2, 0), idle=0.0, stall=0.0),
    ]
    simulate(tmp_path, config, runs, 41)


def test_tiny_long_input_vectors(tmp_path):
    """PW / FC input vectors longer than a line-buffer row (K = 100 and max_k: more words per
    pixel than max_chunks), each after a short one."""
    config = preset("tiny")
    rng = np.random.default_rng(53)
    runs = [make_run(config, Mode.PW, _x(rng, 2, 3, 100), pe=pw_layer(rng, 100, 5, -128, 127)),
            make_run(config, Mode.PW, _x(rng, 3, 1, 2), pe=pw_layer(rng, 2, 9)),
            make_run(config, Mode.PW, _x(rng, 1, 1, config.max_k), pe=pw_layer(rng, config.max_k, 3),
                     name="FC", stall=0.6)]
    simulate(tmp_path, config, runs, 53)
