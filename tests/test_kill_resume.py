"""SIGKILL at random moments, then resume from last.ckpt: the final weights equal an uninterrupted run's.

A kill cannot be caught, so this is what a crash or an OOM kill looks like to the run. Kill points are
random steps of the job, each at a random moment within its step (forward, backward, validation or a
checkpoint being written), found from the progress bar. After each kill every checkpoint on disk must
load, and the run restarts from ``last.ckpt``, the way a user would. The default suite tries one job with
2 kills; ``make test-all`` (or ``pytest -m slow tests/test_kill_resume.py``) adds 3 jobs with 4 kills each.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import PROJECT_ROOT, write_pair_tree

MAX_STEPS = 30
# the training progress bar: "Epoch 0:  40%|... 12/30 [" (a resumed run shows "Training: ... 12/? [")
PROGRESS = re.compile(rf"(\d+)/(?:{MAX_STEPS}|\?) \[")
JOB = [
    f"trainer.max_steps={MAX_STEPS}",
    "trainer.val_check_interval=4",
    "trainer.log_every_n_steps=1",
    "trainer.enable_model_summary=false",
    "data.crop_size=64",
    "data.batch_size=4",
    "data.num_workers=0",
    "data.val_fraction=0.34",
    "callbacks.progress_bar.refresh_rate=1",
    "logger=csv",
    "test=false",
]


@pytest.fixture(scope="module")
def benchmark_96(tmp_path_factory) -> Path:
    """Images big enough for 64×64 crops, so a training step takes long enough to be hit by a kill."""
    root = tmp_path_factory.mktemp("bench96")
    write_pair_tree(root / "train", count=6, size=(96, 96), seed=1)
    write_pair_tree(root / "test", count=2, size=(96, 96), seed=2)
    return root


def start(root: Path, out: Path, *extra: str) -> tuple[subprocess.Popen, Path]:
    log = out.parent / f"{out.name}-{time.monotonic_ns()}.log"
    cmd = [sys.executable, "-m", "lpnet.train", f"data.root={root}", "data.train_dir=train"]
    cmd += ["data.test_dir=test", *JOB, f"hydra.run.dir={out}", *extra]
    env = {**os.environ, "WANDB_MODE": "disabled"}
    with log.open("w") as sink:
        proc = subprocess.Popen(cmd, cwd=PROJECT_ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT)
    return proc, log


def wait_for_step(proc: subprocess.Popen, log: Path, step: int, timeout: float = 240) -> None:
    """Block until the run's progress bar shows ``step`` (or the run ends)."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        shown = PROGRESS.findall(log.read_text(errors="replace"))
        if shown and int(shown[-1]) >= step:
            return
        time.sleep(0.02)


def assert_nothing_half_written(out: Path) -> None:
    for ckpt in (out / "checkpoints").glob("*.ckpt"):
        torch.load(ckpt, weights_only=True)  # raises on a truncated file
    if (out / "metrics.json").exists():
        json.loads((out / "metrics.json").read_text())


def final_weights(out: Path) -> dict[str, torch.Tensor]:
    saved = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    assert saved["global_step"] == MAX_STEPS
    return saved["state_dict"]


@pytest.mark.parametrize(
    "seed, kills",
    [
        (0, 2),
        pytest.param(1, 4, marks=pytest.mark.slow),
        pytest.param(2, 4, marks=pytest.mark.slow),
        pytest.param(3, 4, marks=pytest.mark.slow),
    ],
)
def test_sigkill_at_random_moments_then_resume(benchmark_96, tmp_path, seed, kills):
    reference = tmp_path / "uninterrupted"
    proc, log = start(benchmark_96, reference)
    wait_for_step(proc, log, 1)
    began = time.monotonic()
    assert proc.wait(timeout=600) == 0, log.read_text()[-3000:]
    step_time = (time.monotonic() - began) / MAX_STEPS  # validations and saves included, on average

    rng = random.Random(seed)
    out = tmp_path / "killed"
    last = out / "checkpoints" / "last.ckpt"
    landed = []
    for step in sorted(rng.sample(range(1, MAX_STEPS), kills)):
        proc, log = start(benchmark_96, out, *([f"ckpt_path={last}"] if last.exists() else []))
        wait_for_step(proc, log, step)
        time.sleep(rng.uniform(0, step_time))
        assert proc.poll() is None, f"the run ended before its kill point: {log.read_text()[-1500:]}"
        proc.kill()
        proc.wait()
        assert_nothing_half_written(out)
        landed.append((step, torch.load(last, weights_only=True)["global_step"] if last.exists() else None))
    proc, log = start(benchmark_96, out, f"ckpt_path={last}")
    assert proc.wait(timeout=600) == 0, log.read_text()[-3000:]
    print(f"seed {seed}: (killed during step, last.ckpt step): {landed}")

    expected, got = final_weights(reference), final_weights(out)
    for key, value in expected.items():
        torch.testing.assert_close(got[key], value, rtol=0, atol=1e-6, msg=key)
