"""The depthwise engine: a dedicated 3x3 depthwise-conv processing element (depth multiplier 1).

Why a separate engine: a depthwise conv has one input channel per output channel, so on the dense
PE array it would light one PE per column and leave the rest dark, and its few MACs per byte make
a layer-by-layer accelerator memory bound. Here ``lanes`` channels x 9 taps multiply in parallel,
fed by the `LineBuffer` (every input pixel crosses the bus once), and the output words can go
straight on to the PE array (fusion) instead of to DRAM.

Dataflow: one *window* in, one *word* out. A window is the 3x3 neighbourhood of one output pixel
for one *chunk* (``lanes`` consecutive channels), its 9 taps in TFLite filter order (``dy*3+dx``),
padded taps already holding the input zero point. Per lane ``l`` the engine computes exactly
``verif/golden/ops.py`` :func:`depthwise_conv2d` for ``depth_multiplier=1``::

    acc[l] = wrap_int32(bias[l] + sum_t (tap[t][l] - in_zp) * w[t][l])
    out[l] = clip(MultiplyByQuantizedMultiplier(acc[l], multiplier[l], shift[l]) + out_zp,
                  act_min, act_max)

Pipeline (one window per cycle; P = 5 with DSP taps, 6 with LUT taps)::

    i ─▶ S1 ─▶ S2 ─▶ S3 .. SP ─▶ SP+1 ─▶ SP+2 ─▶ SP+3 ─▶ Requantizer (15/16/18) ─▶ FIFO (32) ─▶ o
    │           ▲                  ▲               ▲
    └───────────┘                  └─ bias RAM     └─ multiplier/shift RAM
     weight RAM          (each RAM's read address: the window's chunk)

    S1    the window (taps, chunk, last)      SP+1  three sums of three products (int19), bias
    S2    xs = tap - in_zp (int9), weights    SP+2  part0 + part1, part2 + bias
    S3..  the multipliers (operands first)    SP+3  acc = wrap_int32(sum of both), mult./shift
    SP    xs * w (int9 x int8 → int17)

- The weight RAM is read when the window is accepted and its data registered (S2) before it
  goes to the multipliers, because ECP5 block RAM clock-to-out (~5.8 ns without the output
  register) plus routing does not fit a 150 MHz cycle. The bias (SP+1) and the
  multiplier/shift (SP+3) are likewise registered straight out of their RAMs. Each RAM is a
  `BlockRAM` (read latency 2): with ``ram="ecp5"`` (the default when ``dsp="ecp5"``) that
  register is the DP16KD's own output register, which Yosys would never map by itself.
- The ``9 * lanes`` multipliers are `RegisteredMultiplier`s of kind
  ``config.multiplier_kind("dw_taps", dsp)``. DSP kinds: S3 operands, S4 product (with
  ``dsp="ecp5"`` both registers are the MULT18X18D's own), then S5 in the fabric: with ~100
  DSPs spread over the device, the route from a DSP's output to its lane's adder tree measured
  7-8 ns on an LFE5U-85F, more than a 150 MHz cycle with an adder behind it, so S5 gives that
  route a cycle of its own. Kind ``"lut"`` (the ecp5 preset: its 156 DSPs go to the PE array,
  see ``hdl/config.py``): a shift-and-add with a register after every adder level: S3
  (operands), S4, S5 and S6 (the product).
- The adder tree does at most a 3-input add of ~19 bits or a 2-input add of 32 bits per stage.

The per-channel parameters live in three `BlockRAM`s of ``max_chunks`` words (weights, bias,
multiplier + shift), each read shortly before the stage that needs it, so no parameter rides
through the pipeline in flip-flops. Each is one write port (``pload``) + one registered,
non-transparent read port: a pseudo-dual-port block RAM.

Flow control: S1..SP+3 and the requantizer never stall and have no clock enable (the
requantizer's output is always accepted, so its skid register never fills and its enable is a
constant). A window is accepted only against a credit, one of the ``OUT_FIFO_DEPTH`` entries of
the output FIFO (int8 words and ``last``); the credit returns when the word leaves the FIFO on
``o``, so the FIFO can never overflow and nothing before it ever waits. Only the FIFO stalls on
backpressure. Why: an enable for the whole pipeline fans out to ~13k flip-flops and 72 DSPs
(ecp5 preset); built that way the engine placed and routed at 102 MHz with the enable net as
the critical path, and a requantizer with LUT multipliers has ~1.5k flip-flops per lane. The
FIFO (32 entries of ``8 * lanes + 1`` bits) fits distributed RAM. ``i.ready`` depends only on
the credit counter (and ``pload.valid``), never combinationally on ``o.ready``.

Measured (ecp5 preset, ``dsp="ecp5"``, ``python scripts/synth.py --config ecp5 --target ecp5
--design depthwise --router router2``: LFE5U-85F, in the synthesis harness). Previous session,
taps and requantizer in DSPs, RAMs inferred: 104 MULT18X18D, 33 DP16KD, ~11.6k LUT4/carry
cells, 115 MHz, limited by block RAM clock-to-out. Then (taps and requantizer in LUTs, DP16KD
with output registers, requantizer without enable, parameter writes registered): 0
MULT18X18D, 33 DP16KD, 46.9k TRELLIS_COMB, 22.0k flip-flops, 111.8 MHz, the critical path
inside a LUT 16x16 product (two ripple adders per stage). Now (a register after every adder
level of the LUT multipliers, the output FIFO without a level check on its write, a copy of
the parameter-write flag for the credit logic): 42.4k TRELLIS_COMB, 26.6k flip-flops, 103.9
MHz, the critical path being the input zero point's route to the 72 subtractors of S2 (8 ns);
with a registered copy per lane (below): 114.9 MHz (nextpnr ``--seed 2``; seed 1's router failed
on the clock net), only a handful of endpoints below 150 MHz, the critical path being the
route from a LUT 16x16 product's operand register to its partial products (5.6 ns: one
register drives the ANDs of two products, 32 loads per bit). With the requantizer back in
DSPs (the ecp5 preset's budget since the PE array builds columns from LUTs): 32 MULT18X18D,
33 DP16KD, 23.2k TRELLIS_COMB, 16.3k flip-flops, 157.2 MHz (router1, seed 1;
``python scripts/synth.py --config ecp5 --target ecp5 --design depthwise --json
build/synth/depthwise-ecp5-ecp5-dwrequant-dsp.json``), the critical path being the output
FIFO's credit counter (6.4 ns, 1.5 ns of it routing).

Parameter loading: ``pload`` beats write one chunk's weights, bias, multiplier and shift each.
``pload.ready`` is low while any window is between ``i`` and the FIFO's exit (so none has a
parameter read ahead of it), so a new layer's parameters can be sent as soon as the previous
layer's last window has been accepted; while ``pload.valid`` is high, and in the cycle after
a beat (its registered write lands then), no window is accepted.
The sequencer must transfer all of a layer's ``pload`` beats before that layer's first window
(the engine cannot tell layers apart), and hold ``cfg`` from the first window of a layer until
its last output word has been transferred.
"""

