"""The command both DMA engines take, and the window check that guards every access.

A command moves ``beats`` whole bus words starting at byte address ``addr``; ``base``/``end``
are the window (``[base, end)``) that the job's descriptor grants for this buffer. The engines
check the whole command before they issue its first burst, so a bad descriptor yields an error
and not a single bus transaction (in particular, nothing is written).
"""

from amaranth import Module, Signal, unsigned
from amaranth.lib import data
from amaranth.utils import exact_log2

__all__ = ["command_layout", "MAX_BEATS_BITS", "ERR_NONE", "ERR_WINDOW", "ERR_BUS", "WindowCheck"]

#: Width of the beat count: 2**24 beats of 8 bytes is 128 MiB, beyond any MobileNet tensor.
MAX_BEATS_BITS = 24

#: Error codes (sticky in the engines, reported by the top's status register).
ERR_NONE, ERR_WINDOW, ERR_BUS = 0, 1, 2


def command_layout(addr_width):
    return data.StructLayout({
        "addr": unsigned(addr_width),
        "beats": unsigned(MAX_BEATS_BITS),
        "base": unsigned(addr_width),
        "end": unsigned(addr_width + 1),
    })


class WindowCheck:
    """Registers a command and, one cycle later, says whether it lies inside its window.

    Not a Component: a few signals the engines embed. ``load`` (comb, by the owner) captures
    ``cmd``; in the next cycle ``ok`` and ``bad`` (exactly one high for one cycle) judge it
    and ``reg`` holds it. A command is bad when ``beats`` is 0, ``addr`` is not aligned to the
    bus width, ``addr < base`` or ``addr + beats * bus_bytes > end``.
    """

    def __init__(self, m: Module, cmd, load, *, addr_width, bus_bytes):
        self.reg = Signal.like(cmd)
        judged = Signal()
        m.d.sync += judged.eq(load)
        with m.If(load):
            m.d.sync += self.reg.eq(cmd)
        lg = exact_log2(bus_bytes)
        r = self.reg
        span_end = Signal(addr_width + MAX_BEATS_BITS + 1)
        inside = Signal()
        m.d.comb += [
            span_end.eq(r.addr + (r.beats << lg)),
            inside.eq((r.beats != 0) & (r.addr[:lg] == 0) & (r.addr >= r.base) & (span_end <= r.end)),
        ]
        self.ok = Signal()
        self.bad = Signal()
        m.d.comb += [self.ok.eq(judged & inside), self.bad.eq(judged & ~inside)]
