"""Paired image datasets: whole images for evaluation, aligned random crops for training.

Two pieces:

- :class:`PairedImageDataset` (map-style) reads the pairs of :mod:`lpnet.data.layouts`, checks them and
  returns sample dicts. ``dataset[i]`` is pair ``i`` (cropped when ``crop_size`` is set);
  ``dataset.sample(i, rng)`` is the same with the crop and flip drawn from ``rng``.
- :class:`TrainStream` (iterable) turns any :class:`SampleSource` into the endless training stream
  (training is counted in iterations: 300k in the paper). **Sample ``n`` is a pure function of
  ``(seed, n)``**: the pair comes from a permutation seeded by ``(seed, pass)`` (every pair once per pass of
  ``len(source)`` samples), the crop and flip from a generator seeded by ``(seed, n)``. Workers, ranks and
  restarts only decide *which* ``n`` a process computes, never what sample ``n`` is, so:

  - the batch of step ``k`` holds samples ``k·B … k·B + B − 1`` whatever ``num_workers`` is (worker ``w``
    of ``W`` builds batches ``w, w + W, …``; the DataLoader hands them out round-robin, in order);
  - resuming at step ``k`` (``start_batch=k``) regenerates exactly the batches an uninterrupted run would
    have seen from step ``k`` on; nothing but ``k`` needs saving;
  - with ``world_size`` ranks, rank ``r`` takes global batches ``r, r + R, …``.

Sample dicts: ``{"rainy": (3, H, W), "clean": (3, H, W)}`` float32 in [0, 1], plus ``"key"`` (the name
outputs keep), ``"rainy_path"`` and ``"clean_path"`` (str). A DataLoader batches them to ``(B, 3, H, W)``
and lists of str.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from lpnet.data.layouts import Pair
from lpnet.io import SourceImage, open_image, read_image

Sample = dict[str, Any]

# Separate seed streams, so changing one draw never shifts another.
_PERMUTATION_STREAM = 0
_CROP_STREAM = 1


class SampleSource(Protocol):
    """What :class:`TrainStream` draws from: ``len()`` items, and item ``index`` drawn with ``rng``.

    :class:`PairedImageDataset` is one; a synthetic rain source (clean images + rain rendered with
    ``rng``) is another, and then its rain is as reproducible and resumable as the crops.
    """

    def __len__(self) -> int: ...

    def sample(self, index: int, rng: np.random.Generator) -> Sample: ...


def check_crop_size(crop_size: int | None) -> int | None:
    """``crop_size`` itself if it is a positive int or None (whole images); else a ValueError naming it."""
    if crop_size is None:
        return None
    if isinstance(crop_size, bool) or not isinstance(crop_size, int) or crop_size < 1:
        raise ValueError(f"crop_size must be a positive int or None, got {crop_size!r}")
    return crop_size


def random_crop_pair(
    rainy: Tensor, clean: Tensor, crop_size: int | None, rng: np.random.Generator, flips: bool = False
) -> tuple[Tensor, Tensor]:
    """The same random ``crop_size`` square (and horizontal flip, when ``flips``) from both images.

    Args:
        rainy: ``(C, H, W)``.
        clean: ``(C, H, W)``, the same size as ``rainy``.
        crop_size: side of the square crop; None keeps the whole image.
        rng: draws the crop corner (uniform over all positions) and the flip (probability 1/2).
        flips: mirror both images left–right half of the time.

    Returns:
        ``(rainy, clean)`` crops of shape ``(C, crop_size, crop_size)`` (or whole), contiguous.
    """
    height, width = rainy.shape[-2:]
    if crop_size is not None:
        top = int(rng.integers(0, height - crop_size + 1))
        left = int(rng.integers(0, width - crop_size + 1))
        rainy = rainy[..., top : top + crop_size, left : left + crop_size]
        clean = clean[..., top : top + crop_size, left : left + crop_size]
    if flips and rng.random() < 0.5:
        rainy, clean = rainy.flip(-1), clean.flip(-1)
    return rainy.contiguous(), clean.contiguous()


class PairedImageDataset(Dataset):
    """Pairs of rainy/clean image files as sample dicts (see the module doc).

    Args:
        pairs: from :func:`lpnet.data.layouts.find_pairs`.
        crop_size: side of the random square crop taken at the same place in both images; None for
            whole images (evaluation).
        flips: random horizontal flips, the same for both images.
        cache: keep decoded images in memory as uint8 (a quarter of float32: Rain100H's 1,800 training
            pairs take about 1.7 GB); exact for the 8-bit images of every benchmark. Each DataLoader
            worker fills its own cache.

    Raises:
        ValueError: (when a sample is read) the two images of a pair differ in size, a side-by-side image
            has an odd width, or an image is smaller than ``crop_size``; the message names the files.
        lpnet.io.ImageReadError: an unreadable file.
    """

    def __init__(
        self, pairs: Sequence[Pair], crop_size: int | None = None, flips: bool = False, cache: bool = False
    ) -> None:
        if not pairs:
            raise ValueError("PairedImageDataset needs at least one pair")
        self.pairs = list(pairs)
        self.crop_size = check_crop_size(crop_size)
        self.flips = bool(flips)
        self.cache = bool(cache)
        self._cache: dict[int, tuple[Tensor, Tensor]] = {}

    def __len__(self) -> int:
        return len(self.pairs)

    def load(self, index: int) -> tuple[Tensor, Tensor]:
        """Whole ``(rainy, clean)`` of pair ``index``: ``(3, H, W)`` float32 in [0, 1], sizes checked."""
        return tuple(_to_float(x) for x in self._load(index))

    def _load(self, index: int) -> tuple[Tensor, Tensor]:
        """``(rainy, clean)``, checked: uint8 from the cache or float32 from the files."""
        if index in self._cache:
            return self._cache[index]
        pair = self.pairs[index]
        if pair.rainy_side is None:
            rainy_image, clean_image = open_image(pair.rainy), open_image(pair.clean)
            _check_same_kind(pair, rainy_image, clean_image)
            rainy, clean = rainy_image.rgb(), clean_image.rgb()
        else:
            rainy = read_image(pair.rainy)
            width = rainy.shape[-1]
            if width % 2:
                raise ValueError(f"{pair.rainy}: side-by-side pair image has an odd width ({width})")
            left, right = rainy[..., : width // 2], rainy[..., width // 2 :]
            rainy, clean = (left, right) if pair.rainy_side == "left" else (right, left)
        if rainy.shape != clean.shape:
            raise ValueError(
                f"pair {pair.key!r}: {pair.rainy} is {_size(rainy)} but {pair.clean} is {_size(clean)};"
                " both images of a pair must have one size"
            )
        if self.crop_size is not None and min(rainy.shape[-2:]) < self.crop_size:
            raise ValueError(
                f"pair {pair.key!r}: {pair.rainy} is {_size(rainy)}, smaller than crop_size {self.crop_size}"
            )
        if self.cache:
            # Exact for 8-bit sources: u8 / 255 in float32 equals read_image's value bit for bit.
            self._cache[index] = (
                (rainy * 255).round().to(torch.uint8),
                (clean * 255).round().to(torch.uint8),
            )
        return rainy, clean

    def sample(self, index: int, rng: np.random.Generator) -> Sample:
        """Pair ``index`` with its crop and flip drawn from ``rng`` (the :class:`SampleSource` protocol)."""
        # crop before converting a cached uint8 image: converting the whole image costs more than the crop
        rainy, clean = random_crop_pair(*self._load(index), self.crop_size, rng, self.flips)
        pair = self.pairs[index]
        return {
            "rainy": _to_float(rainy),
            "clean": _to_float(clean),
            "key": pair.key,
            "rainy_path": str(pair.rainy),
            "clean_path": str(pair.clean),
        }

    def __getitem__(self, index: int) -> Sample:
        """Pair ``index``; a random crop/flip, if any, is seeded from torch's global generator."""
        seed = int(torch.randint(0, 2**63 - 1, ())) if self.crop_size or self.flips else 0
        return self.sample(index, np.random.default_rng(seed))


