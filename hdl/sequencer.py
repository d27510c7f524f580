"""JobSequencer: walks a chain of job descriptors in DRAM and runs each one on the LayerEngine.

Why it exists: the host should start a whole network with one register write, and the
accelerator must refuse a descriptor it cannot run rather than hang or write somewhere else.
Per job (hdl/descriptor.py defines the format):

1. FETCH: read the descriptor (``DESC_BEATS`` beats) from ``desc_base + job * DESC_BYTES``,
   inside the window ``[desc_base, desc_limit)`` the host granted.
2. CHECK: every field against the Config maxima and against each other (mode, stride, pads,
   sizes, the output size the 3x3 geometry implies, k_words / out_tiles / chunk counts per
   mode, weight-buffer and table space, line-buffer row size, residual row size). A bad
   descriptor stops the chain with ``ERR_DESCRIPTOR`` before any of its data moves; a tensor
   access (input, output, residual) whose span leaves its window stops it with ``ERR_WINDOW``,
   also before anything moves (the DMA engines check every command again). The same stage
   translates the descriptor into the engine's ``cfg`` (mirroring `engine.engine_cfg`). Its
   facts are registers, some two deep (state SETTLE), so no check is one long path.
   The check's twelve products (row spans, weight-buffer words, row sizes) go one after
   another through one `SerialMultiplier` (one cycle per bit of the smaller operand: the
   decision comes 40-70 cycles after the descriptor's last beat on the test models, at most
   ~250, while the previous job streams) instead of DSPs: the engine needs every DSP of the
   LFE5U-85F.
3. LOAD: read the weights, tables and depthwise parameters of the job's stages (all inside the
   ``weights`` window); the top writes them to the engine at running addresses: weights from
   the job's ``wbuf_base`` (pe0's, then pe1's), tables from 0 (pe0's, then pe1's), so pe1's
   weights land at ``wbuf_base + pe0.weight_words`` and its tables at ``pe0.out_tiles``.
4. STREAM: start the engine; read the input tensor and (for a residual block, PW_DW_PW or
   DW_PW with stride 1) the residual tensor, and write the output tensor, one DMA command per row (per pixel when the pixels of
   a row are not contiguous, i.e. an output-channel tile). Residual row ``y`` is requested right
   after input row ``y``: the project output of row ``y`` starts (and waits for its residual)
   as soon as the first columns of input row ``y + 1`` are in, so the residual must not queue
   behind that row in the shared, in-order read stream. It goes into a FIFO of two residual rows
   (``RES_FIFO_WORDS``; the check limits a row to half), which always has room for it: row
   ``y - 1``'s residuals drain once input row ``y`` is in, and that row precedes it.
5. The job is done when the engine is idle and every write is acknowledged.

Two FSMs overlap consecutive jobs of a chain. The *back end* streams the running job (4-5) from
its own copy of the descriptor; meanwhile the *front end* fetches and checks the next
descriptor (1-2) and loads its weights (3) — the step that costs most on late, weight-heavy
layers (a 960x160 1x1 conv's 150 KiB take 19k cycles on an 8-byte bus) — into weight-buffer
words the running job does not read: if the two jobs' ``[wbuf_base, wbuf_base + weights)``
ranges overlap it waits for the running job to finish, so correctness never depends on the
compiler's placement (it alternates jobs between the two ends of the buffer). Weight reads go
in commands of ``WEIGHT_CHUNK_WORDS`` words, alternating with the running job's row reads on
the one in-order read channel, so neither starves the other. Tables and depthwise parameters
(small, and read by the running job) load once the engine is idle; then the job is handed
over (the engine's cfg, prepared at the check, is applied at that moment). A descriptor the
check refuses is reported only after the running job has finished (``error_job`` names it),
so every job before it completes.

DMA errors (a command outside its window: nothing is issued; a bus error response) also stop
the chain; ``error`` holds the first code and ``error_job`` the job index.
"""

from amaranth import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import bits_for, exact_log2

from .config import Config
from .descriptor import (MODE_CODES, descriptor_layout, dw_param_layout, item_bytes, pe_context_layout,
                         table_row_layout)
from .dma_command import ERR_NONE, ERR_WINDOW, MAX_BEATS_BITS, command_layout
from .engine import Mode, engine_layouts
from .linebuffer import MAX_PAD
from .pointwise import geometry
from .serial_multiplier import SerialMultiplier, constant_product

__all__ = ["JobSequencer", "Tag", "ERR_DESCRIPTOR", "RES_FIFO_WORDS", "IN_FIFO_WORDS", "IN_PIECE_WORDS",
           "read_command_layout"]

#: Error code of a descriptor the hardware cannot run (DMA codes are 1 and 2).
ERR_DESCRIPTOR = 3

#: Words of the residual FIFO between the read DMA and the engine; a residual row may use half.
RES_FIFO_WORDS = 512

#: Words of the input FIFO between the read DMA and the engine, and of one input read command:
#: a command is issued only when the FIFO has room for all of it, so it never holds the one
#: in-order read channel while a slow (compute-bound) engine drains it, and weight loads for
#: the next job get through meanwhile.
IN_FIFO_WORDS = 128
IN_PIECE_WORDS = 32


class Tag:
    """Destination of a read command's data."""

    DESC, WEIGHTS, TABLES, PARAMS, INPUT, RESIDUAL = range(6)
    WIDTH = 3


