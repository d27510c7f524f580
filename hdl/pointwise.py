"""The PE array: dense int8 matrix-vector products for 1x1 convs, FULLY_CONNECTED and im2col convs.

A 1x1 conv (or an FC, or a 3x3 conv whose window arrives as one long vector) is, per pixel, a
product of the pixel's K-channel input vector with an O x K weight matrix. The array multiplies
one input *word* (R = ``lanes`` channels) by an R x C weight block (C = ``pe_cols`` output
channels) every cycle, so it sustains R*C MACs per cycle while it is fed one weight word per cycle.

Dataflow (weight-stationary at the buffer level):

- the weights of a layer (or of one output-channel tile of it, when the compiler tiles) are loaded
  once into an on-chip weight buffer and stay there while every pixel streams past;
- each pixel's ``k_words`` input words are captured in a double-buffered pixel buffer (the next
  pixel loads while the current one computes), already offset by the input zero point;
- for output tile t = 0..out_tiles-1 and k = 0..k_words-1 the array reads weight word
  ``t*k_words + k`` and pixel word k, and accumulates C int32 sums; after k_words cycles the C
  sums go to requantization, ``requant_lanes`` channels per cycle;
- optionally (MobileNetV2 inverted residuals) each requantized channel is added to the block's
  input with TFLite ADD arithmetic (`ResidualAdd`), ``residual_lanes`` channels per cycle.

Pipeline of one k-step: weight and pixel read addresses registered → `BlockRAM` reads (latency
2, the DP16KD output register with ``dsp="ecp5"``; the weight buffer registers its inputs once
more, per group of blocks) → for the pixels, a fabric register per pixel-buffer copy → the PE's
operand registers → product register (`RegisteredMultiplier`: with ``dsp="ecp5"`` both are the
DSP's own; LUT multipliers take longer, and a column with a faster multiplier adds as many
fabric registers, half before the multiplier and half after it) → ceil(log2 R) adder-tree
levels, each registered → accumulator, whose k = 0 step loads the channel's bias (registered
once more by each column) instead of the old sum (so the requantizer needs no bias adder) →
result FIFO (its head a register) → two drain registers, meeting the multiplier/shift slice
read from the table RAM (latency 2) → `Requantizer` → its beats gathered into C-channel words → requantized FIFO → (operand shift
registers → `ResidualAdd` → words gathered → ADD FIFO) → output register. Only the drain
and the output side see backpressure: the MAC pipeline never stalls, because a tile's last
k-step issues only against a credit for a free result-FIFO entry, and neither do the
requantizer and the ADD, because the drain starts a word only against a credit for a free
requantized-FIFO entry and the ADD takes one only against a credit for a free ADD-FIFO
entry. Every FIFO is a distributed RAM read at its head, straight into a register.

Every size comes from `Config`; the weight-word layout is defined once by `pack_weights` (shared
with the compiler and the tests).
"""

from types import SimpleNamespace

import numpy as np
from amaranth import Cat, Const, Module, Mux, Shape, Signal, Value, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from . import pipeline
from .block_ram import BlockRAM
from .config import Config
from .multiplier import DSP_KINDS, RegisteredMultiplier
from .requant import Requantizer
from .residual_add import PARAMS_LAYOUT, ResidualAdd

__all__ = ["PointwiseArray", "pointwise_layouts", "pack_weights", "pack_tables", "geometry"]

#: Result-FIFO entries (credits) of a two-context array.
CONTEXT_FIFO_DEPTH = 16

#: Identical copies of the pixel buffer, each feeding pe_cols / PIXEL_COPIES columns.
PIXEL_COPIES = 4


