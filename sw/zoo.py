"""The built-in model zoo: int8 MobileNetV1 / MobileNetV2 .tflite files made from a name.

The project has to run whole networks on a user's machine without shipping model files or
depending on TensorFlow, so the zoo builds them: Keras' layer structure at any width multiplier
and input size, seeded random weights, BatchNorm statistics taken from a calibration batch (so
activations neither collapse nor explode, as in a trained network), and the project's own
post-training quantization following the TFLite int8 spec. The product is the bytes of a
``.tflite`` flatbuffer, which the importer reads like any other model and TFLite Micro runs.

Names: ``mobilenet_v{1|2}_{alpha}_{size}[_c{classes}]`` with size ``N`` (square) or ``HxW``,
e.g. ``mobilenet_v1_0.25_96``, ``mobilenet_v2_1.0_224``, ``mobilenet_v2_0.5_128x160_c10``.

Departures from Keras, on purpose: stride-2 layers use SAME padding (Keras pads (0, 1) then runs
VALID, which is the same for even sizes but one row/column smaller for odd ones), and the V1
head reshapes with a constant shape instead of the converter's SHAPE/STRIDED_SLICE/PACK chain.
"""

import functools
import re
from pathlib import Path

import numpy as np

from .errors import ModelError
from .tflite_writer import TFLiteWriter

__all__ = ["DEFAULT", "names", "parse_name", "is_zoo_name", "build", "write", "sample_input",
           "INPUT_SCALE", "INPUT_ZERO_POINT"]

DEFAULT = "mobilenet_v2_0.35_96"

# Keras' preprocess_input maps pixels to [-1, 1]; quantized as the converter does for that range.
INPUT_SCALE = np.float32(2.0 / 255.0)
INPUT_ZERO_POINT = -1

_NAME_RE = re.compile(r"mobilenet_v([12])_(\d+(?:\.\d+)?)_(\d+)(?:x(\d+))?(?:_c(\d+))?")
_MIN_SIZE, _MAX_SIZE = 32, 1024
_MAX_ALPHA = 4.0
_MAX_CLASSES = 100_000

# MobileNetV1 (Howard et al. 2017, table 1): depthwise-separable blocks (pointwise filters, stride).
_V1_BLOCKS = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [
    (1024, 2), (1024, 1)]

# MobileNetV2 (Sandler et al. 2018, table 2): (expansion t, filters c, repeats n, first stride s).
_V2_STAGES = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
              (6, 160, 3, 2), (6, 320, 1, 1)]

_BN_EPS = 1e-3          # Keras MobileNet BatchNormalization epsilon
_CALIB_IMAGES = 8       # calibration batch (fewer for large inputs, to bound memory)
_LOGIT_STD = 2.0        # spread of the float logits: softmax neither flat nor one-hot


# ----------------------------------------------------------------------------------------------
# names

def names():
    """Example zoo names: the Keras application grid of both versions plus small 96-pixel ones."""
    out = []
    for a in ("0.25", "0.5", "0.75", "1.0"):
        out += [f"mobilenet_v1_{a}_{s}" for s in (96, 128, 160, 192, 224)]
    for a in ("0.35", "0.5", "0.75", "1.0", "1.3", "1.4"):
        out += [f"mobilenet_v2_{a}_{s}" for s in (96, 128, 160, 192, 224)]
    return out


