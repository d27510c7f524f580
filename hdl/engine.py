"""LayerEngine: the line buffer, depthwise engine and PE array wired per layer mode, chosen at run time.

Why one component: a MobileNet layer (or fused group) is one pass of a stream through some of
the three datapath blocks, and in the fused modes the intermediate tensors move between the
blocks on chip and never reach DRAM. Every tensor the engine reads or writes (``i``, ``res``,
``o``) has one format, NHWC words of ``lanes`` int8 channels (channels padded up to a multiple
of ``lanes``), so a later DMA moves them without knowing the mode.

Modes (`Mode`; ``cfg.mode``)::

    PW        i ─▶ PE array ─▶ split ─▶ o                      1x1 conv (FC: one pixel)
    DW        i ─▶ LineBuffer ─▶ DepthwiseEngine ─▶ o          3x3 depthwise, stride 1/2, any pads
    CONV3     i ─▶ LineBuffer ─▶ 9 words/window ─▶ PE ─▶ split ─▶ o   3x3 conv, im2col on the fly
    DW_PW     i ─▶ LineBuffer ─▶ DepthwiseEngine ─▶ PE ─▶ split ─▶ o  MobileNetV1 pair
    PW_DW_PW  i ─▶ PE(expand) ─▶ split ─▶ LineBuffer ─▶ DepthwiseEngine ─▶ PE(project) ─▶ split ─▶ o
              res ─▶ pack ─▶ the PE's residual ADD (optional)      MobileNetV2 inverted residual

- The PE array emits one ``pe_cols``-channel word per (pixel, output tile); `WordSplitter` turns
  it into ``lanes``-channel words and drops the words past ``ceil(O / lanes)`` of a pixel's last
  tile. `WordPacker` does the inverse for the residual input.
- CONV3: the line buffer's window of one chunk (9 words, taps in TFLite filter order) becomes 9
  consecutive input words of the PE array (`Im2col`, a shift register), so a pixel's input
  vector is ``9 * chunks`` words in (chunk, tap, lane) order; `conv3_weights` reorders a TFLite
  (O, 3, 3, I) filter to match.
  Padded taps hold the input zero point (``lb.pad_value`` = the PE's ``in_zp``), so they add 0.
  A first layer has fewer channels than lanes (1 or 3): then (``cfg.dense``) the window's
  ``9 * I`` real values are packed densely into ``ceil(9 * I / lanes)`` words, in TFLite's own
  (tap, channel) order, so an RGB input takes 4 PE k-steps per pixel at 8 lanes, not 9.
- PW_DW_PW: the PE array runs both 1x1 convs, time-multiplexed per pixel with two contexts
  (``pe.ctx[1]`` = expand, whose results leave on the PE's ``ox`` port for the line buffer;
  ``pe.ctx[0]`` = project, to ``o``, optionally through the ADD). The expanded tensor exists
  only as line-buffer rows. The ADD's other operand is the block input, which the DMA streams a
  second time on ``res`` (one ``lanes`` word per output word, in output order).

Deadlock freedom of PW_DW_PW. The PE array is one in-order pipeline: a result that cannot leave
blocks everything behind it. Project results leave through ``o`` (the consumer's business);
expand results go to the line buffer, which takes input row ``j`` only once the row it
overwrites (``j - line_rows``) is no longer needed, i.e. once the windows of the out-rows that
read it have been issued, and those windows become project pixels that must pass the same PE
array. So an expand pixel is *admitted* to the PE array (rule A) only when the line buffer is
certain to accept its whole row: ``j < line_rows`` or ``j < oy_done * stride - pad_top +
line_rows``, where ``oy_done`` counts out-rows whose windows have all left the line buffer (the
line buffer's own state is at least that far, so its flow control is at least as permissive).
Then every expand result drains, the result path never blocks on the line buffer, and project
pixels always flow. Rule B, for throughput only: when both sources have a pixel ready they take
turns, so a drain-bound expand (k_words < pe_cols/requant_lanes) keeps overlapping an
issue-bound projection (measured against project-first: the same steady state within 0.2%,
and 12-58% less fill on stride-1 blocks). Pixels enter the PE array whole
(the arbiter switches sources only between pixels); a project pixel's words all exist once its
first window is issued (the line buffer waits for whole columns), so holding the arbiter inside
a pixel never waits on the PE. Rule C: the final project pixel (it carries the PE's ``last``) is
admitted only after the whole input has been taken, because VALID/explicit padding may leave up
to ``stride - 1`` trailing input rows that no window reads; with ``line_rows >= 4`` such a row is
admissible under rule A while the last out-row is in progress, so rule C never waits forever
(PW_DW_PW needs ``line_rows >= 4``).

Throughput (scripts/bench_streaming.py, ecp5 preset, no stalls, steady state of 2- and 4-row
cuts of every MobileNetV2-1.0-224 and person_detect group that fits): the PE array is the
bottleneck and runs at its bound, the larger of its issue cycles (pixels x out_tiles x k_words)
and its drain cycles (pixels x out_tiles x pe_cols/requant_lanes), in every DW_PW and CONV3
group and in 13 of 14 PW_DW_PW blocks (stride 1 and 2); the 56x56x24 stride-2 block (expand
k_words 3 against a drain of 4 per tile) measures 1.065 x its bound, with 4 line-buffer rows
as with 5 (so not the row slots; not yet explained). With ``line_rows = 4`` the PE array can expand one input row ahead of the
out-row being issued (a row and a half at stride 2), which the result FIFO of the two-context
array (`CONTEXT_FIFO_DEPTH`) turns into full overlap of a drain-bound expand with an
issue-bound projection. The bound exceeds MACs / (lanes x pe_cols) when channels are padded to
whole words/tiles or k_words < pe_cols/requant_lanes (narrow expands, first layers).

Timing: the engine's inputs and output, the PE array's and the line buffer's inputs, the PE
array's two outputs and residual input and the depthwise engine's output each pass a
`StreamRegister` (valid, payload and ready registered), so no combinational path runs from one
block through the mode multiplexers or the PW_DW_PW arbiter into another; each adds a cycle of
latency, no bubbles. The mode decode, the run's last indices and the arbiter's rule-A
condition (``i_open``: one flip-flop, from the next values of the counters it depends on) are
registers too (rule C, ``c_open``, is one LUT of three flip-flops); so the run starts (``go``)
one cycle after ``start``, and input words wait in the input slice until it has.

Run protocol: load weights (``wload``), tables (``tload``) and depthwise parameters (``pload``)
while idle; set ``cfg`` (see `engine_cfg`) and pulse ``start``; stream exactly ``width * height
* in_chunks`` words on ``i`` (and, with the ADD, one ``res`` word per output word); the output
word flagged ``last`` ends the run. ``cfg`` is held stable from ``start`` until ``busy`` falls.
"""

