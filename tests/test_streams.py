"""verif/streams.py: payload packing round-trips, and the cocotb source/sink under stalls."""

from pathlib import Path

import pytest
from amaranth import signed, unsigned
from amaranth.lib import data

from dwfuse.verif.sim import run_cocotb, to_verilog
from dwfuse.verif.streams import pack, unpack
from test_toolchain import StreamAccumulator

LAYOUT = data.StructLayout({"a": signed(5), "b": data.ArrayLayout(signed(8), 3), "c": unsigned(2)})


def test_pack_unpack_round_trip():
    v = {"a": -16, "b": [-128, 127, -1], "c": 3}
    bits = pack(LAYOUT, v)
    assert unpack(LAYOUT, bits) == v
    # field b starts at bit 5, element 1 at bit 13: 127 there
    assert (bits >> 13) & 0xFF == 127 and bits & 0x1F == 0x10


def test_pack_rejects_out_of_range():
    with pytest.raises(ValueError):
        pack(signed(8), 128)


@pytest.mark.parametrize("seed", [1, 2])
def test_source_sink_under_stalls(seed):
    run_cocotb(to_verilog(StreamAccumulator(), name="stream_acc"), "stream_acc",
               Path(__file__).with_name("cocotb_streams.py"), seed=seed)
