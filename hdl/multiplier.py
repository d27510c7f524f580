"""A multiplier with registered operands and product, inferred or as an ECP5 DSP primitive.

Why a primitive at all: Yosys maps ``a * b`` on ECP5 to a MULT18X18D with its internal
registers bypassed (``synth_ecp5`` packs no flip-flops into DSPs), and nextpnr then times the
DSP as combinational: ~3.9 ns inside the DSP plus routing from fabric flip-flops into the DSP
column and back: measured (LFE5U-85F, nextpnr, SynthHarness) 116-122 MHz for a 4-lane
Requantizer and 134-139 MHz for one MultiplyByQuantizedMultiplier (target >= 150, aim 200).
With the DSP's own input and output registers (``REG_INPUTA_CLK``, ``REG_INPUTB_CLK``,
``REG_OUTPUT_CLK``) a lone 18x18 multiply ran at ~390 MHz, one MultiplyByQuantizedMultiplier
at 222 MHz and the 4-lane Requantizer at 187 MHz (limited by fabric adders, not the DSPs).
Yosys can only get there from an explicit instance, so this component offers both:

* ``dsp="infer"`` (default): two fabric register stages around ``a * b``. Portable (Xilinx
  synthesis packs these registers into DSP48E2 by itself), and what plain simulation runs.
* ``dsp="ecp5"``: one ``MULT18X18D`` instance with input and output registers, clock enable
  ``en`` on CE0. Simulating it needs the model ``verif/models/MULT18X18D.v``.

Both behave identically cycle for cycle: the operands are sampled on an enabled clock edge and
the product appears on ``p`` after two enabled edges.

A third kind spends LUTs instead of a DSP, for when the DSPs run out (the LFE5U-85F has 156;
see ``hdl/config.py``, ``Config.lut_multipliers``):

* ``dsp="lut"``: shift-and-add with no ``$mul`` cell, so no synthesis tool can put it in a
  DSP. One partial product per bit of ``b`` (``a`` or 0; the sign bit of a signed ``b``
  subtracts), summed by a binary tree of carry-chain adders with a register after every
  level (after the operand registers). Its latency is therefore *not* 2 but ``1 + levels``
  (4 for an 8-bit ``b``: 8 partial products, 3 levels; see tests/test_multiplier.py);
  read `latency`. Components built around latency 2 accept it only where they say so
  (``MultiplyByQuantizedMultiplier`` does, adding the extra stages to its own latency):
  ``DSP_KINDS`` excludes it, ``MULTIPLIER_KINDS`` includes it.

  Cost, measured with ``scripts/multiplier_cost.py`` (Yosys synth_ecp5 cells) on the previous
  tree (a register after every second level; the per-level registers add flip-flops and, in
  the whole depthwise engine, measured ~5k fewer TRELLIS_COMB: 41.7k instead of 46.9k): an int9
  x int8 (the depthwise taps, and the PE array's shape) 153 LUT4 + 29 CCU2C = 211
  LUT4-equivalents and 78 flip-flops (latency 3 then), instead of one MULT18X18D; a MultiplyByQuantizedMultiplier
  with four LUT 16x16 products 3135 LUT4-equivalents and 1474 flip-flops instead of 603, 479
  and 4 MULT18X18D: ~630 LUT4-equivalents per DSP saved, against 211 for an int9 x int8.
"""

from amaranth import ClockSignal, Instance, Module, Mux, Shape, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from . import pipeline

__all__ = ["RegisteredMultiplier", "DSP_KINDS", "MULTIPLIER_KINDS"]

#: Kinds with latency 2 (what components built around a fixed latency accept).
DSP_KINDS = ("infer", "ecp5")

#: Every kind `RegisteredMultiplier` builds.
MULTIPLIER_KINDS = DSP_KINDS + ("lut",)


