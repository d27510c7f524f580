#!/usr/bin/env python3
"""Developer entry point: keep ``.venv`` in step with pyproject.toml, then run the tool or tests.

Stdlib only, so it runs under a bare system Python 3.11 on a fresh machine.  The venv is
(re)installed only when pyproject.toml or the checkout path changed since the last successful
set-up, or its Python no longer runs (a stamp in ``.venv``), so the usual call costs milliseconds.

    python3 scripts/dev.py setup              # only make sure .venv is ready
    python3 scripts/dev.py run [ARGS...]      # .venv/bin/dwfuse run ARGS...
    python3 scripts/dev.py test [ARGS...]     # .venv/bin/python -m pytest -n auto ARGS...
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["REPO", "VENV", "ensure_venv", "main"]

REPO = Path(__file__).resolve().parent.parent
VENV = REPO / ".venv"
_STAMP = VENV / ".dwfuse-setup.json"
_LOCK = VENV / ".dwfuse-setup.lock"
_PY = VENV / "bin" / "python"


def _wanted() -> dict[str, str]:
    """What the installed venv must match; any change triggers a reinstall."""
    return {
        "pyproject_sha256": hashlib.sha256((REPO / "pyproject.toml").read_bytes()).hexdigest(),
        "repo": str(REPO),  # an editable install points at one checkout
    }


def _stamp_matches(wanted: dict[str, str]) -> bool:
    try:
        return _PY.resolve().exists() and json.loads(_STAMP.read_text()) == wanted
    except (OSError, ValueError):
        return False


def _step(what: str, cmd: list[str]) -> None:
    """Run a set-up command quietly; on failure show its output and stop."""
    proc = subprocess.run(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout)
        sys.exit(f"dev.py: {what} failed (exit {proc.returncode}): {' '.join(cmd)}")


def ensure_venv() -> None:
    """Create or refresh ``.venv`` unless its stamp says it already matches."""
    if sys.version_info < (3, 11):
        sys.exit(f"dev.py: Python 3.11+ needed, this is {sys.version.split()[0]}")
    wanted = _wanted()
    if _stamp_matches(wanted):
        return
    VENV.mkdir(exist_ok=True)
    with open(_LOCK, "a") as lock:  # a second caller waits, then finds the stamp
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _stamp_matches(wanted):
            return
        _STAMP.unlink(missing_ok=True)
        print("dev.py: setting up .venv (first run or pyproject.toml changed; the first install"
              " takes minutes)...", file=sys.stderr)
        started = time.monotonic()
        if not _venv_python_works():
            _step("creating the venv", [sys.executable, "-m", "venv", "--clear", str(VENV)])
        pip = [str(_PY), "-m", "pip", "--quiet", "--no-input"]
        _step("upgrading pip", [*pip, "install", "--upgrade", "pip"])
        _step("installing dwfuse[dev]", [*pip, "install", "-e", ".[dev]"])
        _STAMP.write_text(json.dumps(wanted, indent=1))
        print(f"dev.py: .venv ready in {time.monotonic() - started:.0f} s", file=sys.stderr)


def _venv_python_works() -> bool:
    """True if ``.venv``'s Python runs and is 3.11+ (one whose base Python is gone is rebuilt)."""
    if not _PY.resolve().exists():
        return False
    probe = subprocess.run([str(_PY), "-c", "import sys; sys.exit(sys.version_info < (3, 11))"],
                           capture_output=True)
    return probe.returncode == 0


def _exec(argv: list[str]) -> None:
    os.chdir(REPO)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execv(argv[0], argv)
    except OSError as exc:
        sys.exit(f"dev.py: cannot run {argv[0]}: {exc}")


def main(argv: list[str]) -> None:
    usage = "usage: python3 scripts/dev.py {setup | run [ARGS...] | test [PYTEST ARGS...]}"
    if not argv or argv[0] in {"-h", "--help"}:
        print(__doc__.strip() if argv else usage)
        sys.exit(0 if argv else 2)
    command, rest = argv[0], argv[1:]
    if command not in {"setup", "run", "test"}:
        sys.exit(usage)
    ensure_venv()
    if command == "run":
        _exec([str(VENV / "bin" / "dwfuse"), "run", *rest])
    elif command == "test":
        _exec([str(_PY), "-m", "pytest", "-n", "auto", *rest])


if __name__ == "__main__":
    main(sys.argv[1:])
