"""Where the shared test models are: $DWFUSE_SHARED_MODELS, else ../shared/models beside the repo.

Tests that need one skip with the reason when it is absent (e.g. on a user's machine).
"""

import os

import pytest

__all__ = ["MODELS_DIR", "shared_model"]

MODELS_DIR = os.environ.get("DWFUSE_SHARED_MODELS") or os.path.normpath(
    os.path.join(os.path.dirname(__file__), "..", "..", "shared", "models"))


def shared_model(name):
    """Path of a shared model or image; skips the calling test when it is not there."""
    path = os.path.join(MODELS_DIR, name)
    if not os.path.exists(path):
        pytest.skip(f"{path} not present (set DWFUSE_SHARED_MODELS to the shared models folder)")
    return path
