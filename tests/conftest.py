"""Shared fixtures: the shared test data (LPNET_SHARED_DIR), tiny generated images, W&B kept offline."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# The shared test data (never copied into the project): official-lpnet/ (the authors' TF checkpoints and
# samples) and real-rain/ (real heavy-rain pairs and photos), both under one folder: LPNET_SHARED_DIR.
DEFAULT_SHARED_DIR = PROJECT_ROOT.parent / "shared"

# Hypothesis (tests/test_properties.py): few examples in the default suite, many under CI=true, derandomized
# there so a failure reproduces; no example database in the repository.
try:
    from hypothesis import settings as _hypothesis

    _hypothesis.register_profile("fast", max_examples=25, deadline=None, database=None)
    _hypothesis.register_profile("deep", max_examples=300, deadline=None, database=None, derandomize=True)
    _hypothesis.load_profile("deep" if os.environ.get("CI") in ("true", "1") else "fast")
except ImportError:  # a checkout without the dev extra: test_properties.py reports the missing module
    pass


def ctrl_c_as_in_a_terminal() -> None:
    """``preexec_fn`` of a child a test stops with Ctrl-C (SIGINT): SIGINT as a terminal leaves it. A suite
    started in the background (``make test &``, ``nohup``) has SIGINT ignored by the shell, children inherit
    that, and Python then installs no KeyboardInterrupt handler: the child ran on and exited 0."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


# No test touches the network: W&B stays off unless a test turns it on for itself (offline).
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("WANDB_SILENT", "true")


def shared_dir_or_skip(part: str, marker: str) -> Path:
    """``$LPNET_SHARED_DIR/<part>`` when it holds ``marker``; else skip (or fail where CI requires it)."""
    root = Path(os.environ.get("LPNET_SHARED_DIR", DEFAULT_SHARED_DIR)) / part
    if not (root / marker).exists():
        reason = f"shared test data not found: {root / marker} (set LPNET_SHARED_DIR to the shared folder)"
        if os.environ.get("LPNET_REQUIRE_SHARED") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return root


def official_dir_or_skip() -> Path:
    """The official TF checkpoints and samples."""
    return shared_dir_or_skip("official-lpnet", "weights/light_model.index")


@pytest.fixture(scope="session")
def official_dir() -> Path:
    return official_dir_or_skip()


@pytest.fixture(scope="session")
def real_rain_dir() -> Path:
    """Real heavy-rain pairs (heavy-val/) and real rainy photos (photos/): for scores and pictures only."""
    return shared_dir_or_skip("real-rain", "heavy-val/rain")


def write_pair_tree(root: Path, count: int = 4, size: tuple[int, int] = (40, 48), seed: int = 0) -> Path:
    """A ``rain/`` ↔ ``norain/`` split of tiny smooth images with bright streaks added (PNG, 8-bit)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    (root / "rain").mkdir(parents=True, exist_ok=True)
    (root / "norain").mkdir(parents=True, exist_ok=True)
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    for i in range(1, count + 1):
        phase = rng.uniform(0, 6.28, size=3)
        clean = 0.5 + 0.3 * np.sin(6 * xx[..., None] + 4 * yy[..., None] + phase)
        streaks = (rng.random((h, w)) < 0.03).astype(np.float64)
        streaks = np.maximum(streaks, np.roll(streaks, 1, axis=0))
        rainy = np.clip(clean + 0.4 * streaks[..., None], 0, 1)
        Image.fromarray((clean * 255).astype(np.uint8)).save(root / "norain" / f"norain-{i:03d}.png")
        Image.fromarray((rainy * 255).astype(np.uint8)).save(root / "rain" / f"rain-{i:03d}.png")
    return root


@pytest.fixture
def tiny_benchmark(tmp_path: Path) -> Path:
    """A benchmark root with train/ and test/ splits in the generic rain/norain layout."""
    root = tmp_path / "bench"
    write_pair_tree(root / "train", count=6, seed=1)
    write_pair_tree(root / "test", count=2, seed=2)
    return root


def compose_train(output_dir: Path, overrides: list[str], config_name: str = "train"):
    """An entry point's real config (train, demo), composed as its command would, writing to output_dir."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="lpnet.conf", version_base="1.3"):
        cfg = compose(config_name, overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
        del cfg.hydra
    return cfg


def run_cli(main, *settings) -> int:
    """Run a tool's console-script ``main`` in this process with ``settings`` as its command line.

    Returns its exit status; what it prints goes to stdout/stderr as it would (read it with capsys).
    """
    import logging
    import sys

    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    argv = sys.argv
    sys.argv = ["lpnet", *map(str, settings)]
    try:
        main()
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 1
    finally:
        sys.argv = argv
        GlobalHydra.instance().clear()
        logging.root.handlers.clear()  # Hydra's handlers hold this test's captured streams
    return 0


def assert_recipe_is_seeded(tmp_path: Path, overrides: list[str]) -> None:
    """A training recipe (a few steps of it: ``overrides``) gives the same weights for the same seed and
    others for another seed: what `make weights` promises."""
    import torch

    from lpnet.train import train

    weights = []
    for run, seed in (("a", 42), ("b", 42), ("c", 7)):
        train(compose_train(tmp_path / run, [*overrides, f"seed={seed}"]))
        weights.append(
            torch.load(tmp_path / run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
        )
    assert all(torch.equal(weights[0][key], value) for key, value in weights[1].items())
    assert any(not torch.equal(weights[0][key], value) for key, value in weights[2].items())
