"""PointwiseArray (hdl/pointwise.py): weight packing, and the RTL against verif/golden under Verilator.

Each RTL test writes a random case (several back-to-back runs with different shapes, zero
points, activation ranges and reloaded weights/tables) to an .npz and runs the cocotb module
verif/tb_pointwise.py on it; the seed is in every failure message.
"""

import functools
import json

import numpy as np
import pytest

from dwfuse.hdl.config import Config, preset
from dwfuse.hdl.pointwise import PointwiseArray, geometry, pack_tables, pack_weights
from dwfuse.verif.sim import design_sources, run_cocotb
from dwfuse.verif.tb_pointwise import CASE_ENV, STATS_ENV, make_run, write_case

TOPLEVEL = "pointwise_array"


@functools.cache
def _design(config, dsp="infer"):
    """Verilog text, or with ECP5 primitives a file + the models it needs (DSPs, block RAMs)."""
    return design_sources(PointwiseArray(config, dsp=dsp), TOPLEVEL)


def _simulate(tmp_path, config, runs, seed, dsp="infer"):
    case = tmp_path / "case.npz"
    stats = tmp_path / "stats.json"
    write_case(case, config, runs)
    run_cocotb(_design(config, dsp), TOPLEVEL, "dwfuse.verif.tb_pointwise", seed=seed,
               extra_env={CASE_ENV: str(case), STATS_ENV: str(stats)})
    return json.loads(stats.read_text())


# ---- pure Python ---------------------------------------------------------------------------


def test_pack_weights_layout():
    config = preset("tiny")  # R = C = 4
    rng = np.random.default_rng(0)
    w = rng.integers(-128, 128, (6, 9), dtype=np.int8)  # O = 6 -> 2 tiles, K = 9 -> 3 words
    words = pack_weights(w, config)
    assert len(words) == 2 * 3
    R, C = config.lanes, config.pe_cols
    for t in range(2):
        for k in range(3):
            word = words[t * 3 + k]
            for c in range(C):
                for r in range(R):
                    byte = (word >> ((c * R + r) * 8)) & 0xFF
                    o, i = t * C + c, k * R + r
                    expect = int(w[o, i]) if o < 6 and i < 9 else 0
                    assert byte == expect & 0xFF, (t, k, c, r)


def test_pack_tables_pads_last_tile():
    rows = pack_tables([1, 2, 3, 4, 5], [10, 20, 30, 40, 50], [-1, -2, -3, -4, -5], preset("tiny"))
    assert [r["addr"] for r in rows] == [0, 1]
    assert rows[1] == {"addr": 1, "bias": [5, 0, 0, 0], "multiplier": [50, 0, 0, 0], "shift": [-5, 0, 0, 0]}


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_bad_parameters():
    with pytest.raises(TypeError):
        PointwiseArray("tiny")
    with pytest.raises(ValueError):
        PointwiseArray(preset("tiny"), dsp="xilinx")
    with pytest.raises(ValueError):
        pack_weights(np.zeros((2, 3), np.int16), preset("tiny"))


