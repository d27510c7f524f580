"""DepthwiseEngine: random depthwise layers under stalls, bit-exact with verif/golden.

Each case builds the engine for one `Config` preset (the build is cached) and runs the four
cocotb tests of verif/tb_depthwise.py with one seed: random layers back to back with stalls on
every stream, corner cases (largest sums, extreme multipliers and shifts, every parameter
address), parameter reloads racing a frozen pipeline, and a stall-free run that checks one
window per cycle and the latency. The rest checks `pack_params` and the parameter checks.
"""

import gc
import json
import warnings

import numpy as np
import pytest
from amaranth.hdl import UnusedElaboratable

from dwfuse.hdl.config import preset
from dwfuse.hdl.depthwise import DepthwiseEngine, pack_params, param_layout, window_layout
from dwfuse.verif.sim import design_sources, run_cocotb
from dwfuse.verif.streams import pack, unpack

TOPLEVEL = "depthwise_engine"


def _run(config_name, seed, tmp_path, dsp="infer"):
    engine = DepthwiseEngine(preset(config_name), dsp=dsp)
    bench = tmp_path / "bench.json"
    run_cocotb(design_sources(engine, TOPLEVEL), TOPLEVEL, "dwfuse.verif.tb_depthwise", seed=seed,
               extra_env={"DW_CONFIG": config_name, "DW_LATENCY": str(engine.latency),
                          "DW_BENCH_OUT": str(bench)})
    return json.loads(bench.read_text())


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_depthwise_tiny(seed, tmp_path):
    result = _run("tiny", seed, tmp_path)
    print(f"depthwise tiny: {result}")


def test_depthwise_ecp5_lanes(tmp_path):
    result = _run("ecp5", 11, tmp_path)
    print(f"depthwise ecp5: {result}")


def test_depthwise_tiny_ecp5_dsp_primitives(tmp_path):
    """dsp="ecp5": every multiplier a registered MULT18X18D (simulation model in verif/models),
    same cycle behaviour and results as the inferred ones."""
    result = _run("tiny", 4, tmp_path, dsp="ecp5")
    print(f"depthwise tiny dsp=ecp5: {result}")


def test_window_layout_matches_linebuffer():
    LineBuffer = pytest.importorskip("dwfuse.hdl.linebuffer").LineBuffer
    for name in ("tiny", "ecp5"):
        config = preset(name)
        line_buffer = LineBuffer(config)
        line_buffer._MustUse__silence = True  # built only to read its layout
        assert line_buffer.window_layout == window_layout(config)


def test_pack_params_layout_and_padding():
    config = preset("tiny")  # 4 lanes
    rng = np.random.default_rng(0)
    c = 6
    w = rng.integers(-128, 128, (1, 3, 3, c)).astype(np.int8)
    bias, mult, shift = np.arange(c) - 3, np.arange(c) + (1 << 30), -np.arange(c)
    beats = pack_params(w, bias, mult, shift, config)
    assert [b["chunk"] for b in beats] == [0, 1]
    assert beats[1]["weights"][4] == [int(w[0, 1, 1, 4]), int(w[0, 1, 1, 5]), 0, 0]
    assert beats[1]["bias"] == [1, 2, 0, 0] and beats[1]["shift"] == [-4, -5, 0, 0]
    layout = param_layout(config)
    assert all(unpack(layout, pack(layout, b)) == b for b in beats)


@pytest.mark.parametrize("bad, error, match", [
    ({"weights": np.zeros((1, 3, 3, 65), np.int8)}, ValueError, "channel count"),  # > 64
    ({"weights": np.zeros((3, 3, 4), np.int8)}, ValueError, "weights must have shape"),
    ({"weights": np.full((1, 3, 3, 4), 0.5)}, TypeError, "weights must hold integers"),
    ({"weights": np.full((1, 3, 3, 4), 128)}, ValueError, "weights must be in"),
    ({"shift": np.full(4, 32)}, ValueError, "shift must be in"),
    ({"multiplier": np.full(4, 1 << 31)}, ValueError, "multiplier must be in"),
    ({"bias": np.zeros(3, np.int64)}, ValueError, "bias must have shape"),
])
def test_pack_params_rejects(bad, error, match):
    args = {"weights": np.zeros((1, 3, 3, 4), np.int8), "bias": np.zeros(4, np.int64),
            "multiplier": np.zeros(4, np.int64), "shift": np.zeros(4, np.int64)} | bad
    with pytest.raises(error, match=match):
        pack_params(**args, config=preset("tiny"))


@pytest.mark.parametrize("args, error, match", [
    (("tiny",), TypeError, "config must be a Config"),
    ((preset("tiny"), "xilinx"), ValueError, "dsp must be one of"),
])
def test_rejects_bad_parameters(args, error, match):
    config, *dsp = args
    with warnings.catch_warnings():
        # the half-built component is garbage: Amaranth would warn that it was never elaborated
        warnings.simplefilter("ignore", UnusedElaboratable)
        with pytest.raises(error, match=match):
            DepthwiseEngine(config, dsp=dsp[0] if dsp else "infer")
        gc.collect()
