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
from .errors import DwfuseError
from .fusion import plan
from .importer import load
from .inputs import PREPROCESS, load_input, random_input
from .interpreter import run_graph
from .stats import layer_table

__all__ = ["main"]

BACKENDS = ("golden",)


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
    t0 = time.perf_counter()
    outputs, _ = run_graph(g, x)
    seconds = time.perf_counter() - t0
    rows = layer_table(g)
    macs = sum(r["macs"] for r in rows)
    y, tout = outputs[0], g.output_tensor()
    print(f"model: {model}   backend: {args.backend}   input: {source}")
    print(f"ops: {len(g.ops)}   MACs: {macs:,}   wall time: {seconds:.3f} s")
    top = _top_classes(y, tout)
    if top:
        print("top classes: " + ", ".join(f"{t['cls']} ({t['score']:.4f})" for t in top))
    if args.output:
        np.save(args.output, y)
        print(f"output {y.dtype}{list(y.shape)} written to {args.output}")
    if args.report:
        report = dict(model=model, backend=args.backend, input=source, macs=macs,
                      wall_seconds=seconds, output_shape=list(y.shape), output_dtype=str(y.dtype),
                      top_classes=top,
                      layers=[dict(index=r["index"], op=r["op"], macs=r["macs"],
                                   input_shapes=r["input_shapes"], output_shape=r["output_shape"],
                                   weight_bytes=r["weight_bytes"], activation_bytes=r["activation_bytes"])
                              for r in rows])
        with open(args.report, "w") as f:
            json.dump(report, f, indent=2)
        print(f"report written to {args.report}")
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
    pr.add_argument("--backend", choices=BACKENDS, default="golden")
    pr.add_argument("--report", help="write a JSON report here")
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
