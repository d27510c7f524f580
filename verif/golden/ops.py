"""TFLite int8 reference kernels in vectorised numpy: the project's golden model.

Each function mirrors one TFLite reference kernel (`reference_integer_ops::*` or
`reference_ops::*`) with the integer parameters its Prepare step derives passed in explicitly
(the importer derives them in `dwfuse.importer`). Activations are NHWC int8 arrays.

Integer dot products run as float64 matrix products: every partial sum of int8 x int9 products
stays far below 2^53, so BLAS gives the exact integer result, and a MobileNetV2-1.0-224 runs
in seconds instead of minutes.
"""

import numpy as np

from .arithmetic import (
    multiply_by_quantized_multiplier,
    multiply_by_quantized_multiplier_greater_than_one,
    rounding_divide_by_pot,
    saturating_rounding_doubling_high_mul,
    saturating_rounding_multiply_by_pot,
    tflite_round,
    wrap_int32,
)

__all__ = [
    "conv_padding",
    "conv2d",
    "depthwise_conv2d",
    "fully_connected",
    "requantize_accumulators",
    "add",
    "pad",
    "average_pool2d",
    "mean",
    "softmax",
    "quantize",
    "dequantize",
    "requantize",
    "strided_slice",
]


def conv_padding(in_size, filter_size, stride, dilation, padding):
    """TFLite's output size and (before, after) padding for SAME or VALID.

    SAME puts the odd extra row/column after (ComputePaddingWithOffset).
    """
    eff = (filter_size - 1) * dilation + 1
    if padding == "SAME":
        out = (in_size + stride - 1) // stride
    elif padding == "VALID":
        out = (in_size - eff + stride) // stride
    else:
        raise ValueError(f"unknown padding {padding!r}")
    total = max((out - 1) * stride + eff - in_size, 0)
    return out, total // 2, total // 2 + total % 2


def requantize_accumulators(acc, bias, multiplier, shift, out_zp, act_min, act_max):
    """Accumulator + bias → MultiplyByQuantizedMultiplier → + zero point → clamp → int8.

    The channel axis is the last axis of `acc`; bias, multiplier, shift are per channel.
    """
    acc = wrap_int32(np.asarray(acc, dtype=np.int64) + (0 if bias is None else np.asarray(bias, np.int64)))
    out = multiply_by_quantized_multiplier(acc, multiplier, shift) + out_zp
    return np.clip(out, act_min, act_max).astype(np.int8)


def _windows(x, kh, kw, stride, dilation, pads, pad_value):
    """Padded input and its (N, OH, OW, KH, KW, C) sliding-window view (a view, no copy)."""
    (sh, sw), (dh, dw), (pt, pb, pl, pr) = stride, dilation, pads
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)), constant_values=pad_value)
    n, hp, wp, c = xp.shape
    oh = (hp - ((kh - 1) * dh + 1)) // sh + 1
    ow = (wp - ((kw - 1) * dw + 1)) // sw + 1
    s = xp.strides
    return np.lib.stride_tricks.as_strided(
        xp, shape=(n, oh, ow, kh, kw, c),
        strides=(s[0], s[1] * sh, s[2] * sw, s[1] * dh, s[2] * dw, s[3]), writeable=False)


def _pads(x, kh, kw, stride, dilation, padding):
    """Explicit (top, bottom, left, right) padding from TFLite's SAME/VALID, or pass through."""
    if isinstance(padding, str):
        _, pt, pb = conv_padding(x.shape[1], kh, stride[0], dilation[0], padding)
        _, pl, pr = conv_padding(x.shape[2], kw, stride[1], dilation[1], padding)
        return pt, pb, pl, pr
    return tuple(padding)