import numpy as np
from amaranth import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .block_ram import RAM_PRIMITIVES, BlockRAM
from .config import Config
from .multiplier import DSP_KINDS, RegisteredMultiplier
from .requant import Requantizer

__all__ = [
    "DepthwiseEngine",
    "window_layout",
    "output_layout",
    "param_layout",
    "cfg_layout",
    "pack_params",
]

#: Entries of the output FIFO, i.e. windows in flight between ``i`` and ``o``: more than
#: `DepthwiseEngine.mac_stages` (8, or 9 with LUT taps) + the requantizer's latency (15; 16 with
#: ``dsp="ecp5"``, 18 with LUT multipliers: `Requantizer.latency_for`) + the FIFO's own 2 cycles,
#: so credits never limit throughput.
OUT_FIFO_DEPTH = 32


def _check_config(config):
    if not isinstance(config, Config):
        raise TypeError(f"config must be a Config, not {config!r}")


def _chunk_shape(config):
    return unsigned(max(1, ceil_log2(config.max_chunks)))


def window_layout(config):
    """Payload of a 3x3 window (`LineBuffer.o`, `DepthwiseEngine.i`) for ``config``.

    ``taps``: 9 words of ``lanes`` int8, TFLite filter order ``dy*3+dx``; ``chunk``: which
    group of ``lanes`` channels (0..max_chunks-1); ``last``: final window of the run.
    """
    _check_config(config)
    return data.StructLayout({
        "taps": data.ArrayLayout(data.ArrayLayout(signed(8), config.lanes), 9),
        "chunk": _chunk_shape(config),
        "last": 1,
    })