def parse_name(name):
    """Split a zoo name into ``(version, alpha, height, width, num_classes)``.

    Raises
    ------
    dwfuse.errors.ModelError
        The name does not follow the grammar, or asks for an unbuildable model.
    """
    grammar = ("expected mobilenet_v{1|2}_{alpha}_{size}[_c{classes}] with size N or HxW, "
               f"e.g. {DEFAULT} or mobilenet_v2_0.5_128x160_c10")
    m = _NAME_RE.fullmatch(name) if isinstance(name, str) else None
    if m is None:
        raise ModelError(f"{name!r} is not a zoo model name: {grammar}")
    version, alpha, height = int(m[1]), float(m[2]), int(m[3])
    width = int(m[4]) if m[4] else height
    classes = int(m[5]) if m[5] else 1000
    if not 0 < alpha <= _MAX_ALPHA:
        raise ModelError(f"{name!r}: width multiplier {m[2]} must be in (0, {_MAX_ALPHA:g}]")
    if version == 1 and int(32 * alpha) < 1:
        raise ModelError(f"{name!r}: width multiplier {m[2]} leaves MobileNetV1's first layer "
                         "with no channels (need alpha >= 0.03125)")
    for side in (height, width):
        if not _MIN_SIZE <= side <= _MAX_SIZE:
            raise ModelError(f"{name!r}: input size {side} must be in "
                             f"[{_MIN_SIZE}, {_MAX_SIZE}] (the network downsamples by 32)")
    if not 1 <= classes <= _MAX_CLASSES:
        raise ModelError(f"{name!r}: class count {classes} must be in [1, {_MAX_CLASSES}]")
    return version, alpha, height, width, classes


def is_zoo_name(s):
    """True if `s` names a buildable zoo model (so a CLI can tell names from file paths)."""
    try:
        parse_name(s)
    except ModelError:
        return False
    return True


def _canonical(version, alpha, height, width, classes):
    size = f"{height}" if height == width else f"{height}x{width}"
    suffix = "" if classes == 1000 else f"_c{classes}"
    return f"mobilenet_v{version}_{alpha!r}_{size}{suffix}"


# ----------------------------------------------------------------------------------------------
# public build API

def build(name, seed=0):
    """Build the int8 .tflite flatbuffer for a zoo name; deterministic for a name and seed.

    Builds are cached in-process (a MobileNetV2-1.0-224 takes a few seconds). Equivalent
    spellings (``_96`` and ``_96x96``, ``_c1000`` and none) share one cache entry.
    """
    return _build_cached(parse_name(name), int(seed))


def write(name, path, seed=0):
    """Write the model for `name` to `path`; return the path."""
    path = Path(path)
    path.write_bytes(build(name, seed))
    return path


def sample_input(name, seed=0):
    """An int8 [1, H, W, 3] input for `name`, drawn like the calibration images.

    A fresh seed gives an image the model has not been calibrated on, the fair test of its
    activation ranges. Does not build the model.
    """
    _, _, height, width, _ = parse_name(name)
    rng = np.random.default_rng([int(seed), 2])
    x = _smooth_images(rng, 1, height, width)
    q = np.round(x / INPUT_SCALE) + INPUT_ZERO_POINT
    return np.clip(q, -128, 127).astype(np.int8)


@functools.lru_cache(maxsize=8)
def _build_cached(spec, seed):
    version, alpha, height, width, classes = spec
    wrng = np.random.default_rng([seed, 0])
    xrng = np.random.default_rng([seed, 1])
    n = _CALIB_IMAGES if height * width <= 224 * 224 else max(2, _CALIB_IMAGES * 224 * 224 //
                                                             (height * width))
    images = _smooth_images(xrng, n, height, width)
    # Calibrate on what the int8 input can represent.
    images = (np.clip(np.round(images / INPUT_SCALE) + INPUT_ZERO_POINT, -128, 127)
              - INPUT_ZERO_POINT).astype(np.float32) * INPUT_SCALE
    net = _Net(wrng, images)
    (_mobilenet_v1 if version == 1 else _mobilenet_v2)(net, alpha, classes)
    return _emit(net, _canonical(*spec), seed)


