"""The one pipeline-register idiom of the requantization datapath, shared by its components.

Every stage of `MultiplyByQuantizedMultiplier`, `ZeroPointClamp` and the Requantizer's side
data is a reset-less register that loads when the pipeline's enable is high: reset-less because
payload registers need no reset (only valid bits do, and those are built by their owners), and
one enable for all so a whole pipeline stalls on one signal.
"""

from amaranth import Signal

__all__ = ["stage", "delay"]


def stage(m, en, name, shape, value, *, reset_less=True):
    """A register of ``shape`` named ``name``, loaded with ``value`` on clock edges with ``en`` high."""
    reg = Signal(shape, name=name, reset_less=reset_less)
    with m.If(en):
        m.d.sync += reg.eq(value)
    return reg


def delay(m, en, name, shape, value, cycles, *, reset_less=True):
    """``value`` after ``cycles`` enabled clock edges (registers ``<name>_d1`` ... ``_d<cycles>``)."""
    for k in range(cycles):
        value = stage(m, en, f"{name}_d{k + 1}", shape, value, reset_less=reset_less)
    return value
