"""cocotb testbench of `hdl/requant.py` Requantizer: random operands and stalls vs verif/golden.

Configuration comes from the environment (the pytest wrapper sets it; the seed is cocotb's
``COCOTB_RANDOM_SEED``):

- ``REQUANT_LANES``   lanes of the design under test,
- ``REQUANT_TAG``     a key of :data:`TAG_SHAPES` (the design's ``tag_shape``),
- ``REQUANT_LATENCY`` the design's ``latency`` property, checked cycle-exactly,
- ``REQUANT_VALUES``  lane values per stimulus test (default 4000; beats = values / lanes).

Expected outputs always come from ``verif/golden`` (`requantize_accumulators`), never from
the design. The stimulus builders (`edge_case_operands`, `every_shift_operands`,
`quantized_scale_operands`) and `expected_outputs` are plain numpy and can be reused by other
testbenches (e.g. the PointwiseArray's requant tail).

Every test also runs `StreamMonitor`, which checks the output stream rules (valid held with a
stable payload until taken), the fixed latency and in-order delivery of every beat.
"""

import os
import random

import cocotb
import numpy as np
from amaranth import Shape, unsigned
from amaranth.lib import data
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

from dwfuse.hdl.requant import input_layout, output_layout
from dwfuse.verif.golden.arithmetic import INT32_MAX, INT32_MIN, activation_range, quantize_multiplier
from dwfuse.verif.golden.ops import requantize_accumulators
from dwfuse.verif.streams import StreamSink, StreamSource

__all__ = [
    "TAG_SHAPES", "StreamMonitor",
    "edge_case_operands", "every_shift_operands", "quantized_scale_operands",
    "random_beat_params", "expected_outputs", "to_beats",
]

#: Tag shapes the pytest wrapper may choose (env ``REQUANT_TAG``): a flag, a channel index, a struct.
TAG_SHAPES = {
    "bit": unsigned(1),
    "chan": unsigned(11),
    "flags": data.StructLayout({"first": 1, "last": 1, "chan": unsigned(5)}),
}

SHIFT_MIN, SHIFT_MAX = -32, 31  # everything signed(6) holds; TFLite uses -31..30


# --------------------------------------------------------------------------------------------
# Stimulus (numpy; arrays of shape (beats, lanes) for per-lane operands, (beats,) per beat)


def _multipliers(rng, n):
    """Mostly TFLite's range [2^30, 2^31); some 0, 2^30 (exact powers: ties), INT32_MAX, and a
    few arbitrary int32 (incl. INT32_MIN, for SRDHM's one saturating product)."""
    m = rng.integers(1 << 30, INT32_MAX, n, endpoint=True)
    kind = rng.random(n)
    m[kind < 0.06] = 0
    m[(kind >= 0.06) & (kind < 0.14)] = 1 << 30
    m[(kind >= 0.14) & (kind < 0.18)] = 3 << 29
    m[(kind >= 0.18) & (kind < 0.21)] = INT32_MAX
    odd = (kind >= 0.21) & (kind < 0.25)
    m[odd] = rng.integers(INT32_MIN, INT32_MAX, odd.sum(), endpoint=True)
    m[(kind >= 0.25) & (kind < 0.27)] = INT32_MIN
    return m


def _near_ties(rng, m, shift):
    """Accumulators whose SRDHM result r lands on or next to a RoundingDivideByPOT tie
    (r = k * 2^e + 2^(e-1) + delta, e = -shift), found by dividing by the multiplier."""
    e = np.maximum(-shift, 1)
    r = rng.integers(-(1 << 29), 1 << 29, len(m))
    r = (r >> e << e) + (np.int64(1) << (e - 1)) + rng.integers(-1, 2, len(m))
    r = np.clip(r, -(1 << 29), 1 << 29)
    safe_m = np.where(m >= (1 << 30), m, 1 << 30)
    acc = np.floor_divide(r << 31, safe_m) + rng.integers(0, 2, len(m))
    return np.clip(acc, INT32_MIN, INT32_MAX), safe_m


