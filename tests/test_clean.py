"""Clean photos and synthetic pairs: splits, determinism, resumable stream, folders."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from lpnet.config import SyntheticDataConfig
from lpnet.data.clean import (
    SKIMAGE_SPLITS,
    SyntheticPairs,
    clean_sources,
    skimage_photo,
    split_folder,
    synthetic_datasets,
)


class TestCleanPhotos:
    def test_bundled_photos_load(self):
        for names in SKIMAGE_SPLITS.values():
            for name in names:
                x = skimage_photo(name)
                assert x.dim() == 3 and x.shape[0] == 3 and min(x.shape[1:]) >= 256
                assert x.dtype == torch.float32 and x.min() >= 0 and x.max() <= 1

    def test_splits_use_different_photos(self):
        photos = {split: [load() for _, load in clean_sources(split)] for split in SKIMAGE_SPLITS}
        names = [n for split in SKIMAGE_SPLITS for n, _ in clean_sources(split)]
        assert len(names) == len(set(names))
        # Also by content: no photo of one split equals (or is a crop-size twin of) another split's.
        flat = [(split, p) for split, ps in photos.items() for p in ps]
        for i, (si, a) in enumerate(flat):
            for sj, b in flat[i + 1 :]:
                if si != sj and a.shape == b.shape:
                    assert (a - b).abs().mean() > 0.05

    def test_folder_split_is_disjoint_complete_and_stable(self, tmp_path):
        for i in range(12):
            Image.fromarray(np.full((16, 16, 3), i * 20, np.uint8)).save(tmp_path / f"img{i:02d}.png")
        parts = {s: split_folder(tmp_path, s) for s in ("train", "val", "test")}
        assert sorted(p for ps in parts.values() for p in ps) == sorted(tmp_path.glob("*.png"))
        assert len(parts["val"]) == len(parts["test"]) == 1
        assert split_folder(tmp_path, "val") == parts["val"]

    def test_folder_errors(self, tmp_path):
        with pytest.raises(ValueError, match="not a folder"):
            split_folder(tmp_path / "missing", "train")
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
        with pytest.raises(ValueError, match="at least 3"):
            split_folder(tmp_path, "train")
        with pytest.raises(ValueError, match="unknown split"):
            clean_sources("holdout")


class TestSyntheticPairs:
    def test_sample_is_a_pure_function_of_seed_and_index(self):
        a = SyntheticPairs("train", "rain_light", length=10, seed=3)
        b = SyntheticPairs("train", "rain_light", length=10, seed=3)
        c = SyntheticPairs("train", "rain_light", length=10, seed=4)
        x, y, z = a[7], b[7], c[7]
        assert set(x) == {"rainy", "clean", "key"}
        assert x["rainy"].shape == x["clean"].shape == (3, 80, 80)
        assert torch.equal(x["rainy"], y["rainy"]) and x["key"] == y["key"]
        assert not torch.equal(x["clean"], z["clean"])
        assert not torch.equal(a[6]["clean"], x["clean"])
        with pytest.raises(IndexError):
            a[10]

    def test_train_draws_only_train_photos(self):
        pairs = SyntheticPairs("train", "noise", length=40, crop_size=32)
        photos = {pairs.sample_with_params(i)[1]["photo"] for i in range(40)}
        assert photos <= set(SKIMAGE_SPLITS["train"]) and len(photos) >= 4

    def test_eval_sets_are_fixed_whatever_the_training_seed(self):
        first = synthetic_datasets(SyntheticDataConfig(seed=1, val_length=2, test_length=2))
        second = synthetic_datasets(SyntheticDataConfig(seed=2, val_length=2, test_length=2))
        assert not torch.equal(first["train"][0]["rainy"], second["train"][0]["rainy"])
        for split in ("val", "test"):
            for i in range(2):
                a, b = first[split][i], second[split][i]
                assert torch.equal(a["rainy"], b["rainy"]) and a["key"] == b["key"]
                name = a["key"].split("-")[1]
                assert name in SKIMAGE_SPLITS[split]
                assert a["clean"].shape == skimage_photo(name).shape  # whole photos
        # Val cycles through its photos, with different rain on each repeat.
        val = SyntheticPairs("val", "rain_light", length=4, crop_size=None)
        assert torch.equal(val[0]["clean"], val[2]["clean"])
        assert not torch.equal(val[0]["rainy"], val[2]["rainy"])

    def test_bad_arguments(self):
        with pytest.raises(ValueError, match="length"):
            SyntheticPairs(length=0)
        with pytest.raises(ValueError, match="crop_size"):
            SyntheticPairs(crop_size=4)
        with pytest.raises(ValueError, match="unknown degradation"):
            SyntheticPairs(degradation="snow")
        with pytest.raises(ValueError, match="smaller than crop_size"):
            SyntheticPairs("val", "noise", crop_size=400)[1]  # coins is 303×384
