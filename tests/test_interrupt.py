"""Interrupted training: SIGTERM saves last.ckpt at a step boundary and resumes; checkpoints are atomic."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import PROJECT_ROOT, compose_train, ctrl_c_as_in_a_terminal
from hydra.utils import instantiate
from lightning.pytorch.utilities.exceptions import SIGTERMException
from test_train import SMALL

from lpnet.train import exit_when_stopped
from lpnet.training.callbacks import AtomicCheckpointIO


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_stop_signal_saves_last_checkpoint_and_resumes(tiny_benchmark, tmp_path, signum):
    out = tmp_path / "run"
    last = out / "checkpoints" / "last.ckpt"
    base = [
        sys.executable, "-m", "lpnet.train", f"data.root={tiny_benchmark}", "data.train_dir=train",
        "data.test_dir=test", *SMALL, "logger=csv",
    ]  # fmt: skip
    cmd = [*base, "trainer.max_steps=100000", f"hydra.run.dir={out}"]
    env = {**os.environ, "WANDB_MODE": "disabled"}
    log = tmp_path / "stderr.log"
    with log.open("w") as sink:  # a file, not a pipe: nobody reads while it trains
        proc = subprocess.Popen(
            cmd, cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=sink,
            preexec_fn=ctrl_c_as_in_a_terminal,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while not last.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert last.exists(), "training never reached its first validation"
        first_step = torch.load(last, weights_only=True)["global_step"]
        time.sleep(1.0)  # let it train on past the last validation
        proc.send_signal(signum)
        proc.wait(timeout=120)
    finally:
        proc.kill()
    stderr = log.read_text()
    assert proc.returncode == 128 + signal.SIGTERM, stderr[-2000:]
    assert "Traceback" not in stderr and "stopped by SIGTERM/Ctrl-C" in stderr
    resume = next(line for line in stderr.splitlines() if "resume with" in line)
    assert "python -m lpnet.train" in resume and f"data.root={tiny_benchmark}" in resume
    assert resume.endswith(f"ckpt_path={last}")
    assert f"resume with ckpt_path={last}" in (out / "train.log").read_text()  # LastCheckpoint's message
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


def test_checkpoint_writes_are_atomic(tmp_path, monkeypatch):
    """A write that dies half-way leaves the previous checkpoint as it was, and no stray temporary file."""
    path = tmp_path / "checkpoints" / "last.ckpt"
    writer = AtomicCheckpointIO()
    writer.save_checkpoint({"global_step": 1}, path)
    assert torch.load(path, weights_only=True) == {"global_step": 1}

    def dies_half_way(obj, f):
        f.write(b"PK\x03\x04 half a zip")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", dies_half_way)
    with pytest.raises(OSError, match="No space left"):
        writer.save_checkpoint({"global_step": 2}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True) == {"global_step": 1}
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.ckpt"]


def test_trainer_config_uses_the_atomic_writer(tmp_path):
    cfg = compose_train(tmp_path, ["trainer.max_steps=1"])
    trainer = instantiate(cfg.trainer, logger=False)
    assert isinstance(trainer.strategy.checkpoint_io, AtomicCheckpointIO)


def test_a_stopped_command_exits_with_143_and_says_how_to_resume(tmp_path, capsys):
    """Lightning's SIGTERMException is a SystemExit without a code: left alone, `lpnet.demo` ended with 0."""
    last = tmp_path / "checkpoints" / "last.ckpt"
    with pytest.raises(SystemExit) as stopped, exit_when_stopped(last, tool="lpnet.demo"):
        raise SIGTERMException()
    assert stopped.value.code == 128 + signal.SIGTERM
    said = capsys.readouterr().err.strip()  # the run's overrides (if any) come between the two
    assert "resume with python -m lpnet.demo " in said and said.endswith(f"ckpt_path={last}")


def test_ctrl_c_stops_a_derain_run_with_one_line_and_whole_outputs(tmp_path):
    """Ctrl-C in a folder run: exit 130, one line (no traceback), every output written so far decodes."""
    import numpy as np
    from PIL import Image

    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(0)
    for i in range(60):
        Image.fromarray(rng.integers(0, 256, (200, 300, 3), dtype=np.uint8)).save(src / f"p{i:02d}.png")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "lpnet.derain", f"input={src}", f"output={out}", "progress=false"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        cmd, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        preexec_fn=ctrl_c_as_in_a_terminal,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not (out.is_dir() and any(out.glob("*.png"))) and proc.poll() is None:
            assert time.monotonic() < deadline, "no output appeared"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    lines = stderr.decode().strip().splitlines()
    assert proc.returncode == 130, lines[-5:]
    assert (
        "Traceback" not in stderr.decode() and len(lines) == 1 and lines[0].startswith("interrupted (Ctrl-C)")
    )
    written = sorted(out.glob("*.png"))
    assert 0 < len(written) < 60
    for path in written:  # atomic writes: no half-written file under an output's name
        with Image.open(path) as image:
            image.load()
