"""A real tiny ablation: `python -m lpnet.train -m` on synthetic rain, then `python -m lpnet.report`."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import pytest
from conftest import PROJECT_ROOT

TINY = [
    "data=synthetic", "data.num_workers=0", "data.crop_size=32", "data.batch_size=2", "data.val_length=1",
    "data.test_length=1", "data.eval_crop_size=64", "trainer.max_steps=3", "trainer.val_check_interval=3",
    "trainer.log_every_n_steps=1",
    "trainer.enable_model_summary=false", "callbacks.progress_bar.refresh_rate=0", "logger=csv",
]  # fmt: skip


@pytest.mark.slow
def test_multirun_then_report(tmp_path):
    sweep = tmp_path / "sweep"
    env = {**os.environ, "WANDB_MODE": "disabled"}
    cmd = [
        sys.executable,
        "-m",
        "lpnet.train",
        "-m",
        "model.net.recursions=1,3",
        *TINY,
        f"hydra.sweep.dir={sweep}",
    ]
    result = subprocess.run(cmd, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir() and p.name.isdigit()) == ["0", "1"]
    assert all((sweep / job / "metrics.json").is_file() for job in ("0", "1"))

    report = subprocess.run(
        [sys.executable, "-m", "lpnet.report", f"input={sweep}"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert report.returncode == 0, report.stderr[-3000:]
    rows = list(csv.DictReader((sweep / "report.csv").open()))
    assert len(rows) == 2
    assert sorted(row["model.net.recursions"] for row in rows) == ["1", "3"]
    params = {row["model.net.recursions"]: int(float(row["params"])) for row in rows}
    assert params["1"] == params["3"] == 7548  # shared recursion weights: depth costs no parameters
    pngs = {p.name: p for p in sweep.glob("*.png")}
    assert {"psnr_vs_params.png", "psnr_by_model_net_recursions.png", "loss_curves.png"} <= set(pngs), pngs
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs.values())
    assert "model.net.recursions" in (sweep / "report.md").read_text()


@pytest.mark.slow
def test_a_failed_job_does_not_stop_the_sweep(tmp_path):
    """A diverging job (NaN loss) fails on its own; the sweep runs the next job and exits non-zero."""
    sweep = tmp_path / "sweep"
    env = {**os.environ, "WANDB_MODE": "disabled"}
    cmd = [sys.executable, "-m", "lpnet.train", "-m", "optim.lr=1e30,1e-3", *TINY, f"hydra.sweep.dir={sweep}"]
    result = subprocess.run(cmd, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode != 0
    assert "training loss became" in result.stderr
    assert not (sweep / "0" / "metrics.json").exists()
    assert (sweep / "1" / "metrics.json").is_file(), result.stderr[-3000:]
