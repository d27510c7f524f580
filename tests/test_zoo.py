"""The built-in zoo: names, determinism, Keras architecture, TFLite int8 encoding, and TFLite
Micro running the models with healthy (not collapsed, not saturated) activations."""

import time

import numpy as np
import pytest
import tflite
from tflite.BuiltinOperator import BuiltinOperator
from tflite.Conv2DOptions import Conv2DOptions
from tflite.DepthwiseConv2DOptions import DepthwiseConv2DOptions
from tflite.TensorType import TensorType

from dwfuse import zoo
from shared_models import shared_model
from dwfuse.errors import ModelError

_OPNAME = {v: k for k, v in vars(BuiltinOperator).items() if not k.startswith("_")}
_SMALL = ["mobilenet_v1_0.25_96", "mobilenet_v2_0.35_96"]


def _model(buf):
    m = tflite.Model.GetRootAsModel(buf, 0)
    return m, m.Subgraphs(0)


def _ops(buf):
    """(kind, operator) for every operator, in order."""
    m, sg = _model(buf)
    return [(_OPNAME[m.OperatorCodes(sg.Operators(i).OpcodeIndex()).BuiltinCode()],
             sg.Operators(i)) for i in range(sg.OperatorsLength())]


def _shape(sg, t):
    return tuple(sg.Tensors(t).ShapeAsNumpy().tolist()) if t >= 0 else None


def _conv_options(op, kind):
    cls = {"CONV_2D": Conv2DOptions, "DEPTHWISE_CONV_2D": DepthwiseConv2DOptions}.get(kind)
    if cls is None:
        return None
    o = cls()
    t = op.BuiltinOptions()
    o.Init(t.Bytes, t.Pos)
    return o.FusedActivationFunction(), o.StrideH(), o.StrideW()


def _layers(buf):
    """The architecture as comparable tuples: kind, first two input shapes, output shape,
    (activation, strides). Skips the converter's SHAPE/STRIDED_SLICE/PACK shape computation."""
    _, sg = _model(buf)
    out = []
    for kind, op in _ops(buf):
        if kind in ("SHAPE", "STRIDED_SLICE", "PACK"):
            continue
        ins = op.InputsAsNumpy().tolist()
        out.append((kind, _shape(sg, ins[0]), _shape(sg, ins[1]) if len(ins) > 1 else None,
                    _shape(sg, op.Outputs(0)), _conv_options(op, kind)))
    return out


def _quant(sg, t):
    q = sg.Tensors(t).Quantization()
    return q.ScaleAsNumpy(), q.ZeroPointAsNumpy(), q.QuantizedDimension()


# ----------------------------------------------------------------------------------------------
# names

@pytest.mark.parametrize("name, expected", [
    ("mobilenet_v1_0.25_96", (1, 0.25, 96, 96, 1000)),
    ("mobilenet_v2_1.0_224", (2, 1.0, 224, 224, 1000)),
    ("mobilenet_v2_0.5_128x160", (2, 0.5, 128, 160, 1000)),
    ("mobilenet_v2_1_224", (2, 1.0, 224, 224, 1000)),
    ("mobilenet_v1_0.75_97x33_c10", (1, 0.75, 97, 33, 10)),
    ("mobilenet_v2_1.4_224_c1", (2, 1.4, 224, 224, 1)),
])
def test_parse_name_good(name, expected):
    assert zoo.parse_name(name) == expected
    assert zoo.is_zoo_name(name)


