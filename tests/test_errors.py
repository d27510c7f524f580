"""Bad input gets a dedicated exception naming what and where, and a one-line CLI error."""

import os

import numpy as np
import pytest

import dwfuse
from dwfuse import zoo
from dwfuse.cli import main
from dwfuse.tflite_writer import TFLiteWriter


def conv_model(dtype=np.int8, wdtype=np.int8, in_zp=0, w_zp=0, then=None):
    """A 1-op (or 2-op, with `then`) conv model in the requested number formats."""
    w = TFLiteWriter()
    quant = (lambda zp: dict(scale=[0.05], zero_point=[zp])) if dtype != np.float32 else (lambda zp: {})
    x = w.tensor("x", (1, 4, 4, 2), dtype, **quant(in_zp))
    wq = dict(scale=[0.01, 0.01], zero_point=[w_zp, w_zp], quantized_dimension=0) if wdtype != np.float32 else {}
    wt = w.constant("w", np.ones((2, 1, 1, 2), wdtype), **wq)
    bias_dtype = np.int32 if dtype != np.float32 else np.float32
    bq = dict(scale=[0.0005, 0.0005], quantized_dimension=0) if dtype != np.float32 else {}
    bt = w.constant("b", np.zeros(2, bias_dtype), **bq)
    y = w.tensor("y", (1, 4, 4, 2), dtype, **quant(in_zp))
    w.op("CONV_2D", [x, wt, bt], [y], padding="SAME")
    out = y
    if then:
        out = w.tensor("z", (1, 4, 4, 2), dtype, **quant(in_zp))
        w.op(then, [y], [out])
    return w.to_bytes([x], [out])


@pytest.fixture(scope="module")
def good():
    return zoo.build("mobilenet_v1_0.25_96")


def bad_models(tmp_path, good):
    files = {
        "truncated": good[: len(good) // 3],
        "truncated-header": good[:6],
        "garbage": bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8)),
        "garbage-with-identifier": b"\x10\x00\x00\x00TFL3" + b"\xff" * 200,
        "float": conv_model(np.float32, np.float32),
        "uint8": conv_model(np.uint8, np.uint8, in_zp=128, w_zp=128),
        "hard-swish": conv_model(then="HARD_SWISH"),
    }
    paths = {}
    for k, v in files.items():
        p = tmp_path / f"{k}.tflite"
        p.write_bytes(v)
        paths[k] = str(p)
    return paths


EXPECT = {
    "truncated": ("truncated or corrupt", dwfuse.ModelError),
    "truncated-header": ("not a TFLite flatbuffer", dwfuse.ModelError),
    "garbage": ("not a TFLite flatbuffer", dwfuse.ModelError),
    "garbage-with-identifier": ("truncated or corrupt", dwfuse.ModelError),
    "float": ("op 0 (CONV_2D): float32", dwfuse.ModelError),
    "uint8": ("op 0 (CONV_2D): uint8", dwfuse.ModelError),
    "hard-swish": ("op 1 (HARD_SWISH): unsupported operator", dwfuse.UnsupportedOpError),
}


@pytest.mark.parametrize("kind", sorted(EXPECT))
def test_api_raises_dedicated_error(kind, tmp_path, good):
    path = bad_models(tmp_path, good)[kind]
    text, exc = EXPECT[kind]
    with pytest.raises(exc) as info:
        dwfuse.load(path)
    assert text in str(info.value)
    assert isinstance(info.value, dwfuse.DwfuseError)


@pytest.mark.parametrize("kind", sorted(EXPECT))
@pytest.mark.parametrize("command", ["info", "run"])
def test_cli_one_line_error(kind, command, tmp_path, good, capsys):
    path = bad_models(tmp_path, good)[kind]
    code = main([command, path])
    captured = capsys.readouterr()
    assert code != 0
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("dwfuse: error:") and EXPECT[kind][0] in lines[0]
    assert "Traceback" not in captured.err


def test_unsupported_op_names_index_and_name(tmp_path, good):
    path = bad_models(tmp_path, good)["hard-swish"]
    with pytest.raises(dwfuse.UnsupportedOpError) as info:
        dwfuse.load(path)
    assert (info.value.op_index, info.value.op_name) == (1, "HARD_SWISH")


def test_asymmetric_int8_weights_rejected():
    with pytest.raises(dwfuse.ModelError, match="non-zero zero points"):
        dwfuse.load(conv_model(w_zp=3))


def test_missing_file_and_bad_zoo_name(capsys):
    assert main(["info", "/nonexistent/model.tflite"]) != 0
    assert "no such file" in capsys.readouterr().err
    assert main(["info", "mobilenet_v3_1.0_224"]) != 0
    assert capsys.readouterr().err.count("\n") == 1


def test_bad_input_files(tmp_path, capsys):
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros((1, 8, 8, 3), np.int8))
    notimg = tmp_path / "x.png"
    notimg.write_bytes(b"not a png")
    for f, text in [(wrong, "model input is int8[1, 96, 96, 3]"), (notimg, "not a readable image"),
                    (tmp_path / "absent.npy", "no such input file")]:
        assert main(["run", "mobilenet_v2_0.35_96", "--input", str(f), "--backend", "golden"]) != 0
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and text in err, err


def test_output_to_missing_directory_writes_nothing(tmp_path, capsys):
    out = tmp_path / "no" / "such" / "y.npy"
    assert main(["run", "mobilenet_v2_0.35_96", "--output", str(out), "--backend", "golden"]) != 0
    assert "does not exist" in capsys.readouterr().err
    assert not os.path.exists(out)
