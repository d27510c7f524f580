# amaranth: UnusedElaboratable=no
"""LineBuffer: 3x3 windows under random stalls vs the golden-model reference (verif/tb_linebuffer.py).

Random cases come from the pytest seed; each simulation runs several cfgs back to back, so every
run after the first also checks that ``start`` resets the buffer's state.
"""

import functools
import json
import random

import pytest

from dwfuse.hdl.config import Config, preset
from dwfuse.hdl.linebuffer import LineBuffer, window_geometry
from dwfuse.verif.golden.ops import conv_padding
from dwfuse.verif.sim import design_sources, run_cocotb
from dwfuse.verif import tb_linebuffer

# MobileNetV2-1.0-224's widest expanded row at 8 lanes: 112 px x 96 ch -> ceil(112/3) * 12 words
ECP5_BANK_DEPTH = 456
STALLS = [(0.3, 0.3), (0.7, 0.05), (0.05, 0.7), (0.5, 0.5), (0.0, 0.0)]


@functools.cache
def _verilog(case_json):
    lb = tb_linebuffer.make_linebuffer(json.loads(case_json))
    return design_sources(lb, "linebuffer")


def _simulate(config, runs, seed, bank_depth=None, metrics=None, overrides=None, ram="infer"):
    build = {"config": config, "overrides": overrides or {}, "bank_depth": bank_depth,
             "max_height": 4096, "ram": ram}
    case = {**build, "runs": runs, "metrics": str(metrics) if metrics else None}
    return run_cocotb(_verilog(json.dumps(build, sort_keys=True)), "linebuffer",
                      tb_linebuffer.__file__, seed=seed, extra_env={"LB_CASE": json.dumps(case)})


def _run(width, height, chunks, stride, padding, pad_value, stalls=(0.3, 0.3)):
    return {"width": width, "height": height, "chunks": chunks, "stride": stride,
            "padding": padding, "pad_value": pad_value, "idle": stalls[0], "stall": stalls[1]}


def _random_run(rng, lb, max_words):
    """A random run that fits `lb`: mostly odd sizes, any padding, extreme pad values often."""
    c = lb.config
    while True:
        width = rng.choice([rng.randint(1, 7), rng.randint(1, c.max_width), 2 * rng.randint(0, 15) + 1])
        height = rng.choice([rng.randint(1, 4), 2 * rng.randint(1, 4) + 1])
        chunks = rng.choice([1, rng.randint(1, c.max_chunks), 3, 5])
        stride = rng.choice([1, 2])
        padding = rng.choice(["SAME", "VALID", [rng.randint(0, 2) for _ in range(4)]])
        if not 1 <= width <= c.max_width or width * height * chunks > max_words:
            continue
        if not lb.fits(width, chunks):
            continue
        try:
            window_geometry(width, height, stride, padding)
        except ValueError:
            continue
        pad_value = rng.choice([-128, 127, rng.randint(-128, 127)])
        return _run(width, height, chunks, stride, padding, pad_value, rng.choice(STALLS[:4]))


# ---- pure Python: geometry and parameter checks


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("padding", ["SAME", "VALID"])
def test_geometry_matches_tflite(stride, padding):
    for size in range(1, 40):
        out, before, after = conv_padding(size, 3, stride, 1, padding)
        if out < 1:
            with pytest.raises(ValueError):
                window_geometry(size, 7, stride, padding)
            continue
        g = window_geometry(size, size + 1, stride, padding)
        h_out = conv_padding(size + 1, 3, stride, 1, padding)[0]
        assert (g.out_width, g.pad_left, g.pad_right) == (out, before, after)
        assert g.out_height == h_out
        assert g.out_width == (size + before + after - 3) // stride + 1


def test_geometry_explicit_and_errors():
    assert window_geometry(5, 4, 2, (1, 0, 0, 1)) == (2, 2, 1, 0, 0, 1)
    assert window_geometry(6, 4, 2, (1, 0, 0, 1)) == (3, 2, 1, 0, 0, 1)
    assert window_geometry(1, 1, 1, (1, 1, 1, 1)) == (1, 1, 1, 1, 1, 1)
    assert LineBuffer.geometry(1, 1, 1, (2, 2, 2, 2)) == (3, 3, 2, 2, 2, 2)
    for bad in [(3, 0, 0), (0, 0, 0, 3), "FULL"]:
        with pytest.raises(ValueError):
            window_geometry(8, 8, 1, bad)
    with pytest.raises(ValueError):
        window_geometry(8, 8, 3, "SAME")
    with pytest.raises(ValueError):
        window_geometry(2, 8, 1, "VALID")


