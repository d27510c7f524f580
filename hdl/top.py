"""Accelerator: the top that drops into an FPGA design — AXI4-Lite registers, one AXI4 master, an interrupt.

Inside (see DESIGN.md section 1)::

    s_axil ─▶ CsrSlave ─▶ JobSequencer ─┬─ rd_cmd (+tag) ─▶ DmaReader ─▶ route by tag ─┬─▶ descriptor
                                        │                                              ├─▶ Upsizer ─▶ weights / tables / dw params (engine loads)
                                        │                                              ├─▶ Upsizer ─▶ engine.i
                                        │                                              └─▶ Upsizer ─▶ residual FIFO ─▶ engine.res
                                        └─ wr_cmd ─▶ DmaWriter ◀─ Downsizer ◀─ engine.o
    m_axi ◀─ Dma (reader + writer)                        irq ◀─ done & irq_enable

Host protocol: write the DRAM image (descriptors, parameters, input), set ``desc_base`` and
``desc_limit`` (the descriptor window), write ``ctrl.start``; wait for ``irq`` (or poll
``status``); read the output; clear ``status.done`` (write 1). ``ctrl.start`` and ``ctrl.abort``
first let the DMA finish what the bus still owes (reads taken and dropped, announced write
bursts completed with no strobes) while the datapath is held in reset, then reset the DMA, so a
new run after an error or an abort in the middle of a run starts clean and AXI-compliant.

Registers (32-bit words; `REGISTERS` gives the offsets):

==============  ====  ======================================================================
ident           ro    0x44574631 ("DWF1")
config          ro    lanes [7:0], pe_cols [15:8], bus_bytes [23:16]
ctrl            wo    bit 0 start, bit 1 abort, bit 2 irq_enable (reads back irq_enable);
                      start and abort first drain the bus and reset the datapath
status          wo    read: bit 0 busy, bit 1 done, bit 2 error, [5:4] error code
                      (1 window, 2 bus, 3 descriptor), [31:16] job; write 1 to bit 1: clear done
desc_base       rw    byte address of the first descriptor
desc_limit      rw    end of the descriptor window (exclusive)
cycles          ro    cycles from start to done/error (perf counters clear at start)
jobs            ro    jobs completed
rd_bytes        ro    bytes read from DRAM
wr_bytes        ro    bytes written to DRAM
engine_busy     ro    cycles the engine was running a layer
in_words        ro    words the engine took on ``i``
in_starved      ro    cycles the running engine was ready for input that DRAM had not delivered
out_words       ro    words the engine gave on ``o``
out_stalled     ro    cycles the engine's output waited for the write DMA
==============  ====  ======================================================================
"""

from amaranth import Module, ResetInserter, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO, SyncFIFOBuffered
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from .axi import AXI4LiteSignature, AXI4Signature
from .config import Config
from .csr import CsrSlave
from .descriptor import dw_param_layout, item_bytes, table_row_layout
from .dma import Dma
from .engine import LayerEngine
from .gearbox import Downsizer, Upsizer
from .multiplier import DSP_KINDS
from .sequencer import IN_FIFO_WORDS, RES_FIFO_WORDS, JobSequencer, Tag
from .stream_register import StreamRegister

__all__ = ["Accelerator", "REGISTERS", "IDENT"]

IDENT = 0x44574631

_REGS = [
    ("ident", "ro"), ("config", "ro"), ("ctrl", "wo"), ("status", "wo"), ("desc_base", "rw"),
    ("desc_limit", "rw"), ("cycles", "ro"), ("jobs", "ro"), ("rd_bytes", "ro"), ("wr_bytes", "ro"),
    ("engine_busy", "ro"), ("in_words", "ro"), ("in_starved", "ro"), ("out_words", "ro"),
    ("out_stalled", "ro"),
]
#: Register name → byte offset.
REGISTERS = {name: 4 * k for k, (name, _) in enumerate(_REGS)}


