"""Streaming benchmark of the LayerEngine: measured cycles per layer group vs the ideal.

For every accelerator group (`dwfuse.fusion.plan`) of MobileNetV2-1.0-224 (the zoo model
"mobilenet_v2_1.0_224", real int8 weights) and person_detect, the engine (Verilator, the
chosen Config preset, no stalls on any stream) runs two *cuts* of the layer: the first R1 and
the first R2 output rows (full width, real input activations from a golden inference; the cut
ends with a VALID bottom edge, except residual blocks, whose cut is an R-row image with the
layer's own padding so the ADD has its operand). Every cut's output is also checked against verif/golden.

    steady cycles per out-row = (cycles(R2) - cycles(R1)) / (R2 - R1)
    fill                      = cycles(R1) - R1 * steady
    ideal per out-row         = max(PE MACs / (lanes * pe_cols), DW MACs / (lanes * 9))
    ratio                     = steady / ideal              (target <= 1.05)
    engine bound per out-row  = the PE array's work with padded channels: the larger of
                                sum(pixels * out_tiles * k_words) (issue) and
                                sum(pixels * out_tiles * pe_cols / requant_lanes) (drain)

Layers with fewer than R2 output rows run once, whole (ratio = cycles / ideal, fill included).
A group whose weights (both contexts of a PW_DW_PW) exceed the weight buffer, or whose row
exceeds the line buffer, is listed as not fitting (the compiler must tile it).

Usage::

    python scripts/bench_streaming.py [--config ecp5] [--rows 2 4] [--json FILE] [--limit N]
                                      [--only TEXT] [--line-rows N]

Not a CI test: it takes minutes. The real-layer correctness runs of every group of the shared
models are ``pytest -m slow tests/test_engine.py``.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("DWFUSE_SHARED_MODELS") or ROOT.parent / "shared" / "models")


def _macs(run, config):
    """(PE MACs, DW MACs, engine bound) of one run, from its shapes and cfg.

    The engine bound counts the PE array's work with padded channels: per context, pixels x
    out_tiles x k_words issue cycles and pixels x out_tiles x pe_cols/requant_lanes drain
    cycles (pe_cols/residual_lanes with the ADD); the array is limited by the larger sum.
    """
    from dwfuse.hdl.engine import Mode
    x, y = run["x"], run["expected"]
    pix_in, pix_out = x.shape[0] * x.shape[1], y.shape[0] * y.shape[1]
    mode = Mode(run["mode"])
    ctx0, ctx1 = run["cfg"]["pe"]["ctx"]
    slices = config.pe_cols // config.requant_lanes
    slices0 = config.pe_cols // (config.residual_lanes or config.requant_lanes) if run["residual"] else slices
    work = []   # (pixels, context, drain cycles per tile)
    c_in, c_out = x.shape[2], y.shape[2]
    if mode == Mode.PW:
        pe, dw = pix_out * c_in * c_out, 0
    elif mode == Mode.DW:
        pe, dw = 0, pix_out * 9 * c_in
    elif mode == Mode.CONV3:
        pe, dw = pix_out * 9 * c_in * c_out, 0
    elif mode == Mode.DW_PW:
        pe, dw = pix_out * c_in * c_out, pix_out * 9 * c_in
    else:
        mid = run["mid"]
        pe, dw = pix_in * c_in * mid + pix_out * mid * c_out, pix_out * 9 * mid
        work.append((pix_in, ctx1, slices))
    if mode != Mode.DW:
        work.append((pix_out, ctx0, slices0))
    issue = sum(p * c["out_tiles"] * c["k_words"] for p, c, _ in work)
    drain = sum(p * c["out_tiles"] * s for p, c, s in work)
    return pe, dw, max(issue, drain)


def _cut(graph, grp, x, rows, config, group_run):
    """The run of the first ``rows`` output rows of a group (all of it if it has fewer)."""
    if grp.mode == "PW":
        h = min(rows, x.shape[0])
        return group_run(graph, grp, x[:h], config, idle=0.0, stall=0.0), h == x.shape[0]
    ops = [op for op in grp.ops if op.kind not in ("PAD", "PADV2")]
    conv = ops[1] if grp.mode == "PW_DW_PW" else ops[0]
    s = conv.options["stride"][0]
    pt, pb, pl, pr = grp.pad
    if grp.residual >= 0:   # the ADD needs the output the input's size: a rows-high image
        h = rows
        whole = h >= x.shape[0]
        pad = grp.pad
    else:                   # the first rows, cut with a VALID bottom edge
        h = (rows - 1) * s + 3 - pt
        whole = h >= x.shape[0]
        pad = grp.pad if whole else (pt, 0, pl, pr)
    return group_run(graph, grp, x[:min(h, x.shape[0])], config, padding=pad, idle=0.0,
                     stall=0.0), whole


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="ecp5")
    ap.add_argument("--rows", type=int, nargs=2, default=(2, 4), metavar=("R1", "R2"))
    ap.add_argument("--models", nargs="+", default=["mobilenet_v2_1.0_224", "person_detect"])
    ap.add_argument("--json", default=str(ROOT / "build" / "bench" / "streaming.json"))
    ap.add_argument("--limit", type=int, default=0, help="only the first N groups per model")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--line-rows", type=int, help="override the preset's line_rows (a new build)")
    ap.add_argument("--only", help="only groups whose label contains this text, e.g. '#4 '")
    args = ap.parse_args(argv)

    sys.path.insert(0, str(ROOT / "tests"))
    import dwfuse
    from dwfuse.fusion import plan
    from dwfuse.hdl.config import preset
    from dwfuse.hdl.engine import LayerEngine
    from dwfuse.inputs import load_input
    from dwfuse.verif.sim import design_sources, run_cocotb
    from dwfuse.verif.tb_engine import CASE_ENV, STATS_ENV, group_run, write_case

    config = preset(args.config)
    if args.line_rows:
        import dataclasses
        config = dataclasses.replace(config, name=f"{config.name}-rows{args.line_rows}",
                                     line_rows=args.line_rows)
    runs, rows_of, skipped = [], [], []
    for model in args.models:
        if model == "person_detect":
            graph = dwfuse.load(str(SHARED / "person_detect.tflite"))
            x = load_input(str(SHARED / "person.bmp"), graph.tensors[graph.inputs[0]], preprocess="raw")
        else:
            from dwfuse import zoo
            graph = dwfuse.load(model)
            x = zoo.sample_input(model)
        _, values = dwfuse.run_graph(graph, x, keep_all=True)
        groups = [(n, g) for n, g in enumerate(plan(graph)) if g.mode != "HOST"]
        if args.limit:
            groups = groups[:args.limit]
        for n, grp in groups:
            xin = values[grp.input][0] if values[grp.input].ndim == 4 else values[grp.input].reshape(1, 1, -1)
            label = f"{model} #{n} {grp.mode} {'x'.join(map(str, xin.shape))}"
            if args.only and args.only not in label:
                continue
            try:
                cuts = [_cut(graph, grp, xin, r, config, group_run) for r in args.rows]
            except ValueError as e:
                skipped.append({"group": label, "reason": str(e)})
                print(f"  skip {label}: {e}")
                continue
            for (run, whole), r in zip(cuts, args.rows):
                run["name"] = f"{label} rows {r}"
                runs.append(run)
                rows_of.append((label, r, whole))
                if whole:
                    break

    case = ROOT / "build" / "bench" / "streaming_case.pkl"
    stats_path = case.with_suffix(".stats.json")
    case.parent.mkdir(parents=True, exist_ok=True)
    write_case(case, config, runs)
    t0 = time.time()
    run_cocotb(design_sources(LayerEngine(config), "layer_engine"), "layer_engine",
               "dwfuse.verif.tb_engine", seed=args.seed, waves=False, run_name="bench_streaming",
               extra_env={CASE_ENV: str(case), STATS_ENV: str(stats_path)})
    wall = time.time() - t0
    stats = json.loads(stats_path.read_text())

    by_group = {}
    for run, st, (label, r, whole) in zip(runs, stats, rows_of):
        pe, dw, bound = _macs(run, config)
        ideal = max(-(-pe // config.pe_macs_per_cycle), -(-dw // config.dw_macs_per_cycle))
        by_group.setdefault(label, []).append({"rows": r, "whole": whole, "cycles": st["cycles"],
                                               "ideal": ideal, "engine_bound": bound,
                                               "out_shape": st["output"]})
    table = []
    for label, ms in by_group.items():
        if len(ms) == 2:
            a, b = ms
            dr = b["rows"] - a["rows"]
            steady = (b["cycles"] - a["cycles"]) / dr
            ideal = (b["ideal"] - a["ideal"]) / dr
            bound = (b["engine_bound"] - a["engine_bound"]) / dr
            fill = a["cycles"] - a["rows"] * steady
            what = f"rows {a['rows']}->{b['rows']}"
        else:
            a = ms[0]
            steady, ideal, bound, fill = a["cycles"], a["ideal"], a["engine_bound"], None
            what = "whole layer"
        table.append({"group": label, "measured": what, "steady_cycles": steady,
                      "ideal_cycles": ideal, "engine_bound_cycles": bound,
                      "ratio": steady / ideal if ideal else None,
                      "ratio_to_engine_bound": steady / bound if bound else None,
                      "fill": fill, "cuts": ms})
    print(f"\nLayerEngine streaming, config {config.name} (lanes {config.lanes}, pe_cols "
          f"{config.pe_cols}, requant_lanes {config.requant_lanes}); cycles per out-row "
          f"(steady) or per layer (whole); simulation {wall:.0f} s")
    print(f"{'group':52s} {'measured':13s} {'cycles':>9s} {'ideal':>9s} {'ratio':>6s} "
          f"{'bound':>9s} {'/bound':>6s} {'fill':>6s}")
    for t in table:
        fill = "" if t["fill"] is None else f"{t['fill']:.0f}"
        rb = "" if t["ratio_to_engine_bound"] is None else f"{t['ratio_to_engine_bound']:.3f}"
        print(f"{t['group'][:52]:52s} {t['measured']:13s} {t['steady_cycles']:9.1f} "
              f"{t['ideal_cycles']:9.1f} {t['ratio']:6.3f} {t['engine_bound_cycles']:9.1f} "
              f"{rb:>6s} {fill:>6s}")
    for s in skipped:
        print(f"{s['group'][:52]:52s} does not fit: {s['reason']}")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"config": config.as_dict(), "rows": list(args.rows),
                               "simulation_seconds": wall, "groups": table,
                               "skipped": skipped}, indent=1, default=float))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
