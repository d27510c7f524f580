"""Pipelined output stage of TFLite requantization: add the zero point, clamp, narrow to int8.

After :class:`~dwfuse.hdl.quantized_multiplier.MultiplyByQuantizedMultiplier` every int8 kernel
(conv, depthwise, FC, ADD) ends the same way::

    y = clip(x + zero_point, act_min, act_max)      # np.clip, i.e. min(max(., lo), hi)

with ``act_min``/``act_max`` the fused activation's range (``activation_range``) inside
[-128, 127]. Done directly that is a 33-bit add then two compares and a mux, three carry chains
in series (a two-stage version measured 122-138 MHz on ECP5), so instead:

1. Flag ``x > 255`` and ``x < -256`` (the result is then ``hi``, resp. ``min(lo, hi)``
   whatever the zero point), keep ``x9 = x mod 2^9``; compute ``hi - zp``, ``lo - zp``.
2. ``c_hi = x > 255 or lo > hi or (x >= -256 and x9 > hi - zp)`` and
   ``c_lo = x < -256 or x9 < lo - zp`` (two 10-bit compares side by side), and
   ``z = x9 + zp`` (only its low 8 bits matter: when neither flag is set, lo <= z <= hi).
3. ``y = hi if c_hi else lo if c_lo else z``.

``lo > hi`` never comes from TFLite; it yields ``hi`` as ``np.clip`` does.
"""

from amaranth import Cat, Module, Mux, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from . import pipeline

__all__ = ["ZeroPointClamp"]


def _signed_gt(a, b):
    """``a > b`` for two signed values of one width, as an unsigned compare of the values with
    their sign bits flipped: Yosys maps that to one carry chain on ECP5, where a signed
    compare came out as two chains in series plus LUTs (~6 ns)."""
    width = max(len(a), len(b))

    def biased(v):  # sign-extended to `width` bits, sign bit flipped, as unsigned
        return Cat(v, v[-1].replicate(width - len(v))) ^ (1 << (width - 1))

    return biased(a) > biased(b)


class ZeroPointClamp(wiring.Component):
    """``clip(x + zero_point, lo, hi)`` to int8, three pipeline stages, one value per cycle.

    Bit-exact with the tail of ``verif/golden`` ``requantize_accumulators`` (and of ``add``)
    for every int32 ``x`` and int8 ``zero_point``, ``lo``, ``hi``; ``lo > hi`` gives ``hi`` as
    ``np.clip`` does.

    Timing: inputs (all four, sampled together) are taken on every rising edge where ``en`` is
    high; ``y`` (a register) holds the result :attr:`latency` enabled edges later.

    Attributes
    ----------
    en : In(1), init 1
        Clock enable of both stages.
    x : In(signed(32))
        The rescaled value (e.g. a ``MultiplyByQuantizedMultiplier`` output).
    zero_point : In(signed(8))
        Output zero point.
    lo, hi : In(signed(8))
        Activation range (``act_min``, ``act_max``).
    y : Out(signed(8))
    """

    en: In(1, init=1)
    x: In(signed(32))
    zero_point: In(signed(8))
    lo: In(signed(8))
    hi: In(signed(8))
    y: Out(signed(8))

    #: Enabled clock edges from sampling the inputs to the result on ``y``.
    LATENCY = 3

    @property
    def latency(self):
        """Enabled cycles from inputs to ``y`` (read-only, :data:`LATENCY`)."""
        return self.LATENCY

    def elaborate(self, platform):
        m = Module()

        def stage(name, shape, value):
            return pipeline.stage(m, self.en, name, shape, value)

        # 1. Range flags (bits 8..31 all equal = x in [-256, 255]), bounds relative to zp.
        top = self.x[8:]
        too_big = stage("s1_too_big", 1, ~self.x[31] & top.any())
        too_small = stage("s1_too_small", 1, self.x[31] & ~top.all())
        x9 = stage("s1_x9", signed(9), self.x[:9])
        zp = stage("s1_zp", signed(8), self.zero_point)
        hi_rel = stage("s1_hi_rel", signed(9), self.hi - self.zero_point)
        lo_rel = stage("s1_lo_rel", signed(9), self.lo - self.zero_point)
        inverted = stage("s1_inverted", 1, _signed_gt(self.lo, self.hi))
        lo1 = stage("s1_lo", signed(8), self.lo)
        hi1 = stage("s1_hi", signed(8), self.hi)

        # 2. Which bound applies, and the in-range value.
        use_hi = stage("s2_use_hi", 1, too_big | inverted | (~too_small & _signed_gt(x9, hi_rel)))
        use_lo = stage("s2_use_lo", 1, too_small | _signed_gt(lo_rel, x9))
        z = stage("s2_z", signed(8), x9 + zp)
        lo2 = stage("s2_lo", signed(8), lo1)
        hi2 = stage("s2_hi", signed(8), hi1)

        # 3. The clamp itself: a 3:1 mux.
        y = stage("s3_y", signed(8), Mux(use_hi, hi2, Mux(use_lo, lo2, z)))
        m.d.comb += self.y.eq(y)
        return m
