"""python -m lpnet.synthesize: the benchmark layout, params.json, refusals, determinism, the CLI."""

from __future__ import annotations

import json
import re

import pytest
import torch
from conftest import run_cli
from hydra import compose, initialize_config_module

from lpnet.io import read_image
from lpnet.synthesize import main, synthesize


def _cfg(*overrides: str):
    with initialize_config_module(config_module="lpnet.conf", version_base="1.3"):
        return compose(config_name="synthesize", overrides=list(overrides))


def test_writes_pairs_and_params(tmp_path):
    out = tmp_path / "set"
    synthesize(
        _cfg(
            "preset=light", f"output={out}", "count=3", "seed=5", "crop_size=64", "degradation.angle=[10,10]"
        )
    )
    assert sorted(p.name for p in (out / "rain").iterdir()) == [
        "rain-001.png",
        "rain-002.png",
        "rain-003.png",
    ]
    assert sorted(p.name for p in (out / "norain").iterdir()) == [
        "norain-001.png",
        "norain-002.png",
        "norain-003.png",
    ]
    meta = json.loads((out / "params.json").read_text())
    assert meta["degradation"] == "rain_light" and meta["seed"] == 5
    assert meta["config"]["angle"] == [10.0, 10.0]
    assert len(meta["samples"]) == 3
    for i, sample in enumerate(meta["samples"], start=1):
        assert sample["rain"] == f"rain/rain-{i:03d}.png" and sample["kind"] == "rain"
        assert sample["angle"] == 10.0
        rainy, clean = read_image(out / sample["rain"]), read_image(out / sample["norain"])
        assert rainy.shape == clean.shape == (3, 64, 64)
        assert (rainy - clean).mean() > 0.002  # rain adds light


def test_same_seed_same_files(tmp_path):
    for name in ("a", "b"):
        synthesize(_cfg(f"output={tmp_path / name}", "count=2", "seed=1", "crop_size=48"))
    for sub in ("rain/rain-001.png", "norain/norain-002.png", "params.json"):
        assert (tmp_path / "a" / sub).read_bytes() == (tmp_path / "b" / sub).read_bytes()


def test_refuses_non_empty_folder_unless_overwrite(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    cfg = _cfg(f"output={tmp_path}", "count=1", "crop_size=32", "degradation=noise")
    with pytest.raises(ValueError, match=r"not empty.*overwrite=true"):
        synthesize(cfg)
    assert not (tmp_path / "rain").exists()
    synthesize(_cfg(f"output={tmp_path}", "count=1", "crop_size=32", "degradation=noise", "overwrite=true"))
    assert (tmp_path / "rain" / "rain-001.png").is_file() and (tmp_path / "keep.txt").is_file()


def test_setting_errors(tmp_path):
    with pytest.raises(ValueError, match="cannot combine"):
        synthesize(_cfg(f"output={tmp_path / 'x'}", "preset=heavy", "degradation=haze"))
    with pytest.raises(ValueError, match="preset must be one of"):
        synthesize(_cfg(f"output={tmp_path / 'x'}", "preset=drizzle"))
    with pytest.raises(ValueError, match="count"):
        synthesize(_cfg(f"output={tmp_path / 'x'}", "count=0"))
    (tmp_path / "file").write_text("in the way")
    with pytest.raises(PermissionError, match=r"output folder .*file/out is not writable"):
        synthesize(_cfg(f"output={tmp_path / 'file' / 'out'}", "count=1"))


def test_whole_test_photos_by_default(tmp_path):
    synthesize(_cfg(f"output={tmp_path}", "count=1", "degradation=noise"))
    clean = read_image(tmp_path / "norain" / "norain-001.png")
    assert clean.shape == (3, 512, 512)  # astronaut, the first test photo
    noisy = read_image(tmp_path / "rain" / "rain-001.png")
    assert float((noisy - clean).std() * 255) == pytest.approx(25, rel=0.1)
    assert torch.equal(clean, read_image(tmp_path / "norain" / "norain-001.png"))


def test_cli_leaves_nothing_in_the_working_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv = ["lpnet.synthesize", "output=out", "count=1", "crop_size=32", "degradation=noise"]
    assert run_cli(main, *argv[1:]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no .hydra/, outputs/ or log file
    assert (tmp_path / "out" / "rain" / "rain-001.png").is_file()
    assert run_cli(main, *argv[1:]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("error: output out is not empty")


def test_cli_names_an_unreadable_clean_photo(tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(12):  # every split of the folder gets some of them
        (photos / f"p{i}.png").write_bytes(b"not a png")
    argv = [f"output={tmp_path / 'out'}", "count=2", "crop_size=32", f"clean_dir={photos}"]
    assert run_cli(main, *argv) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert re.match(rf"error: {photos}/p\d+\.png: not a readable image", last)


def test_output_is_read_back_by_the_datamodule(tmp_path):
    from lpnet.data.datamodule import RainDataModule

    out = tmp_path / "set"
    synthesize(_cfg("preset=heavy", f"output={out}", "count=3", "seed=1", "crop_size=32"))
    dm = RainDataModule(root=out, train_dir=".", test_dir=".", crop_size=16, batch_size=2, val_fraction=0)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["rainy"].shape == batch["clean"].shape == (2, 3, 16, 16)
    dm.setup("test")
    assert [dm.test_set[i]["key"] for i in range(3)] == ["rain-001", "rain-002", "rain-003"]
    assert torch.equal(dm.test_set[0]["rainy"], read_image(out / "rain" / "rain-001.png"))


def test_a_set_cut_short_is_refused_by_readers_and_repaired_by_overwrite(tmp_path, monkeypatch, capsys):
    """A full disk stops lpnet.synthesize after 5 images: the partial set is not scored as if whole (eval
    refuses it by name, exit 2) and a rerun with overwrite=true takes it back as its own and completes it."""
    import errno

    import lpnet.synthesize as synth
    from lpnet.eval import main as eval_main

    out = tmp_path / "set"
    real_write, calls = synth.write_image, []

    def fills_up(path, image, *args, **kwargs):
        calls.append(path)
        if len(calls) > 5:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(path, image, *args, **kwargs)

    monkeypatch.setattr(synth, "write_image", fills_up)
    settings = ("preset=light", f"output={out}", "count=6", "seed=5", "crop_size=32")
    with pytest.raises(OSError, match="No space"):
        synthesize(_cfg(*settings))
    assert json.loads((out / "params.json").read_text())["complete"] is False
    capsys.readouterr()
    assert run_cli(eval_main, "ckpt_path=lpnet:light", f"data.root={out}", f"output={tmp_path / 'e'}") == 2
    assert "cut short" in capsys.readouterr().err and not (tmp_path / "e" / "metrics.json").exists()

    monkeypatch.setattr(synth, "write_image", real_write)
    synthesize(_cfg(*settings, "overwrite=true"))  # its own partial set: removed and written again
    meta = json.loads((out / "params.json").read_text())
    assert meta["complete"] is True and len(meta["samples"]) == 6
    assert len(list((out / "rain").iterdir())) == len(list((out / "norain").iterdir())) == 6
    assert run_cli(eval_main, "ckpt_path=lpnet:light", f"data.root={out}", f"output={tmp_path / 'e'}") == 0
