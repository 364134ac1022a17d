"""W&B logging, offline: names, config, summary, and the validation pictures, read back from the offline
run files."""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_train import small_run

from lpnet.models.complexity import count_params
from lpnet.models.lpnet import LPNet
from lpnet.train import train
from lpnet.training import loggers
from lpnet.training.loggers import wandb_has_credentials, wandb_logger, wandb_reachable


def read_offline_run(path: Path) -> list:
    """The records of an offline ``run-*.wandb`` file (W&B's LevelDB-style log of protobuf records)."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    block, pos, chunks, partial = 32768, 7, [], b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # block trailer padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunk, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        if kind == 1:  # full
            chunks.append(chunk)
        elif kind in (2, 3):  # first, middle
            partial += chunk
        elif kind == 4:  # last
            chunks.append(partial + chunk)
            partial = b""
    records = []
    for chunk in chunks:
        record = wandb_internal_pb2.Record()
        record.ParseFromString(chunk)
        records.append(record)
    return records


def read_finished_run(path: Path, timeout_s: float = 30.0) -> list:
    """The records of an offline run file once its ``exit`` record is on disk.

    A CI run once read the file right after ``finish()`` and found no ``run`` record in it; waiting for
    the last record rules out reading a file that wandb-core is still writing.
    """
    from google.protobuf.message import DecodeError

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            records = read_offline_run(path)
        except DecodeError:  # a record caught half-written: read again once more of it is on disk
            if time.monotonic() > deadline:
                raise
            records = []
        if any(r.WhichOneof("record_type") == "exit" for r in records) or time.monotonic() > deadline:
            return records
        time.sleep(0.2)


def item_keys(items) -> set[str]:
    return {item.key or "/".join(item.nested_key) for item in items}


def history_values(records, key: str) -> list[dict]:
    """Every media value logged under ``key`` (W&B stores its fields as ``<key>/<field>`` items), with the
    training step logged beside it."""
    values = []
    for record in records:
        if record.WhichOneof("record_type") != "history":
            continue
        items = {
            item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item
        }
        fields = {name.removeprefix(f"{key}/"): v for name, v in items.items() if name.startswith(f"{key}/")}
        if fields:
            values.append({"value": fields, "step": items.get("trainer/global_step")})
    return values


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


@pytest.fixture
def offline_wandb(tmp_path, monkeypatch):
    """W&B offline, its artifact staging folder (tables) in tmp_path instead of ~/.local/share/wandb."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / "wandb-data"))


@pytest.mark.usefixtures("offline_wandb")
def test_offline_run_records_group_tags_config_and_metrics(tiny_benchmark, tmp_path):
    out = tmp_path / "run"
    cfg = small_run(
        tiny_benchmark, out, "logger=wandb", "task_name=ablation_test", "tags=[ablation,unit]",
        "model.net.recursions=2", "test=false",
    )  # fmt: skip
    train(cfg)
    runs = list(out.glob("wandb/offline-run-*/run-*.wandb"))
    assert len(runs) == 1, "one finished offline run per training run"
    records = read_finished_run(runs[0])
    kinds = [r.WhichOneof("record_type") for r in records]
    assert "run" in kinds, f"no run record in {runs[0]} ({runs[0].stat().st_size} bytes): {kinds}"
    run = records[kinds.index("run")].run
    assert run.run_group == "ablation_test"
    assert {"ablation", "unit"} <= set(run.tags)
    # Named after the task and what this run overrides (as a sweep's jobs differ).
    assert run.display_name.startswith("ablation_test/") and "model.net.recursions=2" in run.display_name
    config = set().union(
        *(item_keys(r.config.update) for r in records if r.WhichOneof("record_type") == "config")
    )
    assert {"model", "data", "trainer"} <= config
    # LitLPNet's own hyper-parameters are model.* of the config: not repeated at the top.
    assert not {"net", "fast_cpu", "nan_policy", "init_from"} & config
    history = set().union(
        *(item_keys(r.history.item) for r in records if r.WhichOneof("record_type") == "history")
    )
    assert {"train/loss", "val/psnr_y", "val/ssim_y", "train/level4/ssim"} <= history
    assert not {"params", "macs_per_pixel"} & history, "the cost is a summary value, not a series"
    summary = {
        (item.key or "/".join(item.nested_key)): json.loads(item.value_json)
        for r in records
        if r.WhichOneof("record_type") == "summary"
        for item in r.summary.update
    }
    assert "val/psnr_y_best" in summary
    assert summary["params"] == count_params(LPNet(recursions=2)) and summary["macs_per_pixel"] > 0
    assert any(r.WhichOneof("record_type") == "exit" for r in records), "the run was finished"


