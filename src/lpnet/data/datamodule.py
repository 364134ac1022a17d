"""RainDataModule: benchmark folders (or any ready-made source) → Lightning data loaders.

- train: the endless, seeded :class:`~lpnet.data.datasets.TrainStream` of random ``crop_size`` crops,
  batches of ``batch_size``. It restarts where a resumed run left off: the stream starts at
  ``trainer.global_step × accumulate_grad_batches``, which Lightning has restored from the checkpoint
  before it asks for the loader, and sample ``n`` depends on ``(seed, n)`` only. Training is counted in
  steps: use ``max_steps`` and an int ``val_check_interval`` with ``check_val_every_n_epoch=None``.
- val / test: whole images, batch 1, in key order. Without a val folder, ``val_fraction`` of the training
  pairs is held out (grouped by clean image, so Rain1400's 14 renderings of one scene stay together).

Where pairs come from (per split): a ready-made dataset (``train_source`` / ``val_source`` /
``test_source``, e.g. the synthetic rain source), else a folder ``root / <split>_dir`` paired by
:mod:`lpnet.data.layouts` — the only place that knows file names.
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from lpnet.config import BenchmarkDataConfig, LoaderConfig, SyntheticDataConfig, with_overrides
from lpnet.data.clean import synthetic_datasets
from lpnet.data.datasets import PairedImageDataset, SampleSource, TrainStream
from lpnet.data.layouts import Pair, find_pairs

log = logging.getLogger(__name__)
_SPLIT_STREAM = 2  # seed stream of the train/val split (0, 1: datasets.py)

WHERE_TO_GET_DATA = """\
Put a benchmark there (or set data.root / LPNET_DATA_DIR), with one folder per split:
  Rain100H, Rain100L  PReNet's release: RainTrainH|L (training), Rain100H|L (testing)
  Rain1400            DDN (Fu et al., CVPR 2017): rainy_image/ + ground_truth/ per split
  Rain800             ID-CGAN (Zhang et al.): side-by-side images, layout_options.rainy_side=right
  Rain1200            DID-MDN (Zhang & Patel, CVPR 2018): side-by-side, layout_options.rainy_side=left
  Rain12              Li et al. (CVPR 2016): {i}_in.png + {i}_GT.png
  Rain13K             MPRNet / Restormer: input/ + target/
  LPNet samples       the official TensorFlow code archive on the LPNet project page: input/ + label/
