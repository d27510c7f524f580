"""Dma (hdl/dma.py): AXI4 read/write engines against cocotbext-axi's AxiRam under Verilator."""

import json

import pytest

from dwfuse.hdl.dma import Dma
from dwfuse.verif.sim import run_cocotb, to_verilog
from dwfuse.verif.tb_dma import CASE_ENV


@pytest.mark.parametrize("bus_bytes,pause,seed", [(8, 0.3, 1), (16, 0.0, 2), (8, 0.7, 3)])
def test_dma_against_axi_ram(bus_bytes, pause, seed):
    """Parallel reads and writes with 4 KiB crossings and random pauses on every channel; bad
    commands (outside the window, unaligned, empty, wrapping) issue nothing and write nothing."""
    case = dict(bus_bytes=bus_bytes, addr_width=32, pause=pause)
    run_cocotb(to_verilog(Dma(bus_bytes=bus_bytes), name="dma"), "dma", "dwfuse.verif.tb_dma",
               seed=seed, extra_env={CASE_ENV: json.dumps(case)})


@pytest.mark.parametrize("kwargs", [dict(max_burst=3), dict(max_burst=512), dict(bus_bytes=6),
                                    dict(bus_bytes=64, max_burst=128)])
@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_bad_parameters(kwargs):
    with pytest.raises(ValueError):
        Dma(**kwargs)