import enum
from types import SimpleNamespace

import numpy as np
from amaranth import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import bits_for

from .config import Config
from .depthwise import DepthwiseEngine, cfg_layout as dw_cfg_layout
from .im2col import Im2col
from .linebuffer import LineBuffer, window_geometry
from .multiplier import DSP_KINDS
from .pointwise import PointwiseArray, geometry
from .stream_register import StreamRegister
from .word_packer import WordPacker
from .word_splitter import WordSplitter, split_cfg

__all__ = ["LayerEngine", "Mode", "engine_layouts", "engine_cfg", "conv3_weights"]


class Mode(enum.IntEnum):
    """Layer modes of `LayerEngine` (FULLY_CONNECTED is PW over one pixel)."""

    PW = 0
    DW = 1
    CONV3 = 2
    DW_PW = 3
    PW_DW_PW = 4


def _max_in_words(config):
    """Most words of an input pixel: a line-buffer row's chunks, or a PW input vector's words."""
    return max(config.max_chunks, geometry(config).max_k_words)


def _above(x, k):
    """``x > k`` for a signed register and k in -2..1, as sign and bit reductions (LUTs).

    Yosys maps a compare with a constant to a carry chain; behind rule A's pick that chain was
    3.5 ns of the 11.3 ns worst path of the ecp5_narrow top at 132f9fd.
    """
    sign = x[-1]
    if k == -2:
        return ~sign | x.all()          # x >= 0 or x == -1
    if k == -1:
        return ~sign
    if k == 0:
        return ~sign & x.any()
    if k == 1:
        return ~sign & x[1:].any()
    raise ValueError(f"_above supports k in -2..1, not {k}")


def _parts(config):
    line_buffer = LineBuffer(config)
    line_buffer._MustUse__silence = True   # built only for its layouts
    splitter = WordSplitter(config)
    splitter._MustUse__silence = True
    pe = PointwiseArray(config, contexts=2)
    pe._MustUse__silence = True
    return line_buffer, splitter, pe


