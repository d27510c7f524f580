"""SerialMultiplier: an unsigned product by shift and add, one bit of ``b`` per cycle.

Why: the JobSequencer checks each descriptor once per job (row spans, weight-buffer words, row
sizes). Written as ``a * b`` those checks were twenty combinational products, and Yosys put
every one in a MULT18X18D: the ecp5 top needed 176 DSPs where the LFE5U-85F has 156 and the
engine alone uses all of them. In LUTs they would cost ~14k LUT4. One multiplier that takes a
few cycles per product costs one adder, two shift registers and a small operand multiplexer in
front of it; a few hundred cycles per job while the previous job streams are free.

No ``$mul`` cell is built, so no synthesis tool can map it to a DSP.
"""

from amaranth import Const, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["SerialMultiplier", "constant_product"]


class SerialMultiplier(wiring.Component):
    """``product = a * b`` (unsigned) over ``bits_for(b)`` cycles.

    Attributes
    ----------
    start : In(1)
        Sample ``a`` and ``b`` on this clock edge and start (restarts a running product).
    a : In(a_width) ; b : In(b_width)
    busy : Out(1)
        High from the cycle after ``start`` while bits of ``b`` remain: ``b.bit_length()``
        cycles, none when ``b`` is 0. Combinational from registers.
    product : Out(a_width + b_width)
        Final once ``busy`` is low after a start; a register.
    """

    def __init__(self, a_width, b_width):
        if a_width < 1 or b_width < 1:
            raise ValueError(f"operand widths must be at least 1, not {a_width} and {b_width}")
        self._a_width, self._b_width = a_width, b_width
        super().__init__({"start": In(1), "a": In(a_width), "b": In(b_width),
                          "busy": Out(1), "product": Out(a_width + b_width)})

    def elaborate(self, platform):
        m = Module()
        shifted_a = Signal(self._a_width + self._b_width)   # a << (bits of b consumed)
        rest_b = Signal(self._b_width)                      # bits of b not consumed yet
        m.d.comb += self.busy.eq(rest_b != 0)
        with m.If(self.start):
            m.d.sync += [self.product.eq(0), shifted_a.eq(self.a), rest_b.eq(self.b)]
        with m.Elif(self.busy):
            with m.If(rest_b[0]):
                m.d.sync += self.product.eq(self.product + shifted_a)
            m.d.sync += [shifted_a.eq(shifted_a << 1), rest_b.eq(rest_b >> 1)]
        return m


def constant_product(value, k):
    """``value * k`` for a constant ``k >= 0`` as a sum of shifts: no ``$mul`` cell (Yosys maps
    a product by a constant that is not a power of two to a DSP too)."""
    if k < 0:
        raise ValueError(f"k must be >= 0, not {k}")
    terms = [value << i for i in range(k.bit_length()) if (k >> i) & 1]
    if not terms:
        return Const(0, 1)
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    return total
