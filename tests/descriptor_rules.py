"""The JobSequencer's CHECK rules (hdl/sequencer.py docstring), restated in plain Python
independently of the hardware and of the compiler: the compiler's descriptors must pass them
(tests/test_compiler.py) and the hardware must refuse exactly what breaks them
(tests/test_sequencer.py)."""

from dwfuse.compiler import line_bank_depth
from dwfuse.hdl import descriptor as D

#: Largest pad the line buffer takes on each side (the descriptor's 2-bit pad fields).
MAX_PAD = 2

#: Residual FIFO words per row: half of the sequencer's two-row FIFO.
RESIDUAL_ROW_WORDS = 256


def _ceil(a, b):
    return -(-a // b)


def descriptor_faults(d, cfg):
    """Names of the rules the unpacked descriptor ``d`` breaks (error 3: ERR_DESCRIPTOR)."""
    faults = []

    def rule(name, ok):
        if not ok:
            faults.append(name)

    if d["mode"] >= len(D.MODES):
        return ["mode"]
    lanes, parts = cfg.lanes, cfg.pe_cols // cfg.lanes
    mode = D.MODES[d["mode"]]
    has_3x3 = mode != "PW"
    block, conv3 = mode == "PW_DW_PW", mode == "CONV3"
    pads = (d["pad_top"], d["pad_bottom"], d["pad_left"], d["pad_right"])
    rule("stride", d["stride"] == 1 or (has_3x3 and d["stride"] == 2))
    rule("pads", max(pads) <= MAX_PAD and (has_3x3 or max(pads) == 0))
    rule("size", 1 <= d["width"] <= cfg.max_width and 1 <= d["height"] < 4096
         and 1 <= d["out_width"] <= cfg.max_width + 2 * MAX_PAD - 2 and d["out_height"] >= 1)
    rule("chunks", 1 <= d["chunks_in"] <= cfg.max_chunks and 1 <= d["chunks_out"] <= cfg.max_out_channels // lanes
         and (not block or 1 <= d["chunks_mid"] <= cfg.max_chunks))
    for n, before, after, out in ((d["width"], pads[2], pads[3], d["out_width"]),
                                  (d["height"], pads[0], pads[1], d["out_height"])):
        if has_3x3:
            span = n + before + after
            rule("geometry", span >= 3 and out == (span - 3) // (2 if d["stride"] == 2 else 1) + 1)
        else:
            rule("geometry", out == n)
    lb_chunks = d["chunks_mid"] if block else d["chunks_in"]
    rule("line_buffer", not has_3x3 or _ceil(d["width"], 3) * lb_chunks <= line_bank_depth(cfg))
    dense = conv3 and d["dense_cin"] != 0
    rule("dense", not dense or (d["chunks_in"] == 1 and d["dense_cin"] <= lanes))
    used = [s for s, on in (("pe0", mode in ("PW", "CONV3", "PW_DW_PW")), ("pe1", mode in ("DW_PW", "PW_DW_PW")))
            if on]
    max_k_words = _ceil(cfg.max_k, lanes)
    for s in used:
        ctx = d[s]
        if s == "pe0":
            k = _ceil(9 * d["dense_cin"], lanes) if dense else d["chunks_in"] * (9 if conv3 else 1)
        else:
            k = lb_chunks if block else d["chunks_in"]
        rule(s, ctx["k_words"] == k and ctx["out_tiles"] >= 1 and ctx["k_words"] <= max_k_words
             and ctx["weight_words"] == ctx["k_words"] * ctx["out_tiles"])
    rule("buffers", d["wbuf_base"] + sum(d[s]["weight_words"] for s in used) <= cfg.weight_words
         and sum(d[s]["out_tiles"] for s in used) <= _ceil(cfg.max_out_channels, cfg.pe_cols))
    if mode == "DW":
        rule("split", d["chunks_out"] == d["chunks_in"])
    else:
        rule("split", _ceil(d["chunks_out"], parts) == d[used[-1]]["out_tiles"])
    rule("split", not block or _ceil(d["chunks_mid"], parts) == d["pe0"]["out_tiles"])
    if d["residual"]:
        rule("residual", mode in ("PW_DW_PW", "DW_PW") and d["out_width"] * d["chunks_out"] <= RESIDUAL_ROW_WORDS
             and (not block or d["chunks_out"] == d["chunks_in"])
             and (d["out_width"], d["out_height"]) == (d["width"], d["height"]))
        rule("pitch", d["residual_in"]["pixel_pitch"] == d["chunks_out"] * lanes)
    rule("pitch", d["input"]["pixel_pitch"] == d["chunks_in"] * lanes
         and d["output"]["pixel_pitch"] >= d["chunks_out"] * lanes)
    return faults


def window_faults(d, cfg):
    """Tensor accesses whose last byte lies outside their window (error 1: ERR_WINDOW), for a
    descriptor without `descriptor_faults`."""
    faults = []
    accesses = [("input", d["height"], d["width"], d["chunks_in"]),
                ("output", d["out_height"], d["out_width"], d["chunks_out"])]
    if d["residual"]:
        accesses.append(("residual_in", d["out_height"], d["out_width"], d["chunks_out"]))
    for name, rows, cols, chunks in accesses:
        a = d[name]
        last = (rows - 1) * a["row_pitch"] + (cols - 1) * a["pixel_pitch"] + chunks * cfg.lanes
        if last > a["length"]:
            faults.append(name)
    return faults