@pytest.mark.usefixtures("offline_wandb")
def test_wandb_images_are_the_pictures_written_to_disk(tiny_benchmark, tmp_path):
    """W&B stores each validation picture pixel for pixel (8-bit, not a black float image), with its step,
    a caption naming the image and its scores, and a table of every picture at the end."""
    out = tmp_path / "run"
    train(small_run(tiny_benchmark, out, "logger=wandb", "test=false", "callbacks.image_logger.examples=2"))
    (run_file,) = out.glob("wandb/offline-run-*/run-*.wandb")
    records = read_finished_run(run_file)
    files = run_file.parent / "files"
    on_disk = sorted((out / "images").glob("val_step*.png"))
    assert len(on_disk) == 4, "2 validations (steps 2 and 4) × 2 validation images"
    disk = {path.name: pixels(path) for path in on_disk}
    for picture in disk.values():
        assert picture.min() < 40 and picture.max() > 215 and picture.std() > 30, "not a blank picture"

    logged = history_values(records, "val/examples")
    assert [entry["step"] for entry in logged] == [2, 4]
    for entry in logged:
        value, step = entry["value"], entry["step"]
        assert value["_type"] == "images/separated" and value["count"] == 2
        media = [pixels(files / name) for name in value["filenames"]]
        expected = sorted(name for name in disk if name.startswith(f"val_step{step:07d}_"))
        assert len(media) == len(expected) == 2
        for name, captured in zip(expected, media):
            np.testing.assert_array_equal(captured, disk[name], err_msg=name)
        for caption, name in zip(value["captions"], expected):
            key = name.removeprefix(f"val_step{step:07d}_").removesuffix(".png")
            assert caption.startswith(f"step {step} · {key}: rainy PSNR ") and "→ derained PSNR" in caption

    # The table (logged once, at the end) is a run artifact; offline, its files wait in the staging folder.
    assert len(history_values(records, "val/examples_table")) == 1
    (manifest,) = [
        r.artifact.manifest
        for r in records
        if r.WhichOneof("record_type") == "artifact"
        and any(c.path.endswith("examples_table.table.json") for c in r.artifact.manifest.contents)
    ]
    stored = {content.path: Path(content.local_path) for content in manifest.contents}
    table = json.loads(next(p for name, p in stored.items() if name.endswith(".table.json")).read_text())
    assert table["columns"] == ["step", "key", "picture", "psnr_y", "ssim_y", "input_psnr_y", "input_ssim_y"]
    assert [row[0] for row in table["data"]] == [2, 2, 4, 4]
    for row in table["data"]:
        name = f"val_step{row[0]:07d}_{row[1]}.png"
        np.testing.assert_array_equal(pixels(stored[row[2]["path"]]), disk[name])
        assert 0 < row[4] <= 1 and 0 < row[6] <= 1  # SSIMs


def test_mode_follows_environment_and_credentials(monkeypatch, tmp_path):
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    assert not wandb_has_credentials()
    monkeypatch.delenv("WANDB_MODE", raising=False)
    assert wandb_logger(project="x", save_dir=str(tmp_path))._offline is True
    monkeypatch.setenv("WANDB_API_KEY", "k" * 40)
    assert wandb_has_credentials()
    # a key but no network: offline too, instead of waiting on the server
    monkeypatch.setattr(loggers.socket, "create_connection", _refuse)
    assert not wandb_reachable()
    assert wandb_logger(project="x", save_dir=str(tmp_path))._offline is True
    monkeypatch.setattr(loggers.socket, "create_connection", lambda *a, **k: _Connection())
    assert wandb_logger(project="x", save_dir=str(tmp_path))._offline is False
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert wandb_logger(project="x", save_dir=str(tmp_path))._offline is True


def _refuse(*args, **kwargs):
    raise OSError("network unreachable")


class _Connection:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    monkeypatch.setenv("WANDB_SILENT", "true")


def test_a_sweeps_runs_are_tagged_with_the_swept_keys(tmp_path):
    """Keys from the sweeper's params (experiment files) and from the command line's comma lists."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    from lpnet.train import swept_keys

    sweep = tmp_path / "sweep"
    sweep.mkdir()
    command_line = ["model.net.recursions=1,3", "data=synthetic", "optim.lr=choice(1e-3,1e-4)"]
    OmegaConf.save({"hydra": {"overrides": {"task": command_line}}}, sweep / "multirun.yaml")
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="lpnet.conf", version_base="1.3"):
        # ablation_loss: a MULTIRUN whose file sweeps `loss` through hydra.sweeper.params
        cfg = compose(
            "train", ["experiment=ablation_loss", f"hydra.sweep.dir={sweep}"], return_hydra_config=True
        )
    HydraConfig.instance().set_config(cfg)
    try:
        assert swept_keys() == ["loss", "model.net.recursions", "optim.lr"]
    finally:
        HydraConfig.instance().cfg = None