def conv2d(x, w, bias, *, in_zp, out_zp, multiplier, shift, stride=(1, 1), dilation=(1, 1),
           padding="SAME", act_min=-128, act_max=127):
    """reference_integer_ops::ConvPerChannel. x: (N,H,W,I) int8; w: (O,KH,KW,I) int8.

    padding is "SAME", "VALID" or explicit (top, bottom, left, right); padded positions hold
    the input zero point, so they contribute 0 after the input offset is applied.
    """
    o, kh, kw, i = w.shape
    pads = _pads(x, kh, kw, stride, dilation, padding)
    win = _windows(x, kh, kw, stride, dilation, pads, in_zp)
    xs = win.astype(np.float64) - in_zp
    acc = np.tensordot(xs, w.astype(np.float64), axes=([3, 4, 5], [1, 2, 3]))
    return requantize_accumulators(acc.astype(np.int64), bias, multiplier, shift, out_zp, act_min, act_max)


def depthwise_conv2d(x, w, bias, *, in_zp, out_zp, multiplier, shift, depth_multiplier=1,
                     stride=(1, 1), dilation=(1, 1), padding="SAME", act_min=-128, act_max=127):
    """reference_integer_ops::DepthwiseConvPerChannel. w: (1,KH,KW,C*M); out channel c*M+m."""
    _, kh, kw, cm = w.shape
    c = x.shape[3]
    if cm != c * depth_multiplier:
        raise ValueError(f"depthwise filter has {cm} channels, expected {c} x {depth_multiplier}")
    pads = _pads(x, kh, kw, stride, dilation, padding)
    win = _windows(x, kh, kw, stride, dilation, pads, in_zp)
    xs = win.astype(np.int32) - np.int32(in_zp)
    if depth_multiplier > 1:
        xs = np.repeat(xs, depth_multiplier, axis=5)
    acc = np.zeros(xs.shape[:3] + (cm,), dtype=np.int64)
    w32 = w[0].astype(np.int32)
    for a in range(kh):
        for b in range(kw):
            acc += xs[:, :, :, a, b, :] * w32[a, b]
    return requantize_accumulators(acc, bias, multiplier, shift, out_zp, act_min, act_max)


def fully_connected(x, w, bias, *, in_zp, out_zp, multiplier, shift, w_zp=0,
                    act_min=-128, act_max=127):
    """reference_integer_ops::FullyConnected. x: (batches, K); w: (O, K)."""
    xs = x.astype(np.float64) - in_zp
    ws = w.astype(np.float64) - w_zp
    acc = (xs @ ws.T).astype(np.int64)
    return requantize_accumulators(acc, bias, multiplier, shift, out_zp, act_min, act_max)


def add(a, b, *, a_zp, b_zp, out_zp, left_shift, a_multiplier, a_shift, b_multiplier, b_shift,
        out_multiplier, out_shift, act_min=-128, act_max=127):
    """reference_integer_ops::Add (int8, left_shift 20), with numpy broadcasting."""
    sa = (a.astype(np.int64) - a_zp) << left_shift
    sb = (b.astype(np.int64) - b_zp) << left_shift
    ra = multiply_by_quantized_multiplier(sa, a_multiplier, a_shift)
    rb = multiply_by_quantized_multiplier(sb, b_multiplier, b_shift)
    raw = multiply_by_quantized_multiplier(wrap_int32(ra + rb), out_multiplier, out_shift) + out_zp
    return np.clip(raw, act_min, act_max).astype(np.int8)


def pad(x, paddings, pad_value):
    """reference_ops::Pad: paddings is (rank, 2); int8 PAD fills with the output zero point."""
    return np.pad(x, [tuple(int(v) for v in p) for p in paddings], constant_values=pad_value)


