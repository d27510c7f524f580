"""Requantizer: int32 accumulators (bias already added) → int8, TFLite bit-exact, pipelined.

The last step of every int8 conv / depthwise / FC: per output channel, rescale the int32 sum by
the channel's multiplier and shift, add the output zero point and clamp to the fused
activation's range. Per lane and per beat it computes exactly
``verif/golden/ops.py`` :func:`requantize_accumulators` with ``bias=None``::

    data[k] = clip(multiply_by_quantized_multiplier(acc[k], multiplier[k], shift[k]) + out_zp,
                   act_min, act_max)

Structure (one transfer per cycle in steady state, fixed latency)::

    i ─▶ input reg ─▶ MultiplyByQuantizedMultiplier x lanes (10) ─▶ ZeroPointClamp x lanes (3) ─▶ out reg + skid ─▶ o
         └──────── valid, tag, out_zp, act_min, act_max delayed alongside ────────────────────────┘

Flow control, and why: every pipeline register advances on one enable, ``en = ~skid_valid``.
The output is a two-entry buffer (an output register plus a skid register). While the output
register is held (``o.valid & ~o.ready``) the value leaving the pipeline is parked in the skid
register, which stops the pipeline on the next cycle. So ``i.ready`` and the enable of the
~680 pipeline flip-flops per lane come straight from one flip-flop: ``o.ready`` reaches only the
output buffer's muxes and never ``i.ready`` combinationally, and a chain of components does not
build a long ready path through their pipelines. Stalls freeze bubbles in place (no bubble
squeezing); that costs throughput only while the consumer is itself stalling.

Measured on an LFE5U-85F (nextpnr, 4 lanes, SynthHarness overhead subtracted): 16
MULT18X18D, ~1680 LUT4, 544 CCU2C, ~2730 flip-flops; 187 MHz with ``dsp="ecp5"``, 122 MHz with
``dsp="infer"`` (Yosys leaves the DSPs combinational; see :mod:`dwfuse.hdl.multiplier`).

The input register is there because upstream operands typically come straight from block RAM
(per-channel multiplier/shift tables), whose clock-to-output is slow on ECP5, and the first
pipeline stage starts with a barrel shifter.
"""

from amaranth import Module, Shape, Signal, signed, unsigned
from amaranth.hdl import ShapeCastable
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from . import pipeline
from .multiplier import MULTIPLIER_KINDS
from .quantized_multiplier import MultiplyByQuantizedMultiplier
from .zero_point_clamp import ZeroPointClamp

__all__ = ["Requantizer", "input_layout", "output_layout"]


def input_layout(lanes, tag_shape=unsigned(1)):
    """Payload layout of :attr:`Requantizer.i` (per-lane operands, per-beat zero point and range)."""
    return data.StructLayout({
        "acc": data.ArrayLayout(signed(32), lanes),
        "multiplier": data.ArrayLayout(signed(32), lanes),
        "shift": data.ArrayLayout(signed(6), lanes),
        "out_zp": signed(8),
        "act_min": signed(8),
        "act_max": signed(8),
        "tag": tag_shape,
    })


def output_layout(lanes, tag_shape=unsigned(1)):
    """Payload layout of :attr:`Requantizer.o`: ``lanes`` int8 results and the unchanged tag."""
    return data.StructLayout({
        "data": data.ArrayLayout(signed(8), lanes),
        "tag": tag_shape,
    })


