"""Pipelined TFLite ``MultiplyByQuantizedMultiplier`` for one int32 value.

Every int8 layer ends by scaling an int32 by a real number encoded as a 32-bit multiplier and a
power-of-two shift; the PointwiseArray's residual ADD needs three more of these per value. This
is the one place that arithmetic is built, so it is bit-exact with
``verif/golden/arithmetic.py`` :func:`multiply_by_quantized_multiplier` in exactly one way.

The operation, for ``x``, ``multiplier`` (any int32) and ``shift`` (any signed 6-bit value)::

    left, right = max(shift, 0), max(-shift, 0)
    xs = wrap_int32(x << left)
    r  = SRDHM(xs, multiplier)   # round(xs * multiplier / 2^31), ties toward +inf,
                                 # INT32_MIN * INT32_MIN saturates to INT32_MAX
    y  = RoundingDivideByPOT(r, right)   # round(r / 2^right), ties away from zero

How it is pipelined, and why. Target: ECP5 at >= 150 MHz, aiming at 200 MHz, so each stage
is one DSP, or one carry chain of at most ~50 bits, or about three LUT/mux levels: on ECP5
routing costs more than logic (a 6-level barrel shifter measured ~6 ns, 2/3 of it routing).

1, 2. ``xs = wrap_int32(x << left)``: by ``8 * (left // 8)``, then by ``left % 8``.
3, 4. The 32x32 product as four partial products of 16-bit halves (low halves unsigned, high
   halves signed), each one :class:`~dwfuse.hdl.multiplier.RegisteredMultiplier` (operands
   registered in 3, products in 4): one 18x18 DSP each, with its internal registers when
   ``dsp="ecp5"``. A whole ``a * b`` would put four DSPs and a 64-bit two-level adder tree
   in one cycle. With ``dsp="ecp5"`` each product is registered once more in the fabric
   (one stage more): the DSPs sit in the device's DSP rows, and a product straight into
   stage 5's adders measured 6.8 ns in the PE array's requantizers.
5. ``mid = LH + HL`` (33 bits) and ``lo = LL + 2^30`` (the rounding nudge). SRDHM's one
   overflowing product, INT32_MIN * INT32_MIN, must saturate to INT32_MAX: its partial
   products are 0 except ``HH = 2^30``, so forcing ``lo = -2^31`` there yields exactly
   INT32_MAX in 7 (a mux on a 3-bit add here instead of one after stage 7's 33-bit add).
6. ``w = (lo + mid * 2^16) >> 31`` (a ~35-bit carry chain).
7. ``r = w + HH * 2``. gemmlowp's nudge-then-truncate is ``floor((p + 2^30) / 2^31)`` for
   every product ``p`` (both of its nudges reduce to this), and ``HH * 2^32`` is a multiple
   of ``2^31``, so the high product joins after the shift with no carry lost. Both rounding
   addends, ``2^(right-1) - 1`` and ``2^(right-1)``, are decoded here too.
8. ``t = r + 2^(right-1)`` for ``r >= 0``, ``t = r + 2^(right-1) - 1`` for ``r < 0`` when
   ``right > 0`` (the addend picked by the sign: a mux level and one carry chain, not two
   adders), else ``t = r``; 33 bits (right = 32).
9, 10. ``y = t >> right`` (arithmetic): by ``8 * (right // 8)``, then by ``right % 8``.
   Ties already went away from zero through the addend.

All datapath registers are reset-less and advance together when ``en`` is high, so a caller
can stall the whole pipeline with one signal (or leave ``en`` undriven: it defaults to 1).
The component carries no valid bits or side data: callers delay those alongside by
:attr:`latency` enabled cycles (see :class:`~dwfuse.hdl.requant.Requantizer`).

Reuse for TFLite ADD: instantiate one per operand on ``(v - zp) << 20`` with that input's
multiplier/shift, wrap-add the two ``y`` outputs (register the sum), feed a third instance with
the output multiplier/shift, then :class:`~dwfuse.hdl.zero_point_clamp.ZeroPointClamp`.
"""

from amaranth import C, Cat, Module, Mux, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from . import pipeline
from .multiplier import MULTIPLIER_KINDS, RegisteredMultiplier

__all__ = ["MultiplyByQuantizedMultiplier"]

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1


