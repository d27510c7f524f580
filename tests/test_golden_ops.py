"""Each golden op against TFLite Micro on random one-op models.

Random shapes (odd sizes, stride 2 on odd inputs, channel counts that are not multiples of 8),
every padding kind, zero points at -128 and 127, and effective scales on both sides of 1 (a
left shift in the requantization). Each model goes through the importer, so the derived
multipliers, shifts and clamps are checked too. Failures print the seed.
"""

import numpy as np
import pytest

import dwfuse
from dwfuse.tflite_writer import TFLiteWriter
from dwfuse.verif.golden.ops import conv_padding

oracle = pytest.importorskip("dwfuse.verif.oracle", reason="tflite-micro (the oracle) is not installed")

SEEDS = range(12)


def zp(rng):
    return int(rng.choice([-128, 127, 0, int(rng.integers(-128, 128))]))


def act(rng):
    return str(rng.choice(["NONE", "RELU", "RELU6"]))


def check(w, inp, out, x, seed):
    data = w.to_bytes([inp], [out])
    g = dwfuse.load(data)
    (y,), _ = dwfuse.run_graph(g, x)
    (ref,), _ = oracle.tflm_run(data, x)
    ref = ref.reshape(y.shape)
    diff = np.count_nonzero(y.astype(np.int64) != ref)
    assert diff == 0, f"seed {seed}: {diff} of {y.size} outputs differ from TFLite Micro ({g.ops[0].kind})"
    return y


def conv_like_model(rng, depthwise, seed):
    n_h, n_w = int(rng.integers(1, 12)), int(rng.integers(1, 12))
    k = int(rng.choice([1, 3])) if not depthwise else 3
    stride = int(rng.choice([1, 2]))
    padding = str(rng.choice(["SAME", "VALID"]))
    if padding == "VALID":
        n_h, n_w = max(n_h, k), max(n_w, k)
    cin = int(rng.integers(1, 20))
    mult = int(rng.choice([1, 1, 2, 8])) if depthwise else 1
    cout = cin * mult if depthwise else int(rng.integers(1, 20))
    in_scale, out_scale = float(rng.uniform(0.005, 0.1)), float(rng.uniform(0.005, 0.5))
    # effective scales from ~1e-4 to ~4: the biggest ones need a left shift
    w_scale = rng.uniform(0.0005, 0.02, cout) * (50.0 if rng.random() < 0.3 else 1.0)
    w = TFLiteWriter()
    x_zp, y_zp = zp(rng), zp(rng)
    inp = w.tensor("x", (1, n_h, n_w, cin), np.int8, scale=[in_scale], zero_point=[x_zp])
    wshape = (1, k, k, cout) if depthwise else (cout, k, k, cin)
    weights = rng.integers(-127, 128, wshape).astype(np.int8)
    wt = w.constant("w", weights, scale=w_scale, quantized_dimension=3 if depthwise else 0)
    bias = rng.integers(-20000, 20000, cout).astype(np.int32)
    bt = w.constant("b", bias, scale=in_scale * w_scale, quantized_dimension=0)
    oh, _, _ = conv_padding(n_h, k, stride, 1, padding)
    ow, _, _ = conv_padding(n_w, k, stride, 1, padding)
    out = w.tensor("y", (1, oh, ow, cout), np.int8, scale=[out_scale], zero_point=[y_zp])
    opts = dict(padding=padding, stride_h=stride, stride_w=stride, fused_activation=act(rng))
    if depthwise:
        opts["depth_multiplier"] = mult
    w.op("DEPTHWISE_CONV_2D" if depthwise else "CONV_2D", [inp, wt, bt], [out], **opts)
    x = rng.integers(-128, 128, (1, n_h, n_w, cin)).astype(np.int8)
    return w, inp, out, x


@pytest.mark.parametrize("seed", SEEDS)
def test_conv2d(seed):
    rng = np.random.default_rng(seed)
    check(*conv_like_model(rng, False, seed), seed)


@pytest.mark.parametrize("seed", SEEDS)
def test_depthwise_conv2d(seed):
    rng = np.random.default_rng(1000 + seed)
    check(*conv_like_model(rng, True, seed), seed)


@pytest.mark.parametrize("seed", SEEDS)
def test_fully_connected(seed):
    rng = np.random.default_rng(2000 + seed)
    k, o = int(rng.integers(1, 300)), int(rng.integers(1, 50))
    w = TFLiteWriter()
    in_scale, w_scale, out_scale = float(rng.uniform(0.01, 0.1)), float(rng.uniform(0.001, 0.01)), float(rng.uniform(0.02, 0.5))
    inp = w.tensor("x", (1, k), np.int8, scale=[in_scale], zero_point=[zp(rng)])
    wt = w.constant("w", rng.integers(-127, 128, (o, k)).astype(np.int8), scale=[w_scale])
    bt = w.constant("b", rng.integers(-5000, 5000, o).astype(np.int32), scale=[in_scale * w_scale])
    out = w.tensor("y", (1, o), np.int8, scale=[out_scale], zero_point=[zp(rng)])
    w.op("FULLY_CONNECTED", [inp, wt, bt], [out], fused_activation=act(rng))
    check(w, inp, out, rng.integers(-128, 128, (1, k)).astype(np.int8), seed)


