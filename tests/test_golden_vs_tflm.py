"""The golden model equals TFLite Micro (reference kernels) on every tensor of real models."""

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
