"""AXI4 write DMA: writes a stream of bus words to (address, beats) commands inside their window.

Why it is built this way: the accelerator's output must leave at one bus word per cycle, and a
bad descriptor must not be able to write a single byte outside the window it was granted.

- Each command is checked whole (`WindowCheck`) before its first AW; a bad command raises the
  sticky ``error`` (``ERR_WINDOW``), issues nothing and leaves its data unconsumed (the top
  aborts the job and resets the datapath). A B response other than OKAY raises ``ERR_BUS``.
- Bursts are INCR, full width, all strobes set, at most ``max_burst`` beats, never across a
  4 KiB boundary. AW runs ahead of W: each accepted AW pushes its length into a FIFO, and the
  W side forwards exactly that many data words, ``wlast`` on the final one.
- The data path to W is one register stage (a skid buffer), so ``data.ready`` does not depend
  combinationally on ``wready``.
- ``idle`` (nothing checked, issued, in flight or awaiting a response) tells the top when a
  job's output is really in DRAM.
- ``drain`` stops cleanly, as AXI requires: no new AW (one already offered stays offered), the
  bursts already announced are completed with all strobes clear (they write nothing), and the
  responses are collected; ``idle`` then allows a reset.
"""

from amaranth import Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from .axi import AXI4WriteSignature, BURST_INCR, RESP_OKAY
from .dma_command import ERR_BUS, ERR_NONE, CommandIntake, check_engine_params, command_layout

__all__ = ["DmaWriter"]

#: Bursts whose AW has been sent but whose W beats have not all left.
_BURST_QUEUE = 4


class DmaWriter(wiring.Component):
    """AXI4 write master with window-checked commands.

    Parameters
    ----------
    bus_bytes, addr_width, max_burst : int
        As `DmaReader`.

    Attributes
    ----------
    cmd : In(stream.Signature(command_layout(addr_width)))
    data : In(stream.Signature({"data": bus_bytes * 8 bits}))
        Exactly ``beats`` words per command, in address order.
    axi : Out(AXI4WriteSignature)
    error : Out(2)
        Sticky error code until reset.
    idle : Out(1)
    beats_written : Out(32)
        Words sent on W since reset (a performance counter; wraps).
    """

    def __init__(self, *, bus_bytes=8, addr_width=32, max_burst=16):
        check_engine_params(bus_bytes, max_burst)
        self._bus_bytes, self._addr_width, self._max_burst = bus_bytes, addr_width, max_burst
        super().__init__({
            "cmd": In(stream.Signature(command_layout(addr_width))),
            "data": In(stream.Signature(data.StructLayout({"data": unsigned(bus_bytes * 8)}))),
            "axi": Out(AXI4WriteSignature(addr_width=addr_width, data_width=bus_bytes * 8)),
            "error": Out(2),
            "idle": Out(1),
            "drain": In(1),
            "beats_written": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        bb, aw, mb = self._bus_bytes, self._addr_width, self._max_burst
        lg = exact_log2(bb)

        intake = CommandIntake(m, self.cmd, addr_width=aw, bus_bytes=bb, max_burst=mb, abort=self.drain)
        error = intake.error
        m.d.comb += self.error.eq(error)

        # ---- AW issue ---------------------------------------------------------------------------
        lens = m.submodules.lens = SyncFIFOBuffered(width=8, depth=_BURST_QUEUE)
        burst = intake.burst

        awvalid = Signal()
        awaddr = Signal(aw)
        awlen = Signal(8)
        issue = Signal()
        aw_done = Signal()
        outstanding = Signal(range(2 * _BURST_QUEUE + 2))  # AWs sent whose B has not come back
        m.d.comb += [
            self.axi.awid.eq(0), self.axi.awaddr.eq(awaddr), self.axi.awlen.eq(awlen),
            self.axi.awsize.eq(lg), self.axi.awburst.eq(BURST_INCR), self.axi.awvalid.eq(awvalid),
            # The length FIFO has room for this burst once its AW is accepted (at most one
            # burst between issue and push).
            issue.eq(intake.active & ~self.drain & ~awvalid & lens.w_rdy & (outstanding < 2 * _BURST_QUEUE)),
            aw_done.eq(awvalid & self.axi.awready),
            lens.w_data.eq(awlen),
            lens.w_en.eq(aw_done),
        ]
        m.d.comb += intake.take.eq(issue)
        with m.If(issue):
            m.d.sync += [awvalid.eq(1), awaddr.eq(intake.addr), awlen.eq(burst - 1)]
        with m.If(aw_done):
            m.d.sync += awvalid.eq(0)

        # ---- W: forward lens' head burst of data words through a skid register ----------------
        count = Signal(8)
        wvalid = Signal()
        wdata = Signal(bb * 8)
        wstrb = Signal(bb)
        wlast = Signal()
        w_done = Signal()
        take = Signal()
        room = Signal()
        m.d.comb += [
            self.axi.wdata.eq(wdata), self.axi.wstrb.eq(wstrb), self.axi.wlast.eq(wlast),
            self.axi.wvalid.eq(wvalid),
            w_done.eq(wvalid & self.axi.wready),
            # Load the register when it is empty or being emptied, and a burst is open; aborting,
            # load empty beats (no strobes) instead of data.
            room.eq(lens.r_rdy & (~wvalid | self.axi.wready)),
            self.data.ready.eq(room & ~self.drain),
            take.eq((self.data.valid & self.data.ready) | (room & self.drain)),
            lens.r_en.eq(take & (count == lens.r_data)),
        ]
        with m.If(take):
            m.d.sync += [wvalid.eq(1), wdata.eq(self.data.payload.data), wlast.eq(count == lens.r_data),
                         wstrb.eq(Mux(self.drain, 0, (1 << bb) - 1)),
                         count.eq(Mux(count == lens.r_data, 0, count + 1))]
        with m.Elif(w_done):
            m.d.sync += wvalid.eq(0)
        beats = Signal(32)
        m.d.comb += self.beats_written.eq(beats)
        with m.If(w_done):
            m.d.sync += beats.eq(beats + 1)

        # ---- B ----------------------------------------------------------------------------------
        b_take = Signal()
        m.d.comb += [self.axi.bready.eq(1), b_take.eq(self.axi.bvalid)]
        m.d.sync += outstanding.eq(outstanding + aw_done - b_take)
        with m.If(b_take & (self.axi.bresp != RESP_OKAY) & (error == ERR_NONE)):
            m.d.sync += error.eq(ERR_BUS)

        m.d.comb += self.idle.eq(~intake.busy & ~awvalid & ~lens.r_rdy & ~wvalid
                                 & (outstanding == 0))
        return m