def _smooth_images(rng, n, height, width):
    """Random images in [-1, 1] with image-like spatial correlation (not white noise).

    A coarse random grid, bilinearly upsampled, plus a little pixel noise: smooth regions and
    edges give depthwise filters the structured input they see on photographs.
    """
    gh, gw = max(2, height // 12), max(2, width // 12)
    coarse = rng.uniform(-1.0, 1.0, size=(n, gh, gw, 3)).astype(np.float32)
    uh, uw = _interp_matrix(height, gh), _interp_matrix(width, gw)
    x = np.einsum("hi,nijc,wj->nhwc", uh, coarse, uw, optimize=True)
    x += rng.normal(0.0, 0.1, size=x.shape).astype(np.float32)
    return np.clip(x, -1.0, 1.0).astype(np.float32)


def _interp_matrix(out, inp):
    """Bilinear (align-corners) resampling matrix from `inp` samples to `out` samples."""
    pos = np.linspace(0.0, inp - 1.0, out)
    lo = np.minimum(np.floor(pos).astype(int), inp - 2)
    frac = (pos - lo).astype(np.float32)
    m = np.zeros((out, inp), np.float32)
    m[np.arange(out), lo] = 1.0 - frac
    m[np.arange(out), lo + 1] = frac
    return m


# ----------------------------------------------------------------------------------------------
# architectures (Keras applications' layer structure and names)

def _make_divisible(v, divisor=8):
    """Round a channel count to a multiple of `divisor`, never more than 10% below `v`.

    MobileNetV2's rule: channel counts stay hardware friendly at any width multiplier.
    """
    rounded = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * v else rounded


def _mobilenet_v1(net, alpha, classes):
    x = net.conv(net.input, int(32 * alpha), 3, 2, True, "conv1")
    for i, (filters, stride) in enumerate(_V1_BLOCKS, start=1):
        x = net.depthwise(x, stride, f"conv_dw_{i}")
        x = net.conv(x, int(filters * alpha), 1, 1, True, f"conv_pw_{i}")
    x = net.mean(x, True, "global_average_pooling2d")
    x = net.classifier_conv(x, classes, "conv_preds")
    x = net.reshape(x, (1, classes), "reshape_2")
    net.softmax(x, "predictions")


def _mobilenet_v2(net, alpha, classes):
    x = net.conv(net.input, _make_divisible(32 * alpha), 3, 2, True, "Conv1")
    block = 0
    for t, c, n, s in _V2_STAGES:
        out_ch = _make_divisible(int(c * alpha))
        for r in range(n):
            stride = s if r == 0 else 1
            prefix = f"block_{block}_" if block else "expanded_conv_"
            in_ch = x.shape[-1]
            y = x
            if block:
                y = net.conv(y, t * in_ch, 1, 1, True, prefix + "expand")
            y = net.depthwise(y, stride, prefix + "depthwise")
            y = net.conv(y, out_ch, 1, 1, False, prefix + "project")
            if stride == 1 and in_ch == out_ch:
                y = net.add(x, y, prefix + "add")
            x = y
            block += 1
    last = _make_divisible(1280 * alpha) if alpha > 1.0 else 1280
    x = net.conv(x, last, 1, 1, True, "Conv_1")
    x = net.mean(x, False, "global_average_pooling2d")
    x = net.dense(x, classes, "predictions")
    net.softmax(x, "predictions_softmax")


# ----------------------------------------------------------------------------------------------
# float model with data-derived BatchNorm, recorded for quantization

class _Act:
    """An activation tensor: its id in the recorder and its float value on the batch."""

    __slots__ = ("id", "value")

    def __init__(self, id_, value):
        self.id = id_
        self.value = value

    @property
    def shape(self):
        return self.value.shape


class _Net:
    """Runs the float network on the calibration batch layer by layer while recording it.

    Each conv gets He-initialised weights, then a BatchNorm whose mean and variance are the
    batch statistics of that conv's own output, folded into weights and bias; gamma and beta
    are drawn near 1 and 0 as a trained network's are. Every activation's min/max over the
    batch is kept for quantization; float values are dropped once the architecture no longer
    holds them, so peak memory is a few layers' worth.
    """

    def __init__(self, rng, images):
        self.rng = rng
        self.acts = []          # per activation: dict(name, shape, lo, hi, relu6)
        self.ops = []           # per op: dict(kind, name, inputs, output, ...)
        self.input = self._new("input", images, relu6=False, lo=-1.0, hi=1.0)

    def _new(self, name, value, relu6, lo=None, hi=None):
        lo = float(value.min()) if lo is None else lo
        hi = float(value.max()) if hi is None else hi
        self.acts.append(dict(name=name, shape=(1,) + value.shape[1:], lo=lo, hi=hi,
                              relu6=relu6))
        return _Act(len(self.acts) - 1, value)

    def _bn(self, z, relu6):
        """Per-channel scale and shift that normalise `z` (data BatchNorm) with random affine."""
        axes = tuple(range(z.ndim - 1))
        mean = z.mean(axis=axes, dtype=np.float64)
        var = z.var(axis=axes, dtype=np.float64)
        c = z.shape[-1]
        gamma = self.rng.uniform(0.75, 1.25, c)
        # ReLU layers lean positive (more than half the units active, as in trained nets);
        # linear bottlenecks centre on zero.
        beta = self.rng.normal(0.25 if relu6 else 0.0, 0.2, c)
        k = gamma / np.sqrt(var + _BN_EPS)
        return k.astype(np.float32), (beta - mean * k).astype(np.float32)

    def conv(self, x, cout, k, stride, relu6, name):
        """Conv k x k (SAME) + folded BatchNorm + optional ReLU6."""
        cin = x.shape[-1]
        w = self.rng.normal(0.0, np.sqrt(2.0 / (k * k * cin)), (cout, k, k, cin)).astype(np.float32)
        z = _conv(x.value, w, stride)
        scale, bias = self._bn(z, relu6)
        return self._linear_op("CONV_2D", name, x, w * scale[:, None, None, None], bias,
                               z * scale + bias, relu6, stride=stride)

    def depthwise(self, x, stride, name):
        """Depthwise 3x3 (SAME) + folded BatchNorm + ReLU6."""
        c = x.shape[-1]
        w = self.rng.normal(0.0, np.sqrt(2.0 / 9.0), (1, 3, 3, c)).astype(np.float32)
        z = _depthwise(x.value, w, stride)
        scale, bias = self._bn(z, True)
        return self._linear_op("DEPTHWISE_CONV_2D", name, x, w * scale, bias, z * scale + bias,
                               True, stride=stride)

    def classifier_conv(self, x, classes, name):
        """V1's conv_preds: 1x1 conv to the logits, scaled so the softmax is informative."""
        w, b, y = self._logits(x.value.reshape(x.shape[0], -1), classes)
        return self._linear_op("CONV_2D", name, x, w[:, None, None, :], b,
                               y.reshape(x.shape[:-1] + (classes,)), False, stride=1)

    def dense(self, x, classes, name):
        """V2's predictions layer: FULLY_CONNECTED to the logits."""
        w, b, y = self._logits(x.value, classes)
        return self._linear_op("FULLY_CONNECTED", name, x, w, b, y, False)

    def _logits(self, f, classes):
        w = self.rng.normal(0.0, np.sqrt(1.0 / f.shape[1]), (classes, f.shape[1]))
        z = f @ w.T.astype(np.float32)
        k = _LOGIT_STD / max(float(z.std()), 1e-6)
        b = (self.rng.normal(0.0, 0.1 * _LOGIT_STD, classes) - float(z.mean()) * k)
        w, b = (w * k).astype(np.float32), b.astype(np.float32)
        return w, b, (z * k + b).astype(np.float32)

    def _linear_op(self, kind, name, x, w, b, y, relu6, stride=None):
        if relu6:
            y = np.clip(y, 0.0, 6.0, out=y)
        out = self._new(name + ("_relu" if relu6 else ""), y, relu6)
        self.ops.append(dict(kind=kind, name=name, inputs=[x.id], output=out.id, weights=w,
                             bias=b, relu6=relu6, stride=stride))
        return out

    def add(self, a, b, name):
        out = self._new(name, a.value + b.value, relu6=False)
        self.ops.append(dict(kind="ADD", name=name, inputs=[a.id, b.id], output=out.id))
        return out

    def mean(self, x, keep_dims, name):
        y = x.value.mean(axis=(1, 2), keepdims=keep_dims)
        out = self._new(name, y, relu6=False)
        self.ops.append(dict(kind="MEAN", name=name, inputs=[x.id], output=out.id,
                             keep_dims=keep_dims))
        return out

    def reshape(self, x, shape, name):
        # RESHAPE moves bytes: its output shares the input's quantization.
        src = self.acts[x.id]
        out = self._new(name, x.value.reshape((x.shape[0],) + tuple(shape[1:])), relu6=False,
                        lo=src["lo"], hi=src["hi"])
        self.ops.append(dict(kind="RESHAPE", name=name, inputs=[x.id], output=out.id,
                             shape=tuple(shape)))
        return out

    def softmax(self, x, name):
        z = x.value - x.value.max(axis=-1, keepdims=True)
        e = np.exp(z)
        # The int8 softmax output is fixed by the spec: scale 1/256, zero point -128.
        out = self._new(name, e / e.sum(axis=-1, keepdims=True), relu6=False, lo=0.0,
                        hi=255.0 / 256.0)
        self.ops.append(dict(kind="SOFTMAX", name=name, inputs=[x.id], output=out.id))
        return out


def _same_pad(size, k, stride):
    out = -(-size // stride)
    total = max((out - 1) * stride + k - size, 0)
    return out, total // 2, total - total // 2        # the odd extra goes after (TFLite SAME)


def _pad_hw(x, k, stride):
    oh, top, bottom = _same_pad(x.shape[1], k, stride)
    ow, left, right = _same_pad(x.shape[2], k, stride)
    if top or bottom or left or right:
        x = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    return x, oh, ow


def _conv(x, w, stride):
    """NHWC conv, SAME padding, weights [O, KH, KW, I]: im2col then one matmul."""
    o, kh, kw, i = w.shape
    if kh == 1 and kw == 1 and stride == 1:
        return (x.reshape(-1, i) @ w.reshape(o, i).T).reshape(x.shape[:-1] + (o,))
    xp, oh, ow = _pad_hw(x, kh, stride)
    cols = np.concatenate([xp[:, dy:dy + stride * (oh - 1) + 1:stride,
                              dx:dx + stride * (ow - 1) + 1:stride, :]
                           for dy in range(kh) for dx in range(kw)], axis=-1)
    # Patch order (dy, dx, channel) matches the [KH, KW, I] flattening of each filter.
    y = cols.reshape(-1, kh * kw * i) @ w.transpose(1, 2, 3, 0).reshape(-1, o)
    return y.reshape(x.shape[0], oh, ow, o)


def _depthwise(x, w, stride):
    """NHWC depthwise conv, SAME padding, weights [1, KH, KW, C]: a sum of shifted slices."""
    _, kh, kw, _ = w.shape
    xp, oh, ow = _pad_hw(x, kh, stride)
    acc = None
    for dy in range(kh):
        for dx in range(kw):
            tap = xp[:, dy:dy + stride * (oh - 1) + 1:stride,
                     dx:dx + stride * (ow - 1) + 1:stride, :] * w[0, dy, dx]
            acc = tap if acc is None else np.add(acc, tap, out=acc)
    return acc


# ----------------------------------------------------------------------------------------------
# post-training quantization and serialisation

def _round_away(v):
    return np.sign(v) * np.floor(np.abs(v) + 0.5)


def _act_qparams(a):
    """Asymmetric int8 (scale, zero point) from a calibrated range, the converter's way.

    The range is widened to contain 0 (so 0 and padding are exact); ReLU6 outputs are capped at
    6, the most the activation can produce.
    """
    lo, hi = min(a["lo"], 0.0), max(a["hi"], 0.0)
    if a["relu6"]:
        lo, hi = 0.0, min(hi, 6.0)
    if hi - lo < 1e-8:
        hi = lo + 1e-8 * 255.0       # constant tensor: any scale represents it
    scale = np.float32((hi - lo) / 255.0)
    zp = int(np.clip(_round_away(-128.0 - lo / float(scale)), -128, 127))
    return scale, zp


def _weight_qparams(w, axis):
    """Symmetric per-channel int8 weights: scale max|w| / 127 per slice along `axis`."""
    red = tuple(d for d in range(w.ndim) if d != axis)
    amax = np.abs(w).max(axis=red).astype(np.float64)
    # An all-zero channel gets a neighbour's scale so its requant multiplier stays ordinary.
    fill = amax[amax > 0].max() if (amax > 0).any() else 127.0
    scale = (np.where(amax > 0, amax, fill) / 127.0).astype(np.float32)
    shape = [1] * w.ndim
    shape[axis] = -1
    q = np.clip(np.round(w / scale.reshape(shape)), -127, 127).astype(np.int8)
    return q, scale


def _emit(net, model_name, seed):
    wr = TFLiteWriter(f"dwfuse.zoo {model_name} seed={seed}")
    qp = [_act_qparams(a) for a in net.acts]
    qp[0] = (INPUT_SCALE, INPUT_ZERO_POINT)
    tid = {}

    def act_tensor(i):
        if i not in tid:
            a = net.acts[i]
            tid[i] = wr.tensor(a["name"], a["shape"], np.int8, scale=qp[i][0],
                               zero_point=qp[i][1])
        return tid[i]

    act_tensor(0)
    for op in net.ops:
        kind, name = op["kind"], op["name"]
        ins = [act_tensor(i) for i in op["inputs"]]
        if kind in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            axis = 3 if kind == "DEPTHWISE_CONV_2D" else 0
            wq, ws = _weight_qparams(op["weights"], axis)
            bias_scale = np.float64(qp[op["inputs"][0]][0]) * ws.astype(np.float64)
            bq = np.clip(np.round(op["bias"] / bias_scale), -2**31, 2**31 - 1).astype(np.int32)
            wt = wr.constant(f"{name}/weights", wq, scale=ws, quantized_dimension=axis)
            bt = wr.constant(f"{name}/bias", bq, scale=bias_scale.astype(np.float32))
            out = act_tensor(op["output"])
            act = "RELU6" if op["relu6"] else "NONE"
            if kind == "FULLY_CONNECTED":
                wr.op(kind, ins + [wt, bt], [out], fused_activation=act)
            else:
                wr.op(kind, ins + [wt, bt], [out], padding="SAME", stride_h=op["stride"],
                      stride_w=op["stride"], fused_activation=act)
        elif kind == "ADD":
            wr.op(kind, ins, [act_tensor(op["output"])], fused_activation="NONE")
        elif kind == "MEAN":
            axes = wr.constant(f"{name}/reduction_indices", np.array([1, 2], np.int32))
            wr.op(kind, ins + [axes], [act_tensor(op["output"])], keep_dims=op["keep_dims"])
        elif kind == "RESHAPE":
            shape = wr.constant(f"{name}/shape", np.array(op["shape"], np.int32))
            wr.op(kind, ins + [shape], [act_tensor(op["output"])])
        elif kind == "SOFTMAX":
            wr.op(kind, ins, [act_tensor(op["output"])], beta=1.0)
        else:                                          # pragma: no cover - recorder bug
            raise AssertionError(kind)
    return wr.to_bytes([tid[0]], [tid[net.ops[-1]["output"]]])
