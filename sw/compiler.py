"""Compile a `Graph` for an accelerator `Config` into a `Program`.

    graph → fusion.plan (accelerator groups | host ops)
          → per group: stages; fit: a PW_DW_PW whose expand + project weights do not share the
            weight buffer becomes PW + DW_PW, a residual ADD the hardware cannot stream (split
            block, column tiles, rows over the residual FIFO) runs on the host, the reason in the
            notes; output-channel tiles (weight buffer, tables), column tiles with a halo (line
            buffer; PW jobs too, whose rows are at most max_width)

The descriptors satisfy the JobSequencer's checks (hdl/sequencer.py: whole input pixels, a
residual only in PW_DW_PW with input and output rows of the same size, ...).
          → DRAM: parameters (packed as the hardware loads them), descriptor chains,
            activation buffers (dead buffers reused)
          → descriptors (hdl/descriptor.py), one per job

Every limit of the `Config` is checked here; a layer that no tiling can fit raises
`HardwareLimitError` naming the op and the limit.
"""

from dataclasses import dataclass

import numpy as np

from .errors import HardwareLimitError
from .fusion import Group, plan
from .hdl import descriptor as D
from .hdl.config import Config, preset
from .hdl.depthwise import pack_params
from .hdl.linebuffer import MAX_PAD, window_geometry
from .hdl.pointwise import pack_tables, pack_weights
from .hdl.residual_add import LEFT_SHIFT
from .memory_map import Arena, TensorBuffer, align, tensor_geometry
from .program import CompiledGroup, Job, Program

__all__ = ["compile", "line_bank_depth", "RESIDUAL_ROW_WORDS"]

#: Most words (out_width * chunks_out) of one output row of a job with the residual ADD: the
#: JobSequencer's residual FIFO holds two rows (hdl/sequencer.py RES_FIFO_WORDS // 2; a test
#: checks they agree, without making the compiler import the sequencer's gateware).
RESIDUAL_ROW_WORDS = 256

#: Modes whose last PE stage can add a residual (a MobileNetV2 block, fused whole or, when its
#: weights do not fit together, as PW + DW_PW with the ADD in the DW_PW).
RESIDUAL_MODES = ("PW_DW_PW", "DW_PW")

#: Rows a job may have (the line buffer's and the sequencer's row counters).
MAX_HEIGHT = 4095


