"""Benchmark: compiled programs on the golden backend — jobs, lower-bound cycles, DRAM bytes per inference.

    python scripts/bench_compiler.py [--models NAME_OR_PATH ...] [--configs ecp5 b4096] [--json FILE]

For each model and configuration: compile, run one random input (checked bit-exact against
`dwfuse.run_graph`), and report the DRAM bytes the jobs and host ops moved next to issue 4's
floor (weights + network input + output + fused-group boundaries) and the layer-by-layer figure.
"""

import argparse
import json
import os
import platform
import time

import numpy as np

import dwfuse
from dwfuse.errors import DwfuseError
from dwfuse.inputs import random_input

SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "models")
DEFAULT_MODELS = [os.path.join(SHARED, n) for n in ("person_detect.tflite", "mobilenet_v1_a025_96_int8.tflite",
                                                  "mobilenet_v2_a035_96_int8.tflite")] + \
                 ["mobilenet_v1_1.0_224", "mobilenet_v2_1.0_224"]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    p.add_argument("--configs", nargs="+", default=["ecp5", "b4096"])
    p.add_argument("--json", default="build/bench_compiler.json")
    args = p.parse_args()
    rows = []
    print(f"{'model':34s} {'config':7s} {'jobs':>5s} {'lower-bound cyc':>15s} {'DRAM B':>11s} {'floor B':>11s} "
          f"{'ratio':>6s} {'layer-by-layer B':>16s} {'compile s':>9s} {'run s':>6s}")
    for model in args.models:
        name = os.path.basename(model)
        if model.endswith(".tflite") and not os.path.exists(model):
            print(f"{name:34s} skipped: {model} not present")
            continue
        g = dwfuse.load(model)
        x = random_input(g.input_tensor(), 0)
        ref, _ = dwfuse.run_graph(g, x)
        for cfg in args.configs:
            t0 = time.perf_counter()
            try:
                prog = dwfuse.compile(g, cfg)
            except DwfuseError as e:
                print(f"{name:34s} {cfg:7s} does not compile: {e}")
                rows.append(dict(model=name, config=cfg, error=str(e)))
                continue
            compile_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            out, rep = prog.run(x)
            run_s = time.perf_counter() - t0
            exact = all(np.array_equal(a, b) for a, b in zip(out, ref))
            ratio = rep["dram_bytes"] / rep["compulsory_dram_bytes"]
            rows.append(dict(model=name, config=cfg, bit_exact=exact, jobs=rep["jobs"],
                             lower_bound_cycles=rep["lower_bound_cycles"], dram_bytes=rep["dram_bytes"],
                             dram_read_bytes=rep["dram_read_bytes"], dram_write_bytes=rep["dram_write_bytes"],
                             compulsory_dram_bytes=rep["compulsory_dram_bytes"], dram_ratio=round(ratio, 4),
                             layer_by_layer_dram_bytes=rep["layer_by_layer_dram_bytes"],
                             param_bytes=rep["param_bytes"], dram_image_bytes=rep["dram_image_bytes"],
                             compile_seconds=round(compile_s, 3), run_seconds=round(run_s, 3),
                             notes=sorted({n for grp in rep["groups"] for n in grp["notes"]})))
            print(f"{name:34s} {cfg:7s} {rep['jobs']:5d} {rep['lower_bound_cycles']:15,d} {rep['dram_bytes']:11,d} "
                  f"{rep['compulsory_dram_bytes']:11,d} {ratio:6.3f} {rep['layer_by_layer_dram_bytes']:16,d} "
                  f"{compile_s:9.2f} {run_s:6.2f}{'' if exact else '  MISMATCH'}")
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(dict(machine=platform.machine(), python=platform.python_version(), rows=rows), f, indent=2)
    print(f"written to {args.json}")
    return 0 if all(r.get("bit_exact", True) for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
