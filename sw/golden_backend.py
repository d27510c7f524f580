"""The `golden` backend: execute one accelerator job from the DRAM image, in numpy.

It sees only what the hardware sees: the descriptor bytes at the job's address, and the packed
weights, tables, depthwise parameters and activations they point to. Everything is decoded from
the image (hdl/descriptor.py formats) and computed with verif/golden, so a wrong layout, tiling,
packing or descriptor in the compiler shows up as a wrong result. Every access is checked
against the job's windows, as the hardware's DMA checks them.
"""

import numpy as np

from .errors import DwfuseError
from .hdl import descriptor as D
from .hdl.residual_add import LEFT_SHIFT
from .verif.golden import ops as G

__all__ = ["DmaWindowError", "run_job"]


class DmaWindowError(DwfuseError):
    """A job's descriptor makes the DMA access bytes outside the windows it was given."""


def _region(image, addr, length, window, what):
    lo, hi = window
    if addr < lo or addr + length > hi or addr + length > len(image):
        raise DmaWindowError(f"{what}: bytes [{addr:#x}, {addr + length:#x}) outside the window "
                             f"[{lo:#x}, {hi:#x}) (image {len(image):#x} bytes)")
    return image[addr:addr + length]


def _tensor(image, acc, rows, cols, chunks, lanes, what):
    """Strided (rows, cols, chunks * lanes) int8 view of a tensor access (read or write)."""
    nbytes = chunks * lanes
    span = (rows - 1) * acc["row_pitch"] + (cols - 1) * acc["pixel_pitch"] + nbytes
    if rows < 1 or cols < 1 or chunks < 1 or acc["pixel_pitch"] < nbytes or acc["row_pitch"] < cols * acc["pixel_pitch"]:
        raise DmaWindowError(f"{what}: malformed access {acc} for {rows}x{cols}x{chunks} words")
    raw = _region(image, acc["base"], span, (acc["base"], acc["base"] + acc["length"]), what)
    return np.lib.stride_tricks.as_strided(raw.view(np.int8), shape=(rows, cols, nbytes),
                                           strides=(acc["row_pitch"], acc["pixel_pitch"], 1))


class _Job:
    """One job being executed: its decoded descriptor and the DRAM bytes it has moved so far."""

    def __init__(self, image, addr, config):
        self.image, self.config = image, config
        layout = D.descriptor_layout()
        size = D.item_bytes(layout, config)
        self.d = D.unpack_bytes(layout, image[addr:addr + size])
        w = self.d["weights"]
        self.window = (w["base"], w["base"] + w["length"])
        self.read = size
        self.written = 0

    def params(self, addr, length, what):
        self.read += length
        return _region(self.image, addr, length, self.window, what)

    def pe(self, ctx):
        """The stage's padded (tiles * C, k_words * R) weight matrix and per-channel tables."""
        cfg = self.config
        R, C = cfg.lanes, cfg.pe_cols
        kw, tiles = ctx["k_words"], ctx["out_tiles"]
        if ctx["weight_words"] != kw * tiles:
            raise DmaWindowError(f"weight_words {ctx['weight_words']} != k_words {kw} x out_tiles {tiles}")
        raw = self.params(ctx["weight_addr"], kw * tiles * R * C, "PE weights").view(np.int8)
        w = raw.reshape(tiles, kw, C, R).transpose(0, 2, 1, 3).reshape(tiles * C, kw * R)
        layout = D.table_row_layout(cfg)
        row = D.item_bytes(layout, cfg)
        blob = self.params(ctx["table_addr"], tiles * row, "PE tables")
        rows = [D.unpack_bytes(layout, blob[t * row:(t + 1) * row]) for t in range(tiles)]
        tab = {k: np.concatenate([np.asarray(r[k], np.int64) for r in rows]) for k in ("bias", "multiplier", "shift")}
        return w, tab

    def dw(self, ctx, chunks):
        cfg = self.config
        layout = D.dw_param_layout(cfg)
        size = D.item_bytes(layout, cfg)
        blob = self.params(ctx["param_addr"], chunks * size, "DW parameters")
        beats = [D.unpack_bytes(layout, blob[k * size:(k + 1) * size]) for k in range(chunks)]
        w = np.concatenate([np.asarray(b["weights"], np.int64) for b in beats], axis=1)  # (9, chunks*lanes)
        tab = {k: np.concatenate([np.asarray(b[k], np.int64) for b in beats]) for k in ("bias", "multiplier", "shift")}
        return w.reshape(1, 3, 3, -1).astype(np.int8), tab


