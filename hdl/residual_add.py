"""ResidualAdd: TFLite int8 ADD of two int8 streams, lane by lane, pipelined.

MobileNetV2's inverted-residual blocks end with ``ADD(block input, project output)``. Doing the
ADD where the projection leaves the PE array means the block's output is written to DRAM once,
and the ADD never runs as a separate layer. The arithmetic is ``reference_integer_ops::Add``
(``verif/golden/ops.py`` :func:`add`, left shift 20)::

    ra  = MultiplyByQuantizedMultiplier((a - a_zp) << 20, a_multiplier, a_shift)
    rb  = MultiplyByQuantizedMultiplier((b - b_zp) << 20, b_multiplier, b_shift)
    out = clip(MultiplyByQuantizedMultiplier(wrap32(ra + rb), out_multiplier, out_shift) + out_zp,
               act_min, act_max)

Structure: input register (the offsets, already shifted) → two
:class:`~dwfuse.hdl.quantized_multiplier.MultiplyByQuantizedMultiplier` per lane (7) → sum
register → :class:`~dwfuse.hdl.requant.Requantizer` (the third rescale, zero point and clamp,
with its backpressure buffer). The first two rescales see ``x = d << 20`` with ``|d| <= 255``:
its low 16 bits are zero, so two of each instance's four partial products are constant zero and
synthesis keeps two DSPs per instance.

Flow control: the stages in front of the Requantizer advance together on ``en =
requantizer.i.ready`` (a flip-flop there), so ``i.ready`` is that flip-flop and ``o.ready``
never reaches ``i.ready`` combinationally.
"""

from amaranth import Module, Signal, signed, unsigned
from amaranth.hdl import Shape, ShapeCastable
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .multiplier import DSP_KINDS
from .quantized_multiplier import MultiplyByQuantizedMultiplier
from .requant import Requantizer

__all__ = ["ResidualAdd", "PARAMS_LAYOUT", "LEFT_SHIFT"]

#: TFLite's int8 ADD scales both inputs up by 2^20 before rescaling them.
LEFT_SHIFT = 20

#: Per-tensor parameters of one ADD, as TFLite's Prepare derives them (held stable while data flows).
PARAMS_LAYOUT = data.StructLayout({
    "a_zp": signed(8),
    "a_multiplier": signed(32),
    "a_shift": signed(6),
    "b_zp": signed(8),
    "b_multiplier": signed(32),
    "b_shift": signed(6),
    "out_multiplier": signed(32),
    "out_shift": signed(6),
    "out_zp": signed(8),
    "act_min": signed(8),
    "act_max": signed(8),
})


class ResidualAdd(wiring.Component):
    """``lanes`` int8 ADDs per cycle with TFLite's arithmetic, fixed latency, full backpressure.

    Parameters
    ----------
    lanes : int
        Element pairs added per transfer.
    tag_shape : shape-castable
        Side data carried from ``i`` to ``o`` unchanged.
    dsp : str
        How the multipliers are built (see `RegisteredMultiplier`): ``"infer"`` or ``"ecp5"``.

    Attributes
    ----------
    params : In(PARAMS_LAYOUT)
        Zero points, multipliers/shifts (any int32 / [-32, 31], bit-exact with the golden
        model) and the output clamp; sampled as data passes, so hold them stable during a run.
    i : In(stream.Signature({"a": int8[lanes], "b": int8[lanes], "tag": tag_shape}))
    o : Out(stream.Signature({"data": int8[lanes], "tag": tag_shape}))
    latency : int
        Cycles from an input transfer to ``o.valid`` without stalls.
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
        if dsp not in DSP_KINDS:
            raise ValueError(f"dsp must be one of {DSP_KINDS}, not {dsp!r}")
        self._lanes = lanes
        self._tag_shape = tag_shape
        self._dsp = dsp
        super().__init__({
            "params": In(PARAMS_LAYOUT),
            "i": In(stream.Signature(data.StructLayout({
                "a": data.ArrayLayout(signed(8), lanes),
                "b": data.ArrayLayout(signed(8), lanes),
                "tag": tag_shape,
            }))),
            "o": Out(stream.Signature(data.StructLayout({
                "data": data.ArrayLayout(signed(8), lanes),
                "tag": tag_shape,
            }))),
        })

    @property
    def lanes(self):
        return self._lanes

    @staticmethod
    def front_latency_for(dsp):
        """Cycles in front of the Requantizer: input register + rescale + sum register."""
        return 1 + MultiplyByQuantizedMultiplier.latency_for(dsp) + 1

    @property
    def latency(self):
        """Input register + rescale + sum register + Requantizer."""
        return self.front_latency_for(self._dsp) + Requantizer.latency_for(self._dsp)

    def elaborate(self, platform):
        m = Module()
        lanes, prm = self._lanes, self.params
        rq = m.submodules.requant = Requantizer(lanes, self._tag_shape, dsp=self._dsp)
        en = Signal()
        m.d.comb += [en.eq(rq.i.ready), self.i.ready.eq(en)]

        def delayed(value, shape, cycles, name, reset_less=True):
            for n in range(cycles):
                reg = Signal(shape, name=f"{name}_d{n + 1}", reset_less=reset_less)
                with m.If(en):
                    m.d.sync += reg.eq(value)
                value = reg
            return value

        front = self.front_latency_for(self._dsp)
        valid = delayed(self.i.valid, 1, front, "valid", reset_less=False)
        tag = delayed(self.i.payload.tag, self._tag_shape, front, "tag")
        acc = Signal(data.ArrayLayout(signed(32), lanes))
        for k in range(lanes):
            sums = []
            for side in ("a", "b"):
                off = self.i.payload[side][k] - prm[f"{side}_zp"]  # 9 bits
                x = delayed(off << LEFT_SHIFT, signed(32), 1, f"{side}{k}_x")
                mbqm = m.submodules[f"{side}{k}_rescale"] = MultiplyByQuantizedMultiplier(dsp=self._dsp)
                m.d.comb += [
                    mbqm.en.eq(en), mbqm.x.eq(x),
                    mbqm.multiplier.eq(prm[f"{side}_multiplier"]), mbqm.shift.eq(prm[f"{side}_shift"]),
                ]
                sums.append(mbqm.y)
            with m.If(en):
                m.d.sync += acc[k].eq(sums[0] + sums[1])  # wraps to int32 like the C++
        m.d.comb += [
            rq.i.valid.eq(valid),
            rq.i.payload.acc.eq(acc),
            rq.i.payload.out_zp.eq(prm.out_zp),
            rq.i.payload.act_min.eq(prm.act_min),
            rq.i.payload.act_max.eq(prm.act_max),
            rq.i.payload.tag.eq(tag),
        ]
        for k in range(lanes):
            m.d.comb += [
                rq.i.payload.multiplier[k].eq(prm.out_multiplier),
                rq.i.payload.shift[k].eq(prm.out_shift),
            ]
        wiring.connect(m, rq.o, wiring.flipped(self.o))
        return m