@pytest.mark.parametrize("name, match", [
    ("", "not a zoo model name"),
    ("resnet50", "not a zoo model name"),
    ("mobilenet_v3_1.0_224", "not a zoo model name"),
    ("mobilenet_v2_1.0", "not a zoo model name"),
    ("mobilenet_v2_abc_96", "not a zoo model name"),
    ("mobilenet_v2_1.0_96x", "not a zoo model name"),
    ("mobilenet_v2_1.0_224 ", "not a zoo model name"),
    ("MobileNet_v2_1.0_224", "not a zoo model name"),
    ("models/mobilenet_v2_1.0_224.tflite", "not a zoo model name"),
    (None, "not a zoo model name"),
    ("mobilenet_v2_0_96", "width multiplier"),
    ("mobilenet_v2_5.0_96", "width multiplier"),
    ("mobilenet_v1_0.01_96", "no channels"),
    ("mobilenet_v2_1.0_16", "input size 16"),
    ("mobilenet_v2_1.0_96x4000", "input size 4000"),
    ("mobilenet_v2_1.0_224_c0", "class count"),
])
def test_parse_name_bad(name, match):
    with pytest.raises(ModelError, match=match):
        zoo.parse_name(name)
    assert not zoo.is_zoo_name(name)


def test_names_parse_and_include_default():
    assert zoo.DEFAULT in zoo.names()
    assert len(set(zoo.names())) == len(zoo.names())
    for n in zoo.names():
        zoo.parse_name(n)


# ----------------------------------------------------------------------------------------------
# build: determinism and caching

def test_build_is_deterministic_and_seeded():
    spec = zoo.parse_name(zoo.DEFAULT)
    fresh = zoo._build_cached.__wrapped__          # bypass the cache: really rebuild
    a, b = fresh(spec, 0), fresh(spec, 0)
    assert isinstance(a, bytes) and a == b
    assert fresh(spec, 1) != a
    assert zoo.build(zoo.DEFAULT) == a
    assert zoo.build(zoo.DEFAULT) is zoo.build(zoo.DEFAULT)           # cached
    assert zoo.build("mobilenet_v2_0.35_96x96_c1000") is zoo.build(zoo.DEFAULT)


def test_write(tmp_path):
    path = zoo.write("mobilenet_v1_0.25_96", tmp_path / "m.tflite", seed=3)
    assert path.read_bytes() == zoo.build("mobilenet_v1_0.25_96", seed=3)


def test_sample_input():
    x = zoo.sample_input("mobilenet_v2_0.35_80x112", seed=1)
    assert x.dtype == np.int8 and x.shape == (1, 80, 112, 3)
    assert np.array_equal(x, zoo.sample_input("mobilenet_v2_0.35_80x112", seed=1))
    assert len(np.unique(x)) > 100


# ----------------------------------------------------------------------------------------------
# architecture and encoding

def _shared(name):
    with open(shared_model(name), "rb") as f:
        return f.read()


@pytest.mark.parametrize("zoo_name, shared", [
    ("mobilenet_v1_0.25_96", "mobilenet_v1_a025_96_int8.tflite"),
    ("mobilenet_v2_0.35_96", "mobilenet_v2_a035_96_int8.tflite"),
])
def test_same_architecture_as_keras_conversion(zoo_name, shared):
    """Layer for layer the Keras model TensorFlow converted: shapes, strides, activations."""
    assert _layers(zoo.build(zoo_name)) == _layers(_shared(shared))


@pytest.mark.parametrize("name, first, last", [
    ("mobilenet_v2_1.0_32", 32, 1280),
    ("mobilenet_v2_1.4_32", 48, 1792),       # alpha > 1 widens the last conv too
    ("mobilenet_v2_0.35_32", 16, 1280),
    ("mobilenet_v2_0.75_32", 24, 1280),
    ("mobilenet_v1_0.5_32", 16, 512),
    ("mobilenet_v1_1.0_32", 32, 1024),
])
def test_channel_rounding(name, first, last):
    buf = zoo.build(name)
    _, sg = _model(buf)
    ops = _ops(buf)
    mean = next(op for k, op in ops if k == "MEAN")
    assert _shape(sg, ops[0][1].Inputs(1))[0] == first
    assert _shape(sg, mean.Inputs(0))[-1] == last               # the features the head pools