class Accelerator(wiring.Component):
    """The dwfuse top (see the module docstring).

    Parameters
    ----------
    config : Config
        ``lanes`` must be a multiple of ``bus_bytes`` and ``pe_cols / lanes`` a power of two.
    dsp : str
        Multiplier mapping for the engine (`RegisteredMultiplier`).
    """

    def __init__(self, config, *, dsp="infer"):
        if not isinstance(config, Config):
            raise TypeError(f"config must be a Config, not {config!r}")
        if dsp not in DSP_KINDS:
            raise ValueError(f"dsp must be one of {DSP_KINDS}, not {dsp!r}")
        self._config, self._dsp = config, dsp
        self._seq = JobSequencer(config)          # validates the config for the top
        self._engine = LayerEngine(config, dsp=dsp)
        self._dma = Dma(bus_bytes=config.bus_bytes, addr_width=32)
        super().__init__({
            "s_axil": In(AXI4LiteSignature(addr_width=8, data_width=32)),
            "m_axi": Out(AXI4Signature(addr_width=32, data_width=config.bus_bytes * 8)),
            "irq": Out(1),
            "job_done": Out(1),
        })

    @property
    def config(self):
        return self._config

    def elaborate(self, platform):
        m = Module()
        c = self._config
        bb, bus_bits = c.bus_bytes, c.bus_bytes * 8
        word_bits = c.lanes * 8
        ratio = c.lanes // bb

        csr = m.submodules.csr = CsrSlave(_REGS, addr_width=8)
        wiring.connect(m, wiring.flipped(self.s_axil), csr.s_axil)

        # ---- start / abort: drain the bus, reset the datapath, then start ----------------------
        # ctrl.start or ctrl.abort: the DMA stops issuing and takes or completes (with empty
        # strobes) what the bus still owes while the rest of the datapath is held in reset; once
        # the DMA is idle it is reset too, and a start proceeds on a clean datapath. So a run can
        # be abandoned at any point without leaving the interconnect mid-transaction.
        draining, start_pending, dma_rst, start_next, irq_en = (Signal(name=n) for n in (
            "draining", "start_pending", "dma_rst", "start_next", "irq_en"))
        core_rst = Signal()
        m.d.sync += [dma_rst.eq(0), start_next.eq(0)]
        with m.If(csr.ctrl_we):
            m.d.sync += irq_en.eq(csr.ctrl[2])
        with m.If(csr.ctrl_we & (csr.ctrl[0] | csr.ctrl[1])):
            m.d.sync += [draining.eq(1), start_pending.eq(csr.ctrl[0])]
        with m.Elif(draining & self._dma.idle):
            m.d.sync += [draining.eq(0), dma_rst.eq(1)]
        with m.If(dma_rst):
            m.d.sync += [start_next.eq(start_pending), start_pending.eq(0)]
        m.d.comb += core_rst.eq(draining | dma_rst)

        def datapath(name, component, reset=core_rst):
            m.submodules[name] = ResetInserter(reset)(component)
            return component

        seq = datapath("sequencer", self._seq)
        dma = datapath("dma", self._dma, reset=dma_rst)
        m.d.comb += dma.drain.eq(draining)
        engine = datapath("engine", self._engine)
        tags = datapath("tags", SyncFIFOBuffered(width=Tag.WIDTH, depth=16))
        m.d.comb += seq.start.eq(start_next)

        # ---- commands: to the reader (their tags to the router) and the writer -----------------------
        # through register slices: the sequencer's walkers and arbitration and the engines' window
        # checks are each a deep cone, and joined they made the top's deepest paths
        rd_slice = datapath("rd_cmd_slice", StreamRegister(seq.rd_cmd.payload.shape()))
        wiring.connect(m, seq.rd_cmd, rd_slice.i)
        rd_cmd = rd_slice.o
        m.d.comb += [
            dma.rd_cmd.payload.eq(rd_cmd.payload.cmd),
            dma.rd_cmd.valid.eq(rd_cmd.valid & tags.w_rdy),
            rd_cmd.ready.eq(dma.rd_cmd.ready & tags.w_rdy),
            tags.w_data.eq(rd_cmd.payload.tag),
            tags.w_en.eq(rd_cmd.valid & rd_cmd.ready),
        ]
        wr_slice = datapath("wr_cmd_slice", StreamRegister(seq.wr_cmd.payload.shape()))
        wiring.connect(m, seq.wr_cmd, wr_slice.i)
        wiring.connect(m, wr_slice.o, dma.wr_cmd)
        wiring.connect(m, wiring.flipped(self.m_axi), dma.m_axi)

        # ---- read data: route by the head tag -----------------------------------------------------
        def beats_of(layout_bits):
            return -(-layout_bits // bus_bits)

        w_bits = c.lanes * c.pe_cols * 8
        t_layout, p_layout = table_row_layout(c), dw_param_layout(c)
        up = {
            Tag.DESC: None,
            Tag.WEIGHTS: datapath("up_weights", Upsizer(bus_bits, w_bits, beats_of(w_bits))),
            Tag.TABLES: datapath("up_tables", Upsizer(bus_bits, t_layout.size, item_bytes(t_layout, c) // bb)),
            Tag.PARAMS: datapath("up_params", Upsizer(bus_bits, p_layout.size, item_bytes(p_layout, c) // bb)),
            Tag.INPUT: datapath("up_input", Upsizer(bus_bits, word_bits, ratio)),
            Tag.RESIDUAL: datapath("up_residual", Upsizer(bus_bits, word_bits, ratio)),
        }
        # read data through a slice: the tag switch below and the converters' ready would
        # otherwise reach into the read DMA's FIFO and credit count
        rd_data_slice = datapath("rd_data_slice", StreamRegister(dma.rd_data.payload.shape()))
        wiring.connect(m, dma.rd_data, rd_data_slice.i)
        rdata = rd_data_slice.o
        m.d.comb += tags.r_en.eq(rdata.valid & rdata.ready & rdata.payload.last)
        with m.Switch(tags.r_data):
            for tag, conv in up.items():
                sink = seq.desc_in if conv is None else conv.i
                m.d.comb += sink.payload.data.eq(rdata.payload.data)
                with m.Case(tag):
                    m.d.comb += [sink.valid.eq(rdata.valid & tags.r_rdy), rdata.ready.eq(sink.ready & tags.r_rdy)]

        # ---- parameter loads at running addresses ------------------------------------------------
        counts = {name: Signal(24, name=f"loaded_{name}") for name in ("weights", "tables", "params")}
        for port, conv, name, fields in (
            (engine.wload, up[Tag.WEIGHTS], "weights", None),
            (engine.tload, up[Tag.TABLES], "tables", t_layout),
            (engine.pload, up[Tag.PARAMS], "params", p_layout),
        ):
            m.d.comb += [port.valid.eq(conv.o.valid), conv.o.ready.eq(port.ready)]
            addr_field = "addr" if name != "params" else "chunk"
            m.d.comb += getattr(port.payload, addr_field).eq(counts[name])
            if fields is None:
                m.d.comb += port.payload.data.eq(conv.o.payload.data)
            else:
                item = data.View(fields, conv.o.payload.data)
                m.d.comb += [getattr(port.payload, f).eq(getattr(item, f)) for f, _ in fields]
            with m.If(seq.load_reset | core_rst):   # weights land from the job's weight-buffer base
                m.d.sync += counts[name].eq(seq.wload_base if name == "weights" else 0)
            with m.Elif(port.valid & port.ready):
                m.d.sync += counts[name].eq(counts[name] + 1)
        # a flip-flop (the hand-over it allows loads ~800 registers): a cycle late, and the
        # sequencer waits for it at least three cycles after load_reset, so never stale
        m.d.sync += seq.loads_done.eq((counts["weights"] == seq.load_counts.weights)
                                      & (counts["tables"] == seq.load_counts.tables)
                                      & (counts["params"] == seq.load_counts.params))

        # ---- activations -----------------------------------------------------------------------------
        res_fifo = datapath("res_fifo", SyncFIFOBuffered(width=word_bits, depth=RES_FIFO_WORDS))
        # The input FIFO reads asynchronously, so it lands in distributed RAM (128 words) and
        # leaves the block RAMs to the engine: as SyncFIFOBuffered it took 2 DP16KD, one more
        # than the ecp5 top had left. The engine registers what it reads (its input slices).
        in_fifo = datapath("in_fifo", SyncFIFO(width=word_bits, depth=IN_FIFO_WORDS))
        m.d.comb += [
            in_fifo.w_en.eq(up[Tag.INPUT].o.valid), in_fifo.w_data.eq(up[Tag.INPUT].o.payload.data),
            up[Tag.INPUT].o.ready.eq(in_fifo.w_rdy),
            engine.i.valid.eq(in_fifo.r_rdy), engine.i.payload.data.eq(in_fifo.r_data),
            in_fifo.r_en.eq(engine.i.ready),
            seq.in_taken.eq(engine.i.valid & engine.i.ready),
            res_fifo.w_en.eq(up[Tag.RESIDUAL].o.valid), res_fifo.w_data.eq(up[Tag.RESIDUAL].o.payload.data),
            up[Tag.RESIDUAL].o.ready.eq(res_fifo.w_rdy),
            engine.res.valid.eq(res_fifo.r_rdy), engine.res.payload.data.eq(res_fifo.r_data),
            res_fifo.r_en.eq(engine.res.ready),
        ]
        down = datapath("down_output", Downsizer(bus_bits, ratio))
        m.d.comb += [
            down.i.valid.eq(engine.o.valid), down.i.payload.data.eq(engine.o.payload.data),
            engine.o.ready.eq(down.i.ready),
        ]
        wiring.connect(m, down.o, dma.wr_data)

        # ---- sequencer ↔ engine / DMA ----------------------------------------------------------------
        m.d.comb += [
            engine.cfg.eq(seq.engine_cfg), engine.start.eq(seq.engine_start),
            seq.engine_busy.eq(engine.busy),
            seq.wr_idle.eq(dma.wr_idle & ~wr_slice.o.valid),   # (a command in the slice is not done)
            seq.desc_base.eq(csr.desc_base), seq.desc_limit.eq(csr.desc_limit),
        ]
        with m.If(dma.rd_error != 0):
            m.d.comb += seq.dma_error.eq(dma.rd_error)
        with m.Elif(dma.wr_error != 0):
            m.d.comb += seq.dma_error.eq(dma.wr_error)

        # ---- status, interrupt, performance counters ---------------------------------------------
        done = Signal()
        with m.If(seq.done):
            m.d.sync += done.eq(1)
        with m.If((csr.status_we & csr.status[1]) | start_next):
            m.d.sync += done.eq(0)
        failed = seq.error != 0
        m.d.comb += [
            csr.ident.eq(IDENT),
            csr.config.eq(c.lanes | (c.pe_cols << 8) | (bb << 16)),
            csr.ctrl_rd.eq(irq_en << 2),
            csr.status_rd.eq((seq.busy | draining) | (done << 1) | (failed << 2) | (seq.error << 4) | (seq.error_job << 16)),
            self.irq.eq(irq_en & (done | failed)),
            self.job_done.eq(seq.job_done),
            csr.jobs.eq(seq.jobs),
            csr.rd_bytes.eq(dma.beats_read << exact_log2(bb)),
            csr.wr_bytes.eq(dma.beats_written << exact_log2(bb)),
        ]
        perf = {
            "cycles": seq.busy,
            "engine_busy": engine.busy,
            "in_words": engine.i.valid & engine.i.ready,
            "in_starved": engine.busy & engine.i.ready & ~engine.i.valid,
            "out_words": engine.o.valid & engine.o.ready,
            "out_stalled": engine.o.valid & ~engine.o.ready,
        }
        for name, event in perf.items():
            counter = Signal(32, name=f"perf_{name}")
            m.d.comb += getattr(csr, name).eq(counter)
            with m.If(start_next):
                m.d.sync += counter.eq(0)
            with m.Elif(event):
                m.d.sync += counter.eq(counter + 1)
        return m