def line_bank_depth(config):
    """Words per line-buffer (slot, bank) memory: the Config's field, else the LineBuffer default."""
    for name in ("line_buffer_depth", "line_bank_depth", "bank_depth"):
        v = getattr(config, name, None)
        if v:
            return int(v)
    return -(-config.max_width // 3) * config.max_chunks


def _limit(op, what, limit, config):
    return HardwareLimitError(f"op {op.index} ({op.kind}): {what} exceeds {limit} of config {config.name!r}")


@dataclass
class _Requantized:
    """A layer's output requantization (TFLite per-channel), shared by both kinds of stage."""

    op: object
    bias: np.ndarray
    multiplier: np.ndarray
    shift: np.ndarray
    in_zp: int
    out_zp: int
    act_min: int
    act_max: int


@dataclass
class PEStage(_Requantized):
    """One PE-array layer: its (O, K) weight matrix in the PE's input order, and requantization."""

    matrix: np.ndarray = None
    k_words: int = 0
    out_tiles: int = 0
    weight_addr: int = 0
    table_addr: int = 0
    dense_cin: int = 0          # CONV3 packed densely (hdl/descriptor.py): its input channels

    @property
    def out_channels(self):
        return self.matrix.shape[0]


@dataclass
class DWStage(_Requantized):
    """One depthwise layer on the depthwise engine."""

    weights: np.ndarray = None
    chunks: int = 0
    param_addr: int = 0


def _quant(op):
    p = op.params
    o = len(p["multiplier"])
    bias = np.zeros(o, np.int64) if p["bias"] is None else np.asarray(p["bias"], np.int64)
    return dict(bias=bias, multiplier=np.asarray(p["multiplier"], np.int64),
                shift=np.asarray(p["shift"], np.int64), in_zp=p["in_zp"], out_zp=p["out_zp"],
                act_min=p["act_min"], act_max=p["act_max"])


def _pe_stage(op, graph, config, im2col=False):
    w = graph.tensors[op.inputs[1]].data
    if op.kind == "DEPTHWISE_CONV_2D":        # one input channel, depth multiplier M: a conv to M
        w = np.transpose(w, (3, 1, 2, 0))
    dense_cin = 0
    if im2col and w.shape[3] <= config.lanes:   # dense: TFLite's own (tap, channel) order
        dense_cin = w.shape[3]
        m = w.reshape(w.shape[0], -1)
    elif im2col:
        o, _, _, i = w.shape
        chunks = -(-i // config.lanes)
        wp = np.zeros((o, 9, chunks * config.lanes), np.int8)
        wp[:, :, :i] = w.reshape(o, 9, i)
        # column (chunk * 9 + tap) * lanes + r  (see hdl/descriptor.py, im2col order)
        m = wp.reshape(o, 9, chunks, config.lanes).transpose(0, 2, 1, 3).reshape(o, -1)
    else:
        m = w.reshape(w.shape[0], -1)
    st = PEStage(op=op, matrix=np.ascontiguousarray(m, np.int8), dense_cin=dense_cin, **_quant(op))
    st.k_words = -(-m.shape[1] // config.lanes)
    st.out_tiles = -(-m.shape[0] // config.pe_cols)
    max_k_words = -(-config.max_k // config.lanes)
    if not im2col and st.k_words > config.max_chunks:
        raise _limit(op, f"input of {m.shape[1]} channels", f"max_channels {config.max_channels}", config)
    if st.k_words > max_k_words:
        raise _limit(op, f"input vector of {st.k_words * config.lanes} channels", f"max_k {config.max_k}", config)
    if st.k_words > config.weight_words:
        raise _limit(op, f"one output tile's {st.k_words} weight words", f"weight_words {config.weight_words}",
                     config)
    return st


def _dw_stage(op, graph, config):
    st = DWStage(op=op, weights=graph.tensors[op.inputs[1]].data, **_quant(op))
    st.chunks = -(-st.weights.shape[3] // config.lanes)
    if st.chunks > config.max_chunks:
        raise _limit(op, f"{st.weights.shape[3]} channels in the line buffer", f"max_channels {config.max_channels}",
                     config)
    return st


_CONVS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


def _max_tiles(config):
    """Output tiles one job's tables (and output words: at most max_out_channels) may hold."""
    return config.max_out_channels // config.pe_cols


def _stages(group, graph, config):
    """(pe0, dw, pe1) of an accelerator group (None where the mode has no such stage)."""
    convs = [o for o in group.ops if o.kind in _CONVS]
    if group.mode == "PW":
        return _pe_stage(convs[0], graph, config), None, None
    if group.mode == "CONV3":
        return _pe_stage(convs[0], graph, config, im2col=True), None, None
    if group.mode == "DW":
        return None, _dw_stage(convs[0], graph, config), None
    if group.mode == "DW_PW":
        return None, _dw_stage(convs[0], graph, config), _pe_stage(convs[1], graph, config)
    return _pe_stage(convs[0], graph, config), _dw_stage(convs[1], graph, config), _pe_stage(convs[2], graph, config)


def _host_reason(group, graph):
    """Why an accelerator group of the fusion plan must run on the host instead, or None."""
    for op in group.ops:
        if op.kind == "FULLY_CONNECTED":
            x, w = graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]]
            if x.shape[-1] != w.shape[1]:
                return f"FULLY_CONNECTED input {list(x.shape)} is not rows of {w.shape[1]}"
        elif op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D") and graph.tensors[op.inputs[0]].shape[0] != 1:
            return "batch > 1"
    return None


def _split(group, parts, why, keep_add=True):
    """Groups of `parts` (mode, number of the group's convs) in place of a fused group.

    A folded PAD stays with the first part, the 3x3 padding goes with the part holding the
    depthwise conv. The residual ADD stays with a last part in `RESIDUAL_MODES` (the modes the
    hardware adds a residual in) unless not `keep_add`; otherwise it runs on the host. Every
    part carries the reason.
    """
    convs = [op for op in group.ops if op.kind in _CONVS]
    out, k = [], 0
    to_host = group.residual >= 0 and not (keep_add and parts[-1][0] in RESIDUAL_MODES)
    notes = group.notes + [why + ("; its residual ADD runs on the host" if to_host and keep_add else "")]
    for n, (mode, count) in enumerate(parts):
        ops = convs[k:k + count]
        k += count
        if n == 0 and group.ops[0].kind in ("PAD", "PADV2"):
            ops = [group.ops[0]] + ops
        add = keep_add and n == len(parts) - 1 and group.residual >= 0 and mode in RESIDUAL_MODES
        if add:
            ops = ops + [group.ops[-1]]
        has_dw = any(op.kind == "DEPTHWISE_CONV_2D" for op in ops)
        out.append(Group(mode, ops, input=ops[0].inputs[0], output=ops[-1].outputs[0],
                         residual=group.residual if add else -1, pad=group.pad if has_dw else None, notes=list(notes)))
    if to_host:
        out.append(Group("HOST", [group.ops[-1]], output=group.output, notes=list(notes)))
    return out


def _column_tiles(group, graph, config, lb_chunks, op):
    """[(in_col_first, in_col_last, out_col_first, out_col_end, pad_left, pad_right)] of a 3x3 group."""
    x = graph.tensors[group.input]
    h, w = x.shape[1], x.shape[2]
    stride = op.options["stride"][0]
    pt, pb, pl, pr = group.pad
    geo = window_geometry(w, h, stride, group.pad)
    if lb_chunks > config.max_chunks:
        raise _limit(op, f"{lb_chunks * config.lanes} channels in the line buffer",
                     f"max_channels {config.max_channels}", config)
    depth = line_bank_depth(config)
    wmax = min(config.max_width, 3 * (depth // lb_chunks))
    if w <= wmax:
        return [(0, w - 1, 0, geo.out_width, pl, pr)]
    if wmax < 3:
        raise _limit(op, f"a 3-column tile of {lb_chunks} words per pixel",
                     f"the line buffer's bank depth {depth} words", config)
    per = (wmax - 3) // stride + 1
    n = -(-geo.out_width // per)
    per = -(-geo.out_width // n)
    tiles = []
    for oc0 in range(0, geo.out_width, per):
        oc1 = min(geo.out_width, oc0 + per)
        start, end = oc0 * stride - pl, (oc1 - 1) * stride - pl + 2
        a, b = max(0, start), min(w - 1, end)
        tiles.append((a, b, oc0, oc1, a - start, end - b))
        # the tile's own padding gives exactly its output columns (pads only at the tensor's edges)
        assert max(a - start, end - b) <= MAX_PAD
        assert window_geometry(b - a + 1, h, stride, (pt, pb, a - start, end - b)).out_width == oc1 - oc0
    return tiles


def _channel_tiles(stage, words_available, tiles_available, op, config):
    """[(first tile, end tile)] of the last PE stage so each job's weights and tables fit."""
    if tiles_available < 1:
        raise _limit(op, f"one output tile of {config.pe_cols} channels",
                     f"max_out_channels {config.max_out_channels}", config)
    per = min(words_available // stage.k_words, tiles_available)
    if per < 1:
        raise _limit(op, f"one output tile's {stage.k_words} weight words",
                     f"weight_words {config.weight_words}", config)
    if per < stage.out_tiles and config.pe_cols % config.lanes:
        raise _limit(op, f"output-channel tiling with pe_cols {config.pe_cols} not a multiple of lanes",
                     f"lanes {config.lanes}", config)
    jobs = -(-stage.out_tiles // per)
    per = -(-stage.out_tiles // jobs)      # balanced: consecutive jobs' weights fit side by side
    return [(t, min(stage.out_tiles, t + per)) for t in range(0, stage.out_tiles, per)]


def _plan_groups(graph, config):
    """Fusion plan made to fit: demotions to host, PW_DW_PW splits; CompiledGroups with stages."""
    out = []
    pending = list(plan(graph))
    while pending:
        g = pending.pop(0)
        if g.mode != "HOST":
            why = _host_reason(g, graph)
            if why:
                g = Group("HOST", g.ops, output=g.output, notes=[f"runs on the host: {why}"])
        if g.mode == "HOST":
            out.extend(CompiledGroup(group=Group("HOST", [op], output=op.outputs[0], notes=list(g.notes)))
                       for op in g.ops)
            continue
        pe0, dw, pe1 = _stages(g, graph, config)
        parts = why = None
        keep_add = True
        if g.mode == "PW_DW_PW":
            need = (pe0.out_tiles * pe0.k_words + pe1.out_tiles * pe1.k_words, pe0.out_tiles + pe1.out_tiles)
            if need[0] > config.weight_words or need[1] > _max_tiles(config):
                parts = [("PW", 1), ("DW_PW", 2)]
                why = (f"PW_DW_PW split into PW + DW_PW: expand + project need {need[0]} weight words and "
                       f"{need[1]} table tiles, the buffers hold {config.weight_words} and {_max_tiles(config)}")
            elif config.line_rows < 4:
                parts = [("PW", 1), ("DW_PW", 2)]
                why = f"PW_DW_PW split into PW + DW_PW: fused blocks need line_rows >= 4, not {config.line_rows}"
        if not parts and g.residual >= 0 and g.mode in RESIDUAL_MODES:
            # the hardware adds whole rows (two fit its residual FIFO), behind a 4-row line buffer
            _, ow, _, chunks = tensor_geometry(graph.tensors[g.output].shape, config.lanes)
            tiles = _column_tiles(g, graph, config, dw.chunks, dw.op)
            split_channels = g.mode == "DW_PW" and (pe1.out_tiles * pe1.k_words > config.weight_words
                                                    or pe1.out_tiles > _max_tiles(config))
            if len(tiles) > 1 or ow * chunks > RESIDUAL_ROW_WORDS or config.line_rows < 4 or split_channels:
                parts, keep_add = [(g.mode, 3 if g.mode == "PW_DW_PW" else 2)], False
                why = ("residual ADD on the host: the hardware adds whole rows of at most "
                       f"{RESIDUAL_ROW_WORDS} words, all channels of a pixel, behind a line buffer of 4 rows; "
                       "this group has "
                       + (f"{len(tiles)} column tiles" if len(tiles) > 1 else
                          f"rows of {ow} x {chunks} words" if ow * chunks > RESIDUAL_ROW_WORDS else
                          "weights that need more than one job" if split_channels else
                          f"line_rows {config.line_rows}"))
        if parts:
            pending[:0] = _split(g, parts, why, keep_add)
            continue
        out.append(CompiledGroup(group=g, pe0=pe0, dw=dw, pe1=pe1))
    return out


def _tile(cg, graph, config):
    """Column tiles (line buffer) and output-channel tiles (weight buffer, tables) of a group."""
    g = cg.group
    if g.mode == "PW":
        # no window, no halo: columns only because a job's rows are at most max_width pixels
        _, w, _, _ = tensor_geometry(graph.tensors[g.input].shape, config.lanes)
        cg.col_tiles = [(a, min(w, a + config.max_width) - 1, a, min(w, a + config.max_width), 0, 0)
                        for a in range(0, w, config.max_width)]
    else:
        # the tensor in the line buffer: the depthwise stage's input, or the CONV3's
        lb = cg.dw.chunks if cg.dw else -(-graph.tensors[g.input].shape[3] // config.lanes)
        cg.col_tiles = _column_tiles(g, graph, config, lb, cg.dw.op if cg.dw else cg.pe0.op)
    h, _, _, _ = tensor_geometry(graph.tensors[g.input].shape, config.lanes)
    if h > MAX_HEIGHT:
        op = (cg.dw or cg.pe0).op
        raise _limit(op, f"an input of {h} rows", f"the {MAX_HEIGHT} rows a job may have", config)
    last = cg.pe1 or cg.pe0
    if last is not None:
        # a fused expand stays whole; the last PE stage gets what is left of the buffers
        first = cg.pe0 if cg.pe1 is not None else None
        used_words = first.out_tiles * first.k_words if first else 0
        used_tiles = first.out_tiles if first else 0
        # Half the weight buffer per job where tiling costs little (a 1x1 conv re-reads only its
        # input per tile; a DW_PW too big for the buffer is tiled anyway): the sequencer then
        # loads the next job's weights into the other half while this one runs
        # (hdl/sequencer.py). A fused block would recompute its expand conv per tile, and a
        # residual block needs its channels whole.
        words = config.weight_words - used_words
        need = used_words + last.out_tiles * last.k_words
        if (g.mode == "PW" or (g.mode == "DW_PW" and need > config.weight_words)) \
                and last.out_tiles * last.k_words > config.weight_words // 2 \
                and config.weight_words // 2 >= last.k_words:
            words = config.weight_words // 2
        cg.chan_tiles = _channel_tiles(last, words, _max_tiles(config) - used_tiles, last.op, config)
    else:
        if cg.dw.chunks * config.lanes > config.max_out_channels:
            raise _limit(cg.dw.op, f"{cg.dw.chunks * config.lanes} output channels",
                         f"max_out_channels {config.max_out_channels}", config)
        cg.chan_tiles = [(0, 1)]
    if len(cg.col_tiles) > 1:
        cg.group.notes.append(f"{len(cg.col_tiles)} column tiles (rows wider than the line buffer)")
    if len(cg.chan_tiles) > 1:
        cg.group.notes.append(f"{len(cg.chan_tiles)} output-channel tiles (weights exceed the weight buffer)")


class _ParamWriter:
    """Appends packed parameters to the parameter region, each item aligned to the bus."""

    def __init__(self, config):
        self.config = config
        self.blobs = []
        self.top = 0

    def put(self, raw):
        addr = self.top
        self.blobs.append(bytes(raw))
        self.top += align(len(raw), self.config.bus_bytes)
        self.blobs.append(bytes(align(len(raw), self.config.bus_bytes) - len(raw)))
        return addr

    def pe(self, st):
        cfg = self.config
        word_bytes = cfg.lanes * cfg.pe_cols
        words = pack_weights(st.matrix, cfg)
        st.weight_addr = self.put(b"".join(v.to_bytes(word_bytes, "little") for v in words))
        layout = D.table_row_layout(cfg)
        rows = pack_tables(st.bias, st.multiplier, st.shift, cfg)
        st.table_addr = self.put(b"".join(D.pack_bytes(layout, {k: r[k] for k in ("bias", "multiplier", "shift")}, cfg)
                                          for r in rows))

    def dw(self, st):
        cfg = self.config
        layout = D.dw_param_layout(cfg)
        beats = pack_params(st.weights, st.bias, st.multiplier, st.shift, cfg)
        st.param_addr = self.put(b"".join(D.pack_bytes(layout, {k: v for k, v in b.items() if k != "chunk"}, cfg)
                                          for b in beats))


def _zps(st):
    return dict(in_zp=st.in_zp, out_zp=st.out_zp, act_min=st.act_min, act_max=st.act_max)


def _pe_context(st, t0, t1, config):
    word_bytes = config.lanes * config.pe_cols
    row = D.item_bytes(D.table_row_layout(config), config)
    ctx = dict(weight_addr=st.weight_addr + t0 * st.k_words * word_bytes, weight_words=(t1 - t0) * st.k_words,
               table_addr=st.table_addr + t0 * row, k_words=st.k_words, out_tiles=t1 - t0, **_zps(st))
    ranges = [(ctx["weight_addr"], ctx["weight_words"] * word_bytes), (ctx["table_addr"], (t1 - t0) * row)]
    return ctx, ranges


def _access(buf, col0, rows, cols, chunk0, chunks):
    """The `TensorAccess` of columns col0.. and words chunk0.. of every row of a buffer."""
    base = buf.addr + col0 * buf.pixel_bytes + chunk0 * buf.lanes
    length = (rows - 1) * buf.row_bytes + (cols - 1) * buf.pixel_bytes + chunks * buf.lanes
    return dict(base=base, length=length, row_pitch=buf.row_bytes, pixel_pitch=buf.pixel_bytes)


def _add_params(add, pe_out):
    p = add.params
    if p["left_shift"] != LEFT_SHIFT:
        raise HardwareLimitError(f"op {add.index} (ADD): left_shift {p['left_shift']}, the hardware's is {LEFT_SHIFT}")
    a, b = ("a", "b") if add.inputs[0] == pe_out else ("b", "a")
    return dict(a_zp=p[f"{a}_zp"], a_multiplier=p[f"{a}_multiplier"], a_shift=p[f"{a}_shift"],
                b_zp=p[f"{b}_zp"], b_multiplier=p[f"{b}_multiplier"], b_shift=p[f"{b}_shift"],
                out_multiplier=p["out_multiplier"], out_shift=p["out_shift"], out_zp=p["out_zp"],
                act_min=p["act_min"], act_max=p["act_max"])


def _descriptors(cg, graph, config, buffers):
    """One descriptor dict per (column tile, channel tile) of a group."""
    g = cg.group
    xin, xout = buffers[g.input], buffers[g.output]
    last = cg.pe1 or cg.pe0
    stride = (cg.dw or cg.pe0).op.options.get("stride", (1, 1))[0]     # the 3x3 stage's
    pt, pb, _, _ = g.pad or (0, 0, 0, 0)
    descs = []
    for a, b, oc0, oc1, pl, pr in cg.col_tiles:
        for t0, t1 in cg.chan_tiles:
            ranges = []
            if last is not None:
                ch0, ch1 = t0 * config.pe_cols, min(last.out_channels, t1 * config.pe_cols)
                ck0, nck = ch0 // config.lanes, -(-ch1 // config.lanes) - ch0 // config.lanes
            else:
                ck0, nck = 0, cg.dw.chunks
            w, h = b - a + 1, xin.height
            if g.mode == "PW":
                ow, oh = w, h
            else:
                geo = window_geometry(w, h, stride, (pt, pb, pl, pr))
                ow, oh = geo.out_width, geo.out_height
            d = dict(mode=D.MODE_CODES[g.mode], stride=stride,
                     pad_top=pt, pad_bottom=pb, pad_left=pl, pad_right=pr,
                     width=w, height=h, out_width=ow, out_height=oh,
                     chunks_in=xin.chunks, chunks_out=nck,
                     dense_cin=cg.pe0.dense_cin if g.mode == "CONV3" else 0,
                     input=_access(xin, a, h, w, 0, xin.chunks),
                     output=_access(xout, oc0, oh, ow, ck0, nck))
            if g.mode == "PW_DW_PW":
                d["chunks_mid"] = cg.dw.chunks
                d["pe0"], r = _pe_context(cg.pe0, 0, cg.pe0.out_tiles, config)
                ranges += r
                d["pe1"], r = _pe_context(cg.pe1, t0, t1, config)
                ranges += r
            elif g.mode == "DW_PW":
                d["chunks_mid"] = cg.dw.chunks
                d["pe1"], r = _pe_context(cg.pe1, t0, t1, config)
                ranges += r
            elif cg.pe0 is not None:
                d["pe0"], r = _pe_context(cg.pe0, t0, t1, config)
                ranges += r
            if cg.dw is not None:
                d["dw"] = dict(param_addr=cg.dw.param_addr, **_zps(cg.dw))
                ranges.append((cg.dw.param_addr, cg.dw.chunks * D.item_bytes(D.dw_param_layout(config), config)))
            lo = min(r[0] for r in ranges)
            d["weights"] = dict(base=lo, length=max(r[0] + r[1] for r in ranges) - lo)
            if g.residual >= 0:
                d["residual"] = 1
                d["add"] = _add_params(g.ops[-1], last.op.outputs[0])
                d["residual_in"] = _access(buffers[g.residual], oc0, oh, ow, ck0, nck)
            descs.append(d)
    return descs


def _allocate_buffers(groups, graph, config, base):
    """A DRAM buffer for every tensor an accelerator job reads or writes, from `base` up.

    A buffer lives from the group that first touches its tensor (the host writes the graph's
    inputs before everything) to the last one (the graph's outputs until the end); a dead
    buffer's bytes are reused. Returns (tensor index → TensorBuffer, end of the region).
    """
    dram = {t for cg in groups if cg.mode != "HOST"
            for t in (cg.group.input, cg.group.residual, cg.group.output) if t >= 0}
    first_use, last_use = {}, {}
    for k, cg in enumerate(groups):
        for t in (t for op in cg.group.ops for t in op.inputs + op.outputs if t in dram):
            first_use.setdefault(t, k)
            last_use[t] = k
    first_use.update({t: -1 for t in graph.inputs if t in dram})
    last_use.update({t: len(groups) for t in graph.outputs if t in dram})
    arena = Arena(base, config.bus_bytes)
    buffers = {}
    for k in range(-1, len(groups)):
        for t in sorted(t for t in dram if first_use[t] == k):
            h, w, c, chunks = tensor_geometry(graph.tensors[t].shape, config.lanes)
            buf = TensorBuffer(tensor=t, addr=0, height=h, width=w, channels=c, chunks=chunks, lanes=config.lanes)
            buf.addr = arena.alloc(buf.size)
            buffers[t] = buf
        for t in sorted(t for t in dram if last_use[t] == k):
            arena.release(buffers[t].addr, buffers[t].size)
    return buffers, arena.high


def compile(graph, config="ecp5"):
    """Compile `graph` for `config` (a `Config` or a preset name); returns a `Program`.

    Raises HardwareLimitError when a layer exceeds a limit no tiling can work around.
    """
    if isinstance(config, str):
        config = preset(config)
    if not isinstance(config, Config):
        raise TypeError(f"config must be a Config or a preset name, not {config!r}")
    groups = _plan_groups(graph, config)
    for cg in groups:
        if cg.mode != "HOST":
            _tile(cg, graph, config)

    # parameters first, at address 0
    params = _ParamWriter(config)
    for cg in groups:
        for st in (cg.pe0, cg.dw, cg.pe1):
            if isinstance(st, PEStage):
                params.pe(st)
            elif isinstance(st, DWStage):
                params.dw(st)

    # descriptors after the parameters, one per job; activation buffers after the descriptors
    n_jobs = sum(len(cg.col_tiles) * len(cg.chan_tiles) for cg in groups if cg.mode != "HOST")
    desc_bytes = D.item_bytes(D.descriptor_layout(), config)
    desc_base = align(params.top, config.bus_bytes)
    buffers, image_bytes = _allocate_buffers(groups, graph, config, desc_base + n_jobs * desc_bytes)
    jobs = []
    for k, cg in enumerate(groups):
        if cg.mode != "HOST":
            for d in _descriptors(cg, graph, config, buffers):
                jobs.append(Job(group=k, addr=desc_base + len(jobs) * desc_bytes, descriptor=d))
                cg.jobs.append(len(jobs) - 1)

    # weight-buffer placement: jobs alternate between its two ends, so consecutive jobs whose
    # weights fit together occupy disjoint words and the next one's load overlaps this one's run
    for n, job in enumerate(jobs):
        d = job.descriptor
        words = sum(d.get(s, {}).get("weight_words", 0) for s in ("pe0", "pe1"))
        d["wbuf_base"] = 0 if n % 2 == 0 else config.weight_words - words

    # chains end where a host op (or the program) follows
    for k, cg in enumerate(groups):
        if cg.jobs and (k + 1 == len(groups) or groups[k + 1].mode == "HOST"):
            jobs[cg.jobs[-1]].descriptor["last"] = 1

    image = np.zeros(align(image_bytes, config.bus_bytes), np.uint8)
    raw = b"".join(params.blobs)
    image[:len(raw)] = np.frombuffer(raw, np.uint8)
    layout = D.descriptor_layout()
    for job in jobs:
        op = groups[job.group].group.ops[-1]
        try:
            blob = D.pack_bytes(layout, job.descriptor, config)
        except ValueError as e:
            raise HardwareLimitError(f"op {op.index} ({op.kind}): descriptor field {e}") from None
        image[job.addr:job.addr + desc_bytes] = np.frombuffer(blob, np.uint8)
    return Program(graph=graph, config=config, groups=groups, jobs=jobs, buffers=buffers, image=image,
                   param_bytes=params.top, descriptor_base=desc_base, descriptor_bytes=desc_bytes)
