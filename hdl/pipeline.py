"""The one pipeline-register idiom of the requantization datapath, shared by its components.

Every stage of `MultiplyByQuantizedMultiplier`, `ZeroPointClamp` and the Requantizer's side
data is a reset-less register that loads when the pipeline's enable is high: reset-less because
payload registers need no reset (only valid bits do, and those are built by their owners), and
one enable for all so a whole pipeline stalls on one signal.
"""

from amaranth import Cat, Signal, Value

__all__ = ["stage", "delay", "skid_output"]


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


def skid_output(m, o, value, valid, skid_valid, copies=(), groups=1):
    """Drive stream ``o`` from a pipeline whose registers all advance on ``~skid_valid``.

    ``value``/``valid`` are what leaves the pipeline this cycle. ``o`` is an output register
    plus a skid register: while the output register is held, the leaving value is parked in
    the skid register (``skid_valid``, a flip-flop the caller declares), which stops the
    pipeline on the next cycle. So ``o.ready`` reaches only these two registers' muxes, never
    the pipeline's enable; a stall freezes bubbles in place. ``copies``: further flip-flops
    that always hold ``skid_valid``'s value, so a wide pipeline can split its enable's fan-out
    (name them ``*_dup*`` so synthesis keeps them apart). ``groups``: the output and skid
    registers are cut into this many slices of ``value``'s bits, each loaded by its own copies
    of the two valid flags (``out_group_dup*``, ``skid_group_dup*``), so ``o.ready`` drives
    ``groups`` small enable nets instead of one across every payload bit.
    """
    bits = Value.cast(value)
    width = len(bits)
    size = -(-width // groups)
    out_valid = Signal()
    # per-slice copies of the two flags; a single slice is loaded by the flags themselves
    group_out = [Signal(name=f"out_group_dup{g}") for g in range(groups)] if groups > 1 else []
    group_skid = [Signal(name=f"skid_group_dup{g}") for g in range(groups)] if groups > 1 else []
    out_copies, skid_copies = group_out or [out_valid], group_skid or [skid_valid]
    outs = []
    for g in range(groups):
        part = bits[g * size:min(width, (g + 1) * size)]
        out = Signal(len(part), name=f"out{g}" if groups > 1 else "out", reset_less=True)
        skid = Signal(len(part), name=f"skid{g}" if groups > 1 else "skid", reset_less=True)
        with m.If(~out_copies[g] | o.ready):
            with m.If(skid_copies[g]):
                m.d.sync += out.eq(skid)
            with m.Else():
                m.d.sync += out.eq(part)
        with m.Elif(~skid_copies[g]):
            m.d.sync += skid.eq(part)
        outs.append(out)
    m.d.comb += [o.valid.eq(out_valid), o.payload.eq(Cat(*outs))]
    valids = [out_valid, *group_out]
    flags = [skid_valid, *copies, *group_skid]
    with m.If(~out_valid | o.ready):
        with m.If(skid_valid):
            m.d.sync += [*(v.eq(1) for v in valids), *(f.eq(0) for f in flags)]
        with m.Else():   # the pipeline moves on
            m.d.sync += [v.eq(valid) for v in valids]
    with m.Elif(~skid_valid):   # output held, pipeline moving: park what leaves it
        m.d.sync += [f.eq(valid) for f in flags]
    return out_valid
