"""AXI4 and AXI4-Lite port signatures (ARM IHI 0022), seen from the master.

Why here and not from a library: Amaranth 0.5 ships no AXI signatures, and the top needs plain,
standard-named ports so it drops into a Vivado or Lattice design and so cocotbext-axi can attach
its bus models by prefix. In the generated Verilog a port ``m_axi`` of `AXI4Signature` becomes
``m_axi__awaddr``, ``m_axi__wdata``, ... (cocotbext-axi: ``AxiBus.from_prefix(dut, "m_axi_")``).

Only the signals the accelerator needs are present: one ID (``*id`` always 0), INCR bursts,
full-width beats. AxiBus treats lock/cache/prot/qos as optional; a system integrator ties them
(AxCACHE = 0b0011, AxPROT = 0 are the usual values for a DMA master).
"""

from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = [
    "AXI4ReadSignature", "AXI4WriteSignature", "AXI4Signature", "AXI4LiteSignature",
    "BURST_INCR", "RESP_OKAY", "RESP_SLVERR", "RESP_DECERR", "BOUNDARY_BYTES", "connect_members",
]

BURST_INCR = 0b01
RESP_OKAY, RESP_SLVERR, RESP_DECERR = 0b00, 0b10, 0b11
#: A burst must not cross this address boundary (AXI4 A3.4.1).
BOUNDARY_BYTES = 4096


def _check(addr_width, data_width):
    if not isinstance(addr_width, int) or not 12 <= addr_width <= 64:
        raise ValueError(f"addr_width must be an integer in 12..64, not {addr_width!r}")
    if data_width not in (32, 64, 128, 256, 512, 1024):
        raise ValueError(f"data_width must be a power of two from 32 to 1024 bits, not {data_width!r}")


def _read_members(addr_width, data_width, id_width):
    return {
        "arid": Out(id_width), "araddr": Out(addr_width), "arlen": Out(8), "arsize": Out(3),
        "arburst": Out(2), "arvalid": Out(1), "arready": In(1),
        "rid": In(id_width), "rdata": In(data_width), "rresp": In(2), "rlast": In(1),
        "rvalid": In(1), "rready": Out(1),
    }


def _write_members(addr_width, data_width, id_width):
    return {
        "awid": Out(id_width), "awaddr": Out(addr_width), "awlen": Out(8), "awsize": Out(3),
        "awburst": Out(2), "awvalid": Out(1), "awready": In(1),
        "wdata": Out(data_width), "wstrb": Out(data_width // 8), "wlast": Out(1),
        "wvalid": Out(1), "wready": In(1),
        "bid": In(id_width), "bresp": In(2), "bvalid": In(1), "bready": Out(1),
    }


class AXI4ReadSignature(wiring.Signature):
    """AR and R channels of an AXI4 master."""

    def __init__(self, *, addr_width=32, data_width=64, id_width=1):
        _check(addr_width, data_width)
        super().__init__(_read_members(addr_width, data_width, id_width))


class AXI4WriteSignature(wiring.Signature):
    """AW, W and B channels of an AXI4 master."""

    def __init__(self, *, addr_width=32, data_width=64, id_width=1):
        _check(addr_width, data_width)
        super().__init__(_write_members(addr_width, data_width, id_width))


class AXI4Signature(wiring.Signature):
    """A full AXI4 master (read and write channels)."""

    def __init__(self, *, addr_width=32, data_width=64, id_width=1):
        _check(addr_width, data_width)
        super().__init__({**_read_members(addr_width, data_width, id_width),
                          **_write_members(addr_width, data_width, id_width)})


class AXI4LiteSignature(wiring.Signature):
    """An AXI4-Lite master; a register slave takes it as ``In(AXI4LiteSignature(...))``."""

    def __init__(self, *, addr_width=12, data_width=32):
        if not isinstance(addr_width, int) or not 2 <= addr_width <= 64:
            raise ValueError(f"addr_width must be an integer in 2..64, not {addr_width!r}")
        if data_width not in (32, 64):
            raise ValueError(f"AXI4-Lite data_width is 32 or 64, not {data_width!r}")
        super().__init__({
            "awaddr": Out(addr_width), "awprot": Out(3), "awvalid": Out(1), "awready": In(1),
            "wdata": Out(data_width), "wstrb": Out(data_width // 8), "wvalid": Out(1), "wready": In(1),
            "bresp": In(2), "bvalid": In(1), "bready": Out(1),
            "araddr": Out(addr_width), "arprot": Out(3), "arvalid": Out(1), "arready": In(1),
            "rdata": In(data_width), "rresp": In(2), "rvalid": In(1), "rready": Out(1),
        })


def connect_members(m: Module, outer, inner):
    """Wire the members ``inner`` has to the same-named members of ``outer`` (same direction).

    ``outer`` is a component's own port (e.g. the top's full AXI4 master) and ``inner`` a
    submodule's port carrying a subset of it (e.g. a reader's AR/R channels): master-driven
    signals flow outward, slave-driven ones inward.
    """
    for name, member in inner.signature.members.items():
        if member.flow == Out:
            m.d.comb += getattr(outer, name).eq(getattr(inner, name))
        else:
            m.d.comb += getattr(inner, name).eq(getattr(outer, name))
