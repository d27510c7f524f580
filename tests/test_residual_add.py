"""ResidualAdd (hdl/residual_add.py): TFLite int8 ADD lanes against verif/golden under Verilator."""

import numpy as np
import pytest

from dwfuse.hdl.residual_add import ResidualAdd
from dwfuse.verif.sim import run_cocotb, to_verilog
from dwfuse.verif.tb_residual_add import CASE_ENV, make_phase, write_case


@pytest.mark.parametrize("lanes,seed", [(2, 1), (4, 2)])
def test_residual_add_against_golden(tmp_path, lanes, seed):
    """TFLite-derived and extreme parameters, stalls on both sides, and one phase at full rate."""
    rng = np.random.default_rng(seed)
    phases = [make_phase(rng, beats=60, lanes=lanes),
              make_phase(rng, beats=60, lanes=lanes, kind="extreme", idle=0.5, stall=0.5),
              make_phase(rng, beats=40, lanes=lanes, kind="extreme", idle=0.0, stall=0.0),
              make_phase(rng, beats=40, lanes=lanes, idle=0.0, stall=0.0)]
    case = tmp_path / "case.npz"
    write_case(case, lanes, phases)
    run_cocotb(to_verilog(ResidualAdd(lanes, 8), name="residual_add"), "residual_add",
               "dwfuse.verif.tb_residual_add", seed=seed, extra_env={CASE_ENV: str(case)})


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_bad_parameters():
    with pytest.raises(TypeError):
        ResidualAdd(2.0)
    with pytest.raises(ValueError):
        ResidualAdd(0)
    with pytest.raises(TypeError):
        ResidualAdd(2, tag_shape="x")