class MultiplyByQuantizedMultiplier(wiring.Component):
    """TFLite MultiplyByQuantizedMultiplier of one int32, pipelined over 10 cycles (11 with
    ``dsp="ecp5"``), one per cycle.

    Bit-exact with ``verif/golden`` ``multiply_by_quantized_multiplier`` for every int32
    ``x``, every int32 ``multiplier`` and every ``shift`` in [-32, 31] (TFLite produces
    multipliers in [2^30, 2^31) or 0 and shifts in [-31, 30]; the wider domain costs nothing).

    Timing: the inputs are sampled on every rising edge where ``en`` is high; the result
    appears on ``y`` after :attr:`latency` such edges (with ``en`` tied high: ``latency``
    cycles later, a new value every cycle). ``y`` is a register output. The inputs feed a
    barrel shifter before the first register, so drive them from registers.

    Resources per instance (ECP5, SynthHarness overhead subtracted): 4 MULT18X18D, ~360 LUT4,
    120 CCU2C, ~480 flip-flops with ``dsp="ecp5"`` (plus the 128 inside the DSPs), ~650 with
    ``dsp="infer"``. Fmax alone: 222 MHz (``"ecp5"``), 139 MHz (``"infer"``).

    Parameters
    ----------
    dsp : str
        How the four 16x16 multiplies are built: ``"infer"`` (default; Yosys infers DSPs but
        on ECP5 leaves their registers in the fabric: 116-139 MHz), ``"ecp5"`` (MULT18X18D
        instances with internal registers: 187-222 MHz; simulation needs
        ``verif/models/MULT18X18D.v``) or ``"lut"`` (no DSP: pipelined shift-and-add, 3 more
        stages, so :attr:`latency` is 13). See :mod:`dwfuse.hdl.multiplier`.

    Attributes
    ----------
    en : In(1), init 1
        Clock enable of every pipeline register (a whole-pipeline stall when low).
    x : In(signed(32))
        The value to scale (e.g. accumulator + bias).
    multiplier : In(signed(32))
        Q31 significand of the real scale, from ``quantize_multiplier``.
    shift : In(signed(6))
        Power-of-two exponent: > 0 shifts ``x`` left (scales >= 1), < 0 rounds-right.
    y : Out(signed(32))
        ``multiply_by_quantized_multiplier(x, multiplier, shift)``, :attr:`latency` enabled
        cycles after the inputs were sampled.
    """

    en: In(1, init=1)
    x: In(signed(32))
    multiplier: In(signed(32))
    shift: In(signed(6))
    y: Out(signed(32))

    #: Enabled clock edges from sampling the inputs to the result on ``y`` (``dsp="infer"``).
    LATENCY = 10

    def __init__(self, *, dsp="infer"):
        if dsp not in MULTIPLIER_KINDS:
            raise ValueError(f"dsp must be one of {MULTIPLIER_KINDS}, not {dsp!r}")
        self._dsp = dsp
        super().__init__()

    #: Fabric registers after the partial products, per multiplier kind (see stage 4).
    PRODUCT_REGISTERS = {"ecp5": 1}

    @staticmethod
    def latency_for(dsp):
        """:attr:`latency` of an instance built with ``dsp``: 10, 11 for ``"ecp5"``, 13 for ``"lut"``."""
        return (MultiplyByQuantizedMultiplier.LATENCY + RegisteredMultiplier.latency_for(dsp, signed(16))
                - RegisteredMultiplier.LATENCY + MultiplyByQuantizedMultiplier.PRODUCT_REGISTERS.get(dsp, 0))

    @property
    def dsp(self):
        return self._dsp

    @property
    def latency(self):
        """Enabled cycles from inputs to ``y`` (read-only; see `latency_for`)."""
        return self.latency_for(self._dsp)

    def elaborate(self, platform):
        m = Module()

        def stage(name, shape, value):
            return pipeline.stage(m, self.en, name, shape, value)

        # 1, 2. Left shift (wrapping, as C++ does on int32) in two steps; the right-shift amount.
        left = Mux(self.shift < 0, 0, self.shift[:5])
        right = Mux(self.shift < 0, -self.shift, 0)[:6]  # 0..32
        x1 = stage("s1_x", signed(32), (self.x << Cat(C(0, 3), left[3:]))[:32].as_signed())
        left1 = stage("s1_left", unsigned(3), left[:3])
        mul1 = stage("s1_mul", signed(32), self.multiplier)
        right1 = stage("s1_right", unsigned(6), right)
        xs = stage("s2_xs", signed(32), (x1 << left1)[:32].as_signed())
        mul2 = stage("s2_mul", signed(32), mul1)
        right2 = stage("s2_right", unsigned(6), right1)

        # 3, 4. Four partial products, each one DSP with registered operands and product:
        #       low halves unsigned, high halves signed.
        x_lo, x_hi = xs[:16], xs[16:].as_signed()
        m_lo, m_hi = mul2[:16], mul2[16:].as_signed()
        #       ("lut": more stages; the side signals wait as long as the products.)
        products = []
        for name, a, b in (("ll", x_lo, m_lo), ("lh", x_lo, m_hi), ("hl", x_hi, m_lo), ("hh", x_hi, m_hi)):
            mul = m.submodules[f"mul_{name}"] = RegisteredMultiplier(a.shape(), b.shape(), dsp=self._dsp)
            m.d.comb += [mul.en.eq(self.en), mul.a.eq(a), mul.b.eq(b)]
            products.append(pipeline.delay(m, self.en, f"s4_{name}", mul.p.shape(), mul.p,
                                           self.PRODUCT_REGISTERS.get(self._dsp, 0)))
        ll, lh, hl, hh = products  # lh, hl, hh: |.| <= 2^31 - 2^15 (hh <= 2^30): int32
        mul_latency = mul.latency + self.PRODUCT_REGISTERS.get(self._dsp, 0)
        # INT32_MIN * INT32_MIN: each operand compared in its own register first (both
        # comparisons and their AND in one cycle measured 7.8 ns in the PE array).
        xs_min = stage("s3_xs_min", 1, xs == INT32_MIN)
        mul_min = stage("s3_mul_min", 1, mul2 == INT32_MIN)
        sat4 = pipeline.delay(m, self.en, "s3_sat", 1, xs_min & mul_min, mul_latency - 1)
        right4 = pipeline.delay(m, self.en, "s3_right", unsigned(6), right2, mul_latency)

        # 5. Middle partial products summed; rounding nudge added to the low one. For
        #    INT32_MIN^2 (where ll = lh = hl = 0, hh = 2^30) lo = -2^31 makes r = INT32_MAX.
        mid = stage("s5_mid", signed(33), lh + hl)
        lo = stage("s5_lo", signed(34), Mux(sat4, INT32_MIN, ll + (1 << 30)))
        hh5 = stage("s5_hh", signed(32), hh)
        right5 = stage("s5_right", unsigned(6), right4)

        # 6. Everything below 2^32 summed, keeping bits 31 and up. `right`'s two octal digits
        #    compared with every value here, so that 7 decodes each addend bit in one LUT
        #    (decoded from `right` in one step, 4 LUT levels measured 9.4 ns in the PE array).
        low_sum = lo + (mid << 16)  # |.| < 2^49
        w = stage("s6_w", signed(20), low_sum >> 31)
        hh6 = stage("s6_hh", signed(32), hh5)
        right6 = stage("s6_right", unsigned(6), right5)
        hi5, lo5 = right5[3:], right5[:3]   # the compared values go up to 33: high digit <= 4
        hi_gt = stage("s6_hi_gt", unsigned(5), Cat(*(hi5 > d for d in range(5))))
        hi_eq = stage("s6_hi_eq", unsigned(5), Cat(*(hi5 == d for d in range(5))))
        lo_ge = stage("s6_lo_ge", unsigned(7), Cat(*(lo5 >= d for d in range(1, 8))))
        lo_eq = stage("s6_lo_eq", unsigned(8), Cat(*(lo5 == d for d in range(8))))

        def at_least(v):   # right >= v
            if v & 7 == 0:
                return hi_gt[v >> 3] | hi_eq[v >> 3]
            return hi_gt[v >> 3] | (hi_eq[v >> 3] & lo_ge[(v & 7) - 1])

        def equals(v):     # right == v
            return hi_eq[v >> 3] & lo_eq[v & 7]

        # 7. SRDHM result (in int32 range: the one overflowing product was handled in 5);
        #    the rounding addend's pieces.
        r = stage("s7_r", signed(32), w + (hh6 << 1))
        below_half = stage("s7_below_half", unsigned(32),
                           Cat(*(at_least(k + 2) for k in range(32))))  # 2^(right-1) - 1
        half = stage("s7_half", unsigned(32),
                     Cat(*(equals(k + 1) for k in range(32))))          # 2^(right-1), or 0
        right7 = stage("s7_right", unsigned(6), right6)

        # 8. Round half away from zero: add 2^(right-1) for r >= 0, 2^(right-1) - 1 for r < 0
        #    (the addend picked by r's sign: one mux level, then one carry chain).
        t = stage("s8_t", signed(33), r + Mux(r[31], below_half, half))
        right8 = stage("s8_right", unsigned(6), right7)

        # 9, 10. The rounding right shift: by a multiple of 8, then by the rest.
        t9 = stage("s9_t", signed(33), t >> Cat(C(0, 3), right8[3:]))
        right9 = stage("s9_right", unsigned(3), right8[:3])
        y = stage("s10_y", signed(32), (t9 >> right9)[:32].as_signed())
        m.d.comb += self.y.eq(y)
        return m
