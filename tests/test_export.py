"""ONNX export: dynamic sizes (odd, even, 1×1), equal to PyTorch, no silent overwrite, Hydra entry point."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module

from lpnet.checkpoint import save_checkpoint
from lpnet.export import INPUT_NAME, export_onnx, run
from lpnet.models import LPNet

ort = pytest.importorskip("onnxruntime")
SRC = Path(__file__).resolve().parents[1] / "src"


def _net() -> LPNet:
    torch.manual_seed(0)
    net = LPNet().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0.0, 0.1)
    return net


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    net = _net()
    return net, export_onnx(net, tmp_path_factory.mktemp("onnx") / "lpnet.onnx")


@pytest.mark.parametrize("size", [(37, 53), (64, 64), (81, 120), (1, 1), (2, 3), (33, 32)])
def test_onnxruntime_equals_pytorch(exported, size):
    net, path = exported
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.rand(2, 3, *size)
    (got,) = session.run(None, {INPUT_NAME: x.numpy()})
    with torch.no_grad():
        want = net(x)[-1]
    assert got.shape == tuple(want.shape)
    torch.testing.assert_close(torch.from_numpy(got), want, rtol=0, atol=1e-4)


def test_refuses_to_overwrite(exported):
    net, path = exported
    with pytest.raises(FileExistsError, match="overwrite=true"):
        export_onnx(net, path)
    before = path.stat().st_mtime_ns
    export_onnx(net, path, overwrite=True)
    assert path.stat().st_mtime_ns >= before


def test_export_from_checkpoint(tmp_path):
    ckpt = save_checkpoint(tmp_path / "net.pt", _net())
    with initialize_config_module(config_module="lpnet.conf", version_base="1.3"):
        cfg = compose("export", overrides=[f"ckpt_path={ckpt}", f"output={tmp_path / 'a.onnx'}"])
    outcome = run(cfg)
    assert (tmp_path / "a.onnx").is_file() and "onnxruntime matches PyTorch" in str(outcome.facts)


def test_command_line(tmp_path):
    ckpt = save_checkpoint(tmp_path / "net.pt", _net())
    out = tmp_path / "cli.onnx"
    cmd = [sys.executable, "-m", "lpnet.export", f"ckpt_path={ckpt}", f"output={out}", "check=false"]
    env = {"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert out.is_file()
    assert not (tmp_path / "outputs").exists()  # hydra: run.dir = . and no .hydra folder
    assert not (tmp_path / ".hydra").exists()
    again = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode != 0
    assert "overwrite=true" in again.stderr