or train on synthetic rain (data=synthetic). See the layout table in lpnet/data/layouts.py."""


# The stage name of the real-rain validation set: its scores are logged as val_real/<score>; the named
# sets of data.real_val and data.clean_val as val_real_<name>/<score> and val_clean_<name>/<score>.
REAL_VAL_STAGE = "val_real"
CLEAN_VAL_STAGE = "val_clean"


class StageTagged(Dataset):
    """A dataset whose samples say which evaluation set they belong to (``sample["stage"]``)."""

    def __init__(self, dataset: Dataset, stage: str) -> None:
        self.dataset, self.stage = dataset, stage

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {**self.dataset[index], "stage": self.stage}


class RainDataModule(L.LightningDataModule):
    """Paired deraining data for LPNet.

    Args:
        config: folders, layout and loader settings (:class:`~lpnet.config.BenchmarkDataConfig`; its
            ``fallback`` and ``synthetic`` belong to :func:`benchmark_datamodule` and are not read here).
        train_source: a ready-made :class:`~lpnet.data.datasets.SampleSource` (e.g. synthetic rain) used
            instead of ``train_dir``; it does its own cropping.
        val_source, test_source: ready-made map-style datasets of whole-image sample dicts.
        **overrides: settings that replace the config's, e.g. ``RainDataModule(root="Rain100H")``.
    """

    def __init__(
        self,
        config: BenchmarkDataConfig | None = None,
        train_source: SampleSource | None = None,
        val_source: Dataset | None = None,
        test_source: Dataset | None = None,
        **overrides: Any,
    ) -> None:
        super().__init__()
        config = with_overrides(BenchmarkDataConfig, config, overrides, "data")
        self.config = config
        self.root = Path(config.root).expanduser() if config.root is not None else None
        self.layout = config.layout
        self.dirs = {"train": config.train_dir, "val": config.val_dir, "test": config.test_dir}
        self.crop_size = config.crop_size
        self.batch_size = config.batch_size
        self.num_workers = config.num_workers
        self.flips = config.flips
        self.val_fraction = config.val_fraction
        self.seed = int(config.seed)
        self.layout_options = dict(config.layout_options)
        self.cache = config.cache
        self.train_set: SampleSource | None = train_source
        self.val_set: Dataset | None = val_source
        self.test_set: Dataset | None = test_source
        # Real-rain and rain-free validation sets by stage name: scored beside the main one, never trained on
        self.extra_val_dirs: dict[str, tuple[Path, bool]] = {
            f"{REAL_VAL_STAGE}_{name}": (Path(folder).expanduser(), False)
            for name, folder in (config.real_val or {}).items()
        } | {
            f"{CLEAN_VAL_STAGE}_{name}": (Path(folder).expanduser(), True)
            for name, folder in (config.clean_val or {}).items()
        }
        if config.real_val_dir is not None:
            self.extra_val_dirs[REAL_VAL_STAGE] = (Path(config.real_val_dir).expanduser(), False)
        self.extra_val_sets: dict[str, Dataset] = {}

    # -- pairs -------------------------------------------------------------------------------------

    def split_dir(self, split: str) -> Path | None:
        """The folder of ``split`` (``"train"``, ``"val"``, ``"test"``), checked to exist; None if unset."""
        value = self.dirs[split]
        if value is None:
            return None
        path = Path(value).expanduser()
        if not path.is_absolute():
            if self.root is None:
                raise ValueError(f"data.{split}_dir={value!r} is relative but data.root is not set")
            if not self.root.is_dir():
                raise FileNotFoundError(f"data root {self.root} does not exist.\n{WHERE_TO_GET_DATA}")
            path = self.root / path
        if not path.is_dir():
            message = f"{split} folder {path} does not exist (data.{split}_dir={value!r})."
            if path.parent.is_dir():
                message += (
                    f"\n  {path.parent} holds: {', '.join(sorted(p.name for p in path.parent.iterdir()))}"
                )
            raise FileNotFoundError(f"{message}\n{WHERE_TO_GET_DATA}")
        return path

    def pairs(self, split: str) -> list[Pair] | None:
        """Pairs of the ``split`` folder by its layout, or None when the split has no folder."""
        folder = self.split_dir(split)
        return None if folder is None else find_pairs(folder, self.layout, **self.layout_options)

    def split_train_val(self, pairs: Sequence[Pair]) -> tuple[list[Pair], list[Pair]]:
        """Hold out ``val_fraction`` of ``pairs`` (whole clean-image groups, seeded); (train, val)."""
        groups: dict[Path, list[Pair]] = {}
        for pair in pairs:
            groups.setdefault(pair.clean, []).append(pair)
        order = list(groups)
        if self.val_fraction == 0 or len(order) < 2:
            return list(pairs), []
        n_val = min(max(1, round(self.val_fraction * len(order))), len(order) - 1)
        permutation = np.random.default_rng([self.seed, _SPLIT_STREAM]).permutation(len(order))
        val_groups = {order[i] for i in permutation[:n_val]}
        train = [p for p in pairs if p.clean not in val_groups]
        val = [p for p in pairs if p.clean in val_groups]
        return train, val

    # -- Lightning hooks ---------------------------------------------------------------------------

    def setup(self, stage: str | None = None) -> None:
        if stage in ("fit", None) and self.train_set is None:
            train_pairs = self.pairs("train")
            if train_pairs is None:
                raise ValueError("no training data: set data.train_dir (or data.train_source)")
            if self.val_set is None and self.dirs["val"] is None:
                train_pairs, val_pairs = self.split_train_val(train_pairs)
                self.val_set = PairedImageDataset(val_pairs, cache=self.cache) if val_pairs else None
            self.train_set = PairedImageDataset(train_pairs, self.crop_size, self.flips, self.cache)
        if stage in ("fit", "validate", None) and self.val_set is None and self.dirs["val"] is not None:
            self.val_set = PairedImageDataset(self.pairs("val"), cache=self.cache)
        if stage in ("fit", "validate", None) and not self.extra_val_sets:
            for name, (folder, rain_free) in self.extra_val_dirs.items():
                pairs = find_pairs(folder, "rain_free" if rain_free else "auto")
                self.extra_val_sets[name] = StageTagged(PairedImageDataset(pairs, cache=True), name)
        if stage in ("test", None) and self.test_set is None:
            test_pairs = self.pairs("test")
            if test_pairs is None and stage == "test":
                raise ValueError("no test data: set data.test_dir (or data.test_source)")
            self.test_set = PairedImageDataset(test_pairs, cache=self.cache) if test_pairs else None

    def train_dataloader(self) -> DataLoader:
        start_batch, rank, world_size = 0, 0, 1
        if self.trainer is not None:  # resume: the loops are restored before this is called
            start_batch = self.trainer.global_step * self.trainer.accumulate_grad_batches
            rank, world_size = self.trainer.global_rank, self.trainer.world_size
        stream = TrainStream(self.train_set, self.seed, self.batch_size, start_batch, rank, world_size)
        return DataLoader(
            stream,
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
        )

    def _eval_loader(self, dataset: Dataset | None) -> DataLoader | list:
        if dataset is None:
            return []  # Lightning skips a split with no loaders
        return DataLoader(dataset, batch_size=1, shuffle=False, num_workers=self.num_workers)

    def val_dataloader(self) -> DataLoader | list:
        sets = [self.val_set, *self.extra_val_sets.values()]
        loaders = [self._eval_loader(s) for s in sets if s is not None]
        return loaders[0] if len(loaders) == 1 else loaders

    def test_dataloader(self) -> DataLoader | list:
        return self._eval_loader(self.test_set)

    # -- checkpoint --------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """What fixes the training stream besides the step (saved in Lightning checkpoints)."""
        return {"seed": self.seed, "batch_size": self.batch_size, "crop_size": self.crop_size}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        changed = {k: (v, getattr(self, k)) for k, v in state_dict.items() if getattr(self, k, v) != v}
        if changed:
            warnings.warn(
                "resuming with different data settings (checkpoint → now): "
                + ", ".join(f"{k} {old} → {new}" for k, (old, new) in changed.items())
                + "; the training stream will not continue the original one",
                stacklevel=2,
            )


def synthetic_datamodule(config: SyntheticDataConfig | None = None, **overrides: Any) -> RainDataModule:
    """Train on clean photos degraded on the fly (no dataset on disk); see :mod:`lpnet.data.clean`.

    Training crops come from the endless seeded stream (resumable like the benchmark folders); val and
    test are fixed, seeded sets of other photos, so their scores compare across runs.

    Args:
        config: :class:`~lpnet.config.SyntheticDataConfig` (default: its defaults).
        **overrides: settings that replace the config's (what Hydra passes).
    """
    config = with_overrides(SyntheticDataConfig, config, overrides, "data")
    sets = synthetic_datasets(config)
    loader = {f.name: getattr(config, f.name) for f in dataclasses.fields(LoaderConfig)}
    return RainDataModule(
        train_dir=None,
        test_dir=None,
        train_source=sets["train"],
        val_source=sets["val"],
        test_source=sets["test"],
        **loader,
    )


def benchmark_datamodule(config: BenchmarkDataConfig | None = None, **overrides: Any) -> RainDataModule:
    """The benchmark under ``root`` when its training folder exists, else synthetic rain (loudly).

    Args:
        config: :class:`~lpnet.config.BenchmarkDataConfig`; its ``fallback`` is the degradation to
            synthesise when the benchmark is missing (e.g. ``rain_heavy`` for Rain100H; None makes a
            missing benchmark an error that says where to get it), with ``synthetic`` settings.
        **overrides: settings that replace the config's (what Hydra passes).
    """
    config = with_overrides(BenchmarkDataConfig, config, overrides, "data")
    module = RainDataModule(config)
    train_dir = module.dirs["train"]
    root = module.root
    expected = Path(train_dir) if train_dir is not None and Path(train_dir).is_absolute() else None
    if expected is None and root is not None:
        expected = root / train_dir if train_dir is not None else root
    if config.fallback is None or (expected is not None and expected.is_dir()):
        return module
    message = (
        f"benchmark training data not found at {expected}: training on SYNTHETIC rain ({config.fallback}) "
        f"instead.\nScores will not be comparable with published ones. {WHERE_TO_GET_DATA}\n"
        "Set data.fallback=null to make a missing benchmark an error."
    )
    log.warning("\n%s\n%s\n%s", "!" * 100, message, "!" * 100)
    warnings.warn(message, UserWarning, stacklevel=2)
    loader = {f.name: getattr(config, f.name) for f in dataclasses.fields(LoaderConfig)}
    return synthetic_datamodule(degradation=config.fallback, **loader, **config.synthetic)