def read_command_layout(addr_width=32):
    return data.StructLayout({"cmd": command_layout(addr_width), "tag": unsigned(Tag.WIDTH)})


class _Walker:
    """Issues the DMA commands of one tensor access, row by row (or pixel by pixel).

    ``row_words`` is ``words_per_px * cols``, a register (multiplied at the check).
    With ``piece_beats``, a contiguous row goes in commands of at most that many beats (the
    input's: each is issued only against room in the input FIFO, see `JobSequencer`).
    ``contiguous`` is assigned by the caller (synchronously, from the running descriptor).

    Timing: what a step decides comes from flip-flops (``x_last``, ``last_row``, the next row's
    address ``next_row_addr``, the window's ``end``), so the command's acceptance, which comes
    from the DMA, only selects between registers; the adders and compares that prepare them
    read the running descriptor, which is stable from one cycle before `reset` to the job's end.
    """

    def __init__(self, m, name, access, *, rows, cols, words_per_px, row_words, contiguous, bus_lg, lanes_lg,
                 piece_beats=None):
        self.m, self.bus_lg = m, bus_lg
        self.y = Signal(16, name=f"{name}_y")
        self.x = Signal(16, name=f"{name}_x")
        self.next_row_addr = Signal(32, name=f"{name}_next_row_addr")
        self.addr = Signal(32, name=f"{name}_addr")
        self.done = Signal(name=f"{name}_done")
        self.x_last = Signal(name=f"{name}_x_last")
        self.last_row = Signal(name=f"{name}_last_row")
        self.end = Signal(32, name=f"{name}_end")
        m.d.sync += self.end.eq(access.base + access.length)
        self.access, self.rows, self.cols = access, rows, cols
        self.contiguous = contiguous
        # beats of one command: a whole row or one pixel
        px_beats = Signal(MAX_BEATS_BITS, name=f"{name}_px_beats")
        row_beats = Signal(MAX_BEATS_BITS, name=f"{name}_row_beats")
        m.d.comb += [px_beats.eq((words_per_px << lanes_lg) >> bus_lg),
                     row_beats.eq((row_words << lanes_lg) >> bus_lg)]
        self.beats = Mux(contiguous, row_beats, px_beats)
        self.piece_beats = piece_beats
        if piece_beats is not None:    # beats of the row not yet issued (row_beats when fresh)
            self.left = Signal(MAX_BEATS_BITS, name=f"{name}_left")
            self.fresh = Signal(name=f"{name}_fresh")
            whole = Mux(self.fresh, row_beats, self.left)
            self.beats = Mux(whole > piece_beats, piece_beats, whole)
            self.row_rest = whole

    def reset(self):
        a = self.access
        self.m.d.sync += [self.y.eq(0), self.x.eq(0),
                          self.next_row_addr.eq(a.base + a.row_pitch), self.addr.eq(a.base),
                          self.done.eq(0), self.x_last.eq(self.cols == 1), self.last_row.eq(self.rows == 1)]
        if self.piece_beats is not None:
            self.m.d.sync += self.fresh.eq(1)

    def command(self):
        a = self.access
        return {"addr": self.addr, "beats": self.beats, "base": a.base, "end": self.end}

    def advance(self):
        """The current command was taken: step to the next pixel or row. Returns row_end (comb)."""
        m, a = self.m, self.access
        row_end = Signal()
        if self.piece_beats is not None:   # contiguous rows in pieces: the last piece ends it
            m.d.comb += row_end.eq(self.row_rest <= self.piece_beats)
            with m.If(~row_end):
                m.d.sync += [self.fresh.eq(0), self.left.eq(self.row_rest - self.piece_beats),
                             self.addr.eq(self.addr + (self.piece_beats << self.bus_lg))]
            with m.Else():
                m.d.sync += self.fresh.eq(1)
        else:
            m.d.comb += row_end.eq(self.contiguous | self.x_last)
        with m.If(row_end):
            m.d.sync += [self.x.eq(0), self.y.eq(self.y + 1),
                         self.next_row_addr.eq(self.next_row_addr + a.row_pitch),
                         self.addr.eq(self.next_row_addr), self.x_last.eq(self.cols == 1),
                         self.last_row.eq(self.y + 2 == self.rows)]
            with m.If(self.last_row):
                m.d.sync += self.done.eq(1)
        if self.piece_beats is None:   # (pieces step their address above)
            with m.Else():
                m.d.sync += [self.x.eq(self.x + 1), self.addr.eq(self.addr + a.pixel_pitch),
                             self.x_last.eq(self.x + 2 == self.cols)]
        return row_end