def average_pool2d(x, *, filter_size, stride, padding, act_min=-128, act_max=127):
    """reference_integer_ops::AveragePool: the count excludes padded positions.

    The mean rounds half away from zero with C integer division.
    """
    kh, kw = filter_size
    pads = _pads(x, kh, kw, stride, (1, 1), padding)
    ones = np.ones(x.shape[:3] + (1,), dtype=np.int32)
    sums = _windows(x.astype(np.int32), kh, kw, stride, (1, 1), pads, 0).sum(axis=(3, 4), dtype=np.int64)
    counts = _windows(ones, kh, kw, stride, (1, 1), pads, 0).sum(axis=(3, 4), dtype=np.int64)
    half = counts // 2
    q = np.where(sums > 0, sums + half, sums - half)
    avg = np.sign(q) * (np.abs(q) // counts)  # C division truncates toward zero
    return np.clip(avg, act_min, act_max).astype(np.int8)


def mean(x, axes, keep_dims, *, in_zp, out_zp, multiplier, shift):
    """reference_ops::QuantizedMeanOrSum (integer form) as TFLite Micro runs int8 MEAN.

    multiplier/shift encode in_scale/out_scale (QuantizeMultiplier); the division by the
    element count is folded into the multiplier with up to 32 extra bits of precision, then
    sum(x - in_zp) is requantized like a convolution accumulator.
    """
    axes = tuple(sorted({int(a) % x.ndim for a in np.atleast_1d(axes)}))
    count = int(np.prod([x.shape[a] for a in axes]))
    total = x.astype(np.int64).sum(axis=axes, keepdims=bool(keep_dims)) - in_zp * count
    extra = min(count.bit_length() - 1, 32, 31 + shift)
    multiplier = (multiplier << extra) // count
    out = multiply_by_quantized_multiplier(wrap_int32(total), multiplier, shift - extra) + out_zp
    return np.clip(out, -128, 127).astype(np.int8)


# gemmlowp constants (raw int32 fixed-point values) used by exp and 1/(1+x).
_EXP_MINUS_ONE_EIGHTH = 1895147668
_ONE_THIRD = 715827883
_EXP_BARREL = [(-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308),
               (2, 39332535), (3, 720401), (4, 242)]
_48_OVER_17 = 1515870810
_NEG_32_OVER_17 = -1010580540


def _exp_on_interval_between_negative_one_quarter_and_0_excl(a):
    """gemmlowp: exp(a) for a in [-1/4, 0), Q0.31 in and out (Taylor series around -1/8)."""
    mul = saturating_rounding_doubling_high_mul
    x = wrap_int32(a + (1 << 28))
    x2 = mul(x, x)
    x3 = mul(x2, x)
    x4 = mul(x2, x2)
    x4_over_4 = saturating_rounding_multiply_by_pot(x4, -2)
    poly = saturating_rounding_multiply_by_pot(
        wrap_int32(mul(wrap_int32(x4_over_4 + x3), _ONE_THIRD) + x2), -1)
    return wrap_int32(_EXP_MINUS_ONE_EIGHTH + mul(_EXP_MINUS_ONE_EIGHTH, wrap_int32(x + poly)))


def _exp_on_negative_values(a, integer_bits):
    """gemmlowp exp_on_negative_values: a is Q(integer_bits).(31-integer_bits), a <= 0; Q0.31 out."""
    frac_bits = 31 - integer_bits
    one_quarter = 1 << (frac_bits - 2)
    a_mod_quarter_minus_one_quarter = wrap_int32((a & (one_quarter - 1)) - one_quarter)
    result = _exp_on_interval_between_negative_one_quarter_and_0_excl(
        saturating_rounding_multiply_by_pot(a_mod_quarter_minus_one_quarter, integer_bits))
    remainder = wrap_int32(a_mod_quarter_minus_one_quarter - a)
    for exponent, multiplier in _EXP_BARREL:
        if integer_bits > exponent:
            bit = remainder & (1 << (frac_bits + exponent))
            result = np.where(bit != 0, saturating_rounding_doubling_high_mul(result, multiplier), result)
    if integer_bits > 5:
        clamp = -(1 << (36 - integer_bits))
        result = np.where(a < clamp, 0, result)
    return np.where(a == 0, (1 << 31) - 1, result)


def _one_over_one_plus_x_for_x_in_0_1(a):
    """gemmlowp: 1/(1+a) for a in [0, 1), Q0.31 in and out (Newton-Raphson, 3 steps)."""
    mul = saturating_rounding_doubling_high_mul
    half_denominator = rounding_half_sum(a, (1 << 31) - 1)
    x = wrap_int32(_48_OVER_17 + mul(half_denominator, _NEG_32_OVER_17))
    one_f2 = 1 << 29
    for _ in range(3):
        one_minus = wrap_int32(one_f2 - mul(half_denominator, x))
        x = wrap_int32(x + saturating_rounding_multiply_by_pot(mul(x, one_minus), 2))
    return saturating_rounding_multiply_by_pot(x, 1)


def rounding_half_sum(a, b):
    """gemmlowp RoundingHalfSum for int32: (a + b) / 2 rounded away from zero."""
    s = np.asarray(a, np.int64) + np.asarray(b, np.int64)
    t = s + np.where(s >= 0, 1, -1)
    return np.sign(t) * (np.abs(t) // 2)


def _count_leading_zeros_u32(x):
    """CountLeadingZeros of the uint32 bit pattern; frexp's exponent is the exact bit length."""
    x = np.asarray(x, np.int64) & 0xFFFFFFFF
    _, bit_length = np.frexp(x.astype(np.float64))
    return 32 - bit_length.astype(np.int64)


def softmax(x, *, input_multiplier, input_left_shift, diff_min):
    """reference_ops::Softmax for int8 in and int8 out (scale 1/256, zero point -128).

    The parameters come from PreprocessSoftmaxScaling and CalculateInputRadius with 5 integer
    bits for the scaled differences; exp and the reciprocal are gemmlowp fixed point.
    """
    integer_bits, accum_bits = 5, 12
    xi = x.astype(np.int64)
    diff = xi - xi.max(axis=-1, keepdims=True)
    use = diff >= diff_min
    rescaled = multiply_by_quantized_multiplier_greater_than_one(diff, input_multiplier, input_left_shift)
    exps = _exp_on_negative_values(rescaled, integer_bits)
    # Rescale<12> of a Q0.31 value: a rounding right shift by 12.
    sum_of_exps = np.where(use, rounding_divide_by_pot(exps, accum_bits), 0)
    sum_of_exps = wrap_int32(sum_of_exps.sum(axis=-1, keepdims=True))
    headroom_plus_one = _count_leading_zeros_u32(sum_of_exps)
    num_bits_over_unit = accum_bits - headroom_plus_one
    shifted_sum_minus_one = wrap_int32(((sum_of_exps & 0xFFFFFFFF) << headroom_plus_one) - (1 << 31))
    shifted_scale = _one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one)
    exponent = num_bits_over_unit + 31 - 8
    if np.any((exponent < 0) | (exponent > 31)):
        raise ValueError("softmax exponent out of range")
    unsat = rounding_divide_by_pot(saturating_rounding_doubling_high_mul(shifted_scale, exps), exponent)
    out = np.clip(unsat - 128, -128, 127)
    return np.where(use, out, -128).astype(np.int8)


def quantize(x, *, scale, zero_point, qmin=-128, qmax=127):
    """reference_ops::AffineQuantize: float → int8, round(x / float(scale)) in float32, half away from zero."""
    q = tflite_round(np.asarray(x, np.float32) / np.float32(scale)) + zero_point
    return np.clip(q, qmin, qmax).astype(np.int8)


def dequantize(x, *, scale, zero_point):
    """reference_ops::Dequantize: float32(double(scale) * (x - zero_point))."""
    return (float(scale) * (x.astype(np.float64) - zero_point)).astype(np.float32)


def requantize(x, *, in_zp, out_zp, multiplier, shift):
    """reference_ops::Requantize (int8 → int8 QUANTIZE)."""
    out = multiply_by_quantized_multiplier(x.astype(np.int64) - in_zp, multiplier, shift) + out_zp
    return np.clip(out, -128, 127).astype(np.int8)


def strided_slice(x, begin, end, strides, *, begin_mask=0, end_mask=0, shrink_axis_mask=0):
    """reference_ops::StridedSlice without ellipsis/new-axis masks (the importer rejects those)."""
    x = np.asarray(x)
    index = []
    for d in range(len(begin)):
        if shrink_axis_mask >> d & 1:
            b = int(begin[d])
            index.append(b + x.shape[d] if b < 0 else b)
            continue
        b = None if begin_mask >> d & 1 else int(begin[d])
        e = None if end_mask >> d & 1 else int(end[d])
        index.append(slice(b, e, int(strides[d])))
    return x[tuple(index)]
