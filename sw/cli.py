"""The `dwfuse` command line: `dwfuse info MODEL` and `dwfuse run [MODEL] ...`.

Bad input ends with one line on stderr naming the problem and a non-zero exit status, never a
traceback (set DWFUSE_TRACEBACK=1 to see one when debugging dwfuse itself).
"""

import argparse
import json
import os
import sys
import time

import numpy as np

from . import zoo
from .compiler import compile as compile_graph
from .errors import DwfuseError
from .fusion import plan
from .importer import load
from .inputs import PREPROCESS, load_input, random_input
from .interpreter import run_graph
from .hdl.config import PRESETS
from .program import BACKENDS
from .stats import layer_table

__all__ = ["main"]


def _fmt_shape(shape):
    return "x".join(str(s) for s in shape) if shape else "scalar"


def _print_table(headers, rows, out=None):
    out = out or sys.stdout
    widths = [max(len(str(h)), *(len(str(r[k])) for r in rows)) if rows else len(str(h))
              for k, h in enumerate(headers)]
    line = "  ".join(str(h).rjust(w) for h, w in zip(headers, widths))
    print(line, file=out)
    print("-" * len(line), file=out)
    for r in rows:
        print("  ".join(str(v).rjust(w) for v, w in zip(r, widths)), file=out)


def cmd_info(args):
    g = load(args.model)
    rows = layer_table(g)
    group_of = {op.index: f"{k}:{grp.mode}" for k, grp in enumerate(plan(g)) for op in grp.ops}
    print(f"model: {args.model}   ops: {len(g.ops)}   input: {_fmt_shape(g.input_tensor().shape)} "
          f"{np.dtype(g.input_tensor().dtype)}   output: {_fmt_shape(g.output_tensor().shape)}")
    table = [(r["index"], r["op"], group_of[r["index"]], ",".join(_fmt_shape(s) for s in r["input_shapes"]) or "-",
              _fmt_shape(r["output_shape"]), f"{r['macs']:,}", f"{r['weight_bytes']:,}",
              f"{r['activation_bytes']:,}") for r in rows]
    table.append(("", "total", "", "", "", f"{sum(r['macs'] for r in rows):,}",
                  f"{sum(r['weight_bytes'] for r in rows):,}", f"{sum(r['activation_bytes'] for r in rows):,}"))
    _print_table(("index", "op", "group", "input", "output", "MACs", "weight B", "activation B"), table)
    return 0


def _top_classes(y, tensor, k=5):
    """The k best classes of a classifier output, with dequantized scores."""
    flat = y.reshape(-1)
    if flat.size < 2:
        return []
    order = np.argsort(-flat.astype(np.int64), kind="stable")[:k]
    scale = float(tensor.scale[0]) if tensor.scale is not None else 1.0
    zp = tensor.zp if tensor.zero_point is not None else 0
    return [dict(cls=int(c), value=int(flat[c]), score=round((int(flat[c]) - zp) * scale, 6)) for c in order]


def _print_run_table(run):
    """Per-layer figures of a run: group, MACs, (cycles, utilisation,) lower-bound cycles, DRAM
    bytes; a fused group's figures sit on its first op."""
    rtl = "cycles" in run

    def util(v):
        return f"{100 * v:.1f}%" if v else "-"

    table = []
    for l in run["layers"]:
        row = [l["index"], l["op"], f"{l['group']}:{l['mode']}", f"{l['macs']:,}"]
        if rtl:
            row += [f"{l['cycles']:,}", util(l["utilisation"])]
        table.append(row + [f"{l['lower_bound_cycles']:,}", f"{l['dram_read_bytes']:,}", f"{l['dram_write_bytes']:,}"])
    total = ["", "total", "", f"{run['macs']:,}"]
    if rtl:
        total += [f"{run['cycles']:,}", util(run["utilisation"])]
    table.append(total + [f"{run['lower_bound_cycles']:,}", f"{run['dram_read_bytes']:,}", f"{run['dram_write_bytes']:,}"])
    headers = ["index", "op", "group", "MACs"] + (["cycles", "utilisation"] if rtl else [])
    _print_table(headers + ["lower-bound cycles", "DRAM read B", "DRAM written B"], table)
    for grp in run["groups"]:   # what the compiler did where the hardware did not fit the plan
        if grp["notes"]:
            print(f"group {grp['index']} ({grp['mode']}, {grp['jobs']} jobs): {'; '.join(grp['notes'])}")


