"""One loader for converted and trained checkpoints; nothing in a checkpoint is executed."""

from __future__ import annotations

import pickle

import pytest
import torch

import lpnet
from lpnet.checkpoint import CheckpointError, check_resumable, load_model, read_checkpoint, save_checkpoint
from lpnet.models.lpnet import LPNet


def test_round_trip_keeps_architecture_and_weights(tmp_path):
    net = LPNet(num_levels=4, width_multiplier=0.5, recursions=2, share_weights=False)
    path = save_checkpoint(tmp_path / "m.pt", net, meta={"source": "test"})
    loaded = load_model(path)
    assert loaded.config == net.config
    for (k, a), (_, b) in zip(net.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), k
    assert read_checkpoint(path)[2] == {"source": "test"}
    assert not loaded.training


def test_checkpoint_is_plain_data(tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", LPNet())
    ckpt = torch.load(path, weights_only=True)
    assert ckpt["format"] == "lpnet" and ckpt["model_config"]["widths"] == [1, 2, 4, 8, 16]


def test_lightning_checkpoint_layout_loads(tmp_path):
    net = LPNet(recursions=3)
    ckpt = {
        "state_dict": {f"net.{k}": v for k, v in net.state_dict().items()},
        "hyper_parameters": {"net": {**vars(net.config), "width_multiplier": 1.0}},
        "global_step": 7,
    }
    torch.save(ckpt, tmp_path / "last.ckpt")
    loaded = load_model(tmp_path / "last.ckpt")
    assert loaded.config == net.config
    assert read_checkpoint(tmp_path / "last.ckpt")[2]["global_step"] == 7


class Payload:
    def __reduce__(self):
        return (print, ("code ran",))


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", "not an lpnet checkpoint: damaged, truncated or not a PyTorch file"),
        (b"\x00\x01garbage" * 100, "not an lpnet checkpoint: damaged, truncated or not a PyTorch file"),
        (
            pickle.dumps(Payload(), protocol=2),
            "not an lpnet checkpoint: it holds Python classes or functions",
        ),
    ],
)
def test_bad_files_are_refused_without_running_code(tmp_path, capsys, content, match):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=match) as err:
        load_model(path)
    assert str(path) in str(err.value)
    assert "code ran" not in capsys.readouterr().out


def test_truncated_checkpoint(tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", LPNet())
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(CheckpointError, match=r"m\.pt"):
        load_model(path)


def test_foreign_dict_names_what_was_expected(tmp_path):
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="neither an lpnet checkpoint"):
        load_model(tmp_path / "other.pt")


def test_weights_that_do_not_fit_their_config(tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", LPNet())
    ckpt = torch.load(path, weights_only=True)
    ckpt["model_config"]["widths"] = [2, 4, 8, 16, 32]
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match="do not fit"):
        load_model(path)


def test_missing_file():
    with pytest.raises(FileNotFoundError, match=r"nope\.pt"):
        lpnet.load_model("nope.pt")


def _lightning_checkpoint(path, net_kwargs: dict) -> None:
    """What LitLPNet saves: the run's model.net arguments as given, weights under ``net.``."""
    state = {f"net.{k}": v for k, v in LPNet(**net_kwargs).state_dict().items()}
    torch.save({"state_dict": state, "hyper_parameters": {"net": net_kwargs}, "global_step": 3}, path)


def test_training_arguments_read_as_the_network_config(tmp_path):
    _lightning_checkpoint(tmp_path / "last.ckpt", {"widths": None, "width_multiplier": 0.5, "recursions": 2})
    config, _, meta = read_checkpoint(tmp_path / "last.ckpt")
    assert config == LPNet(width_multiplier=0.5, recursions=2).config and meta["global_step"] == 3


def test_resume_refuses_converted_weights_and_other_architectures(tmp_path):
    run = {"widths": None, "width_multiplier": 1.0, "recursions": 3}
    _lightning_checkpoint(tmp_path / "last.ckpt", run)
    check_resumable(tmp_path / "last.ckpt", LPNet(recursions=3).config)
    with pytest.raises(CheckpointError, match="set model.net to match"):
        check_resumable(tmp_path / "last.ckpt", LPNet().config)
    converted = save_checkpoint(tmp_path / "m.pt", LPNet())
    with pytest.raises(CheckpointError, match="model.init_from="):
        check_resumable(converted, LPNet().config)
    with pytest.raises(FileNotFoundError):
        check_resumable(tmp_path / "missing.ckpt", LPNet().config)


def test_bundled_weights_are_named_lpnet_colon(tmp_path, monkeypatch):
    import lpnet.checkpoint as checkpoint

    monkeypatch.setattr(checkpoint, "WEIGHTS_FOLDER", tmp_path)
    save_checkpoint(tmp_path / "heavy.pt", LPNet(recursions=2))
    assert checkpoint.bundled_weights() == {"heavy": tmp_path / "heavy.pt"}
    assert load_model("lpnet:heavy").config.recursions == 2
    with pytest.raises(FileNotFoundError, match=r"no bundled weights 'lpnet:nope'; lpnet ships: lpnet:heavy"):
        load_model("lpnet:nope")


def test_a_deflated_giant_tensor_is_refused_before_anything_is_inflated(tmp_path):
    """A valid checkpoint whose head weight is re-stored as a 400 MB run of zeros, zip-deflated to ~0.4 MB:
    refused from the zip's directory in well under a second, its size named, nothing inflated."""
    import subprocess
    import sys
    import zipfile

    source = save_checkpoint(tmp_path / "valid.pt", LPNet())
    crafted = tmp_path / "bomb.pt"
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(crafted, "w", zipfile.ZIP_DEFLATED) as dst:
        entries = src.infolist()
        biggest = max((e for e in entries if "/data/" in e.filename), key=lambda e: e.file_size)
        for entry in entries:
            if entry.filename != biggest.filename:
                dst.writestr(entry.filename, src.read(entry))
        with dst.open(biggest.filename, "w", force_zip64=True) as sink:
            block = bytes(2**24)
            for _ in range(25):  # 400 MiB of zeros
                sink.write(block)
    assert crafted.stat().st_size < 2**21
    code = (
        "import re, sys, time\n"
        "from lpnet.checkpoint import read_checkpoint, CheckpointError\n"
        "t = time.perf_counter()\n"
        "try:\n    read_checkpoint(sys.argv[1])\nexcept CheckpointError as e:\n    print(e)\n"
        "print(time.perf_counter() - t)\n"
        # VmHWM, not ru_maxrss: ru_maxrss survives exec, so a child of a large pytest reports the parent's
        "print(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(crafted)], capture_output=True, text=True, check=True
    )
    message, seconds, peak_kib = done.stdout.strip().splitlines()
    assert message.startswith(f"{crafted}: unpacks to 400 MiB, more than a checkpoint of any LPNet")
    assert (
        float(seconds) < 1.0 and int(peak_kib) < 600 * 1024
    )  # torch itself is ~300 MB; 400 more if inflated
