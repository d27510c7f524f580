"""Edge cases of TFLite's integer arithmetic (verif/golden/arithmetic.py).

The expected values come from exact rational arithmetic with Python's Fraction and the rounding
rules of TFLite's two rounding steps (SaturatingRoundingDoublingHighMul rounds half up,
RoundingDivideByPOT rounds half away from zero), written
independently of the vectorised numpy code under test.
"""

import math
from fractions import Fraction

import numpy as np
import pytest

from dwfuse.verif.golden import arithmetic as ar

I32_MIN, I32_MAX = -(1 << 31), (1 << 31) - 1


def round_half_away(q):
    """Exact round-half-away-from-zero of a Fraction."""
    n = math.floor(abs(q) + Fraction(1, 2))
    return n if q >= 0 else -n


def ref_srdhm(a, b):
    """gemmlowp's nudge-then-truncate is round half up (toward +inf) of a*b / 2^31."""
    if a == b == I32_MIN:
        return I32_MAX
    return math.floor(Fraction(a * b, 1 << 31) + Fraction(1, 2))


def ref_rdbpot(x, e):
    return round_half_away(Fraction(x, 1 << e))


def ref_mbqm(x, m, shift):
    left, right = max(shift, 0), max(-shift, 0)
    xl = x * (1 << left)
    assert I32_MIN <= xl <= I32_MAX, "test inputs must not overflow the left shift"
    return ref_rdbpot(ref_srdhm(xl, m), right)


def test_srdhm_int32_min_squared_saturates():
    assert int(ar.saturating_rounding_doubling_high_mul(I32_MIN, I32_MIN)) == I32_MAX
    # one operand INT32_MIN alone does not saturate
    assert int(ar.saturating_rounding_doubling_high_mul(I32_MIN, I32_MAX)) == ref_srdhm(I32_MIN, I32_MAX)
    assert int(ar.saturating_rounding_doubling_high_mul(I32_MIN, 1)) == ref_srdhm(I32_MIN, 1)


def test_srdhm_random_and_ties():
    rng = np.random.default_rng(1)
    a = rng.integers(I32_MIN, I32_MAX, 4000, endpoint=True)
    b = rng.integers(I32_MIN, I32_MAX, 4000, endpoint=True)
    # products that are exact ties: a * b = (2k + 1) * 2^30
    a = np.concatenate([a, [1 << 30, -(1 << 30), 3 << 29, -(3 << 29), 1, -1]])
    b = np.concatenate([b, [1, 1, 1, 1, 1 << 30, 1 << 30]])
    got = ar.saturating_rounding_doubling_high_mul(a, b)
    want = [ref_srdhm(int(x), int(y)) for x, y in zip(a, b)]
    assert got.tolist() == want


@pytest.mark.parametrize("x,e,want", [(-5, 1, -3), (-3, 1, -2), (-1, 1, -1), (5, 1, 3), (3, 1, 2),
                                      (-6, 2, -2), (-10, 2, -3), (10, 2, 3), (-2, 2, -1), (2, 2, 1),
                                      (I32_MIN, 31, -1), (I32_MAX, 31, 1), (-(1 << 30), 31, -1)])
def test_rounding_divide_by_pot_negative_ties_away_from_zero(x, e, want):
    assert int(ar.rounding_divide_by_pot(x, e)) == want


def test_rounding_divide_by_pot_all_exponents():
    rng = np.random.default_rng(2)
    x = rng.integers(I32_MIN, I32_MAX, 500, endpoint=True)
    for e in range(0, 32):
        got = ar.rounding_divide_by_pot(x, e)
        assert got.tolist() == [ref_rdbpot(int(v), e) for v in x], f"exponent {e}"


@pytest.mark.parametrize("shift", list(range(-31, 31)))
def test_multiply_by_quantized_multiplier_every_shift(shift):
    rng = np.random.default_rng(100 + shift)
    m = rng.integers(1 << 30, I32_MAX, 200, endpoint=True)
    limit = I32_MAX >> max(shift, 0)
    x = rng.integers(-limit, limit, 200, endpoint=True)
    got = ar.multiply_by_quantized_multiplier(x, m, shift)
    want = [ref_mbqm(int(a), int(b), shift) for a, b in zip(x, m)]
    assert got.tolist() == want


def test_left_shift_scale_at_least_one():
    # effective scale 2.5: QuantizeMultiplier gives shift 2 (a left shift) and m = 0.625 * 2^31
    m, shift = ar.quantize_multiplier(2.5)
    assert (m, shift) == (int(0.625 * (1 << 31)), 2)
    x = np.arange(-1000, 1001)
    got = ar.multiply_by_quantized_multiplier(x, m, shift).tolist()
    # with a left shift the only rounding is SRDHM's: x * 2.5 with ties toward +infinity
    assert got == [math.floor(Fraction(5 * v, 2) + Fraction(1, 2)) for v in x]
    assert got[x.tolist().index(-999)] == -2497 and got[x.tolist().index(999)] == 2498
    # exactly 1.0 round-trips every value
    m1, s1 = ar.quantize_multiplier(1.0)
    assert (m1, s1) == (1 << 30, 1)
    assert ar.multiply_by_quantized_multiplier(x, m1, s1).tolist() == x.tolist()


@pytest.mark.parametrize("real", [1e-12, 2.0 ** -31, 2.0 ** -32, 3e-5, 0.0039, 0.5, 0.999999999, 1.0, 1.5,
                                  7.99999, 123.456])
def test_quantize_multiplier_matches_exact_definition(real):
    m, shift = ar.quantize_multiplier(real)
    frac = Fraction(real)
    e = math.frexp(real)[1]
    q = round_half_away(frac / Fraction(2) ** e * (1 << 31))
    if q == 1 << 31:
        q, e = q // 2, e + 1
    if e < -31:
        q, e = 0, 0
    assert (m, shift) == (q, e)


def test_quantize_multiplier_flushes_tiny_to_zero():
    assert ar.quantize_multiplier(1e-12) == (0, 0)
    assert ar.quantize_multiplier(0.0) == (0, 0)


def test_tflite_round_is_half_away_from_zero():
    x = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 0.49999997, -0.49999997], np.float32)
    assert ar.tflite_round(x).tolist() == [-3, -2, -1, 1, 2, 3, 0, 0]


@pytest.mark.parametrize("act,scale,zp,want", [("NONE", 0.1, 3, (-128, 127)), ("RELU", 0.1, -20, (-20, 127)),
                                               ("RELU6", 0.05, -128, (-128, -8)), ("RELU6", 0.01, -128, (-128, 127)),
                                               ("RELU_N1_TO_1", 0.02, 0, (-50, 50))])
def test_activation_range(act, scale, zp, want):
    assert ar.activation_range(act, scale, zp) == want
