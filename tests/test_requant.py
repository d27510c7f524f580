# amaranth: UnusedElaboratable=no
"""Requantizer (hdl/requant.py) and its pipelined parts against verif/golden.

The cocotb half is verif/tb_requant.py (four tests per configuration: edge cases, every shift,
quantize_multiplier-derived scales, exact latency/throughput; random stalls on i and o).
Lane counts: 1, the ecp5 preset's requant_lanes (8) and the b4096 preset's (16); the ECP5 DSP
primitive variant (``dsp="ecp5"``) once, against the simulation model in verif/models.
"""

import os
import subprocess
from pathlib import Path

import pytest
from amaranth import signed, unsigned
from amaranth.lib import data

from dwfuse.hdl.config import preset
from dwfuse.hdl.quantized_multiplier import MultiplyByQuantizedMultiplier
from dwfuse.hdl.multiplier import RegisteredMultiplier
from dwfuse.hdl.requant import Requantizer, input_layout, output_layout
from dwfuse.hdl.zero_point_clamp import ZeroPointClamp
from dwfuse.verif.sim import VERILATOR_WAIVERS, default_build_root, run_cocotb, to_verilog
from dwfuse.verif.tb_requant import TAG_SHAPES

MULT18X18D_MODEL = Path(__file__).resolve().parent.parent / "verif" / "models" / "MULT18X18D.v"

CASES = [
    # (lanes, tag key, dsp, seed)
    (1, "bit", "infer", 1),
    (preset("ecp5").requant_lanes, "flags", "infer", 2),
    (preset("ecp5").requant_lanes, "flags", "ecp5", 3),
    (preset("b4096").requant_lanes, "chan", "infer", 4),
]


def _design(dut, name):
    """Verilog text, or for DSP primitives a stable file (it keys the build cache) + the model."""
    text = to_verilog(dut, name=name)
    if dut.dsp == "infer":
        return text
    path = default_build_root() / "sources" / f"{name}.v"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.is_file() or path.read_text() != text:
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    return [path, MULT18X18D_MODEL]


def _run(lanes, tag, dsp, seed):
    dut = Requantizer(lanes, TAG_SHAPES[tag], dsp=dsp)
    name = f"requant_l{lanes}_{tag}_{dsp}"
    return run_cocotb(
        _design(dut, name), name, "dwfuse.verif.tb_requant", seed=seed,
        extra_env={"REQUANT_LANES": str(lanes), "REQUANT_TAG": tag, "REQUANT_LATENCY": str(dut.latency)},
    )


@pytest.mark.parametrize("lanes,tag,dsp,seed", CASES)
def test_requantizer_matches_golden(lanes, tag, dsp, seed):
    assert _run(lanes, tag, dsp, seed).tests == 4


def test_interface_and_latency():
    r = Requantizer(3, unsigned(7))
    assert (r.lanes, r.tag_shape, r.dsp, r.latency) == (3, unsigned(7), "infer", 15)
    assert r.latency == 1 + MultiplyByQuantizedMultiplier.LATENCY + ZeroPointClamp.LATENCY + 1
    assert r.i.payload.shape() == input_layout(3, unsigned(7))
    assert r.o.payload.shape() == output_layout(3, unsigned(7))
    assert input_layout(3, unsigned(7))["shift"].shape == data.ArrayLayout(signed(6), 3)
    with pytest.raises(AttributeError):
        r.latency = 3


@pytest.mark.parametrize("bad,exc", [(0, ValueError), (-2, ValueError), (2.0, TypeError), (True, TypeError),
                                     ("4", TypeError)])
def test_rejects_bad_lanes(bad, exc):
    with pytest.raises(exc, match="lanes"):
        Requantizer(bad)


def test_rejects_bad_tag_shape():
    with pytest.raises(TypeError, match="tag_shape"):
        Requantizer(2, "flags")


def test_rejects_bad_dsp():
    with pytest.raises(ValueError, match="dsp"):
        Requantizer(2, dsp="xilinx")
    with pytest.raises(ValueError, match="dsp"):
        MultiplyByQuantizedMultiplier(dsp="")
    with pytest.raises(ValueError, match="a_shape"):
        RegisteredMultiplier(signed(19), signed(8), dsp="ecp5")
    with pytest.raises(ValueError, match="b_shape"):
        RegisteredMultiplier(signed(8), unsigned(18), dsp="ecp5")
    assert RegisteredMultiplier(unsigned(16), signed(16)).p.shape() == signed(32)  # width a + b


@pytest.mark.parametrize("dsp", ["infer", "ecp5"])
def test_verilator_lint_clean(tmp_path, verilator_exe, dsp):
    """The generated Verilog (and the DSP model) lints clean under the harness's waivers (the
    sim build does too, but this names the problem directly and takes about a second)."""
    src = tmp_path / "requant.v"
    src.write_text(to_verilog(Requantizer(2, TAG_SHAPES["flags"], dsp=dsp), name="requant"))
    waivers = [f"-Wno-{w}" for w in VERILATOR_WAIVERS]
    models = [str(MULT18X18D_MODEL)] if dsp == "ecp5" else []
    lint = subprocess.run([str(verilator_exe), "--lint-only", *waivers, "--top-module", "requant", str(src), *models],
                          capture_output=True, text=True)
    assert lint.returncode == 0, lint.stderr[-3000:]
