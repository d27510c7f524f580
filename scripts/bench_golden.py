"""Benchmark: golden-model wall time on whole networks (prints a table, writes JSON).

    python scripts/bench_golden.py [--models NAME ...] [--repeat N] [--json FILE]
"""

import argparse
import json
import platform
import time

import numpy as np

import dwfuse
from dwfuse import zoo
from dwfuse.inputs import random_input
from dwfuse.stats import layer_table


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["mobilenet_v2_1.0_224", "mobilenet_v1_1.0_224", zoo.DEFAULT])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--json", default="build/bench_golden.json")
    args = p.parse_args()
    rows = []
    for name in args.models:
        t0 = time.perf_counter()
        g = dwfuse.load(name)
        load_s = time.perf_counter() - t0
        x = random_input(g.input_tensor(), 0)
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            dwfuse.run_graph(g, x)
            times.append(time.perf_counter() - t0)
        macs = sum(r["macs"] for r in layer_table(g))
        best = min(times)
        rows.append(dict(model=name, macs=macs, load_seconds=round(load_s, 3), run_seconds_best=round(best, 3),
                         run_seconds_median=round(float(np.median(times)), 3), gmac_per_second=round(macs / best / 1e9, 3)))
        print(f"{name:28s} {macs / 1e6:9.1f} MMAC  load {load_s:6.2f} s  run {best:6.3f} s (best of {args.repeat})"
              f"  {macs / best / 1e9:6.2f} GMAC/s")
    import os
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(dict(benchmark="golden", machine=platform.processor() or platform.machine(),
                       cpus=os.cpu_count(), results=rows), f, indent=2)
    print(f"written {args.json}")


if __name__ == "__main__":
    main()