def test_v2_block_table():
    """Keras MobileNetV2-1.0 block outputs and residual ADDs (stride 1 and same width)."""
    buf = zoo.build("mobilenet_v2_1.0_64")
    _, sg = _model(buf)
    project = [_shape(sg, op.Outputs(0))[-1] for k, op in _ops(buf)
               if k == "CONV_2D" and "project" in sg.Tensors(op.Outputs(0)).Name().decode()]
    assert project == [16, 24, 24, 32, 32, 32, 64, 64, 64, 64, 96, 96, 96, 160, 160, 160, 320]
    adds = [sg.Tensors(op.Outputs(0)).Name().decode() for k, op in _ops(buf) if k == "ADD"]
    assert adds == [f"block_{i}_add" for i in (2, 4, 5, 7, 8, 9, 11, 12, 14, 15)]


@pytest.mark.parametrize("name", _SMALL + ["mobilenet_v2_0.35_80x112_c10"])
def test_int8_encoding(name):
    """The conventions TensorFlow's converter follows and TFLite kernels rely on."""
    buf = zoo.build(name)
    m, sg = _model(buf)
    assert buf[4:8] == b"TFL3" and m.Version() == 3
    assert m.Buffers(0).DataLength() == 0
    for i in range(m.OperatorCodesLength()):
        oc = m.OperatorCodes(i)
        assert oc.DeprecatedBuiltinCode() == min(oc.BuiltinCode(), 127)
    _, _, h, w, classes = zoo.parse_name(name)
    (inp,), (out,) = sg.InputsAsNumpy().tolist(), sg.OutputsAsNumpy().tolist()
    assert _shape(sg, inp) == (1, h, w, 3) and _shape(sg, out) == (1, classes)
    s, zp, _ = _quant(sg, inp)
    assert s[0] == pytest.approx(2 / 255) and zp[0] == -1
    s, zp, _ = _quant(sg, out)
    assert s[0] == 1 / 256 and zp[0] == -128
    for kind, op in _ops(buf):
        ins = op.InputsAsNumpy().tolist()
        for t in ins + op.OutputsAsNumpy().tolist():
            is_activation = m.Buffers(sg.Tensors(t).Buffer()).DataLength() == 0
            if sg.Tensors(t).Type() == TensorType.INT8 and is_activation:
                assert len(_quant(sg, t)[0]) == 1, "activations are per-tensor"
        if kind in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            wt, bt = sg.Tensors(ins[1]), sg.Tensors(ins[2])
            ws, wzp, qdim = _quant(sg, ins[1])
            channels = wt.ShapeAsNumpy()[qdim]
            assert qdim == (3 if kind == "DEPTHWISE_CONV_2D" else 0)
            assert len(ws) == len(wzp) == channels and not wzp.any()
            wq = m.Buffers(wt.Buffer()).DataAsNumpy().view(np.int8)
            assert wq.min() >= -127 and np.abs(wq).max() == 127        # symmetric, full range
            bs, bzp, _ = _quant(sg, ins[2])
            assert bt.Type() == TensorType.INT32 and not bzp.any()
            in_scale = np.float64(_quant(sg, ins[0])[0][0])
            np.testing.assert_allclose(bs, in_scale * ws.astype(np.float64), rtol=1e-6)


def test_default_model_ops():
    kinds = [k for k, _ in _ops(zoo.build(zoo.DEFAULT))]
    assert {k: kinds.count(k) for k in set(kinds)} == {
        "CONV_2D": 35, "DEPTHWISE_CONV_2D": 17, "ADD": 10, "MEAN": 1, "FULLY_CONNECTED": 1,
        "SOFTMAX": 1}
    assert kinds[-3:] == ["MEAN", "FULLY_CONNECTED", "SOFTMAX"]


