"""StreamRegister: a register slice for a stream, cutting valid, payload *and* ready.

Why: in the LayerEngine the mode multiplexers join blocks that the placer puts far apart (line
buffer, depthwise engine, PE array), and a plain stream connection makes one combinational path
of the producer's output, the multiplexers and the consumer's input logic, and another back
along ``ready``. A slice of an output register and a skid register (`pipeline.skid_output`)
makes every signal crossing it a flip-flop output; ``i.ready`` is ``~skid_valid``. It passes one
word per cycle with no bubbles at a latency of one cycle, and holds two words while stalled.
"""

from amaranth import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from . import pipeline

__all__ = ["StreamRegister"]


class StreamRegister(wiring.Component):
    """One-cycle register slice of a stream of ``payload_shape``.

    Attributes
    ----------
    i : In(stream.Signature(payload_shape))
        ``i.ready`` is a flip-flop: high unless the slice holds two words.
    o : Out(stream.Signature(payload_shape))
        ``o.valid`` and ``o.payload`` are flip-flops.

    ``groups``: slices of the payload registers with their own enable (`pipeline.skid_output`),
    for a wide payload whose ``o.ready`` would otherwise drive one net across all of it.
    """

    def __init__(self, payload_shape, groups=1):
        self._payload_shape = payload_shape
        self._groups = groups
        super().__init__({
            "i": In(stream.Signature(payload_shape)),
            "o": Out(stream.Signature(payload_shape)),
        })

    def elaborate(self, platform):
        m = Module()
        skid_valid = Signal()
        m.d.comb += self.i.ready.eq(~skid_valid)
        pipeline.skid_output(m, self.o, self.i.payload, self.i.valid, skid_valid,
                             groups=self._groups)
        return m
