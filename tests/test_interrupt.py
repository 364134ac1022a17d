"""SIGTERM during training: last.ckpt is saved at a step boundary, the run stops cleanly and resumes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import torch
from conftest import PROJECT_ROOT
from test_train import SMALL


def test_sigterm_saves_last_checkpoint_and_resumes(tiny_benchmark, tmp_path):
    out = tmp_path / "run"
    last = out / "checkpoints" / "last.ckpt"
    base = [
        sys.executable, "-m", "lpnet.train", f"data.root={tiny_benchmark}", "data.train_dir=train",
        "data.test_dir=test", *SMALL, "logger=csv",
    ]  # fmt: skip
    cmd = [*base, "trainer.max_steps=100000", f"hydra.run.dir={out}"]
    env = {**os.environ, "WANDB_MODE": "disabled"}
    proc = subprocess.Popen(
        cmd, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 240
        while not last.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert last.exists(), "training never reached its first validation"
        first_step = torch.load(last, weights_only=True)["global_step"]
        time.sleep(1.0)  # let it train on past the last validation
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, stderr[-2000:]
    assert "Traceback" not in stderr and "stopped by SIGTERM" in stderr
    saved = torch.load(last, weights_only=True)
    assert saved["global_step"] >= first_step
    assert all(torch.isfinite(v).all() for v in saved["state_dict"].values())

    resumed = out.parent / "resumed"
    target = saved["global_step"] + 2
    result = subprocess.run(
        [*base, f"trainer.max_steps={target}", "test=false", f"ckpt_path={last}", f"hydra.run.dir={resumed}"],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == target
