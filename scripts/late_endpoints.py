"""Which parts of a placed-and-routed design are late: nextpnr's detailed timing report, grouped.

nextpnr prints one critical path; with ``--nextpnr-arg=--detailed-timing-report``
(`scripts/synth.py`) its report.json also lists, per net, every endpoint's arrival time. This
groups the endpoints later than a clock period by the hierarchy of the cell they end at, so one
run shows every block that misses, not only the worst path.

Usage::

    python scripts/late_endpoints.py build/synth/<work>/report.json [--ns 6.67] [--depth 3] [--top 40]
"""

import argparse
import collections
import json
import re
import sys
from pathlib import Path

#: Suffixes Yosys/nextpnr append to a mapped cell's name (the HDL name is what comes before).
_CELL_SUFFIX = re.compile(r"_(TRELLIS_FF|TRELLIS_DPR16X4|LUT4|CCU2C|PFUMX|L6MUX21|DP16KD|MULT18X18D|ALU54B)(_|$).*")


def endpoint_arrivals(report: dict) -> dict:
    """{(cell, port): arrival ns} for every endpoint in ``detailed_net_timings`` (the latest
    arrival when a port is listed more than once)."""
    if "detailed_net_timings" not in report:
        raise ValueError("report.json has no detailed_net_timings: run nextpnr with "
                         "--detailed-timing-report (synth.py --nextpnr-arg=--detailed-timing-report)")
    arrivals = {}
    for net in report["detailed_net_timings"]:
        for e in net["endpoints"]:
            key = (e["cell"], e["port"])
            arrivals[key] = max(arrivals.get(key, 0.0), float(e["delay"][1]))
    return arrivals


def block_of(cell: str, depth: int) -> str:
    """The first ``depth`` levels of a cell's hierarchical name, mapping suffixes removed."""
    return ".".join(_CELL_SUFFIX.sub("", cell).split(".")[:depth])


def late_blocks(arrivals: dict, period_ns: float, depth: int) -> list:
    """[(block, worst arrival, late endpoints)] for endpoints later than ``period_ns``, worst first."""
    groups = collections.defaultdict(list)
    for (cell, _port), t in arrivals.items():
        if t > period_ns:
            groups[block_of(cell, depth)].append(t)
    return sorted(((b, max(ts), len(ts)) for b, ts in groups.items()), key=lambda g: -g[1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("report", type=Path)
    ap.add_argument("--ns", type=float, default=1000 / 150, help="clock period (default 150 MHz)")
    ap.add_argument("--depth", type=int, default=3, help="hierarchy levels to group by")
    ap.add_argument("--top", type=int, default=40, help="blocks to print")
    args = ap.parse_args(argv)
    report = json.loads(args.report.read_text())
    arrivals = endpoint_arrivals(report)
    blocks = late_blocks(arrivals, args.ns, args.depth)
    late = sum(n for _, _, n in blocks)
    for clock, f in report.get("fmax", {}).items():
        print(f"{clock}: {f['achieved']:.2f} MHz (constraint {f['constraint']} MHz)")
    print(f"{len(arrivals)} endpoints, {late} later than {args.ns:.2f} ns")
    print(f"{'worst ns':>9} {'late':>6}  block")
    for block, worst, n in blocks[:args.top]:
        print(f"{worst:9.2f} {n:6d}  {block}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
