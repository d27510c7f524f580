"""AXI4-Lite register slave: the host's control and status window into the accelerator.

Why a small hand-written slave: the register file is a dozen 32-bit words with three kinds of
access, and the host touches it a few times per inference; what matters is that it follows
AXI4-Lite exactly (independent AW and W, one response per write, held responses under
backpressure) so it works behind any interconnect.

Register kinds (``CsrSlave(regs)`` with ``regs`` a list of ``(name, kind)``, word ``k`` at byte
offset ``4 * k``):

- ``"ro"``: read-only; the value comes from the port ``<name>`` (In(32)); writes are ignored.
- ``"rw"``: read/write storage; the port ``<name>`` (Out(32)) holds the value.
- ``"wo"``: write strobe; writing puts the data on ``<name>`` (Out(32)) and pulses
  ``<name>_we`` (Out(1)) for one cycle; reads return the port ``<name>_rd`` (In(32)), so a
  control register can read back status bits (e.g. write-1-to-clear flags).

Writes honour ``wstrb`` for ``"rw"`` registers. An address past the map answers SLVERR.
"""

from amaranth import Array, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .axi import AXI4LiteSignature, RESP_OKAY, RESP_SLVERR

__all__ = ["CsrSlave", "KINDS"]

KINDS = ("ro", "rw", "wo")


class CsrSlave(wiring.Component):
    """AXI4-Lite slave over a list of 32-bit registers (see the module docstring)."""

    def __init__(self, regs, *, addr_width=8):
        regs = list(regs)
        names = [n for n, _ in regs]
        if len(set(names)) != len(names):
            raise ValueError(f"register names repeat: {names}")
        for name, kind in regs:
            if kind not in KINDS:
                raise ValueError(f"register {name!r}: kind must be one of {KINDS}, not {kind!r}")
        if 4 * len(regs) > 1 << addr_width:
            raise ValueError(f"{len(regs)} registers do not fit {addr_width} address bits")
        self._regs, self._addr_width = regs, addr_width
        members = {"s_axil": In(AXI4LiteSignature(addr_width=addr_width, data_width=32))}
        for name, kind in regs:
            if kind == "ro":
                members[name] = In(32)
            elif kind == "rw":
                members[name] = Out(32)
            else:
                members.update({name: Out(32), f"{name}_we": Out(1), f"{name}_rd": In(32)})
        super().__init__(members)

    @property
    def offsets(self):
        """Register name → byte offset."""
        return {name: 4 * k for k, (name, _) in enumerate(self._regs)}

    def elaborate(self, platform):
        m = Module()
        bus = self.s_axil
        n = len(self._regs)
        idx_bits = max(1, ceil_log2(n))

        # ---- write: capture AW and W independently, act when both are in --------------------------
        aw_full, w_full, bvalid, bresp = Signal(), Signal(), Signal(), Signal(2)
        aw_addr, w_data, w_strb = Signal(self._addr_width), Signal(32), Signal(4)
        m.d.comb += [
            bus.awready.eq(~aw_full), bus.wready.eq(~w_full),
            bus.bvalid.eq(bvalid), bus.bresp.eq(bresp),
        ]
        with m.If(bus.awvalid & ~aw_full):
            m.d.sync += [aw_full.eq(1), aw_addr.eq(bus.awaddr)]
        with m.If(bus.wvalid & ~w_full):
            m.d.sync += [w_full.eq(1), w_data.eq(bus.wdata), w_strb.eq(bus.wstrb)]
        do_write = Signal()
        m.d.comb += do_write.eq(aw_full & w_full & ~bvalid)
        w_index = aw_addr[2:]
        for name, kind in self._regs:
            if kind == "wo":
                m.d.sync += getattr(self, f"{name}_we").eq(0)
        with m.If(do_write):
            m.d.sync += [aw_full.eq(0), w_full.eq(0), bvalid.eq(1),
                         bresp.eq(Mux(w_index < n, RESP_OKAY, RESP_SLVERR))]
            with m.Switch(w_index):
                for k, (name, kind) in enumerate(self._regs):
                    with m.Case(k):
                        port = getattr(self, name)
                        if kind == "rw":
                            for b in range(4):
                                with m.If(w_strb[b]):
                                    m.d.sync += port[8 * b:8 * b + 8].eq(w_data[8 * b:8 * b + 8])
                        elif kind == "wo":
                            m.d.sync += [port.eq(w_data), getattr(self, f"{name}_we").eq(1)]
        with m.If(bvalid & bus.bready):
            m.d.sync += bvalid.eq(0)

        # ---- read: one outstanding; the answer is held until taken --------------------------------
        rvalid, rresp, rdata = Signal(), Signal(2), Signal(32)
        m.d.comb += [bus.arready.eq(~rvalid), bus.rvalid.eq(rvalid), bus.rresp.eq(rresp),
                     bus.rdata.eq(rdata)]
        values = Array(
            getattr(self, f"{name}_rd") if kind == "wo" else getattr(self, name)
            for name, kind in self._regs
        )
        r_index = Signal(idx_bits)
        m.d.comb += r_index.eq(bus.araddr[2:2 + idx_bits])
        with m.If(bus.arvalid & ~rvalid):
            inside = bus.araddr[2:] < n
            m.d.sync += [rvalid.eq(1), rdata.eq(Mux(inside, values[r_index], 0)),
                         rresp.eq(Mux(inside, RESP_OKAY, RESP_SLVERR))]
        with m.If(rvalid & bus.rready):
            m.d.sync += rvalid.eq(0)
        return m
