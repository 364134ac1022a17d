"""Shared fixtures: the official sample data, tiny generated images, W&B kept offline."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OFFICIAL_DIR = PROJECT_ROOT.parent / "shared" / "official-lpnet"

# No test touches the network: W&B stays off unless a test turns it on for itself (offline).
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("WANDB_SILENT", "true")


def official_dir_or_skip() -> Path:
    """The official TF checkpoints and samples (LPNET_OFFICIAL_DIR); skip, or fail in CI, when absent."""
    root = Path(os.environ.get("LPNET_OFFICIAL_DIR", DEFAULT_OFFICIAL_DIR))
    if not (root / "weights" / "light_model.index").is_file():
        reason = f"official LPNet data not found at {root} (set LPNET_OFFICIAL_DIR to its folder)"
        if os.environ.get("LPNET_REQUIRE_OFFICIAL") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return root


@pytest.fixture(scope="session")
def official_dir() -> Path:
    return official_dir_or_skip()
