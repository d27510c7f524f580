# amaranth: UnusedElaboratable=no
"""BlockRAM (hdl/block_ram.py): inferred and ECP5 DP16KD builds against one Python model.

Both builds of the same bench (verif/tb_block_ram.py: four RAMs covering every DP16KD tiling)
run the same random traffic; the DP16KD build simulates with verif/models/DP16KD.v.
"""

import pytest

from dwfuse.hdl import block_ram
from dwfuse.hdl.block_ram import BlockRAM, ecp5_tiling
from dwfuse.verif.sim import design_sources, run_cocotb
from dwfuse.verif.tb_block_ram import BENCH_SHAPES, INPUT_REGS_ENV, BlockRAMBench

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


@pytest.mark.parametrize("input_regs", [False, True])
@pytest.mark.parametrize("primitive", ["infer", "ecp5"])
def test_random_traffic(primitive, input_regs, monkeypatch):
    # groups of 2 blocks: the 6-block RAM of the bench gets 3 sets of input registers
    monkeypatch.setattr(block_ram, "DUP_GROUP", 2)
    sources = design_sources(BlockRAMBench(primitive, input_regs), "block_ram_bench")
    if primitive == "ecp5":
        assert not isinstance(sources, str) and any(p.name == "DP16KD.v" for p in sources[1:])
    run_cocotb(sources, "block_ram_bench", "dwfuse.verif.tb_block_ram", seed=3,
               extra_env={INPUT_REGS_ENV: str(int(input_regs))})


def test_input_regs_latency():
    assert BlockRAM(8, 16).latency == 2 and BlockRAM(8, 16, input_regs=True).latency == 3


def test_ecp5_tiling_uses_fewest_blocks():
    # (width, depth) -> (mode bits, mode words, width tiles, depth tiles)
    assert ecp5_tiling(64, 456) == (36, 512, 2, 1)      # a line-buffer bank of the ecp5 preset
    assert ecp5_tiling(576, 160) == (36, 512, 16, 1)    # the depthwise weight RAM
    assert ecp5_tiling(18, 700) == (18, 1024, 1, 1)
    assert ecp5_tiling(16, 1500) == (9, 2048, 2, 1)
    assert ecp5_tiling(1024, 2048) == (9, 2048, 114, 1)
    assert ecp5_tiling(64, 1100) == (36, 512, 2, 3)
    for width, depth in BENCH_SHAPES:
        bits, words, wt, dt = ecp5_tiling(width, depth)
        assert wt * bits >= width and dt * words >= depth
        assert BlockRAM(width, depth, primitive="ecp5").blocks() == wt * dt


@pytest.mark.parametrize("args, kwargs, match", [
    ((8, 0), {}, "depth must be a positive integer"),
    ((8, 16), {"primitive": "xilinx"}, "primitive must be one of"),
    ((0, 16), {}, "at least one bit"),
])
def test_rejects_bad_parameters(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        BlockRAM(*args, **kwargs)
