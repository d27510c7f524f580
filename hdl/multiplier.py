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
"""

from amaranth import ClockSignal, Instance, Module, Shape, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from . import pipeline

__all__ = ["RegisteredMultiplier", "DSP_KINDS"]

#: Accepted values of the ``dsp`` parameter.
DSP_KINDS = ("infer", "ecp5")


class RegisteredMultiplier(wiring.Component):
    """``p = a * b`` with operand and product registers: latency 2, one product per cycle.

    Parameters
    ----------
    a_shape, b_shape : Shape
        Operand shapes. With ``dsp="ecp5"`` each must fit an 18-bit signed operand (at most 18
        bits signed, or 17 bits unsigned).
    dsp : str
        ``"infer"`` (let synthesis choose) or ``"ecp5"`` (a registered MULT18X18D); see the
        module docstring.

    Attributes
    ----------
    en : In(1), init 1
        Clock enable of both register stages.
    a : In(a_shape)
    b : In(b_shape)
    p : Out(product shape)
        ``a * b`` (Amaranth's product shape: width a + b, signed if either operand is).
    """

    #: Enabled clock edges from sampling ``a``, ``b`` to the product on ``p``.
    LATENCY = 2

    def __init__(self, a_shape, b_shape, *, dsp="infer"):
        a_shape, b_shape = Shape.cast(a_shape), Shape.cast(b_shape)
        if dsp not in DSP_KINDS:
            raise ValueError(f"dsp must be one of {DSP_KINDS}, not {dsp!r}")
        if dsp == "ecp5":
            for name, shape in (("a_shape", a_shape), ("b_shape", b_shape)):
                if shape.width > (18 if shape.signed else 17):
                    raise ValueError(f"{name} must fit an 18-bit signed DSP operand, not {shape!r}")
        self._dsp = dsp
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
        return self.LATENCY

    def elaborate(self, platform):
        m = Module()
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