def output_layout(config):
    """Payload of `DepthwiseEngine.o`: one word (``lanes`` int8 channels of one output pixel)."""
    _check_config(config)
    return data.StructLayout({
        "data": data.ArrayLayout(signed(8), config.lanes),
        "last": 1,
    })


def param_layout(config):
    """Payload of `DepthwiseEngine.pload`: one chunk's weights and requantization parameters."""
    _check_config(config)
    lanes = config.lanes
    return data.StructLayout({
        "chunk": _chunk_shape(config),
        "weights": data.ArrayLayout(data.ArrayLayout(signed(8), lanes), 9),
        "bias": data.ArrayLayout(signed(32), lanes),
        "multiplier": data.ArrayLayout(signed(32), lanes),
        "shift": data.ArrayLayout(signed(6), lanes),
    })


def cfg_layout():
    """Run-time parameters of a depthwise layer (`DepthwiseEngine.cfg`)."""
    return data.StructLayout({
        "in_zp": signed(8),
        "out_zp": signed(8),
        "act_min": signed(8),
        "act_max": signed(8),
    })


def _int_array(name, value, shape, lo, hi):
    a = np.asarray(value)
    if a.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, not {a.shape}")
    if a.size and not np.issubdtype(a.dtype, np.integer):
        raise TypeError(f"{name} must hold integers, not {a.dtype}")
    a = a.astype(np.int64)
    if a.size and (a.min() < lo or a.max() > hi):
        raise ValueError(f"{name} must be in [{lo}, {hi}], not [{a.min()}, {a.max()}]")
    return a


