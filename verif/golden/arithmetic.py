"""TFLite's integer arithmetic, vectorised over numpy arrays, bit for bit.

These are the primitives of TFLite's reference kernels (`kernels/internal/common.h`,
`quantization_util.cc`) and of gemmlowp's fixed-point library. Every function takes and returns
int64 numpy arrays (or Python ints) holding int32 values, so intermediate products never overflow
in numpy; results are wrapped or saturated exactly where the C++ wraps or saturates.

The hardware's `Requantizer` implements `multiply_by_quantized_multiplier`; the testbenches compare
it against this file.
"""

import math

import numpy as np

__all__ = [
    "INT32_MIN", "INT32_MAX",
    "wrap_int32",
    "saturating_rounding_doubling_high_mul",
    "rounding_divide_by_pot",
    "saturating_rounding_multiply_by_pot",
    "multiply_by_quantized_multiplier",
    "multiply_by_quantized_multiplier_greater_than_one",
    "quantize_multiplier",
    "quantize_multiplier_smaller_than_one_exp",
    "quantize_multiplier_greater_than_one",
    "tflite_round",
    "activation_range",
]

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1


def _i64(x):
    return np.asarray(x, dtype=np.int64)


def wrap_int32(x):
    """Two's-complement wrap to int32 (what C++ int32 arithmetic does on this target)."""
    x = _i64(x)
    return ((x + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def _trunc_div_pow2_31(x):
    """C++ `x / (1ll << 31)` on int64: division truncating toward zero."""
    q = np.abs(x) >> 31
    return np.where(x < 0, -q, q)


def saturating_rounding_doubling_high_mul(a, b):
    """gemmlowp SaturatingRoundingDoublingHighMul: round(a * b / 2^31), INT32_MIN^2 saturates.

    The nudge is +2^30 for non-negative products and 1 - 2^30 for negative ones, then the
    division truncates toward zero: positive ties round up and negative ties toward zero,
    i.e. round half toward +infinity.
    """
    a = _i64(a)
    b = _i64(b)
    overflow = (a == INT32_MIN) & (b == INT32_MIN)
    ab = a * b  # |a*b| <= 2^62: fits int64
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    # ab + nudge cannot overflow int64 except for the saturating case, handled below.
    high = _trunc_div_pow2_31(np.where(overflow, 0, ab) + nudge)
    return np.where(overflow, INT32_MAX, high)


def rounding_divide_by_pot(x, exponent):
    """gemmlowp RoundingDivideByPOT: x / 2^exponent rounded to nearest, ties away from zero."""
    x = _i64(x)
    exponent = _i64(exponent)
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def saturating_rounding_multiply_by_pot(x, exponent):
    """gemmlowp SaturatingRoundingMultiplyByPOT<exponent> for int32 raws (exponent a Python int)."""
    x = _i64(x)
    if exponent == 0:
        return x
    if exponent < 0:
        return rounding_divide_by_pot(x, -exponent)
    threshold = (1 << (31 - exponent)) - 1
    shifted = wrap_int32(x << exponent)
    return np.where(x > threshold, INT32_MAX, np.where(x < -threshold, INT32_MIN, shifted))


def multiply_by_quantized_multiplier(x, multiplier, shift):
    """TFLite MultiplyByQuantizedMultiplier (double rounding, the reference kernels' default).

    x, multiplier and shift broadcast against each other, so per-channel parameters are
    passed as arrays along the channel axis.
    """
    x = _i64(x)
    shift = _i64(shift)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    return rounding_divide_by_pot(
        saturating_rounding_doubling_high_mul(wrap_int32(x << left), multiplier), right)


def multiply_by_quantized_multiplier_greater_than_one(x, multiplier, left_shift):
    """TFLite MultiplyByQuantizedMultiplierGreaterThanOne (softmax's input scaling)."""
    return saturating_rounding_doubling_high_mul(wrap_int32(_i64(x) << _i64(left_shift)), multiplier)


def tflite_round(x):
    """TfLiteRound / std::round: round half away from zero (numpy's round is half to even)."""
    x = np.asarray(x)
    whole = np.trunc(x)
    frac = x - whole  # exact in binary floating point
    return whole + np.sign(x) * (np.abs(frac) >= 0.5)


def quantize_multiplier(real):
    """TFLite QuantizeMultiplier: a double → (int32 significand in [2^30, 2^31), shift).

    real * 2^31 is exact in double, so the rounding below (half away from zero) is exactly
    TfLiteRound of the C++ code. Multipliers below 2^-31 flush to (0, 0) as TFLite does.
    """
    real = float(real)
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = int(math.copysign(math.floor(abs(q) * (1 << 31) + 0.5), q))
    if abs(q_fixed) == 1 << 31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        shift, q_fixed = 0, 0
    return q_fixed, shift


def quantize_multiplier_smaller_than_one_exp(real):
    """TFLite QuantizeMultiplierSmallerThanOneExp (ADD's multipliers): requires 0 < real < 1."""
    if not 0.0 < real < 1.0:
        raise ValueError(f"multiplier {real!r} is not in (0, 1)")
    m, shift = quantize_multiplier(real)
    assert shift <= 0
    return m, shift


def quantize_multiplier_greater_than_one(real):
    """TFLite QuantizeMultiplierGreaterThanOne (softmax's input scaling): requires real > 1."""
    if not real > 1.0:
        raise ValueError(f"multiplier {real!r} is not > 1")
    m, shift = quantize_multiplier(real)
    assert shift >= 0
    return m, shift


_ACT_BOUNDS = {"NONE": None, "RELU": (0.0, None), "RELU6": (0.0, 6.0), "RELU_N1_TO_1": (-1.0, 1.0)}


def activation_range(activation, scale, zero_point, qmin=-128, qmax=127):
    """TFLite CalculateActivationRangeQuantized: the clamp a fused activation becomes.

    quantize(f) = zero_point + round(f / scale), computed in float32 as TFLite does.
    """
    if activation not in _ACT_BOUNDS:
        raise ValueError(f"unsupported fused activation {activation!r}")
    bounds = _ACT_BOUNDS[activation]
    if bounds is None:
        return qmin, qmax
    scale = np.float32(scale)

    def quantize(f):
        return int(zero_point) + int(tflite_round(np.float32(f) / scale))

    lo = max(qmin, quantize(bounds[0]))
    hi = qmax if bounds[1] is None else min(qmax, quantize(bounds[1]))
    return lo, hi