def cmd_run(args):
    model = args.model or zoo.DEFAULT
    g = load(model)
    tin = g.input_tensor()
    if args.input:
        x = load_input(args.input, tin, args.preprocess)
        source = args.input
    else:
        x = random_input(tin, args.seed)
        source = f"random (seed {args.seed})"
    if args.output:
        out_dir = os.path.dirname(os.path.abspath(args.output))
        if not os.path.isdir(out_dir):
            raise DwfuseError(f"{args.output}: directory {out_dir} does not exist")
    program = compile_graph(g, args.config)
    t0 = time.perf_counter()
    rtl = args.backend == "rtl"
    every = rtl and args.check_all
    outputs, run = program.run(x, backend=args.backend, keep_all=every, progress=rtl and sys.stderr.isatty())
    seconds = time.perf_counter() - t0
    check = None
    if rtl:   # the RTL's result must equal the golden model on the output (and every tensor it computed)
        ref, values = run_graph(g, x, keep_all=True)
        bad = [t for t, v in run.pop("tensors", {}).items() if not np.array_equal(v, values[t])]
        bad += [f"output {k}" for k, (a, b) in enumerate(zip(outputs, ref)) if not np.array_equal(a, b)]
        check = "bit-exact" if not bad else f"MISMATCH in tensors {bad}"
        scope = "output and every accelerator tensor" if every else "output"
    rows = layer_table(g)
    macs = sum(r["macs"] for r in rows)
    y, tout = outputs[0], g.output_tensor()
    print(f"model: {model}   backend: {args.backend}   config: {args.config}   input: {source}")
    _print_run_table(run)
    print(f"ops: {len(g.ops)}   jobs: {run['jobs']}   MACs: {macs:,}   lower-bound cycles: "
          f"{run['lower_bound_cycles']:,}   wall time: {seconds:.3f} s")
    if rtl:
        print(f"cycles: {run['cycles']:,} ({run['cycles'] / max(1, run['lower_bound_cycles']):.3f} x lower bound)   "
              f"simulated {run['sim_cycles_per_second']:,} cycles/s   golden check ({scope}): {check}")
    print(f"DRAM bytes: {run['dram_bytes']:,} (read {run['dram_read_bytes']:,}, written "
          f"{run['dram_write_bytes']:,}); weights + input + output + fused-group boundaries: "
          f"{run['compulsory_dram_bytes']:,}; layer by layer: {run['layer_by_layer_dram_bytes']:,}")
    top = _top_classes(y, tout)
    if top:
        print("top classes: " + ", ".join(f"{t['cls']} ({t['score']:.4f})" for t in top))
    if args.output:
        np.save(args.output, y)
        print(f"output {y.dtype}{list(y.shape)} written to {args.output}")
    if args.report:
        shapes = {r["index"]: r for r in rows}
        report = dict(model=model, backend=args.backend, config=args.config, input=source, macs=macs,
                      wall_seconds=seconds, output_shape=list(y.shape), output_dtype=str(y.dtype),
                      top_classes=top, **({k: run[k] for k in ("cycles", "utilisation", "sim_cycles_per_second",
                                                               "sim_seconds")} if rtl else {}),
                      golden_check=check,
                      **{k: run[k] for k in ("lower_bound_cycles", "throughput_bound_cycles", "dram_read_bytes", "dram_write_bytes",
                                             "dram_bytes", "layer_by_layer_dram_bytes", "compulsory_dram_bytes",
                                             "host_input_bytes",
                                             "pe_array_macs_per_cycle", "dw_macs_per_cycle", "jobs")},
                      layers=[dict(l, input_shapes=shapes[l["index"]]["input_shapes"],
                                   output_shape=shapes[l["index"]]["output_shape"],
                                   weight_bytes=shapes[l["index"]]["weight_bytes"],
                                   activation_bytes=shapes[l["index"]]["activation_bytes"])
                              for l in run["layers"]],
                      groups=run["groups"])
        with open(args.report, "w") as f:
            json.dump(report, f, indent=2)
        print(f"report written to {args.report}")
    if check not in (None, "bit-exact"):
        raise DwfuseError(f"the RTL result differs from the golden model: {check}")
    return 0


def build_parser():
    p = argparse.ArgumentParser(prog="dwfuse", description="int8 depthwise-separable CNN accelerator: "
                                "inspect models and run them on the golden model or the RTL.")
    sub = p.add_subparsers(dest="command", required=True)
    pi = sub.add_parser("info", help="per-layer table of a model")
    pi.add_argument("model", help="a .tflite file or a zoo name (e.g. %s)" % zoo.DEFAULT)
    pi.set_defaults(func=cmd_info)
    pr = sub.add_parser("run", help="run a model on one input")
    pr.add_argument("model", nargs="?", help=f"a .tflite file or a zoo name (default {zoo.DEFAULT})")
    pr.add_argument("--input", help=".npy in the model's input shape and dtype, or an image (png/bmp)")
    pr.add_argument("--preprocess", choices=PREPROCESS, default="mobilenet",
                    help="image conversion: mobilenet = [-1,1] quantized with the input's parameters; "
                         "raw = pixel - 128")
    pr.add_argument("--seed", type=int, default=0, help="seed of the random input when --input is absent")
    pr.add_argument("--output", help="write the output tensor to this .npy")
    pr.add_argument("--backend", choices=BACKENDS, default="rtl",
                    help="rtl (default): the generated Verilog under Verilator, checked against the golden "
                         "model; golden: the compiled program (descriptors, packed weights, DRAM image) in numpy")
    pr.add_argument("--config", choices=sorted(PRESETS), default="ecp5",
                    help="accelerator configuration the model is compiled for (default ecp5)")
    pr.add_argument("--report", help="write a JSON report here")
    pr.add_argument("--check-all", action="store_true",
                    help="rtl: also check every tensor the accelerator computed (each fused group then "
                         "ends its descriptor chain, so consecutive groups no longer overlap: more cycles)")
    pr.set_defaults(func=cmd_run)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except DwfuseError as e:
        if os.environ.get("DWFUSE_TRACEBACK"):
            raise
        print(f"dwfuse: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