def engine_layouts(config):
    """Payload layouts of the `LayerEngine` ports: ``cfg``, ``i``, ``res``, ``o`` and the loads."""
    if not isinstance(config, Config):
        raise TypeError(f"config must be a Config, not {config!r}")
    lb, splitter, pe = _parts(config)
    word = data.ArrayLayout(signed(8), config.lanes)
    cfg = data.StructLayout({
        "mode": unsigned(3),
        "in_chunks": unsigned(bits_for(_max_in_words(config))),
        "dense": 1,                                       # CONV3 with in_channels <= lanes
        "dense_cin": unsigned(bits_for(config.lanes)),    # its channels
        "dense_words": unsigned(bits_for(9)),             # ceil(9 * dense_cin / lanes)
        "lb": lb.cfg_layout,
        "dw": dw_cfg_layout(),
        "pe": pe.layouts.cfg,
        "split": splitter.cfg_layout,
        "split_x": splitter.cfg_layout,
    })
    from .depthwise import param_layout
    return SimpleNamespace(
        cfg=cfg,
        i=data.StructLayout({"data": word}),
        res=data.StructLayout({"data": word}),
        o=data.StructLayout({"data": word, "last": 1}),
        wload=pe.layouts.wload,
        tload=pe.layouts.tload,
        pload=param_layout(config),
        pe_context=pe.layouts.context,
    )


