"""The command both DMA engines take, and the window check that guards every access.

A command moves ``beats`` whole bus words starting at byte address ``addr``; ``base``/``end``
are the window (``[base, end)``) that the job's descriptor grants for this buffer. The engines
check the whole command before they issue its first burst, so a bad descriptor yields an error
and not a single bus transaction (in particular, nothing is written).
"""

from amaranth import Module, Signal, unsigned
from amaranth.lib import data
from amaranth.utils import exact_log2

from .axi import BOUNDARY_BYTES

__all__ = ["command_layout", "MAX_BEATS_BITS", "ERR_NONE", "ERR_WINDOW", "ERR_BUS", "WindowCheck",
           "CommandIntake", "check_engine_params"]

#: Width of the beat count: 2**24 beats of 8 bytes is 128 MiB, beyond any MobileNet tensor.
MAX_BEATS_BITS = 24

#: Error codes (sticky in the engines, reported by the top's status register).
ERR_NONE, ERR_WINDOW, ERR_BUS = 0, 1, 2


def check_engine_params(bus_bytes, max_burst):
    """Raise ValueError unless the bus width is a power of two and bursts fit in 4 KiB."""
    if not isinstance(bus_bytes, int) or bus_bytes < 4 or bus_bytes & (bus_bytes - 1):
        raise ValueError(f"bus_bytes must be a power of two >= 4, not {bus_bytes!r}")
    if max_burst not in (2, 4, 8, 16, 32, 64, 128, 256):
        raise ValueError(f"max_burst must be a power of two in 2..256, not {max_burst!r}")
    if max_burst * bus_bytes > BOUNDARY_BYTES:
        raise ValueError(f"a {max_burst}-beat burst of {bus_bytes} bytes exceeds {BOUNDARY_BYTES} bytes")


def command_layout(addr_width):
    return data.StructLayout({
        "addr": unsigned(addr_width),
        "beats": unsigned(MAX_BEATS_BITS),
        "base": unsigned(addr_width),
        "end": unsigned(addr_width + 1),
    })


class WindowCheck:
    """Registers a command and, two cycles later, says whether it lies inside its window.

    Not a Component: a few signals the engines embed. ``load`` (comb, by the owner) captures
    ``cmd``; two cycles later ``ok`` and ``bad`` (exactly one high for one cycle) judge it
    and ``reg`` holds it. A command is bad when ``beats`` is 0, ``addr`` is not aligned to the
    bus width, ``addr < base`` or ``addr + beats * bus_bytes > end``. (Two stages: the end of the span is a 57-bit sum, and its comparison another carry
    chain; in one cycle they made one of the DMA's deepest paths.)
    """

    def __init__(self, m: Module, cmd, load, *, addr_width, bus_bytes):
        self.reg = Signal.like(cmd)
        loaded, judged = Signal(), Signal()
        m.d.sync += [loaded.eq(load), judged.eq(loaded)]
        with m.If(load):
            m.d.sync += self.reg.eq(cmd)
        lg = exact_log2(bus_bytes)
        r = self.reg
        span_end = Signal(addr_width + MAX_BEATS_BITS + 1)
        start_ok = Signal()
        m.d.sync += [span_end.eq(r.addr + (r.beats << lg)),
                     start_ok.eq((r.beats != 0) & (r.addr[:lg] == 0) & (r.addr >= r.base))]
        inside = start_ok & (span_end <= r.end)
        self.ok = Signal()
        self.bad = Signal()
        m.d.comb += [self.ok.eq(judged & inside), self.bad.eq(judged & ~inside)]


class CommandIntake:
    """The part both engines share: take a command, check it, then cut it into bursts.

    Embedded (not a Component). Drives ``cmd.ready``; exposes ``active`` (a checked command has
    bursts left and the next one is computed: low for a cycle after each ``take``), ``busy``
    (a command in hand or under check), ``addr`` and ``burst`` (the
    next burst's address and length: at most ``max_burst`` beats, never across a 4 KiB
    boundary) and the sticky ``error``. The owner pulses ``take`` (comb) when it issues the
    burst; ``last`` says that burst ends the command. ``abort`` (a signal of the owner) drops the
    command in hand and refuses new ones.
    """

    def __init__(self, m: Module, cmd, *, addr_width, bus_bytes, max_burst, abort):
        lg = exact_log2(bus_bytes)
        self.active, self.busy = Signal(), Signal()
        active = Signal()        # a checked command has bursts left
        fresh = Signal()         # ``burst`` and ``last`` are those of the current addr/left
        checking, load = Signal(), Signal()
        m.d.comb += [cmd.ready.eq(~active & ~checking & ~abort), load.eq(cmd.valid & cmd.ready),
                     self.busy.eq(active | checking), self.active.eq(active & fresh)]
        check = WindowCheck(m, cmd.payload, load, addr_width=addr_width, bus_bytes=bus_bytes)
        # a command under check (a flip-flop: set by load, cleared when judged)
        with m.If(load):
            m.d.sync += checking.eq(1)
        with m.Elif(check.ok | check.bad):
            m.d.sync += checking.eq(0)

        self.addr = Signal(addr_width)
        left = Signal(MAX_BEATS_BITS)
        self.error = Signal(2)
        ok, bad = check.ok & checking, check.bad & checking    # (not after an abort)
        with m.If(ok):
            m.d.sync += [active.eq(1), self.addr.eq(check.reg.addr), left.eq(check.reg.beats)]
        with m.If(bad & (self.error == ERR_NONE)):
            m.d.sync += self.error.eq(ERR_WINDOW)

        # The next burst is computed from registers into registers (``fresh`` a cycle after
        # addr/left change), so the owner's issue logic starts at flip-flops; a burst is
        # issued at most every other cycle anyway (its AR/AW handshake).
        to_boundary = Signal(range(BOUNDARY_BYTES // bus_bytes + 1))
        burst_next = Signal(range(max_burst + 1))
        fits = Signal()          # the rest of the command is one burst (burst_next == left)
        m.d.comb += [to_boundary.eq((BOUNDARY_BYTES - self.addr[:exact_log2(BOUNDARY_BYTES)]) >> lg),
                     fits.eq((left <= max_burst) & (left <= to_boundary))]
        with m.If(fits):
            m.d.comb += burst_next.eq(left)
        with m.Elif(to_boundary < max_burst):
            m.d.comb += burst_next.eq(to_boundary)
        with m.Else():
            m.d.comb += burst_next.eq(max_burst)
        self.burst = Signal(range(max_burst + 1))
        self.last = Signal()
        m.d.sync += [self.burst.eq(burst_next), self.last.eq(fits), fresh.eq(1)]

        self.take = Signal()
        with m.If(self.take):
            m.d.sync += [self.addr.eq(self.addr + (self.burst << lg)), left.eq(left - self.burst),
                         fresh.eq(0)]
            with m.If(self.last):
                m.d.sync += active.eq(0)
        with m.If(ok):
            m.d.sync += fresh.eq(0)
        with m.If(abort):
            m.d.sync += [active.eq(0), checking.eq(0)]