class Requantizer(wiring.Component):
    """``lanes`` TFLite requantizations per cycle, a fixed :attr:`latency`, full backpressure.

    Parameters
    ----------
    lanes : int
        Values requantized per transfer (each with its own multiplier and shift).
    tag_shape : shape-castable
        Side data carried from ``i`` to ``o`` unchanged (first/last flags, a channel index...).
    dsp : str
        ``"infer"`` (default), ``"ecp5"`` or ``"lut"``: how the multipliers are built, see
        :class:`~dwfuse.hdl.quantized_multiplier.MultiplyByQuantizedMultiplier`. ECP5 builds
        need ``"ecp5"`` to reach 150 MHz; ``"lut"`` uses no DSP and adds 3 to the latency.

    Attributes
    ----------
    i : In(stream.Signature(input_layout(lanes, tag_shape)))
        ``acc[k]`` int32 (bias added), ``multiplier[k]`` int32, ``shift[k]`` signed(6) for each
        lane; ``out_zp``, ``act_min``, ``act_max`` int8 and ``tag`` for the whole beat.
        Any int32 multiplier and any shift in [-32, 31] is exact (TFLite: [2^30, 2^31) or 0,
        [-31, 30]); ``act_min > act_max`` yields ``act_max`` as ``np.clip`` does.
    o : Out(stream.Signature(output_layout(lanes, tag_shape)))
        ``data[k]`` int8 and the beat's ``tag``.
    latency : int
        Cycles from an input transfer to its ``o.valid`` when nothing stalls (15; 16 with
        ``dsp="ecp5"``, 18 with ``dsp="lut"``).
        Throughput: one beat per cycle while ``o.ready`` stays high. ``i.ready`` is low only
        while the skid register is full, i.e. the cycle after ``o`` refused a beat with
        another one right behind it; it depends on no input combinationally.
    """

    def __init__(self, lanes, tag_shape=unsigned(1), *, dsp="infer"):
        if not isinstance(lanes, int) or isinstance(lanes, bool):
            raise TypeError(f"lanes must be an integer, not {lanes!r}")
        if lanes < 1:
            raise ValueError(f"lanes must be at least 1, not {lanes!r}")
        if not isinstance(tag_shape, ShapeCastable):
            try:
                Shape.cast(tag_shape)
            except TypeError:
                raise TypeError(f"tag_shape must be a shape-castable object, not {tag_shape!r}") from None
        if dsp not in MULTIPLIER_KINDS:
            raise ValueError(f"dsp must be one of {MULTIPLIER_KINDS}, not {dsp!r}")
        self._lanes = lanes
        self._tag_shape = tag_shape
        self._dsp = dsp
        super().__init__({
            "i": In(stream.Signature(input_layout(lanes, tag_shape))),
            "o": Out(stream.Signature(output_layout(lanes, tag_shape))),
        })

    @property
    def lanes(self):
        return self._lanes

    @property
    def tag_shape(self):
        return self._tag_shape

    @property
    def dsp(self):
        return self._dsp

    @property
    def latency(self):
        """Input register + multiply/round + zero point/clamp + output register."""
        return self.latency_for(self._dsp)

    @staticmethod
    def latency_for(dsp):
        """:attr:`latency` of a Requantizer built with ``dsp`` (without building one)."""
        return 1 + MultiplyByQuantizedMultiplier.latency_for(dsp) + ZeroPointClamp.LATENCY + 1

    def elaborate(self, platform):
        m = Module()
        en = Signal()
        skid_valid = Signal()
        m.d.comb += [en.eq(~skid_valid), self.i.ready.eq(en)]

        def delayed(value, shape, cycles, name, reset_less=True):
            return pipeline.delay(m, en, name, shape, value, cycles, reset_less=reset_less)

        in_layout = input_layout(self._lanes, self._tag_shape)
        out_layout = output_layout(self._lanes, self._tag_shape)
        valid1 = delayed(self.i.valid, 1, 1, "valid", reset_less=False)
        p = delayed(self.i.payload, in_layout, 1, "in")

        mbqm_lat = MultiplyByQuantizedMultiplier.latency_for(self._dsp)
        clamp_lat = ZeroPointClamp.LATENCY
        zp = delayed(p.out_zp, signed(8), mbqm_lat, "zp")
        lo = delayed(p.act_min, signed(8), mbqm_lat, "act_min")
        hi = delayed(p.act_max, signed(8), mbqm_lat, "act_max")
        last = Signal(out_layout)  # what leaves the pipeline this cycle
        last_valid = delayed(valid1, 1, mbqm_lat + clamp_lat, "valid", reset_less=False)
        m.d.comb += last.tag.eq(delayed(p.tag, self._tag_shape, mbqm_lat + clamp_lat, "tag"))
        for k in range(self._lanes):
            mbqm = m.submodules[f"mbqm{k}"] = MultiplyByQuantizedMultiplier(dsp=self._dsp)
            clamp = m.submodules[f"clamp{k}"] = ZeroPointClamp()
            m.d.comb += [
                mbqm.en.eq(en), mbqm.x.eq(p.acc[k]), mbqm.multiplier.eq(p.multiplier[k]),
                mbqm.shift.eq(p.shift[k]),
                clamp.en.eq(en), clamp.x.eq(mbqm.y), clamp.zero_point.eq(zp),
                clamp.lo.eq(lo), clamp.hi.eq(hi),
                last.data[k].eq(clamp.y),
            ]

        # Output register + skid register (see the module docstring).
        pipeline.skid_output(m, self.o, last, last_valid, skid_valid)
        return m