def edge_case_operands(rng, beats, lanes):
    """acc/multiplier/shift mixing full-range, extreme, small, near-tie and exact-tie values."""
    n = beats * lanes
    m = _multipliers(rng, n)
    shift = rng.integers(SHIFT_MIN, SHIFT_MAX, n, endpoint=True)
    acc = rng.integers(INT32_MIN, INT32_MAX, n, endpoint=True)
    kind = rng.integers(0, 6, n)
    extremes = np.array([INT32_MIN, INT32_MIN + 1, INT32_MAX, INT32_MAX - 1, 0, 1, -1, 1 << 30, -(1 << 30)])
    acc = np.where(kind == 1, rng.choice(extremes, n), acc)
    # typical accumulators: |acc| < 2^bits, small enough not to wrap in the left shift
    bits = rng.integers(0, 31, n)
    small = rng.integers(-(1 << 30), 1 << 30, n) >> bits
    acc = np.where(kind == 2, small >> np.maximum(shift, 0), acc)
    # RoundingDivideByPOT ties (right shifts)
    tie = (kind == 3) & (shift <= 0)
    tie_acc, tie_m = _near_ties(rng, m, shift)
    acc, m = np.where(tie, tie_acc, acc), np.where(tie, tie_m, m)
    # SRDHM exact ties: (2^30 or 3*2^29) times small odd / 2 mod 4 values, both signs
    srdhm_tie = kind == 4
    m = np.where(srdhm_tie, rng.choice([1 << 30, 3 << 29], n), m)
    acc = np.where(srdhm_tie, rng.integers(-4000, 4000, n) * 4 + rng.choice([1, 2, 3], n), acc)
    # INT32_MIN * INT32_MIN (saturates), directly or through a wrapping left shift
    sat = kind == 5
    sat_left = rng.integers(0, 32, n)
    acc = np.where(sat, np.int64(INT32_MIN) >> sat_left, acc)
    m = np.where(sat & (rng.random(n) < 0.5), INT32_MIN, m)
    shift = np.where(sat, sat_left, shift)
    return acc.reshape(beats, lanes), m.reshape(beats, lanes), shift.reshape(beats, lanes)


def every_shift_operands(rng, beats_per_shift, lanes):
    """Every shift in [-32, 31] for ``beats_per_shift`` beats each (all lanes): random TFLite
    multipliers (and 0), accumulators full-range, in-range for the left shift, and near ties."""
    shifts = np.repeat(np.arange(SHIFT_MIN, SHIFT_MAX + 1), beats_per_shift)
    beats = len(shifts)
    shift = np.repeat(shifts[:, None], lanes, axis=1).ravel()
    n = beats * lanes
    m = rng.integers(1 << 30, INT32_MAX, n, endpoint=True)
    m[rng.random(n) < 0.05] = 0
    limit = INT32_MAX >> np.maximum(shift, 0)
    acc = np.floor(rng.random(n) * (2 * limit + 1)).astype(np.int64) - limit
    kind = rng.random(n)
    full = kind < 0.25
    acc[full] = rng.integers(INT32_MIN, INT32_MAX, full.sum(), endpoint=True)
    tie = (kind > 0.6) & (shift <= 0)
    tie_acc, tie_m = _near_ties(rng, m, shift)
    acc, m = np.where(tie, tie_acc, acc), np.where(tie, tie_m, m)
    order = rng.permutation(beats)  # shifts interleaved, not in blocks
    reshape = lambda a: a.reshape(beats, lanes)[order]  # noqa: E731
    return reshape(acc), reshape(m), reshape(shift)


def quantized_scale_operands(rng, beats, lanes):
    """(multiplier, shift) = quantize_multiplier(real) for real scales from 2^-24 to 2^8
    (both < 1 and >= 1, and exact values 1, 2.5, 0.5, 1/3), with accumulators of the size
    that scale would meet (outputs around the int8 range), plus some full-range ones."""
    n = beats * lanes
    reals = 2.0 ** rng.uniform(-24, 8, n)
    special = rng.random(n) < 0.15
    reals[special] = rng.choice([1.0, 2.5, 0.5, 1 / 3, 2.0 ** -20, 1.5, 7.99999, 123.456], special.sum())
    pairs = [quantize_multiplier(r) for r in reals]
    m = np.array([p[0] for p in pairs], np.int64)
    shift = np.array([p[1] for p in pairs], np.int64)
    target = rng.uniform(-400, 400, n)
    acc = np.clip(np.round(target / reals), INT32_MIN, INT32_MAX).astype(np.int64)
    full = rng.random(n) < 0.1
    acc[full] = rng.integers(INT32_MIN, INT32_MAX, full.sum(), endpoint=True)
    # scales >= 1 have no right shift: odd * 2.5 ties only in SRDHM (toward +inf)
    return acc.reshape(beats, lanes), m.reshape(beats, lanes), shift.reshape(beats, lanes)


