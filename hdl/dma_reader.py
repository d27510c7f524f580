"""AXI4 read DMA: turns (address, beats, window) commands into a stream of bus words.

Why it is built this way: the accelerator's input streams must run at one bus word per cycle
while DRAM answers with a long latency, so several bursts are in flight, and the engine must
never be able to read outside the window its descriptor grants.

- Each command is checked whole (`WindowCheck`) before its first burst; a bad one raises the
  sticky ``error`` (``ERR_WINDOW``) and issues nothing. An R beat with a non-OKAY response raises
  ``ERR_BUS``. The engine keeps going after an error (the top aborts the job and resets it).
- Bursts are INCR, full width, at most ``max_burst`` beats and never across a 4 KiB boundary.
- Credits: a burst is requested only when the output FIFO (``2 * max_burst`` words) has room
  for every beat requested and not yet delivered, so ``rready`` is always high and a slow
  consumer never holds the read channel.
- ``last`` marks the final word of each command (a small FIFO remembers, per burst, whether
  it ends its command; bursts return in order because they all use ID 0).
- A new command is accepted as soon as the previous one has issued its last burst, so
  back-to-back commands keep the bus busy.
- ``drain`` stops cleanly, as AXI requires: no new burst, an AR already offered stays offered,
  and every beat still owed by the slave is taken and dropped; ``idle`` rises when none is left,
  after which the engine may be reset without leaving the interconnect mid-transaction.
"""

from amaranth import Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from .axi import AXI4ReadSignature, BURST_INCR, RESP_OKAY
from .dma_command import ERR_BUS, ERR_NONE, CommandIntake, check_engine_params, command_layout

__all__ = ["DmaReader"]


class DmaReader(wiring.Component):
    """AXI4 read master with window-checked commands.

    Parameters
    ----------
    bus_bytes : int
        Data width of the AXI port in bytes (8 for the ecp5 preset).
    addr_width : int
    max_burst : int
        Longest burst in beats (power of two, 2..256).

    Attributes
    ----------
    cmd : In(stream.Signature(command_layout(addr_width)))
    data : Out(stream.Signature({"data": bus_bytes * 8 bits, "last": 1}))
        The command's words in address order; ``last`` on the final one.
    axi : Out(AXI4ReadSignature)
    error : Out(2)
        Sticky error code (``ERR_NONE``, ``ERR_WINDOW``, ``ERR_BUS``) until reset.
    idle : Out(1)
        No command pending, no burst outstanding, no word waiting in the FIFO.
    beats_read : Out(32)
        Words received from the bus since reset (a performance counter; wraps).
    """

    def __init__(self, *, bus_bytes=8, addr_width=32, max_burst=16):
        check_engine_params(bus_bytes, max_burst)
        self._bus_bytes, self._addr_width, self._max_burst = bus_bytes, addr_width, max_burst
        super().__init__({
            "cmd": In(stream.Signature(command_layout(addr_width))),
            "data": Out(stream.Signature(data.StructLayout({"data": unsigned(bus_bytes * 8), "last": 1}))),
            "axi": Out(AXI4ReadSignature(addr_width=addr_width, data_width=bus_bytes * 8)),
            "error": Out(2),
            "idle": Out(1),
            "drain": In(1),
            "beats_read": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        bb, aw, mb = self._bus_bytes, self._addr_width, self._max_burst
        lg = exact_log2(bb)
        depth = 2 * mb

        intake = CommandIntake(m, self.cmd, addr_width=aw, bus_bytes=bb, max_burst=mb, abort=self.drain)
        error = intake.error
        m.d.comb += self.error.eq(error)

        # ---- burst issue (AR), against output-FIFO credits -------------------------------------
        fifo = m.submodules.fifo = SyncFIFOBuffered(width=bb * 8 + 1, depth=depth)
        ends = m.submodules.ends = SyncFIFOBuffered(width=1, depth=depth)  # per burst: ends its command
        reserved = Signal(range(depth + 1))   # beats requested and not yet delivered downstream
        burst = intake.burst

        arvalid = Signal()
        araddr = Signal(aw)
        # room in the FIFO for the next burst, a flip-flop computed from the previous cycle's
        # ``burst`` and reserved count: used only when the intake was already active then (so
        # ``burst`` has not changed since), and the count only falls in between (a reserve
        # makes the intake inactive for a cycle). A cycle late, never wrong.
        room, was_active = Signal(), Signal()
        m.d.sync += [room.eq(reserved + burst <= depth), was_active.eq(intake.active)]
        arlen = Signal(8)
        reserve = Signal()
        ar_done = Signal()
        m.d.comb += [
            self.axi.arid.eq(0), self.axi.araddr.eq(araddr), self.axi.arlen.eq(arlen),
            self.axi.arsize.eq(lg), self.axi.arburst.eq(BURST_INCR), self.axi.arvalid.eq(arvalid),
            reserve.eq(intake.active & was_active & ~self.drain & ~arvalid & room & ends.w_rdy),
            ar_done.eq(arvalid & self.axi.arready),
        ]
        m.d.comb += intake.take.eq(reserve)
        with m.If(reserve):
            m.d.sync += [arvalid.eq(1), araddr.eq(intake.addr), arlen.eq(burst - 1)]
        m.d.comb += [ends.w_data.eq(intake.last), ends.w_en.eq(reserve)]
        with m.If(ar_done):
            m.d.sync += arvalid.eq(0)

        # ---- R beats into the FIFO (always room: credits) --------------------------------------
        r_take = Signal()
        m.d.comb += [
            self.axi.rready.eq(fifo.w_rdy),
            r_take.eq(self.axi.rvalid & fifo.w_rdy),
            fifo.w_data.eq(Mux(self.axi.rlast & ends.r_data[0], 1 << (bb * 8), 0) | self.axi.rdata),
            fifo.w_en.eq(r_take),
            ends.r_en.eq(r_take & self.axi.rlast),
        ]
        beats = Signal(32)
        m.d.comb += self.beats_read.eq(beats)
        with m.If(r_take):
            m.d.sync += beats.eq(beats + 1)
            with m.If((self.axi.rresp != RESP_OKAY) & (error == ERR_NONE)):
                m.d.sync += error.eq(ERR_BUS)

        # ---- output ------------------------------------------------------------------------------
        out = Signal()
        m.d.comb += [
            self.data.valid.eq(fifo.r_rdy & ~self.drain),
            self.data.payload.data.eq(fifo.r_data[:bb * 8]),
            self.data.payload.last.eq(fifo.r_data[bb * 8]),
            fifo.r_en.eq(self.data.ready | self.drain),     # aborting: drop what arrives
            out.eq(fifo.r_rdy & fifo.r_en),
        ]
        m.d.sync += reserved.eq(reserved + Mux(reserve, burst, 0) - out)
        m.d.comb += self.idle.eq(~intake.busy & (reserved == 0) & ~arvalid)
        return m