def test_parameter_checks():
    tiny = preset("tiny")
    with pytest.raises(TypeError):
        LineBuffer("tiny")
    with pytest.raises(ValueError):
        LineBuffer(tiny, bank_depth=0)
    lb = LineBuffer(tiny, bank_depth=20)
    assert lb.fits(30, 2) and not lb.fits(31, 2) and not lb.fits(33, 1) and not lb.fits(3, 17)
    with pytest.raises(ValueError, match="does not fit"):
        lb.cfg_for(31, 4, 2, 1, "SAME", 0)
    with pytest.raises(ValueError, match="pad_value"):
        lb.cfg_for(8, 4, 2, 1, "SAME", 128)
    assert lb.cfg_for(7, 5, 3, 2, "SAME", -128) == {
        "width": 7, "height": 5, "chunks": 3, "stride": 2, "pad_top": 1, "pad_bottom": 1,
        "pad_left": 1, "pad_right": 1, "pad_value": -128, "out_width": 4, "out_height": 3}
    assert isinstance(LineBuffer(Config(**{**tiny.as_dict(), "line_rows": 3})).config, Config)


# ---- RTL


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_random_tiny(seed):
    rng = random.Random(seed)
    lb = LineBuffer(preset("tiny"))
    runs = [_random_run(rng, lb, max_words=500) for _ in range(4)]
    _simulate("tiny", runs, seed)


def test_edges_tiny():
    runs = [
        _run(1, 1, 1, 1, "SAME", -128),
        _run(1, 1, 3, 2, "SAME", 127, (0.5, 0.5)),
        _run(2, 3, 3, 1, "SAME", 5, (0.7, 0.05)),
        _run(3, 2, 2, 1, [2, 2, 2, 2], -128, (0.05, 0.7)),
        _run(3, 3, 5, 1, "VALID", 127),
        _run(3, 3, 1, 2, "VALID", 0),
        _run(4, 4, 1, 2, "VALID", 0, (0.0, 0.0)),      # last row and column never read
        _run(7, 5, 2, 2, [0, 1, 1, 0], 127),
        _run(5, 7, 1, 2, [1, 0, 0, 1], -128, (0.5, 0.5)),
        _run(6, 5, 3, 1, [0, 2, 2, 0], -7),
        _run(1, 6, 2, 1, "SAME", 127),
        _run(9, 1, 2, 2, "SAME", -128),
        {**_run(32, 3, 16, 1, "SAME", 127, (0.2, 0.2)),  # the widest row at the most chunks
         "start_again_after": 40},                        # ... and a stray start mid-run
        _run(32, 5, 1, 2, "SAME", -128, (0.7, 0.05)),
    ]
    _simulate("tiny", runs, seed=11)


def test_three_slots_tiny():
    """line_rows=3 (the least Config allows): correct, only slower; unread last rows drain."""
    rng = random.Random(3)
    lb = LineBuffer(Config(**{**preset("tiny").as_dict(), "line_rows": 3}))
    runs = [
        _run(4, 4, 1, 2, "VALID", 0, (0.0, 0.0)),      # row 3 is never read
        _run(6, 6, 2, 2, "VALID", 1),
        _run(7, 5, 3, 1, "SAME", -128),
        *(_random_run(rng, lb, max_words=300) for _ in range(2)),
    ]
    _simulate("tiny", runs, seed=3, overrides={"line_rows": 3})


def test_ecp5_lanes():
    """The ecp5 preset as synthesised: DP16KD banks (ram="ecp5", verif/models/DP16KD.v)."""
    lb = LineBuffer(preset("ecp5"), ram="ecp5")
    assert lb.bank_depth == ECP5_BANK_DEPTH == preset("ecp5").line_bank_depth
    assert lb.fits(112, 12) and not lb.fits(112, 13)
    runs = [
        _run(56, 5, 3, 1, "SAME", -128, (0.3, 0.3)),
        _run(57, 6, 2, 2, "SAME", 127, (0.5, 0.5)),
        _run(29, 4, 5, 1, "VALID", 3, (0.05, 0.7)),
    ]
    _simulate("ecp5", runs, seed=5, ram="ecp5")


def test_throughput_benchmark(tmp_path):
    """Cycles per window without stalls (a benchmark figure printed with -s; only correctness is asserted)."""
    runs = [
        _run(32, 8, 1, 1, "SAME", 0, (0, 0)),
        _run(20, 6, 3, 1, "SAME", 0, (0, 0)),
        _run(32, 8, 1, 1, "VALID", 0, (0, 0)),
        _run(31, 9, 2, 2, "SAME", 0, (0, 0)),
        _run(32, 9, 1, 2, "VALID", 0, (0, 0)),
    ]
    metrics = tmp_path / "throughput.json"
    _simulate("tiny", runs, seed=7, metrics=metrics)
    figures = json.loads(metrics.read_text())
    assert len(figures) == len(runs)
    for f in figures:
        print("linebuffer throughput:", json.dumps(f))
