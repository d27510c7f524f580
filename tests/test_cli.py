"""`dwfuse info` and `dwfuse run --backend golden` on every shared model and on the zoo."""

import json

import numpy as np
import pytest

import dwfuse
from dwfuse import zoo
from dwfuse.cli import main
from dwfuse.inputs import random_input
from shared_models import shared_model

SHARED = ["person_detect.tflite", "mobilenet_v1_a025_96_int8.tflite", "mobilenet_v2_a035_96_int8.tflite"]
ZOO = ["mobilenet_v1_0.25_96", "mobilenet_v2_0.35_128x96"]


def model_arg(name):
    if name.endswith(".tflite"):
        return shared_model(name)
    return name


def model_bytes(arg):
    return open(arg, "rb").read() if arg.endswith(".tflite") else zoo.build(arg)


@pytest.mark.parametrize("name", SHARED + ZOO)
def test_info_table(name, capsys):
    arg = model_arg(name)
    assert main(["info", arg]) == 0
    out = capsys.readouterr().out
    g = dwfuse.load(arg)
    body = [l for l in out.splitlines()[3:] if l.strip()]
    assert len(body) == len(g.ops) + 1  # one row per op, then the totals
    total = body[-1].split()
    convs = [op for op in g.ops if op.kind == "CONV_2D"]
    # the first conv's MACs, computed here from the shapes: out pixels * out ch * kh * kw * in ch
    w = g.tensors[convs[0].inputs[1]].shape
    o = g.tensors[convs[0].outputs[0]].shape
    assert f"{int(np.prod(o)) * w[1] * w[2] * w[3]:,}" in body[convs[0].index]
    assert total[0] == "total"


@pytest.mark.parametrize("name", SHARED + ZOO)
def test_run_golden_output_and_report(name, tmp_path, capsys):
    arg = model_arg(name)
    x_path, y_path, r_path = tmp_path / "x.npy", tmp_path / "y.npy", tmp_path / "r.json"
    g = dwfuse.load(arg)
    x = random_input(g.input_tensor(), 7)
    np.save(x_path, x)
    assert main(["run", arg, "--input", str(x_path), "--output", str(y_path), "--backend", "golden",
                 "--report", str(r_path)]) == 0
    y = np.load(y_path)
    oracle = pytest.importorskip("dwfuse.verif.oracle")
    (ref,), _ = oracle.tflm_run(model_bytes(arg), x)
    assert y.dtype == ref.dtype and y.shape == ref.shape and np.array_equal(y, ref)
    report = json.loads(r_path.read_text())
    assert report["model"] == arg and report["backend"] == "golden"
    assert [l["index"] for l in report["layers"]] == list(range(len(g.ops)))
    assert [l["op"] for l in report["layers"]] == [op.kind for op in g.ops]
    assert report["macs"] == sum(l["macs"] for l in report["layers"]) > 0


def test_run_default_model(capsys):
    assert main(["run"]) == 0
    assert zoo.DEFAULT in capsys.readouterr().out


def test_run_person_images_via_cli(tmp_path):
    arg = model_arg("person_detect.tflite")
    scores = {}
    for img in ("person", "no_person"):
        out = tmp_path / f"{img}.npy"
        assert main(["run", arg, "--input", shared_model(f"{img}.bmp"), "--output", str(out),
                     "--backend", "golden"]) == 0
        scores[img] = int(np.load(out).reshape(-1)[1])
    assert scores["person"] > scores["no_person"]