def random_beat_params(rng, beats):
    """Per-beat out_zp, act_min, act_max: zero points incl. -128 and 127; full, RELU, RELU6-like
    narrow, random, single-value and (rarely) inverted ranges, and TFLite-derived ones."""
    zp = rng.integers(-128, 128, beats)
    zp[rng.random(beats) < 0.2] = -128
    zp[rng.random(beats) < 0.2] = 127
    lo = np.full(beats, -128)
    hi = np.full(beats, 127)
    kind = rng.integers(0, 7, beats)
    a, b = rng.integers(-128, 128, beats), rng.integers(-128, 128, beats)
    lo = np.where(kind == 1, np.minimum(a, b), lo)  # random range
    hi = np.where(kind == 1, np.maximum(a, b), hi)
    lo = np.where(kind == 2, zp, lo)  # RELU
    lo = np.where(kind == 3, zp, lo)  # RELU6-like: a few dozen codes above the zero point
    hi = np.where(kind == 3, np.minimum(127, zp + rng.integers(0, 48, beats)), hi)
    lo = np.where(kind == 4, a, lo)  # a single value
    hi = np.where(kind == 4, a, hi)
    for k in np.nonzero(kind == 5)[0]:  # activation_range as TFLite computes it
        act = ("RELU", "RELU6", "RELU_N1_TO_1", "NONE")[rng.integers(0, 4)]
        lo[k], hi[k] = activation_range(act, float(2.0 ** rng.uniform(-8, 0)), int(zp[k]))
    inverted = rng.random(beats) < 0.01  # never from TFLite; np.clip gives act_max
    lo = np.where(inverted, np.maximum(a, b), lo)
    hi = np.where(inverted, np.minimum(a, b) - 1, hi).clip(-128, 127)
    return zp, lo, hi


def _random_tag(rng, shape):
    if isinstance(shape, data.StructLayout):
        return {name: _random_tag(rng, field.shape) for name, field in shape}
    width = shape.size if isinstance(shape, data.Layout) else Shape.cast(shape).width
    return int(rng.integers(0, 1 << width))


def expected_outputs(acc, multiplier, shift, zp, lo, hi):
    """The golden int8 results, shape (beats, lanes)."""
    return requantize_accumulators(acc, None, multiplier, shift, zp[:, None], lo[:, None], hi[:, None])


def to_beats(rng, tag_shape, acc, multiplier, shift, zp, lo, hi):
    """Input payload dicts and the matching expected output payload dicts."""
    want = expected_outputs(acc, multiplier, shift, zp, lo, hi)
    ins, outs = [], []
    for k in range(len(acc)):
        tag = _random_tag(rng, tag_shape)
        ins.append({"acc": acc[k].tolist(), "multiplier": multiplier[k].tolist(), "shift": shift[k].tolist(),
                    "out_zp": int(zp[k]), "act_min": int(lo[k]), "act_max": int(hi[k]), "tag": tag})
        outs.append({"data": want[k].tolist(), "tag": tag})
    return ins, outs


# --------------------------------------------------------------------------------------------
# Bench


class StreamMonitor:
    """Records the cycle of every input and output transfer; checks the output hold rule."""

    def __init__(self, dut):
        self.dut = dut
        self.in_cycles, self.out_cycles, self.errors = [], [], []

    async def run(self):
        dut, cycle, held = self.dut, 0, None
        while True:
            await ReadOnly()
            o_valid, o_ready = bool(dut.o__valid.value), bool(dut.o__ready.value)
            if held is not None:
                if not o_valid:
                    self.errors.append(f"cycle {cycle}: o.valid dropped before the transfer")
                elif int(dut.o__payload.value) != held:
                    self.errors.append(f"cycle {cycle}: o.payload changed while valid and not ready")
            held = int(dut.o__payload.value) if o_valid and not o_ready else None
            if dut.i__valid.value and dut.i__ready.value:
                self.in_cycles.append(cycle)
            if o_valid and o_ready:
                self.out_cycles.append(cycle)
            await RisingEdge(dut.clk)
            cycle += 1

    def check(self, latency, exact):
        """Every beat out no sooner than ``latency`` cycles after it went in; with ``exact`` (no
        stalls anywhere) exactly ``latency`` cycles, and one beat accepted every cycle."""
        assert not self.errors, "; ".join(self.errors[:5])
        assert len(self.in_cycles) == len(self.out_cycles), (len(self.in_cycles), len(self.out_cycles))
        gaps = [o - i for i, o in zip(self.in_cycles, self.out_cycles)]
        if exact:
            assert set(gaps) == {latency}, f"latency {sorted(set(gaps))} != {latency}"
            first = self.in_cycles[0]
            assert self.in_cycles == list(range(first, first + len(gaps))), "i.ready dropped without stalls"
        else:
            assert min(gaps) >= latency, f"a beat came out after {min(gaps)} < {latency} cycles"


