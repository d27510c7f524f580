"""The golden model equals TFLite Micro (reference kernels) on every tensor of real models."""

import numpy as np
import pytest

import dwfuse
from dwfuse.inputs import load_input, random_input
from shared_models import shared_model

oracle = pytest.importorskip("dwfuse.verif.oracle", reason="tflite-micro (the oracle) is not installed")

SHARED = ["person_detect.tflite", "mobilenet_v1_a025_96_int8.tflite", "mobilenet_v2_a035_96_int8.tflite"]


def assert_every_tensor_matches(data, graph, x):
    _, values = dwfuse.run_graph(graph, x, keep_all=True)
    bad = oracle.compare_graph_with_tflm(data, graph, x, values)
    assert not bad, "golden vs TFLite Micro:\n" + "\n".join(bad)


@pytest.mark.parametrize("name", SHARED)
@pytest.mark.parametrize("seed", [0, 1])
def test_shared_model_every_tensor(name, seed):
    path = shared_model(name)
    g = dwfuse.load(path)
    x = random_input(g.input_tensor(), seed)
    assert_every_tensor_matches(open(path, "rb").read(), g, x)


@pytest.mark.parametrize("preprocess", ["mobilenet", "raw"])
def test_person_detect_images(preprocess):
    path = shared_model("person_detect.tflite")
    g = dwfuse.load(path)
    data = open(path, "rb").read()
    scores = {}
    for img in ("person", "no_person"):
        x = load_input(shared_model(f"{img}.bmp"), g.input_tensor(), preprocess)
        assert_every_tensor_matches(data, g, x)
        (y,), _ = dwfuse.run_graph(g, x)
        scores[img] = int(y.reshape(-1)[1])
    assert scores["person"] > scores["no_person"], scores


# V1 and V2, two widths, two input sizes, one non-square (the zoo's own .tflite output)
ZOO = ["mobilenet_v1_0.25_96", "mobilenet_v1_0.5_128", "mobilenet_v2_0.35_96", "mobilenet_v2_0.5_128",
       "mobilenet_v2_0.35_128x96", "mobilenet_v1_0.25_97x113_c7"]


@pytest.mark.parametrize("name", ZOO)
def test_zoo_model_every_tensor(name):
    from dwfuse import zoo
    data = zoo.build(name)
    g = dwfuse.load(data)
    x = zoo.sample_input(name, seed=3)
    assert_every_tensor_matches(data, g, x)


def test_mobilenet_v2_1_0_224_every_tensor():
    """The full-size network the hardware targets (300M MACs)."""
    from dwfuse import zoo
    name = "mobilenet_v2_1.0_224"
    data = zoo.build(name)
    assert_every_tensor_matches(data, dwfuse.load(data), zoo.sample_input(name, seed=0))


def pytorch_style_model(rng):
    """float NCHW input → QUANTIZE → TRANSPOSE → PAD(1,1) → VALID stride-2 conv → DEQUANTIZE,
    the shape of a model converted from PyTorch."""
    from dwfuse.tflite_writer import TFLiteWriter
    w = TFLiteWriter()
    c, h, wd, o = 3, 9, 11, 5
    xf = w.tensor("x", (1, c, h, wd), np.float32)
    xq = w.tensor("xq", (1, c, h, wd), np.int8, scale=[2 / 255], zero_point=[-1])
    w.op("QUANTIZE", [xf], [xq])
    perm = w.constant("perm", np.array([0, 2, 3, 1], np.int32))
    xt = w.tensor("xt", (1, h, wd, c), np.int8, scale=[2 / 255], zero_point=[-1])
    w.op("TRANSPOSE", [xq, perm], [xt])
    pads = w.constant("pads", np.array([[0, 0], [1, 1], [1, 1], [0, 0]], np.int32))
    xp = w.tensor("xp", (1, h + 2, wd + 2, c), np.int8, scale=[2 / 255], zero_point=[-1])
    w.op("PAD", [xt, pads], [xp])
    ws = rng.uniform(0.002, 0.02, o)
    wt = w.constant("w", rng.integers(-127, 128, (o, 3, 3, c)).astype(np.int8), scale=ws, quantized_dimension=0)
    bt = w.constant("b", rng.integers(-3000, 3000, o).astype(np.int32), scale=ws * 2 / 255, quantized_dimension=0)
    oh, ow = (h + 2 - 3) // 2 + 1, (wd + 2 - 3) // 2 + 1
    y = w.tensor("y", (1, oh, ow, o), np.int8, scale=[0.03], zero_point=[-128])
    w.op("CONV_2D", [xp, wt, bt], [y], padding="VALID", stride_h=2, stride_w=2, fused_activation="RELU6")
    yf = w.tensor("yf", (1, oh, ow, o), np.float32)
    w.op("DEQUANTIZE", [y], [yf])
    return w.to_bytes([xf], [yf])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pytorch_style_nchw_quantize_transpose_pad(seed):
    rng = np.random.default_rng(seed)
    data = pytorch_style_model(rng)
    g = dwfuse.load(data)
    assert [op.kind for op in g.ops] == ["QUANTIZE", "TRANSPOSE", "PAD", "CONV_2D", "DEQUANTIZE"]
    x = rng.uniform(-1.2, 1.2, g.input_tensor().shape).astype(np.float32)
    x.flat[:4] = [0.5 * 2 / 255, -1.5 * 2 / 255, 1e-9, -1.0]  # quantization ties and near-zero
    assert_every_tensor_matches(data, g, x)