@pytest.mark.parametrize("seed", SEEDS)
def test_add(seed):
    rng = np.random.default_rng(3000 + seed)
    shape = (1, int(rng.integers(1, 9)), int(rng.integers(1, 9)), int(rng.integers(1, 30)))
    w = TFLiteWriter()
    a = w.tensor("a", shape, np.int8, scale=[float(rng.uniform(0.01, 0.2))], zero_point=[zp(rng)])
    b = w.constant("b", rng.integers(-128, 128, shape).astype(np.int8),
                   scale=[float(rng.uniform(0.01, 0.2))], zero_point=[zp(rng)])
    out = w.tensor("y", shape, np.int8, scale=[float(rng.uniform(0.02, 0.3))], zero_point=[zp(rng)])
    w.op("ADD", [a, b], [out], fused_activation=act(rng))
    check(w, a, out, rng.integers(-128, 128, shape).astype(np.int8), seed)


@pytest.mark.parametrize("seed", SEEDS)
def test_average_pool(seed):
    rng = np.random.default_rng(4000 + seed)
    h, wd, c = int(rng.integers(1, 12)), int(rng.integers(1, 12)), int(rng.integers(1, 10))
    fh, fw = int(rng.integers(1, min(h, 4) + 1)), int(rng.integers(1, min(wd, 4) + 1))
    stride, padding = int(rng.integers(1, 3)), str(rng.choice(["SAME", "VALID"]))
    scale, z = float(rng.uniform(0.01, 0.1)), zp(rng)
    w = TFLiteWriter()
    inp = w.tensor("x", (1, h, wd, c), np.int8, scale=[scale], zero_point=[z])
    oh, _, _ = conv_padding(h, fh, stride, 1, padding)
    ow, _, _ = conv_padding(wd, fw, stride, 1, padding)
    out = w.tensor("y", (1, oh, ow, c), np.int8, scale=[scale], zero_point=[z])
    w.op("AVERAGE_POOL_2D", [inp], [out], padding=padding, stride_h=stride, stride_w=stride,
         filter_h=fh, filter_w=fw, fused_activation=act(rng))
    check(w, inp, out, rng.integers(-128, 128, (1, h, wd, c)).astype(np.int8), seed)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("same_quant", [False, True])
def test_mean(seed, same_quant):
    rng = np.random.default_rng(5000 + seed)
    h, wd, c = int(rng.integers(1, 15)), int(rng.integers(1, 15)), int(rng.integers(1, 20))
    keep = bool(rng.integers(0, 2))
    in_scale, in_zp = float(rng.uniform(0.01, 0.1)), zp(rng)
    out_scale, out_zp = (in_scale, in_zp) if same_quant else (float(rng.uniform(0.005, 0.1)), zp(rng))
    w = TFLiteWriter()
    inp = w.tensor("x", (1, h, wd, c), np.int8, scale=[in_scale], zero_point=[in_zp])
    axis = w.constant("axis", np.array([1, 2], np.int32))
    out = w.tensor("y", (1, 1, 1, c) if keep else (1, c), np.int8, scale=[out_scale], zero_point=[out_zp])
    w.op("MEAN", [inp, axis], [out], keep_dims=keep)
    check(w, inp, out, rng.integers(-128, 128, (1, h, wd, c)).astype(np.int8), seed)


def softmax_case(seed):
    rng = np.random.default_rng(6000 + seed)
    # mostly short rows whose logits span a few units of real value, so outputs spread over the
    # int8 range instead of saturating at -128; some long rows with large scales for diff_min
    wide = seed % 4 == 3
    n = int(rng.integers(2, 1001)) if wide else int(rng.integers(2, 40))
    scale = float(rng.uniform(0.05, 2.0)) if wide else float(rng.uniform(0.005, 0.1))
    span = 255 if wide else min(255, int(6 / scale))
    hi = int(rng.integers(-128 + span, 128))
    w = TFLiteWriter()
    inp = w.tensor("x", (1, n), np.int8, scale=[scale], zero_point=[zp(rng)])
    out = w.tensor("y", (1, n), np.int8, scale=[1 / 256], zero_point=[-128])
    w.op("SOFTMAX", [inp], [out], beta=float(rng.choice([1.0, 0.5, 2.0])))
    x = rng.integers(hi - span, hi + 1, (1, n)).astype(np.int8)
    return check(w, inp, out, x, seed)


@pytest.mark.parametrize("seed", SEEDS)
def test_softmax(seed):
    softmax_case(seed)


def test_softmax_outputs_spread():
    """The random softmax cases exercise the fixed-point exp, not only saturated outputs."""
    spread = [np.unique(softmax_case(seed)).size for seed in SEEDS]
    assert sum(u > 5 for u in spread) >= len(SEEDS) // 2, spread


@pytest.mark.parametrize("seed", SEEDS[:4])
def test_pad(seed):
    rng = np.random.default_rng(7000 + seed)
    h, wd, c = int(rng.integers(1, 8)), int(rng.integers(1, 8)), int(rng.integers(1, 6))
    pads = np.array([[0, 0], rng.integers(0, 3, 2), rng.integers(0, 3, 2), [0, 0]], np.int32)
    scale, z = 0.05, zp(rng)
    w = TFLiteWriter()
    inp = w.tensor("x", (1, h, wd, c), np.int8, scale=[scale], zero_point=[z])
    pt = w.constant("paddings", pads)
    out = w.tensor("y", (1, h + pads[1].sum(), wd + pads[2].sum(), c), np.int8, scale=[scale], zero_point=[z])
    w.op("PAD", [inp, pt], [out])
    y = check(w, inp, out, rng.integers(-128, 128, (1, h, wd, c)).astype(np.int8), seed)
    if pads[1, 0]:
        assert np.all(y[:, 0] == z)  # padded with the zero point, not int8 0
