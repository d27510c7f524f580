"""verif/models/axi_ram_sim.v (the simulator-resident DRAM of whole-network runs) through `Dma`."""

import pytest

from dwfuse.hdl.dma import Dma
from dwfuse.verif.dram_harness import dram_sources
from dwfuse.verif.sim import run_cocotb
from dwfuse.verif.tb_dram import BUS_BYTES, WORDS


@pytest.mark.parametrize("stall_percent,latency,seed", [(0, 1, 1), (40, 30, 2)])
def test_dram_model_under_dma(stall_percent, latency, seed):
    design = dram_sources(Dma(bus_bytes=BUS_BYTES), "dma", bus_bytes=BUS_BYTES, words=WORDS,
                          read_latency=latency, stall_percent=stall_percent, seed=seed)
    run_cocotb(design, "sim_top", "dwfuse.verif.tb_dram", seed=seed)