def test_mobilenet_v2_1_0_224_builds(record_property):
    """The full-size network builds in seconds (fresh, not from the cache)."""
    spec = zoo.parse_name("mobilenet_v2_1.0_224")
    t0 = time.perf_counter()
    buf = zoo._build_cached.__wrapped__(spec, 0)
    seconds = time.perf_counter() - t0
    kinds = [k for k, _ in _ops(buf)]
    counts = {k: kinds.count(k) for k in sorted(set(kinds))}
    record_property("build_seconds", round(seconds, 2))
    record_property("op_counts", counts)
    print(f"mobilenet_v2_1.0_224: {len(buf)} bytes, built in {seconds:.2f} s, ops {counts}")
    assert counts == {"ADD": 10, "CONV_2D": 35, "DEPTHWISE_CONV_2D": 17, "FULLY_CONNECTED": 1,
                      "MEAN": 1, "SOFTMAX": 1}
    assert 3.5e6 < len(buf) < 4.5e6                 # ~3.5M int8 parameters
    assert seconds < 30


# ----------------------------------------------------------------------------------------------
# TFLite Micro runs the models, and no activation collapsed or saturated

@pytest.fixture(scope="module")
def tflm():
    return pytest.importorskip(
        "tflite_micro.python.tflite_micro.runtime",
        reason="tflite-micro (the TFLite Micro interpreter) is not installed")


def _run_tflm(runtime, buf, x):
    _, sg = _model(buf)
    acts = sum(int(np.prod(_shape(sg, i))) for i in range(sg.TensorsLength()))
    # kPreserveAllTensors keeps every activation alive; TFLM crashes (not raises) when short.
    it = runtime.Interpreter.from_bytes(
        buf, arena_size=2 * acts + (1 << 20),
        intrepreter_config=runtime.InterpreterConfig.kPreserveAllTensors)
    it.set_input(x, 0)
    it.invoke()
    return it


@pytest.mark.parametrize("name", _SMALL + [
    "mobilenet_v2_0.35_80x112_c10",          # non-square
    "mobilenet_v1_0.25_97x65_c10",           # non-square, odd sizes (uneven SAME padding)
])
def test_tflm_activations_healthy(tflm, name):
    buf = zoo.build(name)
    _, sg = _model(buf)
    it = _run_tflm(tflm, buf, zoo.sample_input(name, seed=1))   # not a calibration image
    problems = []
    for kind, op in _ops(buf):
        if kind not in ("CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "MEAN", "FULLY_CONNECTED"):
            continue
        t = op.Outputs(0)
        a = it.GetTensor(t, 0)["tensor_data"]
        zp = int(_quant(sg, t)[1][0])
        label = f"{kind} {sg.Tensors(t).Name().decode()} {a.shape}"
        distinct = len(np.unique(a))
        if distinct < min(16, a.size // 2):
            problems.append(f"{label}: only {distinct} distinct values")
        # -128 is real 0 when zp == -128 (a ReLU's floor), not clipping.
        clipped = (a == 127).mean() + ((a == -128).mean() if zp > -128 else 0.0)
        if clipped > 0.5:
            problems.append(f"{label}: {clipped:.0%} at the int8 rails")
        if zp == -128 and (a == -128).mean() > 0.75:
            problems.append(f"{label}: {(a == -128).mean():.0%} zeros (dead)")
    assert not problems, "\n".join(problems)

    out = it.get_output(0)
    logits = it.GetTensor(_ops(buf)[-1][1].Inputs(0), 0)["tensor_data"]
    p = (out.astype(np.int32) + 128) / 256.0
    classes = out.shape[-1]
    assert out.shape == (1, classes) and (p >= 0).all() and (p <= 1).all()
    assert abs(p.sum() - 1.0) <= classes * 0.5 / 256 + 1 / 256     # rounding of each entry
    assert p.max() > 1.0 / classes                                 # not flat
    assert p.argmax() == logits.argmax() or p.max() == p.ravel()[logits.argmax()]


def test_tflm_default_input_seeds_differ(tflm):
    """Different images give different outputs: the network is not input-blind."""
    buf = zoo.build("mobilenet_v2_0.35_96_c10")
    outs = [_run_tflm(tflm, buf, zoo.sample_input("mobilenet_v2_0.35_96", seed=s)).get_output(0)
            for s in (1, 2)]
    assert not np.array_equal(*outs)