def _pointwise(x, w, tab, ctx):
    """A PE-array pass over every pixel of x (H, W, k_words * R)."""
    h, wd, k = x.shape
    y = G.fully_connected(x.reshape(-1, k), w, tab["bias"], in_zp=ctx["in_zp"], out_zp=ctx["out_zp"],
                          multiplier=tab["multiplier"], shift=tab["shift"],
                          act_min=ctx["act_min"], act_max=ctx["act_max"])
    return y.reshape(h, wd, -1)


def _im2col_weights(w, chunks, lanes):
    """The (O, 3, 3, chunks * lanes) conv filter of a CONV3 weight matrix (im2col order)."""
    o = w.shape[0]
    return w.reshape(o, chunks, 9, lanes).transpose(0, 2, 1, 3).reshape(o, 3, 3, chunks * lanes)


def run_job(image, addr, config):
    """Execute the job whose descriptor is at `addr`; writes its output into `image`.

    Returns (descriptor dict, bytes read, bytes written).
    """
    job = _Job(image, addr, config)
    d = job.d
    lanes = config.lanes
    mode = D.MODES[d["mode"]]
    pads = (d["pad_top"], d["pad_bottom"], d["pad_left"], d["pad_right"])
    stride = (d["stride"], d["stride"])
    x = _tensor(image, d["input"], d["height"], d["width"], d["chunks_in"], lanes, "input")
    job.read += x.size
    x = x[None].copy()
    if mode == "PW":
        w, tab = job.pe(d["pe0"])
        y = _pointwise(x[0], w, tab, d["pe0"])
    elif mode == "CONV3":
        w, tab = job.pe(d["pe0"])
        if d["dense_cin"]:   # (tap, channel) order over the real channels; padded ones weigh 0
            cin = d["dense_cin"]
            if d["chunks_in"] != 1 or cin > lanes:
                raise DmaWindowError(f"CONV3: dense packing of {cin} channels over {d['chunks_in']} words")
            wf = np.zeros((w.shape[0], 3, 3, lanes), np.int8)
            wf[..., :cin] = w[:, :9 * cin].reshape(-1, 3, 3, cin)
        else:
            wf = _im2col_weights(w, d["chunks_in"], lanes)
        p = d["pe0"]
        y = G.conv2d(x, wf, tab["bias"], in_zp=p["in_zp"], out_zp=p["out_zp"], multiplier=tab["multiplier"],
                     shift=tab["shift"], stride=stride, padding=pads, act_min=p["act_min"], act_max=p["act_max"])[0]
    else:
        if mode == "PW_DW_PW":
            w, tab = job.pe(d["pe0"])
            x = _pointwise(x[0], w, tab, d["pe0"])[None, :, :, :d["chunks_mid"] * lanes]
        chunks_dw = d["chunks_mid"] if mode != "DW" else d["chunks_in"]
        wd, tab = job.dw(d["dw"], chunks_dw)
        p = d["dw"]
        if x.shape[3] != chunks_dw * lanes:
            raise DmaWindowError(f"{mode}: depthwise stage over {x.shape[3]} channels, parameters for {chunks_dw * lanes}")
        y = G.depthwise_conv2d(x, wd, tab["bias"], in_zp=p["in_zp"], out_zp=p["out_zp"],
                               multiplier=tab["multiplier"], shift=tab["shift"], stride=stride, padding=pads,
                               act_min=p["act_min"], act_max=p["act_max"])[0]
        if mode != "DW":
            w, tab = job.pe(d["pe1"])
            y = _pointwise(y, w, tab, d["pe1"])
    oh, ow, nb = d["out_height"], d["out_width"], d["chunks_out"] * lanes
    if y.shape[0] != oh or y.shape[1] != ow or y.shape[2] < nb:
        raise DmaWindowError(f"{mode}: computed {y.shape}, descriptor writes {oh}x{ow}x{nb}")
    y = y[:, :, :nb]
    if d["residual"]:
        r = _tensor(image, d["residual_in"], oh, ow, d["chunks_out"], lanes, "residual")
        job.read += r.size
        y = G.add(y, r, **d["add"], left_shift=LEFT_SHIFT)
    out = _tensor(image, d["output"], oh, ow, d["chunks_out"], lanes, "output")
    np.copyto(out, y.astype(np.int8))
    job.written += out.size
    return d, job.read, job.written
