"""Training faults: a NaN loss stops the run with a message naming the step, or is skipped on request."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import torch
from conftest import PROJECT_ROOT, compose_train

from lpnet.train import train
from lpnet.training.module import LitLPNet

SMALL = [
    "trainer.max_steps=6",
    "trainer.val_check_interval=2",
    "trainer.log_every_n_steps=1",
    "trainer.enable_model_summary=false",
    "trainer.num_sanity_val_steps=0",
    "data.crop_size=24",
    "data.batch_size=2",
    "data.num_workers=0",
    "data.val_fraction=0.34",
    "callbacks.progress_bar.refresh_rate=0",
    "callbacks.image_logger=null",
    "test=false",
]


class NaNAtBatch(LitLPNet):
    """LitLPNet whose rainy input turns NaN at the given batch indices (deterministic fault injection)."""

    def __init__(self, nan_batches: list[int] = (), **kwargs) -> None:
        super().__init__(**kwargs)
        self.nan_batches = set(nan_batches)

    def training_step(self, batch, batch_idx):
        if batch_idx in self.nan_batches:
            batch = {**batch, "rainy": torch.full_like(batch["rainy"], float("nan"))}
        return super().training_step(batch, batch_idx)


def run_config(root, out, *extra):
    return compose_train(
        out,
        [f"data.root={root}", "data.train_dir=train", "data.test_dir=test", *SMALL,
         f"model._target_={__name__}.NaNAtBatch", *extra],
    )  # fmt: skip


def test_nan_loss_raises_naming_the_step_and_keeps_last_checkpoint(tiny_benchmark, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(FloatingPointError, match="at step 4"):
        train(run_config(tiny_benchmark, out, "+model.nan_batches=[4]"))
    last = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 4
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values())


def test_nan_policy_skip_counts_skipped_steps(tiny_benchmark, tmp_path):
    out = tmp_path / "run"
    train(run_config(tiny_benchmark, out, "+model.nan_batches=[1,3]", "model.nan_policy=skip"))
    last = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 6  # skipped batches count as steps (no update), so resume stays aligned
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values())
    metrics = (out / "metrics.json").read_text()
    assert '"train/skipped_steps": 2.0' in metrics


def test_bad_nan_policy_is_refused():
    with pytest.raises(ValueError, match="model.nan_policy"):
        LitLPNet(nan_policy="ignore")


def run_train_command(root, out, *extra: str, expect: int) -> str:
    """``python -m lpnet.train`` on the tiny benchmark; checks the exit status and that no traceback was
    printed, and returns the last line of stderr."""
    small = [o for o in SMALL if not any(o.startswith(e.split("=")[0] + "=") for e in extra)]
    cmd = [
        sys.executable, "-m", "lpnet.train", f"data.root={root}", "data.train_dir=train",
        "data.test_dir=test", *small, "logger=csv", *extra, f"hydra.run.dir={out}",
    ]  # fmt: skip
    env = {**os.environ, "WANDB_MODE": "disabled"}
    result = subprocess.run(cmd, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == expect, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    return result.stderr.strip().splitlines()[-1]


def test_train_command_stops_on_nan_with_one_line(tiny_benchmark, tmp_path):
    """An absurd learning rate blows the weights up: exit status 1, one error line, no traceback."""
    last_line = run_train_command(tiny_benchmark, tmp_path / "run", "optim.lr=1e30", expect=1)
    assert re.fullmatch(r"error: training loss became (nan|inf) at step \d+; .*nan_policy=skip\)", last_line)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_train_command_names_an_unreadable_training_image(tiny_benchmark, tmp_path, num_workers):
    """A corrupt file in the data: exit status 2 and one line naming it, also from a DataLoader worker."""
    bad = tiny_benchmark / "train" / "rain" / "rain-002.png"
    bad.write_bytes(b"not a png")
    last_line = run_train_command(
        tiny_benchmark, tmp_path / "run", f"data.num_workers={num_workers}", expect=2
    )
    assert last_line.endswith(f"error: {bad}: not a readable image (unknown or corrupt format)")