# ---- RTL -----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_tiny_random_runs_with_stalls(tmp_path, seed):
    """Three back-to-back runs: random K (not a multiple of R), O (not a multiple of C), P;
    the last one with the residual ADD."""
    config = preset("tiny")
    g = geometry(config)
    rng = np.random.default_rng(seed)
    runs = []
    zps = [(-128, 127), (127, -128), (None, None)]
    for n in range(3):
        k = int(rng.integers(1, 40))
        o = int(rng.integers(1, 24))
        in_zp, out_zp = zps[(seed + n) % 3]
        runs.append(make_run(rng, k=k, o=o, pixels=int(rng.integers(1, 7)), in_zp=in_zp, out_zp=out_zp,
                             idle=0.3, stall=0.4, golden="conv" if n == 1 else "fc", residual=n == 2))
        assert -(-k // config.lanes) <= g.max_k_words
    _simulate(tmp_path, config, runs, seed)


def test_tiny_edge_shapes(tmp_path):
    """K = 1 (k_words = 1 < C/requant_lanes: the array waits for requantization), K = R, the
    preset's largest K and largest O (each with a full weight buffer), heavy backpressure."""
    config = preset("tiny")
    rng = np.random.default_rng(7)
    runs = [
        make_run(rng, k=1, o=5, pixels=9, idle=0.0, stall=0.0),
        make_run(rng, k=config.lanes, o=config.pe_cols, pixels=3, in_zp=-128, out_zp=127, stall=0.8),
        make_run(rng, k=config.max_k, o=16, pixels=2, in_zp=127, out_zp=-128, act="none",
                 idle=0.1, stall=0.1),
        make_run(rng, k=8, o=config.max_out_channels, pixels=2, idle=0.1, stall=0.5),
        make_run(rng, k=3, o=2, pixels=12, idle=0.6, stall=0.0),
    ]
    _simulate(tmp_path, config, runs, 7)


def test_tiny_residual(tmp_path):
    """Residual ADD runs between plain ones: extreme zero points, stalls on i, res and o, and no
    stalls (full rate); K = 1 makes the array wait for the drain."""
    config = preset("tiny")
    rng = np.random.default_rng(21)
    runs = [
        make_run(rng, k=13, o=10, pixels=6, in_zp=-128, out_zp=127, residual=True, stall=0.5),
        make_run(rng, k=9, o=7, pixels=2),
        make_run(rng, k=1, o=8, pixels=5, out_zp=-128, residual=True, idle=0.0, stall=0.0),
        make_run(rng, k=24, o=4, pixels=8, in_zp=127, residual=True, idle=0.5, stall=0.2),
    ]
    _simulate(tmp_path, config, runs, 21)


def test_tiny_ecp5_dsp_primitives(tmp_path):
    """dsp="ecp5": every multiplier a registered MULT18X18D instance (simulation model in
    verif/models), same cycle behaviour as the inferred ones."""
    config = preset("tiny")
    rng = np.random.default_rng(31)
    runs = [make_run(rng, k=11, o=9, pixels=4, in_zp=-128),
            make_run(rng, k=6, o=5, pixels=3, out_zp=127, residual=True)]
    _simulate(tmp_path, config, runs, 31, dsp="ecp5")


def test_odd_lanes_config(tmp_path):
    """R = 3 (an adder tree with an odd level), C = 6, 3 requantizer lanes and as many ADD lanes
    (the presets have one ADD lane)."""
    config = Config(name="odd", lanes=3, pe_cols=6, requant_lanes=3, max_width=8, max_channels=12,
                    line_rows=4, max_k=30, weight_words=64, max_out_channels=30, bus_bytes=8)
    rng = np.random.default_rng(11)
    runs = [make_run(rng, k=8, o=13, pixels=3, residual=True),
            make_run(rng, k=30, o=30, pixels=2, idle=0.0, stall=0.0)]
    _simulate(tmp_path, config, runs, 11)


def test_ecp5_lanes(tmp_path):
    """The ecp5 preset (R = 8, C = 16, 4 requantizer lanes): K = 96, Cout = 24, then K = 20,
    Cout = 40 with the residual ADD."""
    config = preset("ecp5")
    rng = np.random.default_rng(5)
    runs = [make_run(rng, k=96, o=24, pixels=5, in_zp=-128, golden="conv"),
            make_run(rng, k=20, o=40, pixels=3, out_zp=127, residual=True)]
    _simulate(tmp_path, config, runs, 5)


def test_cycles_without_stalls(tmp_path, capsys):
    """Benchmark (cycle counts, not wall time): a run without stalls takes
    pixels * out_tiles * max(k_words, C/requant_lanes) cycles plus a fixed fill
    (C/residual_lanes instead of C/requant_lanes with the ADD)."""
    config = preset("tiny")
    rng = np.random.default_rng(3)
    shapes = [(16, 8, 16), (40, 12, 8), (4, 4, 8), (8, 8, 8), (64, 24, 4)]  # (K, O, pixels)
    runs = [make_run(rng, k=k, o=o, pixels=p, idle=0.0, stall=0.0) for k, o, p in shapes]
    runs.append(make_run(rng, k=16, o=8, pixels=16, idle=0.0, stall=0.0, residual=True))
    stats = _simulate(tmp_path, config, runs, 3)
    fills = []
    for s in stats:
        steady = s["pixels"] * s["out_tiles"] * max(s["k_words"], s["slices"])
        fills.append(s["cycles"] - steady)
        with capsys.disabled():
            print(f"\n  K={s['k']} O={s['o']} P={s['pixels']} residual={s['residual']}: k_words={s['k_words']} "
                  f"out_tiles={s['out_tiles']} cycles={s['cycles']} = {steady} + fill {fills[-1]}")
    # The fill is the first pixel's load (k_words cycles) plus a constant of the build: the
    # pipeline, requantizer and output latency.
    latency = {f - s["k_words"] for f, s in zip(fills, stats) if s["k_words"] >= s["slices"] and not s["residual"]}
    assert len(latency) == 1 and 0 < min(latency) < 40, fills