class Bench:
    def __init__(self, dut):
        self.dut = dut
        self.seed = int(os.environ["COCOTB_RANDOM_SEED"])
        self.lanes = int(os.environ["REQUANT_LANES"])
        self.tag_shape = TAG_SHAPES[os.environ.get("REQUANT_TAG", "bit")]
        self.latency = int(os.environ["REQUANT_LATENCY"])
        self.values = int(os.environ.get("REQUANT_VALUES", "4000"))
        self.in_layout = input_layout(self.lanes, self.tag_shape)
        self.out_layout = output_layout(self.lanes, self.tag_shape)

    def rngs(self, salt):
        """numpy rng for the stimulus, Python rng for the stalls: both from the seed and test."""
        return np.random.default_rng([self.seed, salt]), random.Random(self.seed * 1000 + salt)

    async def reset(self):
        dut = self.dut
        Clock(dut.clk, 10, unit="ns").start()
        dut.rst.value = 1
        dut.i__valid.value = 0
        dut.o__ready.value = 0
        for _ in range(3):
            await RisingEdge(dut.clk)
        dut.rst.value = 0
        await RisingEdge(dut.clk)

    async def run(self, ins, outs, stall_rng, idle, stall):
        """Send ``ins``, collect as many outputs, compare with ``outs`` (golden), check timing."""
        assert self.in_layout.size == len(self.dut.i__payload), "payload layout differs from the DUT"
        await self.reset()
        monitor = StreamMonitor(self.dut)
        mon_task = cocotb.start_soon(monitor.run())
        src = StreamSource(self.dut, "i", self.in_layout, self.dut.clk, stall_rng, idle=idle)
        sink = StreamSink(self.dut, "o", self.out_layout, self.dut.clk, stall_rng, stall=stall)
        cocotb.start_soon(src.send(ins))
        budget = (len(ins) + self.latency) * 8 + 200
        got = await sink.receive(len(ins), timeout_cycles=budget)
        for _ in range(self.latency + 2):  # nothing extra may come out
            await RisingEdge(self.dut.clk)
        mon_task.cancel()
        bad = [k for k, (g, w) in enumerate(zip(got, outs)) if g != w]
        if bad:
            k = bad[0]
            raise AssertionError(
                f"{len(bad)} of {len(outs)} beats differ (idle {idle}, stall {stall}); first: beat {k}\n"
                f"  in   {ins[k]}\n  got  {got[k]}\n  want {outs[k]}")
        monitor.check(self.latency, exact=idle == 0 and stall == 0)
        self.dut._log.info(f"{len(outs)} beats x {self.lanes} lanes match (idle {idle}, stall {stall})")


async def _case(dut, salt, operands, size, idle, stall):
    """One stimulus test: ``operands(rng, size(bench), lanes)`` (``size``: beats, or beats per shift)."""
    bench = Bench(dut)
    rng, stall_rng = bench.rngs(salt)
    n = size(bench)
    ops = operands(rng, n, bench.lanes)
    ins, outs = to_beats(rng, bench.tag_shape, *ops, *random_beat_params(rng, len(ops[0])))
    await bench.run(ins, outs, stall_rng, idle=idle, stall=stall)


def _beats(bench):
    return max(bench.values // bench.lanes, 200)


@cocotb.test()
async def edge_cases_with_stalls(dut):
    """Extremes, exact and near ties, saturation, random act ranges; random stalls on i and o."""
    await _case(dut, 1, edge_case_operands, _beats, idle=0.3, stall=0.4)


@cocotb.test()
async def every_shift_with_stalls(dut):
    """Every shift -32..31 (left shifts included) on every lane, light stalls on both sides."""
    await _case(dut, 2, every_shift_operands, lambda b: max(b.values // (64 * b.lanes), 4), idle=0.1, stall=0.1)


@cocotb.test()
async def quantized_scales_with_stalls(dut):
    """Multipliers from quantize_multiplier for scales < 1 and >= 1; heavy output stalls."""
    await _case(dut, 3, quantized_scale_operands, _beats, idle=0.05, stall=0.7)


@cocotb.test()
async def latency_and_throughput(dut):
    """No stalls: every beat out exactly `latency` cycles after it went in, one per cycle."""
    await _case(dut, 4, edge_case_operands, lambda b: 100, idle=0.0, stall=0.0)