def _check_same_kind(pair: Pair, rainy: SourceImage, clean: SourceImage) -> None:
    """Refuse a pair whose images differ in kind: scores (and training) would compare different things."""
    kinds = [("grayscale" if im.grayscale else "colour", im.bits) for im in (rainy, clean)]
    if kinds[0] != kinds[1]:
        (r_kind, r_bits), (c_kind, c_bits) = kinds
        raise ValueError(
            f"pair {pair.key!r}: {pair.rainy} is {r_bits}-bit {r_kind} but {pair.clean} is {c_bits}-bit "
            f"{c_kind}; both images of a pair must be of one kind (convert one of them)"
        )


def _to_float(image: Tensor) -> Tensor:
    return image.float() / 255 if image.dtype == torch.uint8 else image


def _size(image: Tensor) -> str:
    return f"{image.shape[-1]}×{image.shape[-2]} (W×H)"


class TrainStream(IterableDataset):
    """Endless, seeded, resumable stream of training samples (sample ``n`` = f(seed, n); module doc).

    Args:
        source: a :class:`SampleSource`, e.g. a cropping :class:`PairedImageDataset`.
        seed: the stream's seed.
        batch_size: the DataLoader's batch size (workers build whole batches; must match).
        start_batch: batches this rank has already consumed (``global_step × accumulate_grad_batches``
            on resume); the stream starts with the next one.
        rank: this process's rank among ``world_size`` data-parallel ranks.
        world_size: number of data-parallel ranks.
    """

    def __init__(
        self,
        source: SampleSource,
        seed: int,
        batch_size: int,
        start_batch: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        super().__init__()
        if len(source) < 1:
            raise ValueError("TrainStream needs a source with at least one item")
        if batch_size < 1 or start_batch < 0 or not 0 <= rank < world_size:
            raise ValueError(
                f"TrainStream: need batch_size >= 1, start_batch >= 0, 0 <= rank < world_size; got "
                f"batch_size={batch_size}, start_batch={start_batch}, rank={rank}, world_size={world_size}"
            )
        self.source = source
        self.seed = int(seed)
        self.batch_size = int(batch_size)
        self.start_batch = int(start_batch)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self._permutation: tuple[int, np.ndarray] | None = None

    def source_index(self, n: int) -> int:
        """Index into the source of global sample ``n``: pass ``n // len`` is a seeded permutation."""
        count = len(self.source)
        epoch, position = divmod(n, count)
        if self._permutation is None or self._permutation[0] != epoch:
            rng = np.random.default_rng([self.seed, _PERMUTATION_STREAM, epoch])
            self._permutation = (epoch, rng.permutation(count))
        return int(self._permutation[1][position])

    def sample(self, n: int) -> Sample:
        """Global sample ``n`` (``n >= 0``): the same in every run, process and restart."""
        return self.source.sample(self.source_index(n), np.random.default_rng([self.seed, _CROP_STREAM, n]))

    def global_batch(self, local_batch: int) -> int:
        """Global batch id of this rank's ``local_batch``-th batch after ``start_batch``."""
        return (self.start_batch + local_batch) * self.world_size + self.rank

    def __iter__(self) -> Iterator[Sample]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        local_batch = worker
        while True:
            first = self.global_batch(local_batch) * self.batch_size
            for n in range(first, first + self.batch_size):
                yield self.sample(n)
            local_batch += workers
