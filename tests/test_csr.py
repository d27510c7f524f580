"""CsrSlave (hdl/csr.py): AXI4-Lite register slave against cocotbext-axi's AxiLiteMaster."""

import pytest

from dwfuse.hdl.csr import CsrSlave
from dwfuse.verif.sim import run_cocotb, to_verilog
from dwfuse.verif.tb_csr import REGS


def test_csr_registers_under_pauses():
    run_cocotb(to_verilog(CsrSlave(REGS, addr_width=6), name="csr"), "csr", "dwfuse.verif.tb_csr", seed=7)


@pytest.mark.parametrize("regs,kwargs", [([("a", "ro"), ("a", "rw")], {}), ([("a", "xx")], {}),
                                         ([("r%d" % k, "rw") for k in range(5)], dict(addr_width=4))])
def test_bad_register_maps(regs, kwargs):
    with pytest.raises(ValueError):
        CsrSlave(regs, **kwargs)
