"""The accelerator's DRAM port: one AXI4 master shared by a read engine and a write engine.

`DmaReader` owns the AR/R channels and `DmaWriter` the AW/W/B channels, so the two never compete
for a channel and the top needs no arbiter; this file only wires them to one standard
``m_axi`` port (see hdl/axi.py for the Verilog names) and merges their status.
"""

from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .axi import AXI4Signature, connect_members
from .dma_reader import DmaReader
from .dma_writer import DmaWriter

__all__ = ["Dma"]


class Dma(wiring.Component):
    """`DmaReader` + `DmaWriter` behind one AXI4 master port.

    Attributes
    ----------
    rd_cmd, rd_data : the reader's ``cmd`` and ``data`` ports.
    wr_cmd, wr_data : the writer's ``cmd`` and ``data`` ports.
    m_axi : Out(AXI4Signature)
    rd_error, wr_error : Out(2)
        Sticky error codes of the two engines (hdl/dma_command.py).
    idle : Out(1)
        Both engines idle: every requested word delivered and every write acknowledged.
    wr_idle : Out(1)
        The writer idle: every write acknowledged (reads may still be in flight).
    drain : In(1)
        Both engines stop issuing and drain what the bus still owes (see `DmaReader`,
        `DmaWriter`); reset them once ``idle``.
    beats_read, beats_written : Out(32)
    """

    def __init__(self, *, bus_bytes=8, addr_width=32, max_burst=16):
        self._reader = DmaReader(bus_bytes=bus_bytes, addr_width=addr_width, max_burst=max_burst)
        self._writer = DmaWriter(bus_bytes=bus_bytes, addr_width=addr_width, max_burst=max_burst)
        rs, ws = self._reader.signature.members, self._writer.signature.members
        super().__init__({
            "rd_cmd": rs["cmd"], "rd_data": rs["data"],
            "wr_cmd": ws["cmd"], "wr_data": ws["data"],
            "m_axi": Out(AXI4Signature(addr_width=addr_width, data_width=bus_bytes * 8)),
            "rd_error": Out(2), "wr_error": Out(2), "idle": Out(1), "wr_idle": Out(1), "drain": In(1),
            "beats_read": Out(32), "beats_written": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        rd = m.submodules.reader = self._reader
        wr = m.submodules.writer = self._writer
        connect_members(m, self.m_axi, rd.axi)
        connect_members(m, self.m_axi, wr.axi)
        wiring.connect(m, wiring.flipped(self.rd_cmd), rd.cmd)
        wiring.connect(m, rd.data, wiring.flipped(self.rd_data))
        wiring.connect(m, wiring.flipped(self.wr_cmd), wr.cmd)
        wiring.connect(m, wiring.flipped(self.wr_data), wr.data)
        m.d.comb += [
            rd.drain.eq(self.drain), wr.drain.eq(self.drain),
            self.rd_error.eq(rd.error), self.wr_error.eq(wr.error), self.idle.eq(rd.idle & wr.idle), self.wr_idle.eq(wr.idle),
            self.beats_read.eq(rd.beats_read), self.beats_written.eq(wr.beats_written),
        ]
        return m
