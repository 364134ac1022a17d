"""PairedImageDataset (aligned crops, checks, cache) and TrainStream (seeded, resumable, worker-invariant)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from lpnet.data.datasets import PairedImageDataset, TrainStream, random_crop_pair
from lpnet.data.layouts import Pair
from lpnet.io import read_image

H, W, OFFSET = 20, 24, 40


def coordinate_image(height: int = H, width: int = W, base: int = 0) -> np.ndarray:
    """uint8 (H, W, 3): red = 8·x, green = 8·y, blue = 50, all plus ``base``: a crop reveals its corner."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([8 * x, 8 * y, np.full_like(x, 50)], axis=-1).astype(np.uint8) + np.uint8(base)


def write(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def make_pairs(root: Path, count: int = 3, clean_size: tuple[int, int] = (H, W)) -> list[Pair]:
    """``count`` pairs whose clean image is the rainy one plus OFFSET (so alignment is checkable)."""
    pairs = []
    for i in range(count):
        rainy = write(root / "rain" / f"{i}.png", coordinate_image(base=i))
        clean = write(root / "norain" / f"{i}.png", coordinate_image(*clean_size, base=i + OFFSET))
        pairs.append(Pair(rainy, clean, str(i)))
    return pairs


def corner_and_flip(crop: torch.Tensor) -> tuple[int, int, bool]:
    """Recover (top, left, flipped) of a crop of :func:`coordinate_image` (base 0) from its pixels."""
    red = (crop[0] * 255).round().long()
    flipped = bool(red[0, 0] > red[0, -1])
    return int((crop[1, 0, 0] * 255).round()) // 8, int(red[0].min()) // 8, flipped


class TestPairedImageDataset:
    def test_whole_images(self, tmp_path):
        pairs = make_pairs(tmp_path)
        dataset = PairedImageDataset(pairs)
        assert len(dataset) == 3
        sample = dataset[1]
        assert sample["rainy"].shape == sample["clean"].shape == (3, H, W)
        assert sample["rainy"].dtype == torch.float32
        assert torch.equal(sample["rainy"], read_image(pairs[1].rainy))
        assert torch.equal(sample["clean"], read_image(pairs[1].clean))
        assert sample["key"] == "1"
        assert sample["rainy_path"] == str(pairs[1].rainy) and sample["clean_path"] == str(pairs[1].clean)

    def test_crops_and_flips_are_identical_for_both_images(self, tmp_path):
        dataset = PairedImageDataset(make_pairs(tmp_path, 1), crop_size=8, flips=True)
        corners, flips = set(), set()
        for seed in range(300):
            sample = dataset.sample(0, np.random.default_rng(seed))
            rainy, clean = sample["rainy"], sample["clean"]
            assert rainy.shape == clean.shape == (3, 8, 8)
            # clean = rainy + OFFSET at every pixel: the two crops come from the same place
            torch.testing.assert_close(clean - rainy, torch.full_like(rainy, OFFSET / 255), rtol=0, atol=1e-6)
            top, left, flipped = corner_and_flip(rainy)
            expected = (
                torch.from_numpy(coordinate_image()[top : top + 8, left : left + 8]).permute(2, 0, 1) / 255
            )
            assert torch.equal(rainy, expected.flip(-1) if flipped else expected)
            corners.add((top, left))
            flips.add(flipped)
        assert {t for t, _ in corners} == set(range(H - 8 + 1))  # every row and column offset is reachable
        assert {left for _, left in corners} == set(range(W - 8 + 1))
        assert flips == {False, True}

    def test_no_flips_unless_asked(self, tmp_path):
        dataset = PairedImageDataset(make_pairs(tmp_path, 1), crop_size=8)
        assert not any(
            corner_and_flip(dataset.sample(0, np.random.default_rng(s))["rainy"])[2] for s in range(50)
        )

    def test_getitem_follows_torch_seed(self, tmp_path):
        dataset = PairedImageDataset(make_pairs(tmp_path, 1), crop_size=8, flips=True)
        torch.manual_seed(3)
        first = [dataset[0]["rainy"] for _ in range(5)]
        torch.manual_seed(3)
        again = [dataset[0]["rainy"] for _ in range(5)]
        assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
        assert len({corner_and_flip(x) for x in first}) > 1

    def test_image_smaller_than_crop(self, tmp_path):
        dataset = PairedImageDataset(make_pairs(tmp_path, 1), crop_size=21)
        with pytest.raises(ValueError, match=r"0\.png.*24×20 \(W×H\), smaller than crop_size 21"):
            dataset[0]

    def test_pair_size_mismatch_names_both_files(self, tmp_path):
        pairs = make_pairs(tmp_path, 1, clean_size=(H, W - 2))
        with pytest.raises(ValueError, match="must have one size") as err:
            PairedImageDataset(pairs)[0]
        assert str(pairs[0].rainy) in str(err.value) and str(pairs[0].clean) in str(err.value)

    @pytest.mark.parametrize("side", ["left", "right"])
    def test_side_by_side(self, tmp_path, side):
        rainy, clean = coordinate_image(), coordinate_image(base=OFFSET)
        halves = (rainy, clean) if side == "left" else (clean, rainy)
        path = write(tmp_path / "1.png", np.concatenate(halves, axis=1))
        sample = PairedImageDataset([Pair(path, path, "1", side)])[0]
        assert torch.equal(sample["rainy"], torch.from_numpy(rainy).permute(2, 0, 1) / 255)
        assert torch.equal(sample["clean"], torch.from_numpy(clean).permute(2, 0, 1) / 255)

    def test_side_by_side_odd_width(self, tmp_path):
        path = write(tmp_path / "odd.png", coordinate_image(H, 23))
        with pytest.raises(ValueError, match=r"odd\.png.*odd width \(23\)"):
            PairedImageDataset([Pair(path, path, "odd", "left")])[0]

    def test_cache_is_exact_and_skips_the_disk(self, tmp_path):
        pairs = make_pairs(tmp_path, 2)
        plain, cached = PairedImageDataset(pairs), PairedImageDataset(pairs, cache=True)
        first = cached[1]
        pairs[1].rainy.unlink()
        pairs[1].clean.unlink()
        again = cached[1]
        for name in ("rainy", "clean"):
            assert torch.equal(first[name], again[name])
        assert next(iter(cached._cache.values()))[0].dtype == torch.uint8
        assert torch.equal(plain[0]["rainy"], cached[0]["rainy"])

    def test_bad_arguments(self, tmp_path):
        with pytest.raises(ValueError, match="at least one pair"):
            PairedImageDataset([])
        for bad in (0, -1, 8.0, True):
            with pytest.raises(ValueError, match="crop_size"):
                PairedImageDataset(make_pairs(tmp_path, 1), crop_size=bad)


def test_random_crop_pair_keeps_whole_image():
    x = torch.rand(3, 5, 7)
    rainy, clean = random_crop_pair(x, x + 1, None, np.random.default_rng(0))
    assert torch.equal(rainy, x) and torch.equal(clean, x + 1)


class TestTrainStream:
    @pytest.fixture
    def source(self, tmp_path):
        return PairedImageDataset(make_pairs(tmp_path, 5), crop_size=8, flips=True)

    @staticmethod
    def batches(stream: TrainStream, count: int, num_workers: int = 0) -> list[dict]:
        loader = DataLoader(stream, batch_size=stream.batch_size, num_workers=num_workers)
        it = iter(loader)
        return [next(it) for _ in range(count)]

    @staticmethod
    def same(a: list[dict], b: list[dict]) -> bool:
        return len(a) == len(b) and all(
            x["key"] == y["key"]
            and torch.equal(x["rainy"], y["rainy"])
            and torch.equal(x["clean"], y["clean"])
            for x, y in zip(a, b, strict=True)
        )

    def test_batches_are_aligned_crops(self, source):
        batch = self.batches(TrainStream(source, seed=0, batch_size=4), 1)[0]
        assert batch["rainy"].shape == batch["clean"].shape == (4, 3, 8, 8)
        assert len(batch["key"]) == 4
        assert torch.allclose(batch["clean"] - batch["rainy"], torch.tensor(OFFSET / 255), atol=1e-6)

    def test_seeded(self, source):
        a = self.batches(TrainStream(source, seed=1, batch_size=3), 4)
        b = self.batches(TrainStream(source, seed=1, batch_size=3), 4)
        c = self.batches(TrainStream(source, seed=2, batch_size=3), 4)
        assert self.same(a, b)
        assert not self.same(a, c)

    def test_resume_regenerates_the_same_samples(self, source):
        full = self.batches(TrainStream(source, seed=7, batch_size=3), 6)
        resumed = self.batches(TrainStream(source, seed=7, batch_size=3, start_batch=4), 2)
        assert self.same(full[4:], resumed)
        # sample i is the same whatever the stream computed before
        stream = TrainStream(source, seed=7, batch_size=3)
        late = stream.sample(13)
        fresh = TrainStream(source, seed=7, batch_size=3)
        for n in range(13):
            fresh.sample(n)
        assert torch.equal(fresh.sample(13)["rainy"], late["rainy"])
        assert torch.equal(late["rainy"], full[4]["rainy"][1])  # sample 13 = batch 4, position 1

    def test_every_pair_once_per_pass(self, source):
        stream = TrainStream(source, seed=3, batch_size=2)
        passes = [[stream.source_index(n) for n in range(p * 5, p * 5 + 5)] for p in range(4)]
        assert all(sorted(indices) == list(range(5)) for indices in passes)
        assert len({tuple(indices) for indices in passes}) > 1  # a new order every pass

    def test_independent_of_num_workers(self, source):
        serial = self.batches(TrainStream(source, seed=5, batch_size=2), 5)
        parallel = self.batches(TrainStream(source, seed=5, batch_size=2), 5, num_workers=2)
        assert self.same(serial, parallel)

    def test_ranks_share_the_global_stream(self, source):
        single = self.batches(TrainStream(source, seed=9, batch_size=2), 6)
        rank0 = self.batches(TrainStream(source, seed=9, batch_size=2, rank=0, world_size=2), 3)
        rank1 = self.batches(TrainStream(source, seed=9, batch_size=2, rank=1, world_size=2), 3)
        assert self.same(rank0, single[0::2]) and self.same(rank1, single[1::2])

    def test_bad_arguments(self, source):
        for kwargs in ({"batch_size": 0}, {"start_batch": -1}, {"rank": 2, "world_size": 2}):
            with pytest.raises(ValueError, match="TrainStream"):
                TrainStream(source, **{"seed": 0, "batch_size": 2, **kwargs})
