"""Clean photos and synthetic pairs: splits, determinism, resumable stream, folders."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from lpnet.config import SyntheticDataConfig
from lpnet.data.clean import (
    BUNDLED_SPLITS,
    DEFAULT_JITTER,
    PHOTOS,
    PhotoJitter,
    SyntheticPairs,
    bundled_photo,
    clean_sources,
    split_folder,
    synthetic_datasets,
)


class TestCleanPhotos:
    def test_bundled_photos_load(self):
        for names in BUNDLED_SPLITS.values():
            for name in names:
                x = bundled_photo(name)
                assert x.dim() == 3 and x.shape[0] == 3 and min(x.shape[1:]) >= 256
                assert x.dtype == torch.float32 and x.min() >= 0 and x.max() <= 1

    def test_every_photo_has_a_licence_note_and_the_splits_hold_several(self):
        named = [n for names in BUNDLED_SPLITS.values() for n in names]
        assert set(named) <= set(PHOTOS) and len(named) == len(set(named))
        for name in PHOTOS:
            assert PHOTOS[name].licence and PHOTOS[name].package in ("scikit-image", "matplotlib")
        assert all(len(BUNDLED_SPLITS[s]) >= 3 for s in ("val", "test"))
        train = BUNDLED_SPLITS["train"]
        colour = [n for n in train if not torch.equal(bundled_photo(n)[0], bundled_photo(n)[1])]
        assert len(colour) >= 7  # coffee, rocket, the two motorcycle views, hubble, ihc, retina
        assert bundled_photo("grace_hopper").shape == (3, 600, 512)  # matplotlib's sample photo
        with pytest.raises(ValueError, match="unknown bundled photo"):
            bundled_photo("lena")

    def test_photos_override_chooses_bundled_photos_per_split(self):
        chosen = clean_sources("train", photos={"train": ["coffee", "moon"]})
        assert [n for n, _ in chosen] == ["coffee", "moon"]
        other = clean_sources("val", photos={"train": ["coffee"]})
        assert [n for n, _ in other] == list(BUNDLED_SPLITS["val"])
        with pytest.raises(ValueError, match="unknown bundled photo"):
            clean_sources("train", photos={"train": ["coffee", "lena"]})
        pairs = SyntheticPairs("train", "noise", length=6, crop_size=32, photos={"train": ["chelsea"]})
        assert {pairs.sample_with_params(i)[1]["photo"] for i in range(6)} == {"chelsea"}

    def test_splits_use_different_photos(self):
        photos = {split: [load() for _, load in clean_sources(split)] for split in BUNDLED_SPLITS}
        names = [n for split in BUNDLED_SPLITS for n, _ in clean_sources(split)]
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
        assert photos <= set(BUNDLED_SPLITS["train"]) and len(photos) >= 4

    def test_eval_sets_are_fixed_whatever_the_training_seed(self):
        first = synthetic_datasets(SyntheticDataConfig(seed=1, val_length=2, test_length=2))
        second = synthetic_datasets(SyntheticDataConfig(seed=2, val_length=2, test_length=2))
        assert not torch.equal(first["train"][0]["rainy"], second["train"][0]["rainy"])
        for split in ("val", "test"):
            for i in range(2):
                a, b = first[split][i], second[split][i]
                assert torch.equal(a["rainy"], b["rainy"]) and a["key"] == b["key"]
                name = a["key"].split("-")[1]
                assert name in BUNDLED_SPLITS[split]
                assert a["clean"].shape == bundled_photo(name).shape  # whole photos
        # Val cycles through its photos, with different rain on each repeat.
        val = SyntheticPairs("val", "rain_light", length=6, crop_size=None)
        n = len(BUNDLED_SPLITS["val"])
        assert torch.equal(val[0]["clean"], val[n]["clean"])
        assert not torch.equal(val[0]["rainy"], val[n]["rainy"])

    def test_bad_arguments(self):
        with pytest.raises(ValueError, match="length"):
            SyntheticPairs(length=0)
        with pytest.raises(ValueError, match="crop_size"):
            SyntheticPairs(crop_size=4)
        with pytest.raises(ValueError, match="unknown degradation"):
            SyntheticPairs(degradation="snow")
        with pytest.raises(ValueError, match="smaller than crop_size"):
            SyntheticPairs("val", "noise", crop_size=400)[2]  # coins is 303×384


class TestPhotoJitter:
    def test_train_jitters_by_default_and_eval_never(self):
        train = SyntheticPairs("train", "noise", length=4, crop_size=32)
        assert train.jitter == DEFAULT_JITTER
        assert SyntheticPairs("val", "noise", length=1, crop_size=None).jitter is None
        sets = synthetic_datasets(SyntheticDataConfig(degradation="noise"))
        assert sets["val"].jitter is None and sets["test"].jitter is None
        params = train.sample_with_params(1)[1]["jitter"]
        assert DEFAULT_JITTER.gain[0] <= params["gain"] <= DEFAULT_JITTER.gain[1]
        assert len(params["channel_gain"]) == 3

    def test_jitter_changes_only_the_photometry_and_is_deterministic(self):
        kwargs = dict(split="train", degradation="noise", length=4, crop_size=32, seed=2)
        plain = SyntheticPairs(**kwargs, jitter=None)
        jittered = SyntheticPairs(**kwargs)
        a, b, c = plain.sample_with_params(3), jittered.sample_with_params(3), jittered.sample_with_params(3)
        assert a[1]["crop"] == b[1]["crop"] and a[1]["photo"] == b[1]["photo"]  # same geometry
        assert not torch.equal(a[0]["clean"], b[0]["clean"])
        assert torch.equal(b[0]["clean"], c[0]["clean"]) and torch.equal(b[0]["rainy"], c[0]["rainy"])
        assert b[0]["clean"].min() >= 0 and b[0]["clean"].max() <= 1

    def test_jitter_formula_and_identity(self):
        x = torch.rand(3, 8, 8)
        same, _ = PhotoJitter()(x, torch.Generator().manual_seed(0))
        assert torch.allclose(same, x, atol=1e-6)
        grey, drawn = PhotoJitter(saturation=(0, 0))(x, torch.Generator().manual_seed(0))
        assert drawn["jitter"]["saturation"] == 0
        assert torch.allclose(grey, x.mean(0, keepdim=True).expand(3, -1, -1))
        dark, _ = PhotoJitter(gain=(0.5, 0.5))(x, torch.Generator().manual_seed(0))
        assert torch.allclose(dark, x * 0.5, atol=1e-6)

    def test_jitter_from_a_dict_and_bad_ranges(self):
        pairs = SyntheticPairs("train", "noise", length=2, crop_size=32, jitter={"gain": [0.9, 0.9]})
        assert pairs.jitter == PhotoJitter(gain=(0.9, 0.9))
        with pytest.raises(ValueError, match="jitter.gain"):
            PhotoJitter(gain=(0.0, 1.0))
        with pytest.raises(ValueError, match="jitter must be"):
            SyntheticPairs("train", "noise", length=2, jitter="strong")


def test_jpeg_inputs_are_drawn_only_when_asked_and_keep_the_clean_target(tmp_path):
    """jpeg=(chance, low, high) stores that share of the rainy inputs as JPEG (what photos people derain
    are); at chance 0 the samples are the same tensors as without it (nothing drawn), the clean target never
    changes, and a stored sample is exactly the JPEG of the sample it would have been."""
    from lpnet.data.degradations import jpeg_round_trip

    plain = SyntheticPairs("train", "rain_mixed", 10, 64, 0)
    off = SyntheticPairs("train", "rain_mixed", 10, 64, 0, jpeg=(0.0, 60, 95))
    always = SyntheticPairs("train", "rain_mixed", 10, 64, 0, jpeg=(1.0, 70, 70))
    for index in (0, 3):
        a, b = plain.sample_with_params(index)[0], off.sample_with_params(index)[0]
        c, params = always.sample_with_params(index)
        assert torch.equal(a["rainy"], b["rainy"]) and torch.equal(a["clean"], c["clean"])
        assert params["jpeg"] == 70
        assert torch.equal(c["rainy"], jpeg_round_trip(a["rainy"], 70))
        assert not torch.equal(c["rainy"], a["rainy"])


def test_a_folders_photos_are_decoded_once_and_read_as_read_image_reads_them(tmp_path):
    from lpnet.data.clean import _decoded, folder_photo
    from lpnet.io import read_image

    path = tmp_path / "a.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (20, 30, 3), dtype=np.uint8)).save(path)
    _decoded.cache_clear()
    assert torch.equal(folder_photo(path), read_image(path)) and torch.equal(
        folder_photo(path), read_image(path)
    )
    assert _decoded.cache_info().hits == 1