def conv3_weights(w, config):
    """A TFLite 3x3 conv filter (O, 3, 3, I) as the (O, 9 * chunks * lanes) matrix CONV3 uses.

    The PE array's input vector of one pixel is the line buffer's windows of its chunks, 9 words
    each: element ``(k * 9 + tap) * lanes + l`` is input channel ``k * lanes + l`` at tap
    ``tap = dy * 3 + dx``. Channels past I get zero weights. With ``I <= lanes`` (one chunk)
    the window is packed densely: element ``tap * I + c``, i.e. the filter as TFLite stores it.
    """
    w = np.asarray(w)
    if w.ndim != 4 or w.shape[1:3] != (3, 3):
        raise ValueError(f"conv3 filter must have shape (O, 3, 3, I), not {w.shape}")
    o, _, _, i = w.shape
    lanes = config.lanes
    if i <= lanes:
        return w.reshape(o, 9 * i)
    chunks = -(-i // lanes)
    wp = np.zeros((o, 9, chunks * lanes), w.dtype)
    wp[:, :, :i] = w.reshape(o, 9, i)
    return wp.reshape(o, 9, chunks, lanes).transpose(0, 2, 1, 3).reshape(o, chunks * 9 * lanes)


def _context(config, k, o, *, in_zp, out_zp, act_min, act_max, weight_base=0, table_base=0):
    lanes, C = config.lanes, config.pe_cols
    g = geometry(config)
    k_words, tiles = -(-k // lanes), -(-o // C)
    if k_words > g.max_k_words:
        raise ValueError(f"input vector of {k} channels exceeds max_k {config.max_k}")
    if weight_base + k_words * tiles > config.weight_words:
        raise ValueError(f"weights ({k_words * tiles} words from {weight_base}) exceed "
                         f"weight_words {config.weight_words}")
    if table_base + tiles > g.max_tiles:
        raise ValueError(f"tables ({tiles} tiles from {table_base}) exceed max_out_channels "
                         f"{config.max_out_channels}")
    return {"k_words": k_words, "out_tiles": tiles, "in_zp": in_zp, "out_zp": out_zp,
            "act_min": act_min, "act_max": act_max, "weight_base": weight_base,
            "table_base": table_base}


def engine_cfg(config, mode, *, width, height, in_channels, out_channels, pe=None, expand=None,
               dw=None, stride=1, padding="SAME", add=None):
    """The ``cfg`` port value (a dict for `verif.streams.pack`) of one engine run.

    Parameters
    ----------
    mode : Mode
    width, height, in_channels : int
        The input tensor (for PW: any ``width * height`` pixels; FC: 1 x 1).
    out_channels : int
        Channels of the output tensor ``o``.
    pe : dict
        The PE array's (project) layer: ``in_zp``, ``out_zp``, ``act_min``, ``act_max`` and
        optionally ``weight_base``, ``table_base`` (where its weights/tables were loaded).
    expand : dict
        PW_DW_PW only: the expand layer, same keys plus ``channels`` (expanded channels).
    dw : dict
        DW, DW_PW, PW_DW_PW: ``in_zp``, ``out_zp``, ``act_min``, ``act_max`` of the depthwise conv.
    stride, padding
        Of the 3x3 stage (`window_geometry`).
    add : dict or None
        Residual ADD parameters (`PointwiseArray`'s ``cfg.add``) for the project output.
    """
    mode = Mode(mode)
    lanes = config.lanes
    in_chunks = -(-in_channels // lanes)
    if not 1 <= width <= config.max_width:
        raise ValueError(f"width {width} is outside 1..{config.max_width} (config {config.name!r})")
    zero_ctx = {"k_words": 1, "out_tiles": 1, "in_zp": 0, "out_zp": 0, "act_min": -128,
                "act_max": 127, "weight_base": 0, "table_base": 0}
    ctx0, ctx1 = dict(zero_ctx), dict(zero_ctx)
    lb_width, lb_height, lb_chunks, pad_value = width, height, in_chunks, 0
    split_x = split_cfg(lanes, config)
    mid = in_channels
    if mode in (Mode.DW, Mode.DW_PW, Mode.PW_DW_PW, Mode.CONV3):
        if mode == Mode.PW_DW_PW:
            mid = expand["channels"]
            ctx1 = _context(config, in_channels, mid, **{k: v for k, v in expand.items() if k != "channels"})
            split_x = split_cfg(mid, config)
            lb_chunks = -(-mid // lanes)
        pad_value = pe["in_zp"] if mode == Mode.CONV3 else dw["in_zp"]
        if mode == Mode.PW_DW_PW and pad_value != expand["out_zp"]:
            raise ValueError("the depthwise input zero point must be the expand output's")
        g = window_geometry(width, height, stride, padding)
        line_buffer = _parts(config)[0]
        if not line_buffer.fits(width, lb_chunks) or height > line_buffer.max_height:
            raise ValueError(
                f"a {width}x{height} input of {lb_chunks} words per pixel does not fit the line "
                f"buffer (max_width {config.max_width}, max_chunks {config.max_chunks}, bank_depth "
                f"{line_buffer.bank_depth}, max_height {line_buffer.max_height})")
        lb = {"width": width, "height": height, "chunks": lb_chunks, "stride": stride,
              "pad_top": g.pad_top, "pad_bottom": g.pad_bottom, "pad_left": g.pad_left,
              "pad_right": g.pad_right, "pad_value": pad_value, "out_width": g.out_width,
              "out_height": g.out_height}
    else:
        lb = {"width": width, "height": height, "chunks": 1, "stride": 1, "pad_top": 0,
              "pad_bottom": 0, "pad_left": 0, "pad_right": 0, "pad_value": 0,
              "out_width": width, "out_height": height}
    if mode != Mode.DW:
        dense = mode == Mode.CONV3 and in_chunks == 1
        k = {Mode.PW: in_channels, Mode.CONV3: 9 * in_channels if dense else 9 * in_chunks * lanes
             }.get(mode, -(-mid // lanes) * lanes)
        ctx0 = _context(config, k, out_channels, **pe)
    elif out_channels != in_channels:
        raise ValueError(f"DW keeps the channel count: {in_channels} in, {out_channels} out")
    add = add or {}
    add_layout = engine_layouts(config).cfg["pe"].shape["add"].shape
    return {
        "mode": int(mode),
        "in_chunks": in_chunks,
        "dense": int(mode == Mode.CONV3 and in_chunks == 1),
        "dense_cin": min(in_channels, lanes),
        "dense_words": -(-9 * min(in_channels, lanes) // lanes),
        "lb": lb,
        "dw": dict(dw) if dw else {"in_zp": 0, "out_zp": 0, "act_min": -128, "act_max": 127},
        "pe": {"ctx": [ctx0, ctx1], "residual": int(bool(add)),
               "add": {name: add.get(name, 0) for name, _ in add_layout}},
        "split": split_cfg(out_channels, config),
        "split_x": split_x,
    }


class LayerEngine(wiring.Component):
    """One `LineBuffer`, one `DepthwiseEngine` and one `PointwiseArray` (two contexts), per mode.

    Parameters
    ----------
    config : Config
    dsp : str
        ``"infer"`` or ``"ecp5"`` (see `RegisteredMultiplier`), for both engines.

    Attributes
    ----------
    cfg : In(engine_layouts(config).cfg)
        ``mode``; ``in_chunks`` (words per input pixel); ``lb`` (the line buffer's run; for PW
        only ``width`` and ``height``, the pixel count being their product); ``dw`` (the
        depthwise engine's zero points and clamp); ``pe`` (the PE array's two contexts, residual
        flag and ADD parameters); ``split`` / ``split_x`` (`split_cfg` of the output and of the
        expanded tensor). Build it with `engine_cfg`; hold it from ``start`` until ``busy`` falls.
    start : In(1)
        Begins a run when ``busy`` is low.
    busy : Out(1)
        High from ``start`` until the output word flagged ``last`` has been transferred.
    wload, tload : In(stream)
        The PE array's weight and table loads (ready while idle). Two-context layers load both
        layers' weights and tables at their ``weight_base`` / ``table_base``.
    pload : In(stream)
        The depthwise engine's parameter load (one beat per chunk).
    i, res : In(stream.Signature({"data": int8[lanes]}))
        Input words; residual words (PW_DW_PW with ADD: the block input again, one word per
        output word).
    o : Out(stream.Signature({"data": int8[lanes], "last": 1}))
        Output words, NHWC, ``ceil(out_channels / lanes)`` per pixel.
    """

    def __init__(self, config, *, dsp="infer"):
        if not isinstance(config, Config):
            raise TypeError(f"config must be a Config, not {config!r}")
        if dsp not in DSP_KINDS:
            raise ValueError(f"dsp must be one of {DSP_KINDS}, not {dsp!r}")
        self._config = config
        self._dsp = dsp
        self._layouts = engine_layouts(config)
        lay = self._layouts
        super().__init__({
            "cfg": In(lay.cfg),
            "start": In(1),
            "busy": Out(1),
            "wload": In(stream.Signature(lay.wload)),
            "tload": In(stream.Signature(lay.tload)),
            "pload": In(stream.Signature(lay.pload)),
            "i": In(stream.Signature(lay.i)),
            "res": In(stream.Signature(lay.res)),
            "o": Out(stream.Signature(lay.o)),
        })

    @property
    def config(self):
        return self._config

    @property
    def layouts(self):
        return self._layouts

    def elaborate(self, platform):
        m = Module()
        config, cfg = self._config, self.cfg
        rows = config.line_rows
        lb = m.submodules.line_buffer = LineBuffer(config, ram="ecp5" if self._dsp == "ecp5" else "infer")
        dw = m.submodules.depthwise = DepthwiseEngine(config, dsp=self._dsp)
        pe = m.submodules.pe_array = PointwiseArray(config, dsp=self._dsp, contexts=2)
        split = m.submodules.split = WordSplitter(config)
        split_x = m.submodules.split_x = WordSplitter(config)
        pack = m.submodules.pack = WordPacker(config)
        im2col = m.submodules.im2col = Im2col(config, lb.window_layout)
        # Register slices in front of the PE array and the line buffer: the mode multiplexers
        # below join blocks placed far apart, and without them the PE array's input logic, the
        # multiplexers and the producing block (line buffer window, depthwise output, DMA)
        # made one combinational path, and one back along ready.
        pe_in = m.submodules.pe_in = StreamRegister(pe.i.payload.shape())
        lb_in = m.submodules.lb_in = StreamRegister(lb.i.payload.shape())
        wiring.connect(m, pe_in.o, pe.i)
        wiring.connect(m, lb_in.o, lb.i)
        pe_i, lb_i = pe_in.i, lb_in.i
        # ... and the engine's input and the depthwise engine's output, so the arbiter's
        # handshakes end at flip-flops on both sides (the DMA's FIFO, the depthwise credit).
        i_in = m.submodules.i_in = StreamRegister(self.i.payload.shape())
        dw_out = m.submodules.dw_out = StreamRegister(dw.o.payload.shape())
        o_out = m.submodules.o_out = StreamRegister(self.o.payload.shape())
        wiring.connect(m, wiring.flipped(self.i), i_in.i)
        wiring.connect(m, dw.o, dw_out.i)
        wiring.connect(m, o_out.o, wiring.flipped(self.o))
        src, dwo, out = i_in.o, dw_out.o, o_out.i
        # ... and the PE array's outputs and residual input, so the splitters' and the packer's
        # wide registers load on local handshakes, not on the PE array's output stage's
        pe_o = m.submodules.pe_o = StreamRegister(pe.o.payload.shape())
        pe_ox = m.submodules.pe_ox = StreamRegister(pe.ox.payload.shape())
        pe_res = m.submodules.pe_res = StreamRegister(pe.res.payload.shape())
        wiring.connect(m, pe.o, pe_o.i)
        wiring.connect(m, pe.ox, pe_ox.i)
        src_valid = Signal()   # input words are taken only while running (``go`` resets counts)

        # Mode flags and the run's last indices are registers (``cfg`` is stable while idle and
        # a run starts, ``go``, one cycle after ``start``), so no decode of ``cfg`` lies on a
        # run-time path.
        mode = cfg.mode
        flags = {name: Signal(name=name) for name in ("is_pw", "is_dw", "is_conv3", "is_dwpw", "is_block")}
        m.d.sync += [flags["is_pw"].eq(mode == Mode.PW), flags["is_dw"].eq(mode == Mode.DW),
                     flags["is_conv3"].eq(mode == Mode.CONV3), flags["is_dwpw"].eq(mode == Mode.DW_PW),
                     flags["is_block"].eq(mode == Mode.PW_DW_PW)]
        is_pw, is_dw, is_conv3 = flags["is_pw"], flags["is_dw"], flags["is_conv3"]
        is_dwpw, is_block = flags["is_dwpw"], flags["is_block"]
        uses_lb = ~is_pw

        def last_index(value, name):
            r = Signal(len(value), name=name)
            m.d.sync += r.eq(value - 1)
            return r
        in_chunks_last = last_index(cfg.in_chunks, "in_chunks_last")
        lb_chunks_last = last_index(cfg.lb.chunks, "lb_chunks_last")
        width_last = last_index(cfg.lb.width, "width_last")
        height_last = last_index(cfg.lb.height, "height_last")
        out_width_last = last_index(cfg.lb.out_width, "out_width_last")
        out_height_last = last_index(cfg.lb.out_height, "out_height_last")

        # ---- configuration, loads and run control -------------------------------------------
        m.d.comb += [
            lb.cfg.eq(cfg.lb), dw.cfg.eq(cfg.dw), pe.cfg.eq(cfg.pe),
            split.cfg.eq(cfg.split), split_x.cfg.eq(cfg.split_x), pack.cfg.eq(cfg.split),
        ]
        wiring.connect(m, wiring.flipped(self.wload), pe.wload)
        wiring.connect(m, wiring.flipped(self.tload), pe.tload)
        wiring.connect(m, wiring.flipped(self.pload), dw.pload)

        running = Signal()
        go = Signal()        # a cycle after start: the flags above hold the new cfg
        m.d.sync += go.eq(self.start & ~self.busy)
        m.d.comb += [
            self.busy.eq(running | go | lb.busy | pe.busy | self.o.valid),
            lb.start.eq(go & uses_lb),
            pe.start.eq(go & ~is_dw),
        ]
        running_next = Signal()
        m.d.comb += running_next.eq((running | go) & ~(out.valid & out.ready & out.payload.last))
        m.d.sync += running.eq(running_next)
        m.d.comb += src_valid.eq(src.valid & running)

        # ---- input position: (row, column, chunk) of the next word on i ---------------------
        in_k = Signal(range(max(2, _max_in_words(config))))
        in_x = Signal(range(config.max_width + 1))
        in_y = Signal(range(lb.max_height + 1))
        in_done = Signal()
        def raster(fire, k, k_last, x, x_last):
            """Step (column x, chunk k) on ``fire``; returns "this step ends a row"."""
            with m.If(fire):
                m.d.sync += k.eq(Mux(k == k_last, 0, k + 1))
                with m.If(k == k_last):
                    m.d.sync += x.eq(Mux(x == x_last, 0, x + 1))
            return fire & (k == k_last) & (x == x_last)

        in_row_end = raster(src_valid & src.ready, in_k, in_chunks_last, in_x, width_last)
        in_final = in_row_end & (in_y == height_last)
        with m.If(in_row_end):
            m.d.sync += in_y.eq(in_y + 1)
        in_done_next = in_done | in_final
        m.d.sync += in_done.eq(in_done_next)

        # ---- out-rows finished by the line buffer (PW_DW_PW admission, rule A) ---------------
        w_k = Signal(range(max(2, config.max_chunks)))
        w_x = Signal(range(config.max_width + 2 * 2))
        lim_step = raster(lb.o.valid & lb.o.ready, w_k, lb_chunks_last, w_x, out_width_last)
        # Rule A is a register, ``i_open``, with the rest of the input side's gate (running,
        # input not all taken) folded in, so the arbiter's pick reads one flip-flop. The limit
        # is kept as its lead over the input row, ``lead = limit - in_y`` (a row taken: -1; an
        # out-row finished: +stride), so the next value compares a register with constants
        # (four candidates, picked by the two events) instead of adding and comparing.
        lead = Signal(signed(bits_for(lb.max_height + 2 * rows) + 2))
        stride2 = Signal()
        m.d.sync += stride2.eq(cfg.lb.stride == 2)
        step = Mux(stride2, 2, 1)
        m.d.sync += lead.eq(lead + Mux(lim_step, step, 0) - in_row_end)
        i_open = Signal()
        y_small = Mux(in_row_end, in_y < rows - 1, in_y < rows)      # in_y' < line_rows
        gt = {k: _above(lead, k) for k in (-2, -1, 0, 1)}
        lead_pos = Mux(in_row_end,                                      # lead' > 0
                       Mux(lim_step, Mux(stride2, gt[-1], gt[0]), gt[1]),
                       Mux(lim_step, Mux(stride2, gt[-2], gt[-1]), gt[0]))
        admissible_next = y_small | lead_pos

        # project pixels seen by the arbiter (rule C needs the final one); ``p_*_last`` flag
        # the last column and row, registered with them
        p_x = Signal(range(config.max_width + 2 * 2))
        p_y = Signal(range(lb.max_height + 2 * 2))
        p_x_last, p_y_last = Signal(), Signal()
        # rule C: the final project pixel waits until the input is all taken. A function of
        # three flip-flops (one LUT beside the pick); as a flip-flop of its own it needed the
        # pixel counters' next values, behind the pick and the PE slice's handshake (9.9 ns).
        c_open = Signal()
        m.d.comb += c_open.eq(~(p_x_last & p_y_last) | in_done)
        m.d.sync += i_open.eq(admissible_next & ~in_done_next & running_next)

        with m.If(go):
            m.d.sync += [in_k.eq(0), in_x.eq(0), in_y.eq(0), in_done.eq(0), w_k.eq(0), w_x.eq(0),
                         lead.eq(rows - cfg.lb.pad_top), i_open.eq(1)]

        # ---- CONV3: a window becomes 9 words (Im2col: a shift register, no 9:1 funnel) -------
        m.d.comb += [
            im2col.cfg.dense.eq(cfg.dense), im2col.cfg.dense_cin.eq(cfg.dense_cin),
            im2col.cfg.dense_words.eq(cfg.dense_words),
            im2col.i.payload.eq(lb.o.payload),
        ]

        # ---- PW_DW_PW arbiter at the PE input: whole pixels, turns when both are ready -------
        mid = Signal()            # inside a pixel
        mid_dw = Signal()         # ... which comes from the depthwise engine
        last_dw = Signal()        # the previous pixel came from the depthwise engine
        a_k = Signal(range(max(2, _max_in_words(config))))   # word within the pixel
        pick_dw = Signal()
        pick_i = Signal()
        dw_ok = dwo.valid & c_open                 # rule C
        i_ok = src.valid & i_open                  # rule A (i_open includes running)
        m.d.comb += [
            pick_dw.eq(Mux(mid, mid_dw, dw_ok & (~i_ok | ~last_dw))),   # rule B
            pick_i.eq(Mux(mid, ~mid_dw, ~pick_dw & i_ok)),
        ]
        # (both ends compared from registers, then picked: not a compare after the pick)
        a_end = Mux(pick_dw, a_k == lb_chunks_last, a_k == in_chunks_last)
        a_take = pe_i.valid & pe_i.ready & is_block
        with m.If(a_take & (a_k == 0)):
            m.d.sync += last_dw.eq(pick_dw)
        with m.If(a_take):
            with m.If(a_end):
                m.d.sync += [a_k.eq(0), mid.eq(0)]
                with m.If(pick_dw):
                    with m.If(p_x_last):
                        m.d.sync += [p_x.eq(0), p_y.eq(p_y + 1),
                                     p_x_last.eq(out_width_last == 0),
                                     p_y_last.eq(p_y + 1 == out_height_last)]
                    with m.Else():
                        m.d.sync += [p_x.eq(p_x + 1), p_x_last.eq(p_x + 1 == out_width_last)]
            with m.Else():
                m.d.sync += [a_k.eq(a_k + 1), mid.eq(1), mid_dw.eq(pick_dw)]
        with m.If(go):   # after the arbiter's steps, so a run's start wins over them
            m.d.sync += [a_k.eq(0), mid.eq(0), p_x.eq(0), p_y.eq(0),
                         p_x_last.eq(out_width_last == 0), p_y_last.eq(out_height_last == 0)]

        # ---- PE array input ---------------------------------------------------------------------
        # The data is a plain 3:1 multiplexer on two selects (not part of the priority chain
        # below, which would give every data bit the whole mode decode and arbiter as inputs);
        # it need not be zero when no source is picked, since valid is low then.
        pi = pe_i.payload
        from_dw = is_dwpw | (is_block & pick_dw)
        m.d.comb += pi.data.eq(Mux(is_conv3, im2col.o.payload.data,
                                   Mux(from_dw, dwo.payload.data, src.payload.data)))
        with m.If(is_pw):
            m.d.comb += [pe_i.valid.eq(src_valid), pi.last.eq(in_final),
                         src.ready.eq(pe_i.ready)]
        with m.Elif(is_conv3):
            m.d.comb += [pe_i.valid.eq(im2col.o.valid), pi.last.eq(im2col.o.payload.last),
                         im2col.o.ready.eq(pe_i.ready),
                         im2col.i.valid.eq(lb.o.valid), lb.o.ready.eq(im2col.i.ready)]
        with m.Elif(is_dwpw):
            m.d.comb += [pe_i.valid.eq(dwo.valid), pi.last.eq(dwo.payload.last),
                         dwo.ready.eq(pe_i.ready)]
        with m.Elif(is_block):
            with m.If(pick_dw):
                m.d.comb += [pe_i.valid.eq(dwo.valid), pi.last.eq(dwo.payload.last),
                             dwo.ready.eq(pe_i.ready)]
            with m.Elif(pick_i):
                m.d.comb += [pe_i.valid.eq(src_valid), pi.ctx.eq(1),
                             src.ready.eq(pe_i.ready)]

        # ---- line buffer input and depthwise engine input ---------------------------------------
        # Payloads are not gated by the mode (valid is): a payload forced to zero in some mode
        # became the synchronous reset of every register it loads (the depthwise engine's 577
        # input flip-flops shared one reset net decoded from the mode).
        m.d.comb += [
            lb_i.payload.eq(Mux(is_block, split_x.o.payload.data, src.payload.data)),
            dw.i.payload.eq(lb.o.payload),
        ]
        with m.If(is_block):
            m.d.comb += [lb_i.valid.eq(split_x.o.valid), split_x.o.ready.eq(lb_i.ready)]
        with m.Elif(~is_pw):
            m.d.comb += [lb_i.valid.eq(src_valid), src.ready.eq(lb_i.ready)]
        with m.If(~is_conv3):
            m.d.comb += [dw.i.valid.eq(lb.o.valid & uses_lb), lb.o.ready.eq(dw.i.ready)]
        wiring.connect(m, pe_ox.o, split_x.i)
        with m.If(~running):
            m.d.comb += src.ready.eq(0)

        # ---- residual words and output ----------------------------------------------------------
        res_in = m.submodules.res_in = StreamRegister(self.res.payload.shape())
        wiring.connect(m, wiring.flipped(self.res), res_in.i)
        wiring.connect(m, res_in.o, pack.i)
        wiring.connect(m, pack.o, pe_res.i)
        wiring.connect(m, pe_res.o, pe.res)
        wiring.connect(m, pe_o.o, split.i)
        with m.If(is_dw):
            m.d.comb += [out.valid.eq(dwo.valid), out.payload.data.eq(dwo.payload.data),
                         out.payload.last.eq(dwo.payload.last), dwo.ready.eq(out.ready)]
        with m.Else():
            m.d.comb += [out.valid.eq(split.o.valid), out.payload.eq(split.o.payload),
                         split.o.ready.eq(out.ready)]
        return m
