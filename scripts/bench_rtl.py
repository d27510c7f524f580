#!/usr/bin/env python3
"""Whole networks through the RTL: cycles vs the lower bound, DRAM bytes, simulation speed.

Each model is compiled for the configuration and run twice on the generated Verilog of the
Accelerator top under Verilator (the rtl backend): once as the program's descriptor chains run
on an FPGA (consecutive jobs overlap; the simulation's job log splits the cycles per group),
which gives the cycles, DRAM bytes and the output; once with a chain per fused group, which
reads back every tensor the accelerator computed. Both are checked against the golden model.
Prints a table and writes JSON.

    .venv/bin/python scripts/bench_rtl.py                         # default model + shared models, ecp5
    .venv/bin/python scripts/bench_rtl.py --all                   # ... and MobileNetV2-1.0-224
    .venv/bin/python scripts/bench_rtl.py --models mobilenet_v2_1.0_224 --json build/mnv2.json
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

import dwfuse
from dwfuse import zoo
from dwfuse.inputs import load_input, random_input

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("DWFUSE_SHARED_MODELS", ROOT.parent / "shared" / "models"))
DEFAULT_MODELS = [zoo.DEFAULT, "person_detect.tflite", "mobilenet_v1_a025_96_int8.tflite",
                  "mobilenet_v2_a035_96_int8.tflite"]


def _resolve(name):
    return str(SHARED / name) if name.endswith(".tflite") else name


def bench(name, config, seed=0):
    g = dwfuse.load(_resolve(name))
    prog = dwfuse.compile(g, config)
    image = SHARED / "person.bmp"
    if name.startswith("person_detect") and image.is_file():
        x = load_input(str(image), g.input_tensor(), "mobilenet")
    else:
        x = random_input(g.input_tensor(), seed)
    ref, values = dwfuse.run_graph(g, x, keep_all=True)
    t0 = time.monotonic()
    outputs, rep = prog.run(x, backend="rtl")
    wall = time.monotonic() - t0
    _, every = prog.run(x, backend="rtl", keep_all=True)
    bad = [t for t, v in every.pop("tensors").items() if not np.array_equal(v, values[t])]
    exact = not bad and all(np.array_equal(a, b) for a, b in zip(outputs, ref))
    return dict(
        model=name, config=config, bit_exact=exact, mismatched_tensors=bad, macs=rep["macs"],
        cycles=rep["cycles"], lower_bound_cycles=rep["lower_bound_cycles"],
        cycles_over_bound=round(rep["cycles"] / rep["lower_bound_cycles"], 3),
        throughput_bound_cycles=rep["throughput_bound_cycles"],
        cycles_over_throughput_bound=round(rep["cycles"] / rep["throughput_bound_cycles"], 3),
        dram_bytes=rep["dram_bytes"], compulsory_dram_bytes=rep["compulsory_dram_bytes"],
        dram_over_compulsory=round(rep["dram_bytes"] / rep["compulsory_dram_bytes"], 3),
        layer_by_layer_dram_bytes=rep["layer_by_layer_dram_bytes"],
        sim_cycles_per_second=rep["sim_cycles_per_second"], wall_seconds=round(wall, 1),
        jobs=rep["jobs"], cycles_one_chain_per_group=every["cycles"], groups=[{k: grp.get(k) for k in ("index", "mode", "jobs", "cycles",
                                                            "lower_bound_cycles", "utilisation",
                                                            "dram_read_bytes", "dram_write_bytes")}
                                  for grp in rep["groups"]])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="ecp5")
    ap.add_argument("--models", nargs="*", help="zoo names or shared .tflite file names")
    ap.add_argument("--all", action="store_true", help="also MobileNetV2-1.0-224 (minutes)")
    ap.add_argument("--json", default=str(ROOT / "build" / "bench_rtl.json"))
    args = ap.parse_args(argv)
    models = args.models or DEFAULT_MODELS + (["mobilenet_v2_1.0_224"] if args.all else [])
    rows = []
    for name in models:
        r = bench(name, args.config)
        rows.append(r)
        print(f"{r['model']:34s} {'bit-exact' if r['bit_exact'] else 'MISMATCH':9s} cycles {r['cycles']:>11,} "
              f"bound {r['lower_bound_cycles']:>11,} ({r['cycles_over_bound']:.3f}x)  throughput bound "
              f"{r['throughput_bound_cycles']:>11,} ({r['cycles_over_throughput_bound']:.3f}x)  DRAM {r['dram_bytes']:>11,} B "
              f"({r['dram_over_compulsory']:.3f}x compulsory, layer-by-layer {r['layer_by_layer_dram_bytes']:,})  "
              f"{r['sim_cycles_per_second']:>9,} cycles/s", flush=True)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(dict(config=args.config, results=rows), indent=1))
    print(f"written {args.json}")
    return 0 if all(r["bit_exact"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