class RegisteredMultiplier(wiring.Component):
    """``p = a * b`` with operand and product registers: latency 2, one product per cycle.

    Parameters
    ----------
    a_shape, b_shape : Shape
        Operand shapes. With ``dsp="ecp5"`` each must fit an 18-bit signed operand (at most 18
        bits signed, or 17 bits unsigned).
    dsp : str
        ``"infer"`` (let synthesis choose), ``"ecp5"`` (a registered MULT18X18D) or ``"lut"``
        (pipelined shift-and-add in the fabric, longer latency); see the module docstring.

    Attributes
    ----------
    en : In(1), init 1
        Clock enable of both register stages.
    a : In(a_shape)
    b : In(b_shape)
    p : Out(product shape)
        ``a * b`` (Amaranth's product shape: width a + b, signed if either operand is).
    """

    #: Enabled clock edges from sampling ``a``, ``b`` to the product on ``p`` (DSP kinds).
    LATENCY = 2

    def __init__(self, a_shape, b_shape, *, dsp="infer"):
        a_shape, b_shape = Shape.cast(a_shape), Shape.cast(b_shape)
        if dsp not in MULTIPLIER_KINDS:
            raise ValueError(f"dsp must be one of {MULTIPLIER_KINDS}, not {dsp!r}")
        if dsp == "ecp5":
            for name, shape in (("a_shape", a_shape), ("b_shape", b_shape)):
                if shape.width > (18 if shape.signed else 17):
                    raise ValueError(f"{name} must fit an 18-bit signed DSP operand, not {shape!r}")
        self._dsp = dsp
        self._b_bits = b_shape.width
        p_shape = (Signal(a_shape) * Signal(b_shape)).shape()
        super().__init__({
            "en": In(1, init=1),
            "a": In(a_shape),
            "b": In(b_shape),
            "p": Out(p_shape),
        })

    @property
    def dsp(self):
        return self._dsp

    @property
    def latency(self):
        """Enabled edges from ``a``, ``b`` to ``p``: 2, or more for ``"lut"``."""
        return self.latency_for(self._dsp, self._b_bits)

    @classmethod
    def latency_for(cls, dsp, b_shape):
        """The `latency` of a multiplier of kind ``dsp`` with operand ``b`` of ``b_shape``.

        For components that size their pipelines before building their multipliers.
        """
        if dsp not in MULTIPLIER_KINDS:
            raise ValueError(f"dsp must be one of {MULTIPLIER_KINDS}, not {dsp!r}")
        if dsp != "lut":
            return cls.LATENCY
        return 1 + max(1, _tree_levels(Shape.cast(b_shape).width))

    def elaborate(self, platform):
        m = Module()
        if self._dsp == "lut":
            return self._elaborate_lut(m)
        if self._dsp == "infer":
            a = pipeline.stage(m, self.en, "a_q", self.a.shape(), self.a)
            b = pipeline.stage(m, self.en, "b_q", self.b.shape(), self.b)
            m.d.comb += self.p.eq(pipeline.stage(m, self.en, "p_q", self.p.shape(), a * b))
            return m

        # ECP5: both operands as 18-bit signed (unsigned ones zero-extended), product 36 bits.
        a18, b18 = Signal(signed(18)), Signal(signed(18))
        p36 = Signal(signed(36))
        m.d.comb += [a18.eq(self.a), b18.eq(self.b), self.p.eq(p36)]
        ports = {f"i_A{k}": a18[k] for k in range(18)}
        ports |= {f"i_B{k}": b18[k] for k in range(18)}
        ports |= {f"o_P{k}": p36[k] for k in range(36)}
        m.submodules.mult = Instance(
            "MULT18X18D",
            p_REG_INPUTA_CLK="CLK0", p_REG_INPUTA_CE="CE0", p_REG_INPUTA_RST="RST0",
            p_REG_INPUTB_CLK="CLK0", p_REG_INPUTB_CE="CE0", p_REG_INPUTB_RST="RST0",
            p_REG_OUTPUT_CLK="CLK0", p_REG_OUTPUT_CE="CE0", p_REG_OUTPUT_RST="RST0",
            i_SIGNEDA=1, i_SIGNEDB=1, i_SOURCEA=0, i_SOURCEB=0,
            i_CLK0=ClockSignal(), i_CE0=self.en, i_RST0=0,
            **ports,
        )
        return m

    def _elaborate_lut(self, m):
        # ``*_dup*``: scripts/synth.py keeps these apart, so that multipliers sharing an operand
        # (the PE array's LUT columns share their pixels) keep their own copy of it by their
        # adders (one copy for 4 columns measured 5.7 ns of routing).
        a = pipeline.stage(m, self.en, "a_q_dup", self.a.shape(), self.a)
        b = pipeline.stage(m, self.en, "b_q_dup", self.b.shape(), self.b)
        p_shape = self.p.shape()
        top = len(b) - 1
        # partial products a * 2^j * b_j; the sign bit of a signed b has weight -2^top. Each
        # term carries its sign, so the negative one is subtracted by the adder that takes it
        # (one carry chain) rather than negated first (two chains in a row).
        terms = []
        for j in range(len(b)):
            pp = Mux(b[j], a, 0).as_signed() if a.shape().signed else Mux(b[j], a, 0)
            terms.append((pp << j, j == top and b.shape().signed))

        def register(name, value, negative, final):
            # the product's register applies a sign still pending; inner ones carry it along
            value = -value if negative and final else value
            return pipeline.stage(m, self.en, name, value.shape(), value), negative and not final

        def combine(x, y):
            (vx, nx), (vy, ny) = x, y
            if nx == ny:
                return vx + vy, nx
            return (vx - vy, False) if ny else (vy - vx, False)

        level = 0
        while len(terms) > 1:
            terms = [combine(terms[i], terms[i + 1]) if i + 1 < len(terms) else terms[i]
                     for i in range(0, len(terms), 2)]
            level += 1
            last = len(terms) == 1   # a register after every level
            terms = [register(f"sum{level}_{k}", v, n, last) for k, (v, n) in enumerate(terms)]
        if level == 0:   # a 1-bit b: the lone partial product still gets its register
            terms = [register("sum0_0", *terms[0], True)]
        terms = [terms[0][0]]
        m.d.comb += self.p.eq(terms[0].as_signed()[:p_shape.width] if p_shape.signed
                              else terms[0][:p_shape.width])
        return m


def _tree_levels(n):
    """Adder levels of a binary tree over ``n`` partial products."""
    levels = 0
    while n > 1:
        n = -(-n // 2)
        levels += 1
    return levels