def geometry(config):
    """Derived sizes: ``max_k_words``, ``max_tiles``, ``slices`` (requant cycles per tile)."""
    if not isinstance(config, Config):
        raise TypeError(f"config must be a Config, not {config!r}")
    return SimpleNamespace(
        max_k_words=-(-config.max_k // config.lanes),
        max_tiles=-(-config.max_out_channels // config.pe_cols),
        slices=config.pe_cols // config.requant_lanes,
    )


def pointwise_layouts(config, contexts=1):
    """Payload layouts of the `PointwiseArray` ports for ``config`` (for testbenches and drivers).

    Returns a namespace with ``cfg``, ``i``, ``o``, ``wload``, ``tload``, ``res``, ``tag`` (the
    requantizer tag) and ``context`` (one context's parameters, used by ``cfg`` when
    ``contexts == 2``).
    """
    g = geometry(config)
    R, C = config.lanes, config.pe_cols
    s8 = signed(8)
    layer = {
        "k_words": unsigned(ceil_log2(g.max_k_words + 1)),
        "out_tiles": unsigned(ceil_log2(g.max_tiles + 1)),
        "in_zp": s8,
        "out_zp": s8,
        "act_min": s8,
        "act_max": s8,
    }
    context = data.StructLayout({
        **layer,
        "weight_base": unsigned(max(1, ceil_log2(config.weight_words))),
        "table_base": unsigned(max(1, ceil_log2(g.max_tiles))),
    })
    add = data.StructLayout({name: field.shape for name, field in PARAMS_LAYOUT if name != "a_zp"})
    if contexts == 1:
        cfg = data.StructLayout({**layer, "residual": 1, "add": add})
    elif contexts == 2:
        cfg = data.StructLayout({"ctx": data.ArrayLayout(context, 2), "residual": 1, "add": add})
    else:
        raise ValueError(f"contexts must be 1 or 2, not {contexts!r}")
    pixel = {"data": data.ArrayLayout(s8, R), "last": 1}
    tag = {"last": 1}
    if contexts == 2:
        pixel["ctx"] = 1
        tag["ctx"] = 1
    return SimpleNamespace(
        cfg=cfg,
        context=context,
        i=data.StructLayout(pixel),
        o=data.StructLayout({"data": data.ArrayLayout(s8, C), "last": 1}),
        wload=data.StructLayout({
            "addr": unsigned(max(1, ceil_log2(config.weight_words))),
            "data": unsigned(R * C * 8),
        }),
        tload=data.StructLayout({
            "addr": unsigned(max(1, ceil_log2(g.max_tiles))),
            "bias": data.ArrayLayout(signed(32), C),
            "multiplier": data.ArrayLayout(signed(32), C),
            "shift": data.ArrayLayout(signed(6), C),
        }),
        res=data.StructLayout({"data": data.ArrayLayout(s8, C)}),
        tag=data.StructLayout(tag),
    )


def pack_weights(w_oi, config):
    """Pack an (O, K) int8 weight matrix into weight-buffer words; returns a list of ints.

    Word ``t*k_words + k`` (k_words = ceil(K/R), t = 0..ceil(O/C)-1) holds the R x C block
    ``W[t*C + c][k*R + r]``; element (c, r) sits at bits ``[(c*R + r)*8, +8)`` as two's
    complement, i.e. each output channel's R weights are one contiguous R-byte field, channel
    c = 0 in the least significant bytes. K is padded up to a multiple of R and O to a multiple
    of C with zeros (padded input channels then contribute nothing, padded output channels
    produce don't-care values).
    """
    w = np.asarray(w_oi)
    if w.ndim != 2 or w.dtype != np.int8:
        raise ValueError(f"weights must be a 2-D int8 (O, K) array, not {w.dtype} {w.shape}")
    R, C = config.lanes, config.pe_cols
    o, k = w.shape
    kw, tiles = -(-k // R), -(-o // C)
    padded = np.zeros((tiles * C, kw * R), np.int8)
    padded[:o, :k] = w
    # (tiles, C, kw, R) -> (tiles, kw, C, R): one R*C block per (t, k), channel-major inside.
    blocks = padded.reshape(tiles, C, kw, R).transpose(0, 2, 1, 3).reshape(tiles * kw, C * R)
    raw = blocks.view(np.uint8)
    return [int.from_bytes(row.tobytes(), "little") for row in raw]


def pack_tables(bias, multiplier, shift, config):
    """Per-tile table rows for the ``tload`` port: a list of dicts (addr, bias, multiplier, shift).

    Channels past O in the last tile get bias 0, multiplier 0, shift 0.
    """
    C = config.pe_cols
    bias, multiplier, shift = (np.asarray(v, np.int64).reshape(-1) for v in (bias, multiplier, shift))
    o = len(multiplier)
    if len(bias) != o or len(shift) != o:
        raise ValueError(f"bias/multiplier/shift lengths differ: {len(bias)}, {o}, {len(shift)}")
    tiles = -(-o // C)
    rows = []
    for t in range(tiles):
        sl = slice(t * C, min(o, (t + 1) * C))
        pad = C - (sl.stop - sl.start)
        rows.append({
            "addr": t,
            "bias": [int(v) for v in bias[sl]] + [0] * pad,
            "multiplier": [int(v) for v in multiplier[sl]] + [0] * pad,
            "shift": [int(v) for v in shift[sl]] + [0] * pad,
        })
    return rows


def _count_thermometer(m, code, *, up, down):
    """Count ``code`` (bit n set while the count exceeds n) up and down by 1-bit signals."""
    with m.If(up & ~down):
        m.d.sync += code.eq(Cat(1, code[:-1]))
    with m.Elif(down & ~up):
        m.d.sync += code.eq(Cat(code[1:], 0))


def _kept(value):
    """``value`` as an expression, for a ``*_dup*`` register that only drives a submodule's port.

    Connected as it is, such a register is named after the port in the RTLIL, so the ``keep``
    that scripts/synth.py sets on ``*_dup*`` registers misses it and Yosys merges the copies
    back into one flip-flop (measured: one pixel register driving the DSPs of 4 columns, one
    read pointer for the 135 RAM slices of the result FIFO). Yosys removes the ``^ 0``.
    """
    return Value.cast(value) ^ 0


def _fifo_memory(m, name, bits, depth, *, push, w_data, pop, suffix=""):
    """One FIFO memory in distributed RAM with its pointers; returns its head (read asynchronously).

    The pointers are named ``*<suffix>``: with a ``_dup*`` suffix they are kept apart in
    synthesis from the other memories' copies.
    """
    mem = m.submodules[name] = Memory(shape=bits, depth=depth, init=[])
    wr, rd = mem.write_port(), mem.read_port(domain="comb")
    wptr = Signal(range(depth), name=f"{name}_wptr{suffix}")
    rptr = Signal(range(depth), name=f"{name}_rptr{suffix}")
    m.d.comb += [wr.en.eq(_kept(push)), wr.addr.eq(_kept(wptr)), wr.data.eq(w_data),
                 rd.addr.eq(_kept(rptr))]
    with m.If(push):
        m.d.sync += wptr.eq(Mux(wptr == depth - 1, 0, wptr + 1))
    with m.If(pop):
        m.d.sync += rptr.eq(Mux(rptr == depth - 1, 0, rptr + 1))
    return rd.data


def _head_fifo(m, name, shape, depth, *, push, w_data, pop):
    """A ``depth``-entry FIFO in distributed RAM, read asynchronously at its head.

    Returns ``(head, nonempty)``: the head entry (a view of ``shape``) and a flip-flop that is
    high while an entry is held (the fill level is a thermometer code). It never checks for
    overflow: whoever writes it holds a credit per entry (`_return_credits`).
    """
    head = _fifo_memory(m, name, Shape.cast(shape).width, depth, push=push, w_data=w_data, pop=pop)
    fill = Signal(depth, name=f"{name}_fill")
    _count_thermometer(m, fill, up=push, down=pop)
    return data.View(shape, head), fill[0]


def _drained_fifo(m, name, shape, depth, *, pushes, w_data, parts, slices, room):
    """A ``depth``-entry FIFO whose head entry is a register, taken by a drain in ``slices`` cycles.

    The entry is split into ``parts`` (bit widths, low bits first), each a memory with its own
    pointers and head register, and with its own copy of the drain's state (fill level, head
    valid, slice counter: ``*_dup<n>``, kept apart in synthesis), so each part decides its read
    pointer's enable and its head register's load from flip-flops beside it. (One drain
    decision driving the read pointers of every part, spread over the device with their
    memories, measured 7.9 ns, 6.9 of it routing; the head read through the slice select
    straight into the drain's register 7.5 ns.) One more copy of the state is the drain's own.
    ``pushes`` holds one push per part and one for the drain's copy, all the same value.

    The drain takes a slice while the head is valid and either past its first slice or
    ``room`` (a flip-flop: whatever follows has room for a whole entry) is high; the cycle it
    takes the last slice the next entry moves into the head register, so it drains at full
    rate. Returns a namespace: ``head`` (a view of ``shape`` on the head registers), ``adv``
    (a slice is taken), ``j`` (its index), ``j_addr`` (a copy of ``j``, for a RAM address),
    ``j_last`` (a flip-flop: ``j == slices - 1``) and ``take`` (the entry leaves: ``adv`` and
    ``j_last``).
    """
    assert sum(parts) == Shape.cast(shape).width and len(pushes) == len(parts) + 1

    def drain_state(suffix, push):
        fill = Signal(depth, name=f"{name}_fill{suffix}")
        valid = Signal(name=f"{name}_head_valid{suffix}")
        j = Signal(range(max(2, slices)), name=f"{name}_j{suffix}")   # never 0 bits wide
        j_addr = Signal.like(j, name=f"{name}_j_addr_dup") if suffix == "" else j
        j_last = Signal(init=slices == 1, name=f"{name}_j_last{suffix}")
        adv, take, load = Signal(), Signal(), Signal()
        m.d.comb += [
            adv.eq(valid & ((j != 0) | room)),
            # j_last implies j != 0 unless there is a single slice
            take.eq(valid & (j_last if slices > 1 else room)),
            load.eq(fill[0] & (~valid | take)),
        ]
        _count_thermometer(m, fill, up=push, down=load)
        m.d.sync += valid.eq(load | (valid & ~take))
        if slices > 1:
            with m.If(adv):
                m.d.sync += [j.eq(Mux(j_last, 0, j + 1)), j_last.eq(j == slices - 2)]
                if j_addr is not j:
                    m.d.sync += j_addr.eq(Mux(j_last, 0, j + 1))
        return SimpleNamespace(adv=adv, take=take, load=load, j=j, j_addr=j_addr, j_last=j_last)

    regs, lo = [], 0
    for n, bits in enumerate(parts):
        state = drain_state(f"_dup{n}", pushes[n])
        ram_head = _fifo_memory(m, f"{name}{n}", bits, depth, push=pushes[n],
                                w_data=w_data[lo:lo + bits], pop=state.load, suffix=f"_dup{n}")
        reg = Signal(bits, name=f"{name}_head{n}", reset_less=True)
        with m.If(state.load):
            m.d.sync += reg.eq(ram_head)
        regs.append(reg)
        lo += bits
    drain = drain_state("", pushes[-1])
    return SimpleNamespace(head=data.View(shape, Cat(*regs)), adv=drain.adv, j=drain.j,
                           j_addr=drain.j_addr, j_last=drain.j_last, take=drain.take)


def _return_credits(m, credits, *, spend, pop):
    """Count a FIFO's ``credits`` (thermometer code, one per free entry): down when one is
    spent, up a cycle after an entry is popped (a registered pop: the two sides sit apart)."""
    pop_q = Signal(name=f"{credits.name}_pop_q")
    m.d.sync += pop_q.eq(pop)
    _count_thermometer(m, credits, up=pop_q, down=spend)


def _gather(m, name, beat, valid, beats):
    """Assemble words of ``beats`` consecutive valid beats, the first in the low bits.

    Returns ``(word, complete)``: ``complete`` is high with a word's last beat, and ``word``
    is then that word (the earlier beats from a shift register, the last one straight from
    ``beat``), so a FIFO can take it whole in that cycle. No backpressure.
    """
    count = Signal(range(max(2, beats)), name=f"{name}_count")
    complete = Signal(name=f"{name}_complete")
    m.d.comb += complete.eq(valid & (count == beats - 1))
    with m.If(valid):
        m.d.sync += count.eq(Mux(count == beats - 1, 0, count + 1))
    if beats == 1:
        return beat, complete
    held = Signal((beats - 1) * len(beat), name=f"{name}_held", reset_less=True)
    with m.If(valid):
        m.d.sync += held.eq(Cat(held[len(beat):], beat))
    return Cat(held, beat), complete


class PointwiseArray(wiring.Component):
    """R x C int8 PE array with weight buffer, double-buffered pixel buffer and requantization.

    Parameters
    ----------
    config : Config
        R = ``config.lanes``, C = ``config.pe_cols``; ``requant_lanes`` requantizers; weight
        buffer of ``weight_words`` words; per-channel tables for ``max_out_channels`` channels;
        input vectors up to ``max_k`` channels.
    dsp : str
        How multipliers are built (see `RegisteredMultiplier`): ``"infer"`` (portable, plain
        simulation) or ``"ecp5"`` (MULT18X18D instances with their own registers, for timing).
    contexts : int
        1 (default): one layer per run, the ports below. 2: two layers share the array, time-
        multiplexed per pixel (the `LayerEngine`'s PW_DW_PW expand and project): ``cfg`` is then
        ``{"ctx": [context 0, context 1], "residual", "add"}``, each context a layer's
        ``k_words``, ``out_tiles``, zero points, clamp, ``weight_base`` and ``table_base``
        (where its weights and tables were loaded); ``i`` words carry ``ctx`` (the same on
        every word of a pixel); context 0's results leave on ``o`` (through the ADD if
        ``residual``) and context 1's on an extra port ``ox`` of the same layout, so neither
        waits behind the other's pipeline. Results of one context keep their order.

    Attributes
    ----------
    cfg : In(pointwise_layouts(config).cfg)
        Run parameters, sampled in the cycle ``start`` is taken (they need not stay stable).
        ``k_words`` = ceil(K/R) >= 1 and ``out_tiles`` = ceil(O/C) >= 1 with
        ``out_tiles * k_words <= weight_words``; zero points and the activation clamp are
        TFLite's (per-tensor); per-channel parameters come from the tables. With ``residual``
        set, every requantized output ``a`` (zero point ``out_zp``) is added to the matching
        ``res`` value with TFLite ADD arithmetic; ``add`` holds that ADD's parameters (see
        `ResidualAdd`; its ``a_zp`` is ``out_zp``) and the output clamp becomes ``add``'s.
    start : In(1)
        Begins a run when ``busy`` is low.
    busy : Out(1)
        High from ``start`` until the output word flagged ``last`` has been transferred.
        While busy, the table port is not ready; while idle, ``i`` is not ready. ``wload`` is
        always ready: the next job's weights may be written while a run reads the current ones,
        at addresses the run does not use (the JobSequencer checks that before it loads).
    wload : In(stream.Signature(layouts.wload))
        Writes one weight word (see `pack_weights`) at ``addr``; always ready.
    tload : In(stream.Signature(layouts.tload))
        Writes the per-channel bias (int32), multiplier (int32) and shift (signed, TFLite's
        convention: > 0 is a left shift) of tile ``addr``; ready when idle, one row per
        C/requant_lanes cycles (the multiplier/shift RAM is requant_lanes channels wide).
    i : In(stream.Signature(layouts.i))
        Input words, ``k_words`` per pixel, pixel after pixel; ``last`` on the final word of the
        final pixel (sampled only on a pixel's final word) ends the run.
    res : In(stream.Signature(layouts.res))
        Residual words for a ``residual`` run, aligned with ``o``: one per (pixel, tile), channel
        t*C + c in ``data[c]`` (don't-care past O). Not ready in runs without ``residual``.
    o : Out(stream.Signature(layouts.o))
        One word per (pixel, tile), tiles in order: channel t*C + c in ``data[c]``; channels past
        O in the last tile are don't-care. ``last`` marks the final tile of the final pixel.

    Timing: after a fixed fill, one k-step per cycle, so a run of P pixels takes about
    ``P * out_tiles * max(k_words, C/requant_lanes)`` cycles: requantization drains
    ``requant_lanes`` channels per cycle, and when ``k_words < C/requant_lanes`` the array waits
    for it (credit-based: a tile's last k-step issues only when its result has a place in the
    result FIFO). A ``residual`` run drains ``residual_lanes`` channels per cycle instead:
    ``max(k_words, C/residual_lanes)`` cycles per tile. Backpressure on ``o`` (or a late
    ``res``) stalls the array through the same credits; nothing inside the MAC pipeline ever
    stalls. The fill is the first pixel's ``k_words`` input cycles plus the pipeline: 33 cycles
    to the first output on the tiny preset (one more per extra adder-tree level, one more with
    ``dsp="ecp5"`` (the operands' fabric register), and when the Config builds columns from
    LUTs, the LUT multipliers' extra latency), about
    `ResidualAdd`'s latency more with the ADD (see
    tests/test_pointwise.py::test_cycles_without_stalls).

    Resources: R*C multipliers int9 x int8 (one DSP each, except the last
    ``config.pe_lut_columns`` columns, built from LUTs), C adder trees registered at every
    level, C int32 accumulators, the result FIFO (`fifo_depth` entries of C int32), and
    ``requant_lanes`` requantizers (4 DSPs each) plus, for the ADD, ``residual_lanes`` x (two
    rescales and one requantizer: 12 DSPs as Yosys maps them today). Block RAM: weights
    (``weight_words`` x R*C*8 bits), pixels (`PIXEL_COPIES` x 2 x 2^ceil(log2(max_k/R)) x R*9
    bits: inputs stored minus the zero point), bias and multiplier/shift tables
    (max_out_channels/C rows).

    Measured (ecp5 preset, ``dsp="ecp5"``, ``python scripts/synth.py --config ecp5 --target ecp5
    --design pointwise --router router2 --json build/synth/pointwise-ecp5-ecp5-<label>.json``,
    LFE5U-85F, synthesis harness; Fmax, TRELLIS_COMB, flip-flops, MULT18X18D, DP16KD; with
    ``--nextpnr-arg=--detailed-timing-report`` the report.json next to nextpnr.log lists every
    endpoint's arrival time, which is how the classes of late endpoints below were counted):

    - ``bytes`` (commit 8bf6f7c, reverted in the next commit): 126.1 MHz with seed 1, 96.4 MHz
      with seed 2 (JSON ``bytes``, ``bytes-seed2``); 23.3k, 26.7k, 124, 148. Tried on top of
      ``skidout``: the gather shift registers without enable, the result FIFO in 8 parts, the
      requantizers' 3-bit shift amounts in one copy per output byte. Seed 1: 79 endpoints later
      than 6.67 ns (113 before), critical path the input handshake (busy, in_done, i.valid)
      into the input word count's flags (7.9 ns, 6.5 of it routing), then the output skid
      registers from the FIFO heads (7.9 ns). Seed 2 placed a LUT column's operand registers
      away from its adders (7.8 ns net, 10.4 ns path) and the LUT columns' adder trees late
      (9.7 ns, 187 endpoints): 741 endpoints later than 6.67 ns. Worse at seed 2 by far, so
      the design went back to ``skidout``'s.
    - ``skidout`` (commit ca1821f; JSON ``skidout``, ``skidout-seed2``): 125.9 MHz with seed 1
      (router2 done in 23 iterations), 137.6 MHz with seed 2; 22.5k, 26.5k, 124, 148. Outputs
      through `pipeline.skid_output` in 4 slices, parameters on 3 copies of busy, credits
      counted off a cycle after the spend, the input word count's last test and the ADD
      operand flags from flip-flops (per register slice). Seed 1: 113 endpoints later than
      6.67 ns; critical path the requantizer's output valid into the enable of the gather
      register (7.9 ns, 7.4 of it routing), then the LUT columns' adder trees (7.7 ns), the
      input side's half flag (7.6 ns), the weight buffer's address copies into their DP16KD
      (7.5 ns), the output skid registers from the FIFO heads (7.4 ns), the drain register
      (7.2 ns), the result FIFO heads' loads (7.0-7.1 ns, 40). Seed 2: 44 endpoints; critical
      path a requantizer's stage 2, its 3-bit shift register routed 4.6 ns to muxes spread
      around it (7.3 ns), then the weight write address (7.2 ns, harness), the result FIFO
      heads' loads (7.2 ns), the output skid registers (7.1 ns).
    - ``headreg`` (commit f20933f; ``--seed N`` and ``--nextpnr-arg=--detailed-timing-report``,
      JSON ``headreg`` for seed 1, ``headreg-seed2``): 108.3 MHz with seed 1 (router2 done in 38
      iterations, 62 before), 117.9 MHz with seed 2; 22.3k, 26.3k, 124, 148. The result FIFO's
      head in registers, each part with its own copy of the drain state; the requantizers'
      partial products registered once more in the fabric. Seed 1's requantizer classes are
      gone (stage 1 7.8 ns, was 12.8; middle sums 11.8 ns before); 441 endpoints later than
      6.67 ns: o.ready into the output register's enable and the requantized FIFO's pop (9.2
      ns, 8.5 of it routing; 60 + 28 endpoints), the weight buffer's address copies into
      their DP16KD (8.9 ns, 30), the parameters' enables from busy (8.1 ns), the ADD operand
      registers' enable (7.9 ns, 58), the issue into the credits (7.7 ns). Seed 2: 68 endpoints
      later than 6.67 ns; critical path the issue decision into the credits' update (5 LUT
      levels, 8.5 ns, 22 endpoints), then the scale RAM's address (7.7 ns), the pixel buffer's
      half flags from the input word count (7.4 ns), the requantizers' stage 2 (7.1 ns).
    - ``staged`` (commit 49eab7a): 78.1 MHz with seed 1 (``staged``: routing congestion, 62
      router iterations, one requantizer net 8.6 ns), 126.4 MHz with ``--seed 2``
      (``staged-seed2``); 22.3k, 24.4k, 124, 148. The ADD's operands through staging
      registers; the scale RAM's write registers kept apart. Seed 2's critical path: the
      result FIFO's level through the drain's advance into its read pointers' enables (6.9
      ns of routing). 411 endpoints later than 6.0 ns (seed 2), in classes: the drain's
      advance and pop (the result FIFO's read pointers, level and the requantized FIFO's
      level, 7.9 ns), the pixel buffer's half flags (7.3-7.6 ns), the drain's first register
      (7.5 ns), the table writes (7.5 ns), the requantizers' clamp (7.3 ns) and middle sums
      (6.8 ns), the scale RAM's read address from the result FIFO's head (7.1 ns). Seed 1's
      worst classes were the requantizers' from their input register to their DSPs (8.8-12.8
      ns): placement decides whether the 8-lane requantizer's 32 DSPs and its fabric sit
      together.
    - ``kept`` (commit deae8e8): 105.3 MHz, 22.2k, 24.1k, 124, 148. The ``*_dup*`` copies
      kept (`_kept`), the LUT multipliers' operand registers too. Late endpoints halved (965
      later than 6.0 ns), but the critical path is the residual port's handshake (busy, the
      residual register's state) into the enable of the residual register's 128 flip-flops:
      3 LUT levels, 8.1 ns of routing. Next: the LUT multipliers' first adders (7.6 ns, 123),
      the requantizers' middle sums from their DSP products (7.8 ns, 65), the drain's first
      register and the result FIFO's level (7.5 ns).
    - ``words`` (commit 819e715): 117.6 MHz, 22.3k, 22.8k, 124, 148. Results gathered into
      words before their FIFOs, output registers straight from the FIFO heads, the result FIFO
      and weight buffer split per column group, issue compares from flip-flops, the rounding
      addend decoded a stage earlier. Critical path: a LUT multiplier's pixel operand register
      into its first adder, 5.7 ns of routing away: Yosys had merged the operand registers of
      the 4 LUT columns sharing a pixel copy, and, since a register that only drives a
      submodule's port is named after the port, most ``*_dup*`` copies here too (see
      `_kept`). 1,604 endpoints later than 6.0 ns: the LUT multipliers' first adders (8.5 ns,
      692), the issue logic (8.4 ns, 4 LUT levels), the residual operand register (8.3 ns),
      the requantized FIFO's level (8.3 ns), the drain's first register (8.1 ns), the rescales
      of the ADD and the requantizers from their DSP products (7.3-7.9 ns).
    - ``addfifo`` (commit b0c77d2): 99.9 MHz, 24.0k, 22.3k, 124, 146. The ADD never stalls
      (ADD FIFO with credits), its operands from shift registers; scale RAM with its output
      register; bias registered per column. Critical path: the ADD FIFO's level through the
      gather register's enable and data select (8.5 ns of routing). 2,204 endpoints arrive
      later than 6.3 ns, in classes: the gather register (10.0 ns), the requantizer's
      rounding-addend decode (9.5 ns, 4 LUT levels), the drain's first register from the
      result FIFO head (9.4 ns: one read pointer for 135 RAM slices), the ADD's operand
      enables (9.2 ns), the requantized FIFO's write enable (9.1 ns), the LUT multipliers'
      first adders (8.8 ns, 383 endpoints), the issue logic (7.4-8.5 ns: 5 to 6 LUT levels
      from the k/t counters), the weight buffer's address copies (7.8 ns).
    - ``popq``: 101.2 MHz, 24.3k, 22.1k, 124, 146. Credits of both FIFOs returned by
      registered pops. Critical path: the requantized FIFO's head (read pointer, distributed
      RAM, the ADD's lane select) straight into the `ResidualAdd`'s first adder (7.4 ns of
      routing); next step: a register between that head and the ADD.
    - ``rqfifo``: 92.6 MHz, 24.3k, 22.0k, 124, 146. The requantizer never stalls (requantized
      FIFO with credits; its 32 DSPs' clock enables are the constant 1). Critical path: the
      output side's pop of the requantized FIFO to the drain's credits (4.4 ns net).
    - ``split``: 71.0 MHz, 24.0k, 22.1k, 124, 146. The DSP columns' extra registers half
      before, half after the multiplier. Critical path: inside the 8-lane `Requantizer`, its
      pipeline enable (one flip-flop, ~skid_valid) to the clock enables of its 32 DSPs (13.1
      ns of routing; placement-dependent: not critical in ``therm``).
    - ``therm``: 111.1 MHz, 24.0k, 22.6k, 124, 146. Credits and result-FIFO level as
      thermometer codes, per-column copies of the accumulator's valid/first, registered table
      writes. Critical path: a DSP's product into its column's first adder, placed far away
      (6.9 ns of routing; the DSP columns' extra registers were all before the multiplier).
    - ``opregs`` (preset of 8 requantizer lanes and 6 LUT columns): 95.6 MHz, 23.9k, 22.2k, 124,
      146. Operand registers before the DSP columns (their delay to the LUT columns' latency,
      moved from after the product), a fabric register per pixel copy, the weight read
      address registered away from the issue logic, datapath registers reset-less and no
      restart of the counters at start. Critical path: the requantizer's input ready to the
      result FIFO's level (pop, a 4-bit adder, != 0: 7.9 ns of routing).
    - ``lutcols`` (commit 4440439: 4 requantizer lanes, 4 LUT columns): 96.0 MHz, 17.8k, 18.0k,
      124, 142. Critical path: the issue decision (k == k_words - 1) to the enable of the
      weight read address, whose flip-flops sat by the weight buffer (4.6 ns net).

    Earlier (all 16 columns in DSPs): 156 MULT18X18D, 142
    DP16KD, 12.1k TRELLIS_COMB, 11.5k flip-flops; 94.1 MHz. Critical path: a pixel RAM output
    to the DSPs of its 4 columns, spread over the device (9.6 ns of routing). Before: 89.2 MHz
    with amaranth's SyncFIFOBuffered as the result FIFO (the drain's advance loaded its 540-bit
    output register: 9.7 ns of routing); 75.3 MHz with one pixel RAM for all 16 columns (12.2
    ns); 71.9 MHz with one weight address register for all 114 weight blocks (13.1 ns). Tried:
    a register per column after the pixel RAMs (and one after the weights) measured 80.5 MHz,
    the start/reset net of the drain counters then critical (11.2 ns of routing).
    """

    def __init__(self, config, *, dsp="infer", contexts=1):
        if not isinstance(config, Config):
            raise TypeError(f"config must be a Config, not {config!r}")
        if dsp not in DSP_KINDS:
            raise ValueError(f"dsp must be one of {DSP_KINDS}, not {dsp!r}")
        if contexts not in (1, 2):
            raise ValueError(f"contexts must be 1 or 2, not {contexts!r}")
        self._config = config
        self._dsp = dsp
        self._contexts = contexts
        self._geometry = geometry(config)
        self._layouts = pointwise_layouts(config, contexts)
        lay = self._layouts
        # Multiplier kind per column (Config.pe_lut_columns), and the product latency all
        # columns share: DSP columns delay their products to the LUT columns' latency.
        self._column_kinds = [config.pe_column_kind(c, dsp) for c in range(config.pe_cols)]
        # With DSP primitives only, the products still take one cycle more: the operands then
        # pass a fabric register per PE on their way from the block RAMs to the DSP's input
        # registers (straight from a RAM output into the DSPs of the whole top measured 8-10 ns
        # of routing: the RAMs and DSP columns are far apart on the LFE5U-85F).
        self._product_latency = (RegisteredMultiplier.latency_for("lut", signed(8))
                                 if "lut" in self._column_kinds
                                 else RegisteredMultiplier.LATENCY + (dsp == "ecp5"))
        # Pipeline depth: issue -> read address regs -> BRAM read (weights: input, latch and
        # output registers; pixels: latch, output register and a copy register) -> operand regs
        # -> products -> tree.
        self._tree_levels = ceil_log2(config.lanes)
        self._sum_stage = 4 + self._product_latency + self._tree_levels
        g = self._geometry
        # Result FIFO entries: enough credits to cover the issue-to-pop round trip at full rate.
        round_trip = self._sum_stage + 7 + g.slices   # 7: head register, credit counts registered
        self._fifo_depth = max(2, -(-round_trip // g.slices) + 1)
        if contexts == 2:
            # Two layers interleaved per pixel: one's tiles may be drain-bound (k_words <
            # pe_cols/requant_lanes, e.g. a narrow expand) while the other's are issue-bound (a
            # long projection); a deeper FIFO lets the drain of the first overlap the issue of
            # the second (measured with scripts/bench_streaming.py).
            self._fifo_depth = max(self._fifo_depth, CONTEXT_FIFO_DEPTH)
        ports = {
            "cfg": In(lay.cfg),
            "start": In(1),
            "busy": Out(1),
            "wload": In(stream.Signature(lay.wload)),
            "tload": In(stream.Signature(lay.tload)),
            "i": In(stream.Signature(lay.i)),
            "res": In(stream.Signature(lay.res)),
            "o": Out(stream.Signature(lay.o)),
        }
        if contexts == 2:
            ports["ox"] = Out(stream.Signature(lay.o))
        super().__init__(ports)

    @property
    def config(self):
        return self._config

    @property
    def dsp(self):
        return self._dsp

    @property
    def layouts(self):
        return self._layouts

    @property
    def contexts(self):
        return self._contexts

    @property
    def fifo_depth(self):
        """Entries of the accumulator result FIFO (= credits of the issue stage)."""
        return self._fifo_depth

    def elaborate(self, platform):
        m = Module()
        cfgc, g, lay = self._config, self._geometry, self._layouts
        R, C, RL, S = cfgc.lanes, cfgc.pe_cols, cfgc.requant_lanes, g.slices
        kw_bits = ceil_log2(g.max_k_words)

        # ---- run control --------------------------------------------------------------------
        # Run parameters and every datapath register are reset-less: only control state
        # (valid bits, counters, credits) sits on the reset net, which spans the device.
        run = Signal(lay.cfg, reset_less=True)   # cfg latched at start
        NX = self._contexts
        if NX == 1:   # one context: the cfg's own fields, weights and tables from address 0
            ctxs, new_ctxs = [run], [self.cfg]
        else:
            ctxs = [run.ctx[n] for n in range(NX)]
            new_ctxs = [self.cfg.ctx[n] for n in range(NX)]
        # Flags and values the input and issue logic compare their counters with, derived here
        # once: whether k_words (out_tiles) is 1, and k_words - 2 (out_tiles - 2).
        kw_one = [Signal(name=f"kw_one{n}", reset_less=True) for n in range(NX)]
        tiles_one = [Signal(name=f"tiles_one{n}", reset_less=True) for n in range(NX)]
        kw_m2 = [Signal(range(max(2, g.max_k_words)), name=f"kw_m2_{n}", reset_less=True)
                 for n in range(NX)]
        tiles_m2 = [Signal(range(max(2, g.max_tiles)), name=f"tiles_m2_{n}", reset_less=True)
                    for n in range(NX)]
        wbase = [ctx.weight_base if NX > 1 else 0 for ctx in ctxs]
        tbase = [ctx.table_base if NX > 1 else 0 for ctx in ctxs]

        def sel(which, values):
            """values[which] for a 1-bit context number (values[0] with one context)."""
            return values[0] if NX == 1 else Mux(which, values[1], values[0])

        busy = Signal()
        go = self.start & ~busy
        m.d.comb += self.busy.eq(busy)
        # The parameters follow cfg while idle, so they hold what it was in the cycle start
        # is taken: their ~250 enables are then busy itself, not a decision made from start,
        # in three copies (``*_dup*``: the ADD's parameters, the others, the issue's derived
        # values), each driving ~100 enables (one busy for all measured 8.1 ns, 7.1 of it
        # routing).
        busy_copies = [Signal(name=f"busy_dup{n}") for n in range(3)]
        with m.If(go):
            m.d.sync += [b.eq(1) for b in (busy, *busy_copies)]
        with m.If(~busy_copies[0]):
            m.d.sync += run.add.eq(self.cfg.add)
        with m.If(~busy_copies[1]):
            m.d.sync += [run[name].eq(self.cfg[name]) for name, _ in lay.cfg if name != "add"]
        with m.If(~busy_copies[2]):
            for n in range(NX):
                m.d.sync += [kw_one[n].eq(new_ctxs[n].k_words == 1),
                             tiles_one[n].eq(new_ctxs[n].out_tiles == 1),
                             kw_m2[n].eq(new_ctxs[n].k_words - 2),
                             tiles_m2[n].eq(new_ctxs[n].out_tiles - 2)]

        # ---- memories -----------------------------------------------------------------------
        # Weights, pixels and bias: `BlockRAM`s (read latency 2; with dsp="ecp5" the second
        # register is the DP16KD's own output register, which Yosys never maps by itself: an
        # ECP5 block RAM read from its latch has a ~6 ns clock-to-out).
        ram = "ecp5" if self._dsp == "ecp5" else "infer"
        # The pixel buffer is kept in PIXEL_COPIES identical block RAMs, each feeding
        # C / PIXEL_COPIES columns: one RAM output bit driving all C DSPs of a row measured
        # 12.2 ns of routing (75.3 MHz), the DSPs being spread over the whole device.
        copies = min(PIXEL_COPIES, C)
        # The weight buffer is split the same way: part n holds the weights of the columns that
        # pixel copy n feeds, so each part sits by its columns, with its own read address
        # register (one register driving the 15 input-register copies of a single 114-DP16KD
        # buffer measured 7.8 ns of routing). Each part registers its inputs itself, one copy
        # per group of blocks (one address register for all of them measured 13 ns of routing),
        # so its read latency is 3: the read address goes in unregistered (below).
        col_group = [c * copies // C for c in range(C)]
        wmems = [BlockRAM(data.ArrayLayout(data.ArrayLayout(signed(8), R), col_group.count(n)),
                          cfgc.weight_words, primitive=ram, input_regs=True)
                 for n in range(copies)]
        for n, wm in enumerate(wmems):
            m.submodules[f"weights{n}"] = wm
        pmems = [BlockRAM(data.ArrayLayout(signed(9), R), 2 << kw_bits, primitive=ram)
                 for _ in range(copies)]
        for n, pm in enumerate(pmems):
            m.submodules[f"pixels{n}"] = pm
        # The table RAMs take registered writes (the bias buffer its inputs, per group of
        # blocks): the write decision (tload.valid & ~busy) would otherwise reach their 24
        # DP16KD (ecp5 preset), spread over the device, in the same cycle.
        bmem = m.submodules.bias = BlockRAM(
            data.ArrayLayout(signed(32), C), g.max_tiles, primitive=ram, input_regs=True)
        # Multiplier/shift rows of requant_lanes channels, row (t << j_bits) | j: the drain reads
        # exactly the slice it sends, so the RAM output needs no mux before a register. A
        # `BlockRAM` (read latency 2) like the others: read from its latch, an ECP5 block RAM
        # has a ~5.8 ns clock-to-out, most of a 150 MHz cycle before the requantizer's inputs.
        j_bits = ceil_log2(S)
        smem = m.submodules.scale = BlockRAM(
            data.StructLayout({"multiplier": data.ArrayLayout(signed(32), RL),
                               "shift": data.ArrayLayout(signed(6), RL)}),
            g.max_tiles << j_bits, primitive=ram)

        m.d.comb += self.wload.ready.eq(1)   # also while busy: the next job's weights (prefetch)
        w_words = data.View(data.ArrayLayout(data.ArrayLayout(signed(8), R), C),
                            self.wload.payload.data)
        for n, wm in enumerate(wmems):
            first = col_group.index(n)
            m.d.comb += [
                wm.w_addr.eq(self.wload.payload.addr),
                wm.w_data.eq(Cat(*[w_words[c] for c in range(first, first + col_group.count(n))])),
                wm.w_en.eq(self.wload.valid),
            ]
        # A table row is written in S cycles (one multiplier/shift slice each), taken on the last.
        b_wr = SimpleNamespace(addr=bmem.w_addr, data=bmem.w_data, en=bmem.w_en)
        # (``*_dup*``: the bias RAM registers the same address, and one copy would drive both.)
        s_wq = SimpleNamespace(addr=Signal.like(smem.w_addr, name="scale_w_addr_dup", reset_less=True),
                               data=Signal.like(smem.w_data, reset_less=True),
                               en=Signal(name="scale_w_en_dup"))
        tl = self.tload.payload
        tj = Signal(range(max(2, S)))
        t_wr = Signal()
        m.d.comb += [
            t_wr.eq(self.tload.valid & ~busy),
            # not from tload.valid: this is the enable of the upsizer's 1k-bit output register,
            # which then does not wait for its own valid to come back through here
            self.tload.ready.eq(~busy & (tj == S - 1)),
            b_wr.addr.eq(tl.addr), b_wr.data.eq(tl.bias), b_wr.en.eq(t_wr),
            smem.w_addr.eq(_kept(s_wq.addr)), smem.w_data.eq(s_wq.data), smem.w_en.eq(_kept(s_wq.en)),
        ]
        m.d.sync += [
            s_wq.addr.eq(Cat(tj[:j_bits], tl.addr)),
            s_wq.data.multiplier.eq(Cat(tl.multiplier).word_select(tj, RL * 32)),
            s_wq.data.shift.eq(Cat(tl.shift).word_select(tj, RL * 6)),
            s_wq.en.eq(t_wr),
        ]
        with m.If(t_wr):
            m.d.sync += tj.eq(Mux(tj == S - 1, 0, tj + 1))

        # ---- pixel buffer fill (input side) -------------------------------------------------
        full = Signal(2)                 # half h holds a complete pixel
        last_px = Signal(2)              # ... and that pixel is the run's last
        ctx_px = Signal(2)               # ... and that pixel's context
        in_ctx = self.i.payload.ctx if NX > 1 else 0
        wr_half = Signal()
        wk = Signal(range(max(2, g.max_k_words)))
        in_done = Signal()
        # The write is registered (address, data minus the zero point, enable), one copy per
        # pixel RAM (``*_dup*``: the copies sit apart): the accept decision has no time left to
        # reach every copy. A pixel's last word lands the cycle after it is taken, before its
        # first read (issue, then the registered read address).
        p_wrs = [SimpleNamespace(addr=Signal(kw_bits + 1, name=f"p_wr_addr_dup{n}", reset_less=True),
                                 data=Signal(data.ArrayLayout(signed(9), R),
                                             name=f"p_wr_data_dup{n}", reset_less=True),
                                 en=Signal(name=f"p_wr_en_dup{n}"))
                 for n in range(copies)]
        take_in = Signal()
        m.d.comb += [
            self.i.ready.eq(busy & ~in_done & ~full.bit_select(wr_half, 1)),
            take_in.eq(self.i.valid & self.i.ready),
        ]
        for p_wr, pm in zip(p_wrs, pmems):
            m.d.sync += [p_wr.addr.eq(Cat(wk[:kw_bits], wr_half)), p_wr.en.eq(take_in)]
            for r in range(R):
                m.d.sync += p_wr.data[r].eq(self.i.payload.data[r] - sel(in_ctx, [c.in_zp for c in ctxs]))
            m.d.comb += [pm.w_addr.eq(_kept(p_wr.addr)), pm.w_data.eq(_kept(p_wr.data)),
                         pm.w_en.eq(_kept(p_wr.en))]
        # wk == k_words - 1 from flip-flops, as the issue's k (below): an 8-bit compare before
        # the half flags' loads measured 7.4 ns.
        wk_zero, wk_at_last = Signal(init=1), Signal()
        with m.If(take_in):
            with m.If(Mux(wk_zero, sel(in_ctx, kw_one), wk_at_last)):
                m.d.sync += [
                    wk.eq(0),
                    wk_zero.eq(1),
                    full.bit_select(wr_half, 1).eq(1),
                    last_px.bit_select(wr_half, 1).eq(self.i.payload.last),
                    ctx_px.bit_select(wr_half, 1).eq(in_ctx),
                    wr_half.eq(~wr_half),
                ]
                with m.If(self.i.payload.last):
                    m.d.sync += in_done.eq(1)
            with m.Else():
                m.d.sync += [wk.eq(wk + 1), wk_zero.eq(0), wk_at_last.eq(wk == sel(in_ctx, kw_m2))]

        # ---- issue: one k-step per cycle ----------------------------------------------------
        tag_layout = data.StructLayout({
            "valid": 1, "first": 1, "lastk": 1, "last": 1, "t": range(max(2, g.max_tiles)), "ctx": 1})
        k = Signal(range(max(2, g.max_k_words)))
        t = Signal(range(max(2, g.max_tiles)))
        waddr = Signal(range(cfgc.weight_words))   # relative to the context's weight_base
        rd_half = Signal()
        # Credits as a thermometer code (bit n set while more than n are left): counting is
        # one LUT level per bit and "any left" is bit 0, a flip-flop (a 4-bit counter's
        # adder and compare behind the drain's pop measured 7.9 ns of routing).
        credits = Signal(self._fifo_depth, init=(1 << self._fifo_depth) - 1)
        cur = ctx_px.bit_select(rd_half, 1) if NX > 1 else 0   # context of the pixel in compute
        # k == k_words - 1 and t == out_tiles - 1 from flip-flops: whether the counter is 0 (then
        # the context's "is 1" flag answers) and, for a nonzero counter, the comparison made
        # when it was incremented (its context cannot change before it returns to 0). Compared
        # here, the counters measured 5 to 6 LUT levels before the issue decision's loads.
        k_zero, t_zero = Signal(init=1), Signal(init=1)
        k_at_last, t_at_last = Signal(), Signal()
        is_lastk = Mux(k_zero, sel(cur, kw_one), k_at_last)
        is_last_tile = Mux(t_zero, sel(cur, tiles_one), t_at_last)
        issue = Signal()
        # A credit is counted off the cycle after it is spent (`spend_q`), so the count's
        # update starts from flip-flops (the issue decision into it measured 8.5 ns, 5 LUT
        # levels); meanwhile one more credit must be left. (A half is full only while busy:
        # no `busy` term.)
        spend_q = Signal()
        m.d.comb += issue.eq(full.bit_select(rd_half, 1)
                             & (~is_lastk | (credits[0] & (~spend_q | credits[1]))))
        m.d.sync += spend_q.eq(issue & is_lastk)

        # Both words arrive 4 cycles after the issue. The weight read address is registered
        # here (a copy of waddr without enable: waddr's own flip-flops, loaded on `issue`, stay
        # by the issue logic instead of being pulled towards the weight buffer's 15 address
        # registers, a 4.6 ns net measured at 96.0 MHz), then the weight buffer registers it
        # again per group of blocks. The pixel read address is registered here too (so that a
        # pixel's last word, written the cycle after it is taken, has landed before its first
        # read), and each pixel copy's output is registered once in the fabric (`x_copy*`).
        p_raddr = Signal(kw_bits + 1, reset_less=True)
        m.d.sync += p_raddr.eq(Cat(k[:kw_bits], rd_half))
        for n, wm in enumerate(wmems):   # one copy per weight-buffer part
            w_raddr = Signal.like(wm.r_addr, name=f"w_raddr_dup{n}", reset_less=True)
            m.d.sync += w_raddr.eq(waddr + sel(cur, wbase) if NX > 1 else waddr)
            m.d.comb += wm.r_addr.eq(_kept(w_raddr))
        m.d.comb += [pm.r_addr.eq(p_raddr) for pm in pmems]
        x_copies = [pipeline.delay(m, 1, f"x_copy{n}", pm.r_data.shape(), pm.r_data, 1)
                    for n, pm in enumerate(pmems)]
        assert 1 + wmems[0].latency == 1 + pmems[0].latency + 1

        tags = [None, Signal(tag_layout, name="tag1")]
        m.d.sync += [
            tags[1].valid.eq(issue),
            tags[1].first.eq(k_zero),
            tags[1].lastk.eq(is_lastk),
            tags[1].last.eq(last_px.bit_select(rd_half, 1) & is_last_tile),
            tags[1].t.eq(t + sel(cur, tbase) if NX > 1 else t),   # table row
            tags[1].ctx.eq(cur),
        ]
        with m.If(issue):
            with m.If(is_lastk):
                m.d.sync += [k.eq(0), k_zero.eq(1)]
                with m.If(is_last_tile):
                    m.d.sync += [
                        t.eq(0), t_zero.eq(1), waddr.eq(0), rd_half.eq(~rd_half),
                        full.bit_select(rd_half, 1).eq(0),
                    ]
                with m.Else():
                    m.d.sync += [t.eq(t + 1), t_zero.eq(0), t_at_last.eq(t == sel(cur, tiles_m2)),
                                 waddr.eq(waddr + 1)]
            with m.Else():
                m.d.sync += [k.eq(k + 1), k_zero.eq(0), k_at_last.eq(k == sel(cur, kw_m2)),
                             waddr.eq(waddr + 1)]

        # ---- MAC pipeline: operand registers, products, registered adder tree ---------------
        for n in range(2, self._sum_stage + 1):
            tags.append(Signal(tag_layout, name=f"tag{n}"))
            m.d.sync += tags[n].eq(tags[n - 1])
        # The RAM outputs (registered: `BlockRAM`) reach each PE's operand registers and
        # product register around one multiplier (a DSP with its own registers when
        # dsp="ecp5"). A column whose multiplier is faster than the slowest column's (a DSP
        # column beside LUT columns) takes its extra cycles as fabric registers, half of them
        # (rounded up) before the multiplier, one copy per column (``*_dup*``: kept apart in
        # synthesis), the rest after it: the placer then puts them between the block RAMs, the
        # DSP and the column's adder tree, which are spread over the device (a RAM output
        # straight into the DSPs of 4 columns measured 9.6 ns of routing, a DSP output straight
        # into its adder tree 6.9 ns).
        sums = []
        for c in range(C):
            x1 = x_copies[col_group[c]]
            w1 = wmems[col_group[c]].r_data[c - col_group.index(col_group[c])]
            level = []
            for r in range(R):
                pe = m.submodules[f"pe_c{c}_r{r}"] = RegisteredMultiplier(
                    signed(9), signed(8), dsp=self._column_kinds[c])
                extra = self._product_latency - pe.latency
                before = extra - extra // 2
                m.d.comb += [
                    pe.a.eq(_kept(pipeline.delay(m, 1, f"x_c{c}_r{r}_dup", signed(9), x1[r], before))),
                    pe.b.eq(_kept(pipeline.delay(m, 1, f"w_c{c}_r{r}_dup", signed(8), w1[r], before))),
                ]
                level.append(pipeline.delay(m, 1, f"p_c{c}_r{r}", pe.p.shape(), pe.p,
                                            extra - before))
            depth = 0
            while len(level) > 1:
                depth += 1
                nxt = []
                for a in range(0, len(level) - 1, 2):
                    s = Signal(signed(17 + depth), name=f"s_c{c}_l{depth}_{a // 2}",
                               reset_less=True)
                    m.d.sync += s.eq(level[a] + level[a + 1])
                    nxt.append(s)
                if len(level) % 2:
                    s = Signal(signed(17 + depth), name=f"s_c{c}_l{depth}_{len(level) // 2}",
                               reset_less=True)
                    m.d.sync += s.eq(level[-1])
                    nxt.append(s)
                level = nxt
            sums.append(level[0])

        # ---- accumulate (bias preloaded at k = 0) -------------------------------------------
        tag_s = tags[self._sum_stage]
        # The bias RAM's output is registered once more in each column (``bias_c*``), by the
        # column's accumulator: the columns sit by their DSPs, spread over the device.
        m.d.comb += bmem.r_addr.eq(tags[self._sum_stage - bmem.latency - 1].t)
        bias = [pipeline.delay(m, 1, f"bias_c{c}", signed(32), bmem.r_data[c], 1) for c in range(C)]
        acc = Signal(data.ArrayLayout(signed(32), C), reset_less=True)
        done_tag = Signal(tag_layout, reset_less=True)
        # Each column's accumulator loads on its own copy of the tag's valid and first bits
        # (``*_dup*``, kept apart in synthesis): the columns sit by their DSPs, spread over the
        # device, and one flip-flop would drive 2 x 32 x C loads across it.
        tag_p = tags[self._sum_stage - 1]
        for c in range(C):
            acc_en = Signal(name=f"acc_en_c{c}_dup", reset_less=True)
            acc_first = Signal(name=f"acc_first_c{c}_dup", reset_less=True)
            m.d.sync += [acc_en.eq(tag_p.valid), acc_first.eq(tag_p.first)]
            with m.If(acc_en):
                m.d.sync += acc[c].eq(Mux(acc_first, bias[c], acc[c]) + sums[c])
        m.d.sync += done_tag.eq(tag_s)

        # ---- result FIFO, credits and drain: RL channels per cycle into the requantizers ----
        # An entry carries its table row and context, so the drain needs no counters of its own.
        # The drain takes its RL-lane slices from the head registers (`_drained_fifo`: amaranth's
        # SyncFIFOBuffered, whose C x 32-bit output register loaded on the drain's advance,
        # measured 9.7 ns of routing, 89.2 MHz). One memory per column group (the groups of the
        # weight buffer), each with its own copy of the pointers, the push and the drain state.
        #
        # The requantizer never stalls: its results are gathered into whole output words
        # that go into a FIFO (`requantized`) whose entries the drain reserves, one per word,
        # before it sends a word's first slice; its o.ready is the constant 1, so synthesis
        # removes its pipeline enable (one flip-flop driving the clock enables of 4 x
        # requant_lanes DSPs and ~680 flip-flops per lane, spread over the device: 13.1 ns of
        # routing with 8 lanes). Backpressure stops at the drain. The slice and its
        # multiplier/shift row (read from the scale RAM, latency 2) meet at the requantizer's
        # input two cycles after the drain advances.
        rq = m.submodules.requant = Requantizer(RL, lay.tag, dsp=self._dsp)
        qdepth = -(-(rq.latency + S + 7) // S) + 1   # covers a credit's round trip
        q_credits = Signal(qdepth, init=(1 << qdepth) - 1)
        entry = data.StructLayout({"acc": data.ArrayLayout(signed(32), C), "last": 1,
                                   "t": tag_layout["t"].shape, "ctx": 1})
        parts = [32 * col_group.count(n) for n in range(copies)]
        parts[-1] += entry.size - C * 32
        pushes = [Signal(name=f"results_push_dup{n}") for n in range(copies + 1)]
        m.d.sync += [p.eq(tag_s.valid & tag_s.lastk) for p in pushes]
        results = _drained_fifo(m, "results", entry, self._fifo_depth, pushes=pushes,
                                w_data=Cat(acc, done_tag.last, done_tag.t, done_tag.ctx),
                                parts=parts, slices=S, room=q_credits[0])
        _return_credits(m, credits, spend=spend_q, pop=results.take)
        head, j, adv = results.head, results.j, results.adv
        m.d.comb += smem.r_addr.eq(_kept(Cat(results.j_addr[:j_bits], head.t)))
        # Payload registers loaded every cycle (no enable); valid bits reset.
        d_valid = pipeline.delay(m, 1, "drain_valid", 1, adv, smem.latency, reset_less=False)
        d_acc = pipeline.delay(m, 1, "drain_acc", data.ArrayLayout(signed(32), RL),
                               Cat(head.acc).word_select(j, RL * 32), smem.latency)
        d_last = pipeline.delay(m, 1, "drain_last", 1, head.last & results.j_last, smem.latency)
        d_ctx = pipeline.delay(m, 1, "drain_ctx", 1, head.ctx, smem.latency)

        rqi = rq.i.payload
        m.d.comb += [
            rq.i.valid.eq(d_valid),
            rqi.acc.eq(d_acc),
            rqi.multiplier.eq(smem.r_data.multiplier),   # straight into the requantizer's
            rqi.shift.eq(smem.r_data.shift),             # input register
            rqi.out_zp.eq(sel(d_ctx, [c.out_zp for c in ctxs])),
            rqi.act_min.eq(sel(d_ctx, [c.act_min for c in ctxs])),
            rqi.act_max.eq(sel(d_ctx, [c.act_max for c in ctxs])),
            rqi.tag.last.eq(d_last),
            rq.o.ready.eq(1),
        ]
        if NX > 1:
            m.d.comb += rqi.tag.ctx.eq(d_ctx)

        # The requantized FIFO, one output word per entry. Its credits come back a cycle late
        # (registered pops): the pop is decided by the output side, the credits are counted
        # by the drain, and the two sit apart (a pop straight into the credits measured 4.4 ns
        # of routing).
        # A complete word is registered once before it is written (the write enable of the
        # FIFO's 33 RAM slices, and its level, then come from a flip-flop).
        word, word_done = _gather(m, "gather_rq", rq.o.payload.data.as_value(), rq.o.valid, S)
        qlay = data.StructLayout({"data": data.ArrayLayout(signed(8), C), "last": 1, "ctx": 1})
        q_push = Signal()
        q_word = Signal(qlay, reset_less=True)
        m.d.sync += [q_push.eq(word_done),
                     q_word.eq(Cat(word, rq.o.payload.tag.last,
                                   rq.o.payload.tag.ctx if NX > 1 else 0))]
        q_pop = Signal()
        q, q_valid = _head_fifo(m, "requantized", qlay, qdepth, push=q_push, w_data=q_word.as_value(),
                                pop=q_pop)
        _return_credits(m, q_credits, spend=adv & (j == 0), pop=q_pop)

        # ---- optional residual ADD: AL lanes per cycle behind the requantized FIFO -----------
        # A requantized word and its residual word are shifted through registers AL lanes per
        # ADD input (`add_a`, `add_b`): the FIFO head through a lane select straight into the
        # ADD's first adder measured 7.4 ns of routing. The ADD never stalls either: its results
        # are gathered into words that go into a FIFO (`added`), whose entries are reserved
        # when a word is taken from the requantized FIFO; its o.ready is the constant 1, so the
        # enable of its ~2,000 pipeline flip-flops and 12 DSPs is gone too.
        AL = cfgc.residual_lanes or RL
        NA = C // AL
        radd = m.submodules.residual_add = ResidualAdd(AL, lay.tag, dsp=self._dsp)
        adepth = -(-(radd.latency + NA + 7) // NA) + 1   # covers a credit's round trip
        a_credits = Signal(adepth, init=(1 << adepth) - 1)
        add_a = Signal(C * 8, reset_less=True)
        add_a_last = Signal(reset_less=True)
        add_b = Signal(C * 8, reset_less=True)
        # Each operand word waits in a staging register first (`a_in`, `b_in`), loaded on every
        # cycle it is empty (its enable a flip-flop): the operand registers then load on
        # flip-flops alone (the residual port's handshake straight into the enable of the
        # residual register's 128 flip-flops measured 9.5 ns). A staging register refills the
        # cycle after it empties, which keeps up while a word lasts C/AL >= 2 ADD inputs.
        a_in = Signal(data.StructLayout({"data": C * 8, "last": 1}), reset_less=True)
        b_in = Signal(C * 8, reset_less=True)
        rj = Signal(range(max(2, NA)))  # counters are never 0 bits wide (Verilator)
        use_res = run.residual
        # Context 1's results leave on ox and never see the ADD (the ADD is context 0's).
        beat_x = q.ctx if NX > 1 else Const(0, 1)

        def operand_state(suffix):
            """The operands' flags: staging and operand registers valid, last lanes next
            (``rj_last``, rj == NA - 1); each operand register takes a new word when it is
            empty or its last lanes go into the ADD in this cycle (then the other register
            holds valid lanes too)."""
            st = SimpleNamespace(**{n: Signal(name=f"{n}{suffix}") for n in (
                "a_in_valid", "b_in_valid", "add_a_valid", "add_b_valid")},
                rj_last=Signal(init=NA == 1, name=f"rj_last{suffix}"),
                join=Signal(), load_a=Signal(), load_b=Signal(), take_a=Signal(), take_b=Signal())
            m.d.comb += [
                st.join.eq(st.add_a_valid & st.add_b_valid),
                st.take_a.eq(use_res & q_valid & ~beat_x & a_credits[0] & ~st.a_in_valid),
                st.take_b.eq(self.res.valid & busy & use_res & ~st.b_in_valid),
                st.load_a.eq(st.a_in_valid & (~st.add_a_valid | (st.add_b_valid & st.rj_last))),
                st.load_b.eq(st.b_in_valid & (~st.add_b_valid | (st.add_a_valid & st.rj_last))),
            ]
            with m.If(st.join):
                m.d.sync += [st.rj_last.eq(rj == NA - 2 if NA > 1 else 1),
                             st.add_a_valid.eq(~st.rj_last), st.add_b_valid.eq(~st.rj_last)]
            for flag, take, load in ((st.a_in_valid, st.take_a, st.load_a),
                                     (st.b_in_valid, st.take_b, st.load_b)):
                with m.If(~flag):
                    m.d.sync += flag.eq(take)
                with m.Elif(load):
                    m.d.sync += flag.eq(0)
            with m.If(st.load_a):
                m.d.sync += st.add_a_valid.eq(1)
            with m.If(st.load_b):
                m.d.sync += st.add_b_valid.eq(1)
            return st

        # The ADD's own copy of the flags, and one per slice of the staging and operand
        # registers (``*_dup*``), whose enables it drives: one copy for all 2 x 257 flip-flops
        # measured 7.9 ns (6.0 of it routing).
        ops = operand_state("")
        take_a = ops.take_a
        m.d.comb += [
            radd.params.a_zp.eq(ctxs[0].out_zp),
            radd.i.valid.eq(ops.join),
            radd.i.payload.a.eq(add_a[:AL * 8]),
            radd.i.payload.b.eq(add_b[:AL * 8]),
            radd.i.payload.tag.last.eq(add_a_last & ops.rj_last),
            radd.o.ready.eq(1),
            self.res.ready.eq(busy & use_res & ~ops.b_in_valid),
        ]
        for name, _ in lay.cfg["add"].shape:
            m.d.comb += radd.params[name].eq(run.add[name])
        with m.If(ops.join):
            m.d.sync += rj.eq(Mux(ops.rj_last, 0, rj + 1))
        with m.If(~ops.a_in_valid):
            m.d.sync += a_in.last.eq(q.last)
        with m.If(ops.load_a):
            m.d.sync += add_a_last.eq(a_in.last)
        size = -(-(C * 8) // copies)
        for n in range(copies):
            st = operand_state(f"_dup{n}")
            part = slice(n * size, min(C * 8, (n + 1) * size))
            with m.If(st.join):
                m.d.sync += [add_a[part].eq((add_a >> (AL * 8))[part]),
                             add_b[part].eq((add_b >> (AL * 8))[part])]
            with m.If(~st.a_in_valid):
                m.d.sync += a_in.data[part].eq(Value.cast(q.data)[part])
            with m.If(~st.b_in_valid):
                m.d.sync += b_in[part].eq(Value.cast(self.res.payload.data)[part])
            with m.If(st.load_a):
                m.d.sync += add_a[part].eq(a_in.data[part])
            with m.If(st.load_b):
                m.d.sync += add_b[part].eq(b_in[part])
        aword, aword_done = _gather(m, "gather_add", radd.o.payload.data.as_value(),
                                    radd.o.valid, NA)
        alay = data.StructLayout({"data": data.ArrayLayout(signed(8), C), "last": 1})
        a_pop = Signal()
        added, a_valid = _head_fifo(m, "added", alay, adepth, push=aword_done,
                                    w_data=Cat(aword, radd.o.payload.tag.last), pop=a_pop)
        _return_credits(m, a_credits, spend=take_a, pop=a_pop)

        # ---- output registers: o from the requantized FIFO (or the ADD's), ox (context 1)
        # from the requantized FIFO, so neither context waits behind the ADD's pipeline. Each is
        # an output register plus a skid register (`pipeline.skid_output`), so the FIFOs pop on
        # flip-flops (the skid flags) and o.ready reaches only those registers' enables, in
        # `PIXEL_COPIES` slices with their own valid flags: o.ready into the pops and into one
        # enable of 129 flip-flops measured 9.2 ns (8.5 of it routing).
        skid_valid, skidx_valid = Signal(), Signal()
        m.d.comb += [
            q_pop.eq(Mux(beat_x, q_valid & ~skidx_valid,
                         Mux(use_res, take_a, q_valid & ~skid_valid))),
            a_pop.eq(use_res & a_valid & ~skid_valid),
        ]
        pipeline.skid_output(   # the data's select is a run parameter, not a decision
            m, self.o, Cat(Mux(use_res, added.data, q.data), Mux(use_res, added.last, q.last)),
            Mux(use_res, a_valid, q_valid & ~beat_x), skid_valid, groups=copies)
        with m.If(self.o.valid & self.o.ready & self.o.payload.last):
            m.d.sync += [b.eq(0) for b in (busy, *busy_copies, in_done)]
        if NX > 1:
            pipeline.skid_output(m, self.ox, q.data, q_valid & beat_x, skidx_valid,
                                 groups=copies)

        # No state is restarted at start: every counter, the pixel-buffer halves and the
        # credits are back at their idle values when a run ends (its last output word has
        # left, so every pixel was read and every result drained), and the domain reset
        # covers an aborted run (the top resets the datapath). `go` reaches only busy and the
        # parameter registers' enables, never a reset net.
        return m