def pack_params(weights, bias, multiplier, shift, config):
    """The ``pload`` beats of one depthwise layer, one per chunk (shared by compiler and tests).

    Parameters
    ----------
    weights : array of int8, shape (1, 3, 3, C)
        TFLite depthwise filter (depth multiplier 1).
    bias, multiplier, shift : arrays of int, shape (C,)
        Per-channel int32 bias, int32 multiplier and shift in [-32, 31] (TFLite's
        ``QuantizeMultiplier``; bias may be None for no bias).
    config : Config

    Returns
    -------
    list of dict
        ``ceil(C / lanes)`` payloads for `param_layout` (``chunk``, ``weights[9][lanes]``,
        ``bias``, ``multiplier``, ``shift``). Channels past C in the last chunk are zero, which
        makes those lanes output ``clip(out_zp, act_min, act_max)``.
    """
    _check_config(config)
    w = np.asarray(weights)
    if w.ndim != 4 or w.shape[:3] != (1, 3, 3):
        raise ValueError(f"weights must have shape (1, 3, 3, C), not {w.shape}")
    c = w.shape[3]
    if not 1 <= c <= config.max_channels:
        raise ValueError(f"channel count must be in 1..{config.max_channels} (config "
                         f"{config.name!r}), not {c}")
    w = _int_array("weights", w, (1, 3, 3, c), -128, 127)
    b = np.zeros(c, np.int64) if bias is None else _int_array("bias", bias, (c,), -2**31, 2**31 - 1)
    m = _int_array("multiplier", multiplier, (c,), -2**31, 2**31 - 1)
    s = _int_array("shift", shift, (c,), -32, 31)

    lanes = config.lanes
    chunks = -(-c // lanes)
    pad = chunks * lanes - c
    taps = np.pad(w.reshape(9, c), ((0, 0), (0, pad)))
    b, m, s = (np.pad(v, (0, pad)) for v in (b, m, s))
    beats = []
    for k in range(chunks):
        sl = slice(k * lanes, (k + 1) * lanes)
        beats.append({
            "chunk": k,
            "weights": taps[:, sl].tolist(),
            "bias": b[sl].tolist(),
            "multiplier": m[sl].tolist(),
            "shift": s[sl].tolist(),
        })
    return beats


class DepthwiseEngine(wiring.Component):
    """``lanes`` channels x 9 taps of a 3x3 depthwise conv per cycle, with requantization.

    Parameters
    ----------
    config : Config
        Uses ``lanes`` and ``max_chunks`` (= ``max_channels // lanes``, the parameter RAM depth).
    dsp : str
        How the ``9 * lanes`` tap multipliers and the requantizer's are built (see
        `RegisteredMultiplier`): ``"infer"`` (portable; plain simulation) or ``"ecp5"``
        (registered MULT18X18D instances, which ECP5 builds need: Yosys packs no fabric
        registers into ECP5 DSPs, and a combinational DSP between fabric registers measured
        68 MHz here). The taps use ``"lut"`` instead when the Config says so
        (``lut_multipliers``), whatever ``dsp`` is.
    ram : str or None
        `BlockRAM` primitive of the parameter memories: ``"infer"`` or ``"ecp5"``; None (default)
        means ``"ecp5"`` when ``dsp="ecp5"``, else ``"infer"``.

    Attributes
    ----------
    i : In(stream.Signature(window_layout(config)))
        Windows in (out_row, out_col, chunk) order, exactly as `LineBuffer.o` emits them.
    o : Out(stream.Signature(output_layout(config)))
        One word per window, in window order; ``last`` copied from the window.
    pload : In(stream.Signature(param_layout(config)))
        Writes one chunk's parameters (use `pack_params`). See the module docstring for when.
    cfg : In(cfg_layout())
        ``in_zp``, ``out_zp``, ``act_min``, ``act_max``; held stable while a layer runs.
    latency : int
        Cycles from a window's transfer on ``i`` to its word's ``o.valid`` without stalls
        (8 MAC stages + the requantizer's 15 + 2 in the FIFO = 25 with ``dsp="infer"``; the
        requantizer takes 16 with ``dsp="ecp5"``, whose preset builds the taps from LUTs (9
        stages): 27; 29 with the requantizer's multipliers in LUTs too: 9 + 18 + 2). Throughput: one window
        per cycle while ``o.ready`` stays high and no ``pload`` beat is pending.
    """

    def __init__(self, config, *, dsp="infer", ram=None):
        _check_config(config)
        if dsp not in DSP_KINDS:
            raise ValueError(f"dsp must be one of {DSP_KINDS}, not {dsp!r}")
        if ram is None:
            ram = "ecp5" if dsp == "ecp5" else "infer"
        if ram not in RAM_PRIMITIVES:
            raise ValueError(f"ram must be one of {RAM_PRIMITIVES}, not {ram!r}")
        self._config = config
        self._dsp = dsp
        self._ram = ram
        self._tap_kind = config.multiplier_kind("dw_taps", dsp)
        self._requant = Requantizer(config.lanes, unsigned(1),
                                    dsp=config.multiplier_kind("dw_requant", dsp))
        # S1 window, S2 operands in, S3.. the multiplier; DSP products get a fabric stage more
        self._product_stage = 2 + max(RegisteredMultiplier.latency_for(self._tap_kind, signed(8)), 3)
        super().__init__({
            "i": In(stream.Signature(window_layout(config))),
            "o": Out(stream.Signature(output_layout(config))),
            "pload": In(stream.Signature(param_layout(config))),
            "cfg": In(cfg_layout()),
        })

    @property
    def config(self):
        return self._config

    @property
    def dsp(self):
        return self._dsp

    @property
    def ram(self):
        return self._ram

    @property
    def tap_kind(self):
        """`RegisteredMultiplier` kind of the tap multipliers (``config.multiplier_kind``)."""
        return self._tap_kind

    @property
    def product_stage(self):
        """P: the stage whose registers hold the tap products (5 for DSP kinds, 6 for "lut")."""
        return self._product_stage

    @property
    def mac_stages(self):
        """Stages from an accepted window to the requantizer's input: S1..S(P+3) (8 or 9)."""
        return self._product_stage + 3

    @property
    def latency(self):
        # S1..S(P+3), the FIFO's write-to-read latency (2: written, then in the output register), the
        # requantizer (checked by the testbench's throughput test).
        return self.mac_stages + 2 + self._requant.latency

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        lanes, depth = cfg.lanes, cfg.max_chunks
        chunk_shape = _chunk_shape(cfg)

        rq = m.submodules.requant = self._requant

        # ---- parameter memories: one write (pload) and one read port each, read latency 2 ----
        word = data.ArrayLayout(signed(8), lanes)
        rq_params = data.StructLayout({"multiplier": data.ArrayLayout(signed(32), lanes),
                                       "shift": data.ArrayLayout(signed(6), lanes)})
        w_mem = m.submodules.w_mem = BlockRAM(data.ArrayLayout(word, 9), depth, primitive=self._ram)
        b_mem = m.submodules.b_mem = BlockRAM(data.ArrayLayout(signed(32), lanes), depth,
                                              primitive=self._ram)
        q_mem = m.submodules.q_mem = BlockRAM(rq_params, depth, primitive=self._ram)

        # ---- flow control: credits for the accumulator FIFO -----------------------------------
        # Every accepted window owns a FIFO entry until its accumulators leave the FIFO, so the
        # MAC pipeline never has to stop: it has no enable at all.
        write_q = Signal()  # a parameter beat is being written this cycle (see below)
        # the same flip-flop, a copy for i.ready: write_q sits by the 33 block RAMs it enables,
        # and its route to the credit logic measured 7.6 ns (94.4 MHz). Named *_dup* so that
        # synthesis keeps it apart (scripts/synth.py).
        writing = Signal(name="write_q_dup_ready", reset_less=True)
        in_flight = Signal(range(OUT_FIFO_DEPTH + 1))  # accepted, not yet out of the FIFO
        stages = self.mac_stages
        valid = [Signal(name=f"s{k}_valid") for k in range(1, stages + 1)]  # S1..S(P+3)
        accept = self.i.valid & self.i.ready
        pop = Signal()
        credit = Signal(init=1)   # in_flight != OUT_FIFO_DEPTH, as a flip-flop
        idle = Signal(init=1)     # in_flight == 0, as a flip-flop
        m.d.comb += [
            self.i.ready.eq(credit & ~self.pload.valid & ~writing),
            # No window has a parameter read ahead of it (the last one has left the FIFO).
            self.pload.ready.eq(idle),
        ]
        # The flags' next values are picked by the two events from compares of the register
        # alone (made while accept and pop travel), not compared after an add: accept comes from
        # the line buffer's valid and pload.valid, far from here.
        up, down = accept & ~pop, pop & ~accept
        m.d.sync += [
            in_flight.eq(in_flight + accept - pop),
            credit.eq(Mux(up, in_flight != OUT_FIFO_DEPTH - 1, credit | down)),
            idle.eq(Mux(down, in_flight == 1, idle & ~up)),
        ]
        m.d.sync += valid[0].eq(accept)
        m.d.sync += [valid[k].eq(valid[k - 1]) for k in range(1, stages)]

        # Parameter writes are registered (beat and enable): the accept logic has no time left
        # to reach 33 block RAMs spread over the device. The write lands one cycle after the
        # beat is taken, so no window is accepted in that cycle (it would read the old word).
        pl_q = Signal(param_layout(cfg), reset_less=True)
        m.d.sync += [pl_q.eq(self.pload.payload), write_q.eq(self.pload.valid & self.pload.ready),
                     writing.eq(self.pload.valid & self.pload.ready)]
        for ram, value in ((w_mem, pl_q.weights), (b_mem, pl_q.bias)):
            m.d.comb += [ram.w_addr.eq(pl_q.chunk), ram.w_data.eq(value), ram.w_en.eq(write_q)]
        m.d.comb += [q_mem.w_addr.eq(pl_q.chunk), q_mem.w_data.multiplier.eq(pl_q.multiplier),
                     q_mem.w_data.shift.eq(pl_q.shift), q_mem.w_en.eq(write_q)]

        def stage(name, shape, value):
            """A reset-less pipeline register loaded with ``value`` on every clock edge."""
            reg = Signal(shape, name=name, reset_less=True)
            m.d.sync += reg.eq(value)
            return reg

        def carry(name, value_per_stage, shape, first, last):
            """Delay a side signal from stage ``first`` to ``last``, one register per stage."""
            regs = {first: value_per_stage}
            for k in range(first + 1, last + 1):
                regs[k] = stage(f"s{k}_{name}", shape, regs[k - 1])
            return regs

        # ---- S1: the window registered; weight RAM read for its chunk -----------------------
        win = self.i.payload
        m.d.comb += w_mem.r_addr.eq(win.chunk)
        taps1 = stage("s1_taps", data.ArrayLayout(word, 9), win.taps)
        chunk = carry("chunk", stage("s1_chunk", chunk_shape, win.chunk), chunk_shape,
                      1, stages)
        last = carry("last", stage("s1_last", 1, win.last), 1, 1, stages)

        # ---- S2: input zero point removed (int9); weights in the RAM's output register ------
        # The zero point reaches 72 subtractors: one registered copy per lane (S1, from cfg,
        # which is valid from the first window's transfer on), kept apart in synthesis
        # (*_dup*, scripts/synth.py); straight from one flip-flop it measured 8 ns of routing.
        in_zp = [stage(f"in_zp_dup{l}", signed(8), self.cfg.in_zp) for l in range(lanes)]
        xs2 = [[stage(f"s2_xs{t}_{l}", signed(9), taps1[t][l] - in_zp[l])
                for l in range(lanes)] for t in range(9)]
        w2 = [[w_mem.r_data[t][l] for l in range(lanes)] for t in range(9)]

        # ---- S3..SP: nine int9 x int8 products per lane, all registered at stage P (see
        # `product_stage`). DSP kinds: operand (S3) and product (S4) registers, then S5 in the
        # fabric for the route from the DSP column. "lut" kind: a shift-and-add in the fabric
        # with a register after every adder level, its last register being S6.
        P = self._product_stage
        prods = [[None] * lanes for _ in range(9)]
        for t in range(9):
            for l in range(lanes):
                mul = m.submodules[f"mul{t}_{l}"] = RegisteredMultiplier(
                    signed(9), signed(8), dsp=self._tap_kind)
                m.d.comb += [mul.a.eq(xs2[t][l]), mul.b.eq(w2[t][l])]
                p = mul.p[:17].as_signed()  # |xs * w| <= 255 * 128 fits int17
                for k in range(2 + mul.latency + 1, P + 1):
                    p = stage(f"s{k}_p{t}_{l}", signed(17), p)
                prods[t][l] = p
        m.d.comb += b_mem.r_addr.eq(chunk[P - 1])  # bias data arrives with S(P+1)

        # ---- S(P+1): products added three by three; bias in the RAM's output register -------
        part = [[stage(f"s{P + 1}_part{j}_{l}", signed(19),
                       prods[3 * j][l] + prods[3 * j + 1][l] + prods[3 * j + 2][l])
                 for l in range(lanes)] for j in range(3)]
        bias = [b_mem.r_data[l] for l in range(lanes)]

        # ---- S(P+2), S(P+3): + bias, wrapping to int32 as TFLite's int32 accumulator does ---
        m.d.comb += q_mem.r_addr.eq(chunk[P + 1])  # multiplier/shift data arrive with S(P+3)
        pa = [stage(f"s{P + 2}_pa_{l}", signed(20), part[0][l] + part[1][l]) for l in range(lanes)]
        pb = [stage(f"s{P + 2}_pb_{l}", signed(32), (part[2][l] + bias[l])[:32].as_signed())
              for l in range(lanes)]
        acc = [stage(f"s{P + 3}_acc_{l}", signed(32), (pa[l] + pb[l])[:32].as_signed())
               for l in range(lanes)]
        q = q_mem.r_data

        # ---- requantizer (never stalls) → output FIFO (never full: see the credits above) → o
        # With o.ready tied high the requantizer's skid register never fills, so its pipeline
        # enable is a constant: no enable net fans out to its ~1.5k flip-flops per lane.
        rqi = rq.i.payload
        m.d.comb += [
            rq.i.valid.eq(valid[-1]),
            *(rqi.acc[l].eq(acc[l]) for l in range(lanes)),
            rqi.multiplier.eq(q.multiplier),
            rqi.shift.eq(q.shift),
            rqi.out_zp.eq(self.cfg.out_zp),
            rqi.act_min.eq(self.cfg.act_min),
            rqi.act_max.eq(self.cfg.act_max),
            rqi.tag.eq(last[stages]),
            rq.o.ready.eq(1),
        ]
        # The FIFO is a distributed RAM whose write side has no full check (the credits make it
        # unnecessary): its write enable is the requantizer's o.valid flip-flop, its address a
        # counter. (amaranth's SyncFIFOBuffered gates the write with its level: measured 9.6 ns
        # from the level counter to the RAM's write enables, 104.6 MHz.) The read side moves the
        # word at r_ptr into the output register whenever that is free.
        width = len(self.o.payload.as_value())
        store = m.submodules.out_fifo = Memory(shape=width, depth=OUT_FIFO_DEPTH, init=[])
        wr, rd = store.write_port(), store.read_port(domain="comb")
        w_ptr = Signal(range(OUT_FIFO_DEPTH))
        r_ptr = Signal(range(OUT_FIFO_DEPTH))
        out_valid = Signal()
        out = Signal(width, reset_less=True)
        load = Signal()
        m.d.comb += [
            wr.addr.eq(w_ptr), wr.data.eq(Cat(rq.o.payload.data, rq.o.payload.tag)),
            wr.en.eq(rq.o.valid),
            rd.addr.eq(r_ptr),
            load.eq((~out_valid | self.o.ready) & (r_ptr != w_ptr)),
            self.o.valid.eq(out_valid),
            self.o.payload.eq(out),
            pop.eq(out_valid & self.o.ready),
        ]
        with m.If(rq.o.valid):
            m.d.sync += w_ptr.eq(w_ptr + 1)   # OUT_FIFO_DEPTH is a power of two: wraps
        with m.If(load):
            m.d.sync += [out.eq(rd.data), r_ptr.eq(r_ptr + 1), out_valid.eq(1)]
        with m.Elif(self.o.ready):
            m.d.sync += out_valid.eq(0)
        return m
