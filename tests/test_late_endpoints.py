"""scripts/late_endpoints.py on a hand-written nextpnr report (the real ones come from a 45-minute
place and route, a benchmark)."""

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "late_endpoints.py"
_spec = importlib.util.spec_from_file_location("late_endpoints", SCRIPT)
late = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(late)


def _endpoint(cell, port, arrival):
    return {"cell": cell, "port": port, "delay": [0.5, arrival], "event": "posedge clk"}


REPORT = {
    "fmax": {"clk": {"achieved": 80.0, "constraint": 150}},
    "detailed_net_timings": [
        {"net": "a", "driver": "x", "port": "Q", "endpoints": [
            _endpoint("dut.engine.dw_out.skid_valid_TRELLIS_FF_Q", "LSR", 12.5),
            _endpoint("dut.engine.dw_out.skid_TRELLIS_FF_Q_3", "DI", 7.0),
            _endpoint("dut.engine.pe_array.pe_c1_r2.mult", "B1", 6.0)]},
        {"net": "b", "driver": "y", "port": "F", "endpoints": [
            _endpoint("dut.dma.reader.reserved_TRELLIS_FF_Q_5", "DI", 11.9),
            # the same port on a second net: the later arrival counts
            _endpoint("dut.engine.dw_out.skid_TRELLIS_FF_Q_3", "DI", 9.0)]},
    ],
}


def test_groups_late_endpoints_by_block():
    arrivals = late.endpoint_arrivals(REPORT)
    assert arrivals[("dut.engine.dw_out.skid_TRELLIS_FF_Q_3", "DI")] == 9.0
    assert late.late_blocks(arrivals, 1000 / 150, 3) == [
        ("dut.engine.dw_out", 12.5, 2), ("dut.dma.reader", 11.9, 1)]
    assert late.late_blocks(arrivals, 1000 / 150, 2) == [("dut.engine", 12.5, 2), ("dut.dma", 11.9, 1)]


def test_command_line_prints_the_table(tmp_path, capsys):
    path = tmp_path / "report.json"
    path.write_text(json.dumps(REPORT))
    assert late.main([str(path), "--ns", "10"]) == 0
    out = capsys.readouterr().out
    assert "80.00 MHz" in out and "4 endpoints, 2 later than 10.00 ns" in out
    assert "dut.engine.dw_out" in out and "dut.engine.pe_array" not in out


def test_a_report_without_the_detailed_timings_is_refused():
    with pytest.raises(ValueError, match="--detailed-timing-report"):
        late.endpoint_arrivals({"critical_paths": [], "fmax": {}})