class JobSequencer(wiring.Component):
    """Descriptor fetch, check, parameter loads and tensor streaming (see the module docstring).

    Attributes
    ----------
    start : In(1)
        Pulse: run the chain from ``desc_base`` (ignored while busy).
    desc_base, desc_limit : In(32)
        First descriptor and the end of the descriptor window.
    busy, done : Out(1)
        ``done`` pulses when a chain ends without error.
    error : Out(2) ; error_job : Out(16)
    rd_cmd : Out(stream(read_command_layout)) ; wr_cmd : Out(stream(command_layout))
    desc_in : In(stream({"data": bus bits}))
        The descriptor's beats (routed by the top by tag).
    dma_error : In(2) ; dma_idle : In(1)
    engine_cfg : Out(engine cfg) ; engine_start : Out(1) ; engine_busy : In(1)
    loads_done : In(1)
        The top's load counters have reached ``load_counts``; ``load_reset`` pulses at each job's
        start so they count from zero.
    load_counts : Out({"weights", "tables", "params"})
    jobs : Out(16)
        Jobs completed since the last start.
    job_done : Out(1)
        Pulses as each job completes (a trace for logic analysers and the simulation's per-job
        cycle log).
    """

    #: Weight words per read command of a weight load (interleaved with the running job's rows).
    WEIGHT_CHUNK_WORDS = 4

    def __init__(self, config):
        if not isinstance(config, Config):
            raise TypeError(f"config must be a Config, not {config!r}")
        parts = config.pe_cols // config.lanes
        if config.pe_cols % config.lanes or parts & (parts - 1):
            raise ValueError(f"pe_cols / lanes must be a power of two, not {config.pe_cols}/{config.lanes}")
        if config.lanes % config.bus_bytes:
            raise ValueError(f"lanes {config.lanes} must be a multiple of bus_bytes {config.bus_bytes}")
        self._config = config
        self._desc = descriptor_layout()
        self._desc_bytes = item_bytes(self._desc, config)
        self._eng = engine_layouts(config)
        super().__init__({
            "start": In(1), "desc_base": In(32), "desc_limit": In(32),
            "busy": Out(1), "done": Out(1), "error": Out(2), "error_job": Out(16),
            "rd_cmd": Out(stream.Signature(read_command_layout())),
            "wr_cmd": Out(stream.Signature(command_layout(32))),
            "desc_in": In(stream.Signature(data.StructLayout({"data": unsigned(config.bus_bytes * 8)}))),
            "dma_error": In(2), "wr_idle": In(1), "in_taken": In(1),
            "engine_cfg": Out(self._eng.cfg), "engine_start": Out(1), "engine_busy": In(1),
            "loads_done": In(1), "load_reset": Out(1), "wload_base": Out(24),
            "load_counts": Out(data.StructLayout({"weights": unsigned(24), "tables": unsigned(16),
                                                  "params": unsigned(16)})),
            "jobs": Out(16), "job_done": Out(1),
        })

    @property
    def desc_bytes(self):
        return self._desc_bytes

    def elaborate(self, platform):
        m = Module()
        c = self._config
        g = geometry(c)
        bb = c.bus_bytes
        bus_lg, lanes_lg = exact_log2(bb), exact_log2(c.lanes)
        parts_lg = exact_log2(c.pe_cols // c.lanes)
        desc_beats = self._desc_bytes // bb
        w_beats = item_bytes(data.ArrayLayout(unsigned(8), c.lanes * c.pe_cols), c) // bb
        t_beats = item_bytes(table_row_layout(c), c) // bb
        p_beats = item_bytes(dw_param_layout(c), c) // bb

        # ---- descriptor register -------------------------------------------------------------
        raw = Signal(desc_beats * bb * 8)
        d = Signal(self._desc)
        m.d.comb += d.as_value().eq(raw[:self._desc.size])
        got = Signal(range(desc_beats + 1))

        job = Signal(16)
        desc_addr = Signal(32)
        error = Signal(2)
        m.d.comb += self.error.eq(error)

        mode = d.mode
        is_pw, is_dw, is_conv3 = mode == MODE_CODES["PW"], mode == MODE_CODES["DW"], mode == MODE_CODES["CONV3"]
        is_dwpw, is_block = mode == MODE_CODES["DW_PW"], mode == MODE_CODES["PW_DW_PW"]
        has_3x3 = ~is_pw
        has_dw = is_dw | is_dwpw | is_block
        pe0_used = is_pw | is_conv3 | is_block
        pe1_used = is_dwpw | is_block
        last_stage = Signal(pe_context_layout())            # the stage writing the output
        m.d.comb += last_stage.eq(Mux(is_dwpw | is_block, d.pe1.as_value(), d.pe0.as_value()))

        # ---- MULTIPLY: the check's products, one after another through one SerialMultiplier --
        # (as combinational products Yosys gave them 20 DSPs, which the engine needs). Each entry:
        # the register that keeps the product, and the operands a (<= 32 bits), b (<= 17 bits).
        lb_chunks = Mux(is_block, d.chunks_mid, d.chunks_in)
        m.submodules.multiplier = mul = SerialMultiplier(32, 17)
        ceil3_width = Signal(16)           # ceil(width / 3) = (width + 2) * 43691 >> 17, exact below 2**16
        lb_words = Signal(32)              # line-buffer words of one row (per bank)
        pe0_words, pe1_words = Signal(32), Signal(32)      # k_words * out_tiles
        in_row_words, out_row_words = Signal(32), Signal(32)

        def span(name):
            return Signal(48, name=f"{name}_span")

        spans = {name: (span(f"{name}_rows"), span(f"{name}_cols")) for name in ("input", "output", "residual")}
        products = [
            (ceil3_width, 43691, d.width + 2),
            (lb_words, ceil3_width, lb_chunks),
            (pe0_words, d.pe0.k_words, d.pe0.out_tiles),
            (pe1_words, d.pe1.k_words, d.pe1.out_tiles),
            (in_row_words, d.chunks_in, d.width),
            (out_row_words, d.chunks_out, d.out_width),
        ]
        for name, acc, rows, cols in (("input", d.input, d.height, d.width),
                                      ("output", d.output, d.out_height, d.out_width),
                                      ("residual", d.residual_in, d.out_height, d.out_width)):
            rows_span, cols_span = spans[name]    # first to last byte: (rows - 1) * row_pitch ...
            products += [(rows_span, acc.row_pitch, rows - 1), (cols_span, acc.pixel_pitch, cols - 1)]
        product_step = Signal(range(len(products)))
        product_started = Signal()
        product_done = Signal()
        with m.Switch(product_step):
            for k, (target, a, b) in enumerate(products):
                with m.Case(k):
                    m.d.comb += [mul.a.eq(a), mul.b.eq(b)]
                    with m.If(product_done):
                        m.d.sync += target.eq(mul.product[17:] if target is ceil3_width else mul.product)

        # ---- CHECK: facts registered from the descriptor and the products, ANDed at JUDGE ------
        def held(value, name):
            """``value`` (a function of ``d``) in a register: ``d`` is stable from COLLECT to the
            end of the job's loads, and what reads these comes at least two cycles later."""
            reg = Signal.like(value, name=name)
            m.d.sync += reg.eq(value)
            return reg

        facts = []

        def fact(name, expr):
            s = Signal(name=f"ok_{name}")
            m.d.sync += s.eq(expr)
            facts.append(s)

        def geometry_ok(axis, n, before, after, out):
            span = held(n + before + after, f"{axis}_span")
            expect = held(Mux(d.stride == 2, (span - 3) >> 1, span - 3) + 1, f"{axis}_expect")
            return (span >= 3) & (out == expect)

        fact("mode", mode <= MODE_CODES["PW_DW_PW"])
        fact("stride", (d.stride == 1) | (has_3x3 & (d.stride == 2)))
        fact("pads", (d.pad_top <= MAX_PAD) & (d.pad_bottom <= MAX_PAD) & (d.pad_left <= MAX_PAD)
             & (d.pad_right <= MAX_PAD) & (has_3x3 | (Cat(d.pad_top, d.pad_bottom, d.pad_left, d.pad_right) == 0)))
        fact("size", (d.width >= 1) & (d.width <= c.max_width) & (d.height >= 1) & (d.height < 4096)
             & (d.out_width >= 1) & (d.out_width <= c.max_width + 2 * MAX_PAD - 2) & (d.out_height >= 1))
        fact("chunks", (d.chunks_in >= 1) & (d.chunks_in <= c.max_chunks) & (d.chunks_out >= 1)
             & (d.chunks_out <= c.max_out_channels // c.lanes)
             & (~is_block | ((d.chunks_mid >= 1) & (d.chunks_mid <= c.max_chunks))))
        fact("geometry", Mux(has_3x3,
                             geometry_ok("x", d.width, d.pad_left, d.pad_right, d.out_width)
                             & geometry_ok("y", d.height, d.pad_top, d.pad_bottom, d.out_height),
                             (d.out_width == d.width) & (d.out_height == d.height)))
        bank = c.line_buffer_depth
        fact("line_buffer", ~has_3x3 | (lb_words <= bank))
        chunks_in_x9 = held(constant_product(d.chunks_in, 9), "chunks_in_x9")
        k_expect = held(Mux(is_conv3, chunks_in_x9, Mux(is_block, d.chunks_mid, d.chunks_in)), "k1_expect")
        dense = Signal()
        m.d.comb += dense.eq(is_conv3 & (d.dense_cin != 0))
        dense_words = held((constant_product(d.dense_cin, 9) + c.lanes - 1) >> lanes_lg, "dense_words")
        fact("dense", ~dense | ((d.chunks_in == 1) & (d.dense_cin <= c.lanes)))
        k0_expect = held(Mux(dense, dense_words, Mux(is_conv3, chunks_in_x9, d.chunks_in)), "k0_expect")
        fact("pe0", ~pe0_used | ((d.pe0.k_words == k0_expect)
                                 & (d.pe0.out_tiles >= 1) & (d.pe0.k_words <= g.max_k_words)
                                 & (d.pe0.weight_words == pe0_words)))
        fact("pe1", ~pe1_used | ((d.pe1.k_words == k_expect) & (d.pe1.out_tiles >= 1)
                                 & (d.pe1.k_words <= g.max_k_words)
                                 & (d.pe1.weight_words == pe1_words)))
        # weight-buffer words and table rows of the job, held (the region test below then
        # starts at flip-flops)
        w_total = held(Mux(pe0_used, d.pe0.weight_words, 0) + Mux(pe1_used, d.pe1.weight_words, 0), "w_total")
        t_total = held(Mux(pe0_used, d.pe0.out_tiles, 0) + Mux(pe1_used, d.pe1.out_tiles, 0), "t_total")
        new_hi = held(d.wbuf_base + w_total, "new_hi")
        fact("buffers", (new_hi <= c.weight_words) & (t_total <= g.max_tiles))
        tiles_of = lambda chunks: (chunks + (1 << parts_lg) - 1) >> parts_lg  # noqa: E731
        fact("split", Mux(is_dw, d.chunks_out == d.chunks_in, tiles_of(d.chunks_out) == last_stage.out_tiles)
             & (~is_block | (tiles_of(d.chunks_mid) == d.pe0.out_tiles)))
        fact("residual", ~d.residual | ((is_block | is_dwpw) & (out_row_words <= RES_FIFO_WORDS // 2)
                                         & (is_dwpw | (d.chunks_out == d.chunks_in))
                                         & (d.out_width == d.width) & (d.out_height == d.height)))
        fact("pitch", (d.input.pixel_pitch == (d.chunks_in << lanes_lg))
                      & (d.output.pixel_pitch >= (d.chunks_out << lanes_lg))
                      & (~d.residual | (d.residual_in.pixel_pitch == (d.chunks_out << lanes_lg))))
        all_ok = Signal()
        m.d.comb += all_ok.eq(Cat(*facts).all())

        # Every tensor access inside its window, before a single byte moves: its span (first to
        # last byte, from the products) plus one pixel's bytes within its length.
        inside = []

        def window_fact(name, acc, nbytes, used=1):
            rows_span, cols_span = spans[name]
            span = Signal(49, name=f"{name}_span")    # (two stages: CHECK and SETTLE)
            ok = Signal(name=f"inside_{name}")
            pixel_fits = held(nbytes <= acc.length, f"{name}_pixel_fits")
            limit = held(acc.length - nbytes, f"{name}_limit")     # (meaningful when it fits)
            m.d.sync += [span.eq(rows_span + cols_span), ok.eq(~used | (pixel_fits & (span <= limit)))]
            inside.append(ok)

        window_fact("input", d.input, d.chunks_in << lanes_lg)
        window_fact("output", d.output, d.chunks_out << lanes_lg)
        window_fact("residual", d.residual_in, d.chunks_out << lanes_lg, d.residual)
        all_inside = Signal()
        m.d.comb += all_inside.eq(Cat(*inside).all())

        # ---- engine cfg: prepared by the front end (JUDGE), applied at the job's hand-over -------
        ecfg = Signal(self._eng.cfg)          # what the engine runs now
        ecfg_next = Signal(self._eng.cfg)     # the next job's, while the current one streams
        m.d.comb += self.engine_cfg.eq(ecfg)

        def ctx(stage, weight_base, table_base):
            return {"k_words": stage.k_words, "out_tiles": stage.out_tiles, "in_zp": stage.in_zp,
                    "out_zp": stage.out_zp, "act_min": stage.act_min, "act_max": stage.act_max,
                    "weight_base": weight_base, "table_base": table_base}

        def assign(target, values):
            stmts = []
            for name, value in values.items():
                field = getattr(target, name)
                stmts += assign(field, value) if isinstance(value, dict) else [field.eq(value)]
            return stmts

        split_last = lambda chunks, tiles: chunks - ((tiles - 1) << parts_lg)  # noqa: E731
        w1_base = Mux(pe0_used, d.pe0.weight_words, 0)
        t1_base = Mux(pe0_used, d.pe0.out_tiles, 0)
        translate = assign(ecfg_next, {
            "mode": mode,
            "in_chunks": d.chunks_in,
            "dense": dense,
            "dense_cin": d.dense_cin,
            "dense_words": d.pe0.k_words,
            "lb": {"width": d.width, "height": d.height, "chunks": Mux(has_3x3, lb_chunks, 1),
                   "stride": Mux(has_3x3, d.stride, 1), "pad_top": d.pad_top, "pad_bottom": d.pad_bottom,
                   "pad_left": d.pad_left, "pad_right": d.pad_right,
                   "pad_value": Mux(is_conv3, d.pe0.in_zp, Mux(has_3x3, d.dw.in_zp, 0)),
                   "out_width": d.out_width, "out_height": d.out_height},
            "dw": {"in_zp": d.dw.in_zp, "out_zp": d.dw.out_zp, "act_min": d.dw.act_min, "act_max": d.dw.act_max},
            "split": {"tiles": Mux(is_dw, tiles_of(d.chunks_out), last_stage.out_tiles),
                      "last_words": split_last(d.chunks_out, Mux(is_dw, tiles_of(d.chunks_out), last_stage.out_tiles))},
            "split_x": {"tiles": Mux(is_block, d.pe0.out_tiles, 1),
                        "last_words": Mux(is_block, split_last(d.chunks_mid, d.pe0.out_tiles), 1)},
        })
        pe_ctx0 = ecfg_next.pe.ctx[0]
        pe_ctx1 = ecfg_next.pe.ctx[1]
        translate += [
            ecfg_next.pe.residual.eq(d.residual),
            *[getattr(ecfg_next.pe.add, name).eq(getattr(d.add, name)) for name, _ in ecfg_next.pe.add.shape()],
        ]
        zero_ctx = {"k_words": 1, "out_tiles": 1, "in_zp": 0, "out_zp": 0, "act_min": -128,
                    "act_max": 127, "weight_base": 0, "table_base": 0}

        # ---- load counts ------------------------------------------------------------------------
        loads = self.load_counts
        load_values = [
            loads.weights.eq(new_hi),
            loads.tables.eq(t_total),
            loads.params.eq(Mux(has_dw, lb_chunks, 0)),
        ]
        m.d.comb += self.wload_base.eq(d.wbuf_base)

        # ---- back end: the running job's descriptor and its walkers --------------------------------
        rdesc = Signal(self._desc)       # latched at hand-over; the front end refills d meanwhile
        r_in_row_words, r_out_row_words = Signal(32), Signal(32)    # ... and its row sizes
        word_lg = lanes_lg - bus_lg     # beats per word, log2
        rd_in = _Walker(m, "in", rdesc.input, rows=rdesc.height, cols=rdesc.width, words_per_px=rdesc.chunks_in,
                        row_words=r_in_row_words, contiguous=Signal(name="in_contig"), bus_lg=bus_lg, lanes_lg=lanes_lg,
                        piece_beats=IN_PIECE_WORDS << word_lg)
        in_credit = Signal(range(IN_FIFO_WORDS + 1))     # input FIFO words not yet requested
        in_issued = Signal(range(IN_PIECE_WORDS + 1))
        in_taken = Signal()     # counted a cycle late (a credit returns late, never early)
        m.d.sync += [in_taken.eq(self.in_taken), in_credit.eq(in_credit + in_taken - in_issued)]
        rd_res = _Walker(m, "res", rdesc.residual_in, rows=rdesc.out_height, cols=rdesc.out_width,
                         words_per_px=rdesc.chunks_out, row_words=r_out_row_words,
                         contiguous=Signal(name="res_contig"),
                         bus_lg=bus_lg, lanes_lg=lanes_lg)
        wr_out = _Walker(m, "out", rdesc.output, rows=rdesc.out_height, cols=rdesc.out_width,
                         words_per_px=rdesc.chunks_out, row_words=r_out_row_words,
                         contiguous=Signal(name="out_contig"),
                         bus_lg=bus_lg, lanes_lg=lanes_lg)
        m.d.comb += [rd_in.contiguous.eq(1), rd_res.contiguous.eq(1)]
        m.d.sync += wr_out.contiguous.eq(rdesc.output.pixel_pitch == (rdesc.chunks_out << lanes_lg))

        # ---- read commands: front end and back end, alternating when both ask -------------------
        # Each end's request (f_req, b_req, with its command) is registered before the arbiter
        # (f_req_q, b_req_q): the state decode, walkers and address arithmetic behind a request
        # and the updates behind its acceptance are then separate paths. A request is dropped
        # in the cycle it is taken and asked again from the updated state a cycle later (so an
        # end issues at most every other cycle; its commands are many beats each).
        read_layout = read_command_layout()
        f_rd, b_rd = Signal(read_layout, name="f_rd"), Signal(read_layout, name="b_rd")
        f_req, b_req = Signal(), Signal()
        f_rd_q, b_rd_q = Signal(read_layout, name="f_rd_q"), Signal(read_layout, name="b_rd_q")
        f_req_q, b_req_q = Signal(), Signal()
        f_turn = Signal()                # the front end goes first when both ask
        b_grant = Signal()
        rd = self.rd_cmd
        m.d.comb += [
            b_grant.eq(b_req_q & (~f_req_q | ~f_turn)),
            rd.valid.eq(f_req_q | b_req_q),
            rd.payload.eq(Mux(b_grant, b_rd_q, f_rd_q)),
        ]
        f_taken = f_req_q & ~b_grant & rd.ready
        b_taken = b_grant & rd.ready
        m.d.sync += [f_rd_q.eq(f_rd), b_rd_q.eq(b_rd)]
        with m.If(f_taken | b_taken):
            m.d.sync += f_turn.eq(b_taken)

        def front_command(tag, addr, beats, base, end):
            return [f_req.eq(1), f_rd.tag.eq(tag), f_rd.cmd.addr.eq(addr), f_rd.cmd.beats.eq(beats),
                    f_rd.cmd.base.eq(base), f_rd.cmd.end.eq(end)]

        # ---- errors ------------------------------------------------------------------------------------
        failed = error != ERR_NONE
        b_jobs = Signal(16)              # jobs completed
        b_running = Signal()
        m.d.comb += self.jobs.eq(b_jobs)
        error_job = Signal(16)
        m.d.comb += self.error_job.eq(error_job)
        with m.If((self.dma_error != ERR_NONE) & ~failed & self.busy):
            m.d.sync += [error.eq(self.dma_error), error_job.eq(Mux(b_running, b_jobs, job))]
        m.d.sync += [f_req_q.eq(f_req & ~f_taken & ~failed), b_req_q.eq(b_req & ~b_taken & ~failed)]

        # ---- back end: stream the running job ----------------------------------------------------------
        b_go = Signal()                  # hand-over: set by the front end, taken by the back end
        res_due = Signal()               # a residual row may be requested now
        b_idle = Signal()
        with m.FSM(name="back") as back:
            with m.State("IDLE"):
                with m.If(b_go & ~failed):
                    m.d.comb += self.engine_start.eq(1)
                    rd_in.reset()
                    rd_res.reset()
                    wr_out.reset()
                    m.d.sync += [res_due.eq(0), b_go.eq(0), in_credit.eq(IN_FIFO_WORDS)]
                    m.next = "STREAM"
            with m.State("STREAM"):
                # reads: input rows, each followed by the residual row of the same index
                take_res = Signal()
                m.d.comb += take_res.eq(rdesc.residual & ~rd_res.done & (res_due | rd_in.done))
                with m.If(take_res):
                    m.d.comb += [b_req.eq(1), b_rd.tag.eq(Tag.RESIDUAL)]
                    m.d.comb += [getattr(b_rd.cmd, k).eq(v) for k, v in rd_res.command().items()]
                with m.Elif(~rd_in.done & (in_credit >= IN_PIECE_WORDS)):
                    m.d.comb += [b_req.eq(1), b_rd.tag.eq(Tag.INPUT)]
                    m.d.comb += [getattr(b_rd.cmd, k).eq(v) for k, v in rd_in.command().items()]
                # the registered request taken (its walker has not moved since it was asked)
                with m.If(b_taken & (b_rd_q.tag == Tag.RESIDUAL)):
                    rd_res.advance()
                    m.d.sync += res_due.eq(0)
                with m.If(b_taken & (b_rd_q.tag == Tag.INPUT)):
                    m.d.comb += in_issued.eq(b_rd_q.cmd.beats >> word_lg)
                    row_end = rd_in.advance()
                    with m.If(row_end):
                        m.d.sync += res_due.eq(1)
                # writes: every output row (or pixel)
                with m.If(~wr_out.done):
                    m.d.comb += self.wr_cmd.valid.eq(1)
                    m.d.comb += [getattr(self.wr_cmd.payload, k).eq(v) for k, v in wr_out.command().items()]
                    with m.If(self.wr_cmd.ready):
                        wr_out.advance()
                all_issued = rd_in.done & wr_out.done & (~rdesc.residual | rd_res.done)
                with m.If(failed):
                    m.next = "IDLE"
                with m.Elif(all_issued & ~self.engine_busy & self.wr_idle & ~self.engine_start):
                    m.d.sync += b_jobs.eq(b_jobs + 1)
                    m.d.comb += self.job_done.eq(1)
                    m.next = "IDLE"
        m.d.comb += [b_running.eq(back.ongoing("STREAM")), b_idle.eq(back.ongoing("IDLE") & ~b_go)]

        # ---- front end: fetch, check and load the next job while the back end streams ---------------
        # Weights may be loaded while the engine runs, into weight-buffer words the running job
        # does not read; tables and depthwise parameters only once it has finished.
        run_lo, run_hi = Signal(24), Signal(24)     # the running job's weight-buffer words
        new_lo = d.wbuf_base
        # registered: ``d`` and the running region change only at hand-over, long before the
        # next LOAD_WEIGHTS, and ``b_idle`` only rises meanwhile, so a cycle's lag is safe
        region_free = Signal()
        m.d.sync += region_free.eq(b_idle | (new_hi <= run_lo) | (new_lo >= run_hi))
        load_step = Signal(range(6))
        chunk_addr = Signal(32)
        chunk_left = Signal(MAX_BEATS_BITS)
        chunk_init = Signal()
        pend_error = Signal(2)
        weights_end = held(d.weights.base + d.weights.length, "weights_end")
        # the loads' beat counts (held outside the FSM: a register assigned in a state is
        # only loaded in that state)
        w0_beats = held(constant_product(d.pe0.weight_words, w_beats), "w0_beats")
        w1_beats = held(constant_product(d.pe1.weight_words, w_beats), "w1_beats")
        t0_beats = held(constant_product(d.pe0.out_tiles, t_beats), "t0_beats")
        t1_beats = held(constant_product(d.pe1.out_tiles, t_beats), "t1_beats")
        param_beats = held(constant_product(lb_chunks, p_beats), "param_beats")
        # Hand-over: the running job's registers (the engine's cfg, the descriptor copy, the
        # row sizes: ~850 flip-flops) load from one-cycle flags, copies that each enable a
        # slice of them (``*_dup*``, kept apart by synthesis), in state HAND_OVER: no FSM
        # decode and no single net reaches all of them.
        held_job = [(ecfg.as_value(), ecfg_next.as_value()), (rdesc.as_value(), d.as_value()),
                    (Cat(r_in_row_words, r_out_row_words), Cat(in_row_words, out_row_words))]
        slice_bits = 128
        hand_copies = []
        for target, source in held_job:
            for lo in range(0, len(target), slice_bits):
                flag = Signal(name=f"hand_over_dup{len(hand_copies)}")
                hand_copies.append(flag)
                m.d.sync += flag.eq(0)
                with m.If(flag):
                    hi = min(len(target), lo + slice_bits)
                    m.d.sync += target[lo:hi].eq(source[lo:hi])
        with m.FSM(name="seq") as fsm:
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [job.eq(0), b_jobs.eq(0), desc_addr.eq(self.desc_base), error.eq(ERR_NONE),
                                 error_job.eq(0), run_lo.eq(0), run_hi.eq(0)]
                    m.next = "FETCH"
            with m.State("FETCH"):
                m.d.comb += front_command(Tag.DESC, desc_addr, desc_beats, self.desc_base, self.desc_limit)
                with m.If(f_taken):
                    m.d.sync += got.eq(0)
                    m.next = "COLLECT"
                with m.If(failed):
                    m.next = "FAILED"
            with m.State("COLLECT"):
                m.d.comb += self.desc_in.ready.eq(1)
                with m.If(self.desc_in.valid):
                    m.d.sync += [raw.eq(Cat(raw[bb * 8:], self.desc_in.payload.data)), got.eq(got + 1)]
                    with m.If(got == desc_beats - 1):
                        m.next = "MULTIPLY"
                with m.If(failed):   # e.g. the descriptor address outside its window
                    m.next = "FAILED"
            with m.State("MULTIPLY"):  # the products, one after another (a few cycles each)
                with m.If(~product_started):
                    m.d.comb += mul.start.eq(1)
                    m.d.sync += product_started.eq(1)
                with m.Elif(~mul.busy):
                    m.d.comb += product_done.eq(1)
                    m.d.sync += [product_started.eq(0), product_step.eq(product_step + 1)]
                    with m.If(product_step == len(products) - 1):
                        m.d.sync += product_step.eq(0)
                        m.next = "CHECK"
            with m.State("CHECK"):   # facts are registered from the descriptor and the products
                m.next = "SETTLE"
            with m.State("SETTLE"):  # ... some in two stages
                m.next = "JUDGE"
            with m.State("JUDGE"):
                with m.If(failed):
                    m.next = "FAILED"
                with m.Elif(all_ok & all_inside):
                    m.d.sync += translate
                    m.d.sync += assign(pe_ctx0, ctx(last_stage, d.wbuf_base + Mux(is_block | is_dwpw, w1_base, 0),
                                                    Mux(is_block | is_dwpw, t1_base, 0)))
                    with m.If(is_dw):
                        m.d.sync += assign(pe_ctx0, zero_ctx)
                    with m.If(is_block):
                        m.d.sync += assign(pe_ctx1, ctx(d.pe0, d.wbuf_base, 0))
                    with m.Else():
                        m.d.sync += assign(pe_ctx1, zero_ctx)
                    m.d.sync += [*load_values, load_step.eq(0), chunk_init.eq(1)]
                    m.d.comb += self.load_reset.eq(1)
                    m.next = "LOAD_WEIGHTS"
                with m.Else():   # reported once the running job has finished: it is not at fault
                    m.d.sync += pend_error.eq(Mux(all_ok, ERR_WINDOW, ERR_DESCRIPTOR))
                    m.next = "REFUSE"
            with m.State("REFUSE"):
                with m.If(failed):
                    m.next = "FAILED"
                with m.Elif(b_idle):
                    m.d.sync += [error.eq(pend_error), error_job.eq(job)]
                    m.next = "FAILED"
            with m.State("LOAD_WEIGHTS"):
                # pe0's then pe1's weights, in commands of at most WEIGHT_CHUNK_WORDS words so the
                # running job's input rows interleave with them on the read channel
                chunk = self.WEIGHT_CHUNK_WORDS * w_beats
                steps = [(pe0_used, d.pe0.weight_addr, w0_beats), (pe1_used, d.pe1.weight_addr, w1_beats)]
                beats_now = Mux(chunk_left > chunk, chunk, chunk_left)
                with m.Switch(load_step):
                    for k, (used, addr, beats) in enumerate(steps):
                        with m.Case(k):
                            with m.If(chunk_init):
                                m.d.sync += [chunk_addr.eq(addr), chunk_left.eq(Mux(used, beats, 0)),
                                             chunk_init.eq(0)]
                            with m.Elif(chunk_left == 0):
                                m.d.sync += [load_step.eq(k + 1), chunk_init.eq(1)]
                            with m.Elif(region_free):
                                m.d.comb += front_command(Tag.WEIGHTS, chunk_addr, beats_now,
                                                          d.weights.base, weights_end)
                                # (advanced by the registered request's beats: the same as
                                # beats_now, which has not changed since it was asked)
                                with m.If(f_taken):
                                    taken_beats = f_rd_q.cmd.beats
                                    m.d.sync += [chunk_addr.eq(chunk_addr + (taken_beats << bus_lg)),
                                                 chunk_left.eq(chunk_left - taken_beats)]
                    with m.Case(len(steps)):
                        m.d.sync += load_step.eq(0)
                        m.next = "WAIT_ENGINE"
                with m.If(failed):
                    m.next = "FAILED"
            with m.State("WAIT_ENGINE"):
                with m.If(failed):
                    m.next = "FAILED"
                with m.Elif(b_idle):
                    m.next = "LOAD_TABLES"
            with m.State("LOAD_TABLES"):
                # pe0 tables, dw params, pe1 tables (the engine is idle); empty ones skipped
                steps = [
                    (pe0_used, d.pe0.table_addr, t0_beats, Tag.TABLES),
                    (has_dw, d.dw.param_addr, param_beats, Tag.PARAMS),
                    (pe1_used, d.pe1.table_addr, t1_beats, Tag.TABLES),
                ]
                with m.Switch(load_step):
                    for k, (used, addr, beats, tag) in enumerate(steps):
                        with m.Case(k):
                            with m.If(used):
                                m.d.comb += front_command(tag, addr, beats, d.weights.base, weights_end)
                            with m.If(~used | f_taken):
                                m.d.sync += load_step.eq(k + 1)
                    with m.Case(len(steps)):
                        m.next = "WAIT_LOADS"
                with m.If(failed):
                    m.next = "FAILED"
            with m.State("WAIT_LOADS"):
                with m.If(failed):
                    m.next = "FAILED"
                with m.Elif(self.loads_done):
                    m.d.sync += [flag.eq(1) for flag in hand_copies]
                    m.next = "HAND_OVER"
            with m.State("HAND_OVER"):   # the copies load the running job's registers now
                m.d.sync += [b_go.eq(1), run_lo.eq(new_lo), run_hi.eq(new_hi)]
                with m.If(d.last):
                    m.next = "DRAIN"
                with m.Else():
                    m.d.sync += [job.eq(job + 1), desc_addr.eq(desc_addr + self._desc_bytes)]
                    m.next = "FETCH"
            with m.State("DRAIN"):      # the chain's last job is streaming
                with m.If(failed):
                    m.next = "FAILED"
                with m.Elif(b_idle):
                    m.d.comb += self.done.eq(1)
                    m.next = "IDLE"
            with m.State("FAILED"):   # until the top resets the datapath (CSR start or abort)
                pass
        m.d.comb += self.busy.eq(~fsm.ongoing("IDLE") & ~fsm.ongoing("FAILED"))
        return m
