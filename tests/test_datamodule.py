"""RainDataModule on tiny trees: loaders, splits, errors, the Hydra config, and resuming mid-stream."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import lightning as L
import pytest
import torch
from hydra.utils import instantiate
from test_datasets import OFFSET, coordinate_image, write
from torch.utils.data import DataLoader

from lpnet.config import BenchmarkDataConfig
from lpnet.data.datamodule import RainDataModule, benchmark_datamodule, synthetic_datamodule
from lpnet.data.datasets import PairedImageDataset, TrainStream
from lpnet.data.layouts import find_pairs


def official_tree(root: Path, train: int = 4, test: int = 2) -> Path:
    """train/ in the official layout (input/, label/), test/ as rain/ + norain/; clean = rainy + OFFSET."""
    for i in range(1, train + 1):
        write(root / "train" / "input" / f"{i}.png", coordinate_image(base=i))
        write(root / "train" / "label" / f"{i}.png", coordinate_image(base=i + OFFSET))
    for i in range(1, test + 1):
        write(root / "test" / "rain" / f"rain-00{i}.png", coordinate_image(base=i))
        write(root / "test" / "norain" / f"norain-00{i}.png", coordinate_image(base=i + OFFSET))
    return root


def test_loaders(tmp_path):
    root = official_tree(tmp_path)
    dm = RainDataModule(
        root=root, train_dir="train", test_dir="test", crop_size=8, batch_size=3, val_fraction=0.25
    )
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["rainy"].shape == batch["clean"].shape == (3, 3, 8, 8)
    assert torch.allclose(batch["clean"] - batch["rainy"], torch.tensor(OFFSET / 255), atol=1e-6)
    val = list(dm.val_dataloader())
    assert len(val) == 1 and val[0]["rainy"].shape == (1, 3, 20, 24)
    train_keys = {p.key for p in dm.train_set.pairs}
    assert len(train_keys) == 3 and set(val[0]["key"]).isdisjoint(train_keys)
    dm.setup("test")
    test = list(dm.test_dataloader())
    assert [b["key"] for b in test] == [["rain-001"], ["rain-002"]]
    assert all(b["clean"].shape == (1, 3, 20, 24) for b in test)
    assert test[0]["rainy_path"] == [str(root / "test" / "rain" / "rain-001.png")]


def test_layout_detected_per_split(tmp_path):
    # PReNet: the training folder is prenet_train, the test folder prenet_test
    for i in (1, 2):
        write(tmp_path / "train" / "RainTrainH" / f"rain-{i}.png", coordinate_image())
        write(tmp_path / "train" / "RainTrainH" / f"norain-{i}.png", coordinate_image())
        write(tmp_path / "test" / "Rain100H" / "rainy" / f"rain-00{i}.png", coordinate_image())
        write(tmp_path / "test" / "Rain100H" / f"norain-00{i}.png", coordinate_image())
    dm = RainDataModule(
        root=tmp_path, train_dir="train/RainTrainH", test_dir=tmp_path / "test" / "Rain100H", crop_size=8
    )
    dm.setup(None)
    assert [p.key for p in dm.train_set.pairs] == ["rain-2"] and [p.key for p in dm.val_set.pairs] == [
        "rain-1"
    ]
    assert [p.clean.name for p in dm.test_set.pairs] == ["norain-001.png", "norain-002.png"]


def test_val_dir_and_no_val(tmp_path):
    root = official_tree(tmp_path)
    dm = RainDataModule(root=root, train_dir="train", val_dir="test", crop_size=8)
    dm.setup("fit")
    assert len(dm.train_set) == 4 and len(dm.val_set) == 2
    dm = RainDataModule(root=root, train_dir="train", val_fraction=0, crop_size=8)
    dm.setup("fit")
    assert len(dm.train_set) == 4 and dm.val_dataloader() == []


def test_val_split_keeps_clean_groups_together(tmp_path):
    # Rain1400: 3 renderings per clean image; a scene must not be in both train and val
    for i in range(1, 11):
        write(tmp_path / "ground_truth" / f"{i}.jpg", coordinate_image())
        for j in range(1, 4):
            write(tmp_path / "rainy_image" / f"{i}_{j}.jpg", coordinate_image())
    dm = RainDataModule(root=tmp_path, train_dir=".", val_fraction=0.2, crop_size=8, seed=4)
    dm.setup("fit")
    train_scenes = {p.clean for p in dm.train_set.pairs}
    val_scenes = {p.clean for p in dm.val_set.pairs}
    assert len(val_scenes) == 2 and len(train_scenes) == 8 and train_scenes.isdisjoint(val_scenes)
    assert len(dm.val_set) == 6 and len(dm.train_set) == 24
    again = RainDataModule(root=tmp_path, train_dir=".", val_fraction=0.2, crop_size=8, seed=4)
    again.setup("fit")
    assert {p.clean for p in again.val_set.pairs} == val_scenes  # seeded


def test_layout_options_reach_the_layout(tmp_path):
    for i in (1, 2):
        write(tmp_path / "train" / f"{i}.png", coordinate_image(20, 48))
    dm = RainDataModule(
        root=tmp_path, train_dir="train", layout_options={"rainy_side": "right"}, val_fraction=0
    )
    dm.setup("fit")
    assert {p.rainy_side for p in dm.train_set.pairs} == {"right"}


def test_missing_root_says_how_to_get_data(tmp_path):
    dm = RainDataModule(root=tmp_path / "Rain100H", train_dir="train")
    with pytest.raises(FileNotFoundError) as err:
        dm.setup("fit")
    message = str(err.value)
    assert str(tmp_path / "Rain100H") in message
    assert "PReNet" in message and "DDN" in message


def test_missing_split_lists_root(tmp_path):
    root = official_tree(tmp_path)
    dm = RainDataModule(root=root, train_dir="training")
    with pytest.raises(FileNotFoundError, match=r"training.*does not exist[\s\S]*holds: test, train"):
        dm.setup("fit")
    with pytest.raises(ValueError, match="train_dir"):
        RainDataModule(root=root, train_dir=None).setup("fit")
    with pytest.raises(ValueError, match="test_dir"):
        RainDataModule(root=root, train_dir="train", test_dir=None).setup("test")


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="val_fraction"):
        RainDataModule(root=tmp_path, val_fraction=1.0)
    with pytest.raises(ValueError, match="batch_size"):
        RainDataModule(root=tmp_path, batch_size=0)
    with pytest.raises(ValueError, match="num_workers"):
        RainDataModule(root=tmp_path, num_workers=-1)


def test_ready_made_sources_replace_folders(tmp_path):
    root = official_tree(tmp_path)
    source = PairedImageDataset(find_pairs(root / "train"), crop_size=6)
    test = PairedImageDataset(find_pairs(root / "test"))
    dm = RainDataModule(train_source=source, test_source=test, batch_size=2)  # no root at all
    dm.setup("fit")
    assert next(iter(dm.train_dataloader()))["rainy"].shape == (2, 3, 6, 6)
    assert dm.val_dataloader() == []
    dm.setup("test")
    assert len(list(dm.test_dataloader())) == 2


def test_benchmark_config_instantiates_with_every_key(tmp_path):
    """data=benchmark as train() builds it: the group's config with Hydra's wiring, every key accepted."""
    from hydra import compose, initialize_config_module

    root = official_tree(tmp_path)
    with initialize_config_module(config_module="lpnet.conf", version_base="1.3"):
        cfg = compose("train", overrides=[f"paths.data_dir={root}", "seed=11", "data.crop_size=8"])
    assert set(cfg.data) - {"_target_", "_convert_"} == {
        f.name for f in dataclasses.fields(BenchmarkDataConfig)
    } - {
        "_target_",
        "_convert_",
    }
    dm = instantiate(cfg.data, num_workers=0)
    assert isinstance(dm, RainDataModule) and dm.seed == 11 and dm.root == root
    dm.setup("fit")
    assert next(iter(dm.train_dataloader()))["rainy"].shape == (10, 3, 8, 8)
    dm.setup("test")
    assert len(dm.test_set) == 2


class Recorder(L.LightningModule):
    """Learns nothing useful; records a fingerprint of every training batch, skips those of ``skip``."""

    def __init__(self, skip: tuple[int, ...] = ()) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(()))
        self.seen: list[tuple[int, list[str], float]] = []
        self.skip = skip

    def training_step(self, batch, batch_idx):
        self.seen.append((self.global_step, list(batch["key"]), float(batch["rainy"].sum())))
        if batch_idx in self.skip:
            return None  # like model.nan_policy=skip: no optimiser step
        return (self.weight - batch["rainy"].mean()) ** 2

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def fit(
    dm: RainDataModule, max_steps: int, ckpt_path: Path | None = None, skip: tuple[int, ...] = (), **kwargs
) -> Recorder:
    model = Recorder(skip)
    trainer = L.Trainer(
        max_steps=max_steps,
        max_epochs=-1,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        **kwargs,
    )
    trainer.fit(model, datamodule=dm, ckpt_path=ckpt_path)
    model.trainer_ = trainer
    return model


def test_resume_continues_the_data_stream(tmp_path):
    root = official_tree(tmp_path / "data")

    def datamodule(seed: int = 0) -> RainDataModule:
        return RainDataModule(
            root=root, train_dir="train", crop_size=8, batch_size=2, val_fraction=0, seed=seed
        )

    straight = fit(datamodule(), max_steps=6).seen
    first = fit(datamodule(), max_steps=3)
    ckpt = tmp_path / "step3.ckpt"
    first.trainer_.save_checkpoint(ckpt)
    resumed = fit(datamodule(), max_steps=6, ckpt_path=ckpt).seen
    assert [step for step, *_ in straight] == list(range(6))
    assert first.seen == straight[:3]
    assert resumed == straight[3:]
    with pytest.warns(UserWarning, match="seed 0 → 1"):
        fit(datamodule(seed=1), max_steps=4, ckpt_path=ckpt)


def test_resume_with_gradient_accumulation(tmp_path):
    root = official_tree(tmp_path / "data")

    def datamodule() -> RainDataModule:
        return RainDataModule(root=root, train_dir="train", crop_size=8, batch_size=2, val_fraction=0)

    straight = fit(datamodule(), max_steps=4, accumulate_grad_batches=2).seen
    first = fit(datamodule(), max_steps=2, accumulate_grad_batches=2)
    first.trainer_.save_checkpoint(tmp_path / "step2.ckpt")
    resumed = fit(
        datamodule(), max_steps=4, ckpt_path=tmp_path / "step2.ckpt", accumulate_grad_batches=2
    ).seen
    assert len(straight) == 8 and [s[1:] for s in resumed] == [s[1:] for s in straight[4:]]


def test_resume_after_skipped_steps(tmp_path):
    """A skipped batch (nan_policy=skip) still counts as a step, so the resumed stream goes on after it."""
    root = official_tree(tmp_path / "data")

    def datamodule() -> RainDataModule:
        return RainDataModule(root=root, train_dir="train", crop_size=8, batch_size=2, val_fraction=0)

    straight = fit(datamodule(), max_steps=5, skip=(1, 2)).seen
    first = fit(datamodule(), max_steps=2, skip=(1, 2))
    first.trainer_.save_checkpoint(tmp_path / "step2.ckpt")
    resumed = fit(datamodule(), max_steps=5, ckpt_path=tmp_path / "step2.ckpt", skip=(1, 2)).seen
    assert len(straight) == 5 and len(first.seen) == 2
    assert [s[1:] for s in resumed] == [s[1:] for s in straight[2:]]


class TestSyntheticAndFallback:
    def test_synthetic_module_streams_resumable_crops(self):
        dm = synthetic_datamodule(
            degradation="rain_light", crop_size=16, batch_size=3, seed=5, val_length=2, test_length=2
        )
        dm.setup("fit")
        stream = iter(dm.train_dataloader())
        batches = [next(stream) for _ in range(3)]
        assert batches[0]["rainy"].shape == (3, 3, 16, 16)
        resumed = TrainStream(dm.train_set, dm.seed, 3, start_batch=2)
        first = next(iter(DataLoader(resumed, batch_size=3)))
        assert first["key"] == batches[2]["key"]
        assert torch.equal(first["rainy"], batches[2]["rainy"])
        assert len(dm.val_set) == 2 and dm.val_set[0]["rainy"].dim() == 3

    def test_missing_benchmark_falls_back_loudly(self, tmp_path, caplog):
        with pytest.warns(UserWarning, match="SYNTHETIC rain"):
            dm = benchmark_datamodule(
                fallback="rain_heavy", root=tmp_path / "nope", train_dir="train", batch_size=2
            )
        assert dm.train_set is not None and dm.root is None
        assert "data.fallback=null" in caplog.text

    def test_present_benchmark_is_used(self, tmp_path):
        root = official_tree(tmp_path)
        dm = benchmark_datamodule(fallback="rain_heavy", root=root, train_dir="train", test_dir="test")
        assert dm.root == root and dm.train_set is None

    def test_no_fallback_is_an_error_that_says_where_to_get_data(self, tmp_path):
        dm = benchmark_datamodule(fallback=None, root=tmp_path / "nope", train_dir="train")
        with pytest.raises((FileNotFoundError, ValueError), match="nope"):
            dm.setup("fit")
