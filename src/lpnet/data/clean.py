"""Clean images and synthetic training pairs: train with no dataset on disk.

Clean photos come from the permissively licensed photos bundled with the dependencies (scikit-image's
samples and matplotlib's ``grace_hopper.jpg``: installed with the packages, nothing downloaded; licences in
:data:`PHOTOS`) or from any folder (``clean_dir``). Each split uses different photos, so validation and test
scores measure generalisation and compare across runs:

=====  =======================================================================================
split  bundled photos (:data:`BUNDLED_SPLITS`)
=====  =======================================================================================
train  coffee, rocket, motorcycle_left, motorcycle_right, hubble_deep_field, ihc, retina (colour);
       grass, gravel, brick (greyscale CC0 textures)
val    chelsea, grace_hopper (colour), coins (greyscale)
test   astronaut (colour), camera, moon (greyscale)
=====  =======================================================================================

A folder is split by a hash of each file's relative path (stable when files are added elsewhere): about
10 % test, 10 % val (at least one each), the rest train.

:class:`SyntheticPairs` is a map-style dataset whose sample ``i`` is a pure function of ``(seed, split, i)``:
a photo, a random scale, crop, flip/rotation and photometric jitter (train), then a degradation (rain by
default) drawn from a ``torch.Generator`` seeded by that triple. Validation and test sets use fixed seeds
of their own, so they are the same whatever the training seed. As a
:class:`lpnet.data.datasets.SampleSource` it feeds the same resumable
:class:`~lpnet.data.datasets.TrainStream` as the benchmark folders, so a resumed run sees the samples it
would have seen, whatever the number of workers or processes.
Samples are dicts ``{"rainy": (3, H, W), "clean": (3, H, W), "key": str}`` in [0, 1], like the paired
benchmark datasets'.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from lpnet.config import TRAIN_PHOTO_SCALE, LoaderConfig, SyntheticDataConfig
from lpnet.data._common import Range, as_range
from lpnet.data.degradations import Degradation, build_degradation, jpeg_round_trip
from lpnet.io import SourceImage, list_images, open_image

SPLITS = ("train", "val", "test")


@dataclasses.dataclass(frozen=True)
class Photo:
    """A clean photo shipped with a dependency: how to load it and its licence note (from its docs)."""

    package: str
    load: Callable[[], np.ndarray]
    licence: str


def _skimage(name: str, index: int | None = None) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import skimage.data  # imported here: only the bundled clean source needs it

        arr = getattr(skimage.data, name)()
        return arr[index] if index is not None else arr

    return load


def _matplotlib(filename: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from matplotlib import cbook
        from PIL import Image

        with Image.open(cbook.get_sample_data(filename, asfileobj=False)) as img:
            return np.asarray(img.convert("RGB"))

    return load


# Every photo the dependencies ship that suits clean training data, with the licence their docs state
# (scikit-image: each skimage.data function's docstring; matplotlib: sample_data has no note of its own).
PHOTOS: dict[str, Photo] = {
    "astronaut": Photo("scikit-image", _skimage("astronaut"), "public domain (NASA)"),
    "chelsea": Photo("scikit-image", _skimage("chelsea"), "CC0 (photographer Stefan van der Walt)"),
    "coffee": Photo("scikit-image", _skimage("coffee"), "CC0 (photographer Rachel Michetti)"),
    "rocket": Photo("scikit-image", _skimage("rocket"), "public domain (SpaceX)"),
    "motorcycle_left": Photo(
        "scikit-image",
        _skimage("stereo_motorcycle", 0),
        "no licence stated (Middlebury 2014 stereo benchmark, Scharstein et al.; cite when used)",
    ),
    "motorcycle_right": Photo(
        "scikit-image",
        _skimage("stereo_motorcycle", 1),
        "no licence stated (Middlebury 2014 stereo benchmark, Scharstein et al.; cite when used)",
    ),
    "hubble_deep_field": Photo("scikit-image", _skimage("hubble_deep_field"), "public domain (NASA)"),
    "ihc": Photo("scikit-image", _skimage("immunohistochemistry"), "no known copyright restrictions (CMMI)"),
    "retina": Photo("scikit-image", _skimage("retina"), "CC0 1.0 (Häggström, Wikimedia Commons)"),
    "grace_hopper": Photo(
        "matplotlib",
        _matplotlib("grace_hopper.jpg"),
        "public domain (U.S. Navy photograph of Grace Hopper; matplotlib ships it without a note)",
    ),
    "camera": Photo("scikit-image", _skimage("camera"), "CC0 (photographer Lav Varshney)"),
    "coins": Photo("scikit-image", _skimage("coins"), "no known copyright restrictions (Brooklyn Museum)"),
    "moon": Photo("scikit-image", _skimage("moon"), "no licence stated (scikit-image sample)"),
    "grass": Photo("scikit-image", _skimage("grass"), "CC0 (linolafett, DeviantArt)"),
    "gravel": Photo("scikit-image", _skimage("gravel"), "CC0 (CC0Textures)"),
    "brick": Photo("scikit-image", _skimage("brick"), "CC0 (CC0Textures)"),
}
BUNDLED_SPLITS: dict[str, tuple[str, ...]] = {
    "train": (
        "coffee", "rocket", "motorcycle_left", "motorcycle_right", "hubble_deep_field", "ihc", "retina",
        "grass", "gravel", "brick",
    ),
    "val": ("chelsea", "grace_hopper", "coins"),
    "test": ("astronaut", "camera", "moon"),
}  # fmt: skip
# The training source's nominal length (the stream draws any index; this only sizes a pass).
TRAIN_LENGTH = 100_000
# Validation and test samples are seeded by these, never by the training seed.
EVAL_SEEDS = {"val": 1_000_001, "test": 2_000_003}
_SPLIT_CODES = {"train": 0, "val": 1, "test": 2}


@dataclasses.dataclass(frozen=True)
class PhotoJitter:
    """Photometric augmentation of a clean training photo, before the rain: ranges drawn per sample.

    ``x -> clip(grey + saturation * (c - grey))`` with ``c = gain * channel_gain * x ** gamma`` and ``grey``
    the channel mean of ``c``. It widens the bundled photos' tones and colours, so that the network has to
    read the global tone under the rain from the input rather than learn the few photos' own.

    Attributes:
        gain: overall exposure factor.
        gamma: exponent (> 1 darkens mid-tones).
        channel_gain: an independent factor per channel (white balance).
        saturation: 0 = grey, 1 = unchanged.
    """

    gain: Range = (1.0, 1.0)
    gamma: Range = (1.0, 1.0)
    channel_gain: Range = (1.0, 1.0)
    saturation: Range = (1.0, 1.0)

    def __post_init__(self) -> None:
        for name, (low, high) in {
            "gain": (0.1, 4.0), "gamma": (0.2, 5.0), "channel_gain": (0.1, 4.0), "saturation": (0.0, 3.0),
        }.items():  # fmt: skip
            object.__setattr__(self, name, as_range(f"jitter.{name}", getattr(self, name), low, high))

    def __call__(self, clean: Tensor, generator: torch.Generator) -> tuple[Tensor, dict[str, Any]]:
        u = torch.rand(6, generator=generator).tolist()  # a fixed amount of randomness per sample

        def draw(r: Range, x: float) -> float:
            return r[0] + (r[1] - r[0]) * x

        gain, gamma, saturation = draw(self.gain, u[0]), draw(self.gamma, u[1]), draw(self.saturation, u[2])
        channel = [draw(self.channel_gain, x) for x in u[3:]]
        c = clean.clamp_min(0) ** gamma * (gain * torch.tensor(channel, dtype=clean.dtype)[:, None, None])
        grey = c.mean(0, keepdim=True)
        out = (grey + saturation * (c - grey)).clamp(0, 1)
        drawn = {"gain": gain, "gamma": gamma, "channel_gain": channel, "saturation": saturation}
        return out, {"jitter": drawn}


# The training default: exposure ×0.6–1.2, gamma 0.8–1.25, white balance ±10 %, saturation 0.6–1.3.
DEFAULT_JITTER = PhotoJitter(
    gain=(0.6, 1.2), gamma=(0.8, 1.25), channel_gain=(0.9, 1.1), saturation=(0.6, 1.3)
)


def _to_tensor(arr: np.ndarray) -> Tensor:
    """uint8 ``(H, W)``, ``(H, W, 3)`` or ``(H, W, 4)`` → RGB float32 ``(3, H, W)`` in [0, 1]."""
    x = torch.from_numpy(np.array(arr, dtype=np.float32)) / 255.0
    if x.dim() == 2:
        return x[None].expand(3, -1, -1).contiguous()
    return x[..., :3].permute(2, 0, 1).contiguous()


@functools.cache
def bundled_photo(name: str) -> Tensor:
    """One of the bundled photos of :data:`PHOTOS` (no download) as RGB float32 ``(3, H, W)`` in [0, 1].

    Greyscale photos are repeated to three channels. Cached: each is read once per process.

    Raises:
        ValueError: ``name`` is not in :data:`PHOTOS`.
    """
    return _to_tensor(PHOTOS[_known_photo(name)].load())


def _known_photo(name: str) -> str:
    """``name`` if :data:`PHOTOS` has it; else the ValueError that lists them."""
    if name not in PHOTOS:
        raise ValueError(f"unknown bundled photo {name!r}; expected one of {sorted(PHOTOS)}")
    return name


def _hash01(text: str) -> float:
    """A stable number in [0, 1) for a string (md5; not Python's salted hash)."""
    return int.from_bytes(hashlib.md5(text.encode()).digest()[:8], "big") / 2**64


def split_folder(clean_dir: str | os.PathLike, split: str) -> list[Path]:
    """The images of ``clean_dir`` (recursively) that belong to ``split``; see the module doc.

    Raises:
        ValueError: the folder does not exist or holds fewer than 3 images.
    """
    root = Path(clean_dir)
    if not root.is_dir():
        raise ValueError(f"clean_dir {root} is not a folder")
    files = list_images(root)
    if len(files) < 3:
        raise ValueError(
            f"clean_dir {root} holds {len(files)} images; at least 3 are needed (train/val/test)"
        )
    ranked = sorted(files, key=lambda p: _hash01(p.relative_to(root).as_posix()))
    n_eval = max(1, round(0.1 * len(files)))
    parts = {"test": ranked[:n_eval], "val": ranked[n_eval : 2 * n_eval], "train": ranked[2 * n_eval :]}
    return sorted(parts[split])


def clean_sources(
    split: str,
    clean_dir: str | os.PathLike | None = None,
    photos: Mapping[str, Sequence[str]] | None = None,
) -> list[tuple[str, Callable[[], Tensor]]]:
    """``(name, load)`` for every clean photo of ``split``; ``load()`` gives RGB ``(3, H, W)`` in [0, 1].

    Args:
        split: ``train``, ``val`` or ``test``.
        clean_dir: a folder of clean images (split by :func:`split_folder`) instead of the bundled photos.
        photos: bundled photo names per split, replacing :data:`BUNDLED_SPLITS` for the splits it names.

    Raises:
        ValueError: unknown split or photo, or a bad ``clean_dir``.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    if clean_dir is None:
        names = [_known_photo(name) for name in (photos or {}).get(split) or BUNDLED_SPLITS[split]]
        return [(name, functools.partial(bundled_photo, name)) for name in names]
    root = Path(clean_dir)
    return [
        (p.relative_to(root).with_suffix("").as_posix(), functools.partial(folder_photo, p))
        for p in split_folder(root, split)
    ]


@functools.lru_cache(maxsize=32)
def _decoded(path: Path) -> SourceImage:
    return open_image(path)


def folder_photo(path: Path) -> Tensor:
    """A clean photo of a folder as RGB float32 ``(3, H, W)`` in [0, 1]; the last 32 decoded photos are kept
    (in their 8 or 16 bits) per process, so a small folder is decoded once, not once per sample (a
    1024-pixel PNG takes ~20 ms: more than the rain drawn on a crop of it)."""
    return _decoded(path).rgb()


def sample_generator(seed: int, split: str, index: int) -> torch.Generator:
    """A CPU generator seeded from ``(seed, split, index)`` through NumPy's SeedSequence (well mixed)."""
    state = np.random.SeedSequence([seed, _SPLIT_CODES[split], index]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 31 | int(state[1]) >> 1)


def _randint(high: int, generator: torch.Generator) -> int:
    return int(torch.randint(high, (1,), generator=generator))


class SyntheticPairs(Dataset):
    """Clean photos degraded on the fly; sample ``i`` is a pure function of ``(seed, split, i)``.

    Args:
        split: ``train``, ``val`` or ``test`` (each uses different photos).
        degradation: a name of :data:`lpnet.data.degradations.DEGRADATIONS` or a built :class:`Degradation`.
        length: number of samples (the epoch length; any ``i >= 0`` can still be drawn by :meth:`sample`).
        crop_size: side of the square crops, or None for whole photos (batch them one at a time).
        seed: the sampling seed; defaults to 0 for train and to :data:`EVAL_SEEDS` for val/test.
        clean_dir: a folder of clean images instead of the bundled photos.
        scale: range of the random downscaling before cropping (train only; val/test use the photos as they
            are). Downscaling puts more scene in a crop and never blurs like upscaling would.
        augment: random flips and 90° rotations of the clean photo (rain is added after, so it stays
            upright); defaults to True for train, False otherwise.
        jitter: photometric jitter of the clean photo (:class:`PhotoJitter`, or a dict of its ranges),
            applied after the geometry and before the degradation; ``"default"`` is
            :data:`DEFAULT_JITTER` for train and none for val/test; None: none.
        photos: bundled photo names per split (``{"train": [...], ...}``) instead of
            :data:`BUNDLED_SPLITS`; ignored with ``clean_dir``.
        jpeg: ``(chance, low, high)``: that share of the degraded images stored as JPEG of a quality drawn
            in ``[low, high]`` (the target stays clean); None or a chance of 0: none, nothing drawn.

    Raises:
        ValueError: bad split, length, crop size or scale; a crop larger than a val/test photo.
    """

    def __init__(
        self,
        split: str = "train",
        degradation: str | Degradation = SyntheticDataConfig.degradation,
        length: int = 1000,
        crop_size: int | None = LoaderConfig.crop_size,
        seed: int | None = None,
        clean_dir: str | os.PathLike | None = None,
        scale: tuple[float, float] = TRAIN_PHOTO_SCALE,
        augment: bool | None = None,
        jitter: PhotoJitter | Mapping[str, Any] | str | None = SyntheticDataConfig.jitter,
        photos: Mapping[str, Sequence[str]] | None = None,
        jpeg: tuple[float, int, int] | None = None,
    ) -> None:
        self.sources = clean_sources(split, clean_dir, photos)
        self.jpeg = jpeg if jpeg is not None and jpeg[0] > 0 else None
        if not isinstance(length, int) or length < 1:
            raise ValueError(f"length must be a positive integer, got {length!r}")
        if crop_size is not None and (not isinstance(crop_size, int) or crop_size < 8):
            raise ValueError(f"crop_size must be an integer >= 8 or None (whole photos), got {crop_size!r}")
        self.split = split
        self.degrade = build_degradation(degradation) if isinstance(degradation, str) else degradation
        self.length = length
        self.crop_size = crop_size
        self.seed = (0 if split == "train" else EVAL_SEEDS[split]) if seed is None else int(seed)
        self.scale = as_range("scale", scale, 0.05, 1.0) if split == "train" else (1.0, 1.0)
        self.augment = (split == "train") if augment is None else bool(augment)
        if isinstance(jitter, str):
            if jitter != "default":
                raise ValueError(f"jitter must be 'default', a dict of ranges or None, got {jitter!r}")
            jitter = DEFAULT_JITTER if split == "train" else None
        elif isinstance(jitter, Mapping):
            jitter = PhotoJitter(**{k: tuple(v) for k, v in jitter.items() if v is not None})
        self.jitter: PhotoJitter | None = jitter

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} samples")
        return self.sample(index)

    def sample(self, index: int, rng: np.random.Generator | None = None) -> dict[str, Any]:
        """Sample ``index`` (any ``index >= 0``), the :class:`~lpnet.data.datasets.SampleSource` way.

        ``rng`` is not used: the sample is already a pure function of ``(seed, split, index)``.
        """
        return self.sample_with_params(index)[0]

    def sample_with_params(self, index: int) -> tuple[dict[str, Any], dict[str, Any]]:
        """Sample ``index`` (any ``index >= 0``) and the parameters that made it (JSON-serialisable)."""
        g = sample_generator(self.seed, self.split, index)
        # Train draws its photo; val/test cycle through theirs so every photo is scored equally.
        k = _randint(len(self.sources), g) if self.split == "train" else index % len(self.sources)
        name, load = self.sources[k]
        clean = load()
        info: dict[str, Any] = {"photo": name}
        lo, hi = self.scale
        s = lo + (hi - lo) * float(torch.rand((), generator=g))
        if self.crop_size is not None:
            # Crop the region that becomes the crop once scaled by s, then resize only that region.
            h, w = clean.shape[-2:]
            region = min(round(self.crop_size / s), h, w)
            if region < self.crop_size:
                raise ValueError(
                    f"{self.split} photo {name} {(h, w)} is smaller than crop_size {self.crop_size}"
                )
            top, left = _randint(h - region + 1, g), _randint(w - region + 1, g)
            clean = clean[:, top : top + region, left : left + region]
            info["crop"] = [top, left, region]
            size = (self.crop_size, self.crop_size)
        else:
            size = (round(clean.shape[-2] * s), round(clean.shape[-1] * s))
        if tuple(clean.shape[-2:]) != size:
            clean = F.interpolate(
                clean[None], size=size, mode="bilinear", antialias=True, align_corners=False
            )[0]
        if self.augment:
            flip, rot = _randint(2, g), _randint(4, g)
            clean = torch.rot90(clean.flip(-1) if flip else clean, rot, (-2, -1))
            info.update(flip=flip, rot90=rot)
        clean = clean.clamp(0, 1).contiguous()
        if self.jitter is not None:
            clean, drawn = self.jitter(clean, g)
            info.update(drawn)
        degraded, params = self.degrade(clean[None], g)
        if self.jpeg is not None:  # drawn only when used: settings without it render as before
            chance, low, high = self.jpeg
            stored, quality = torch.rand(2, generator=g).tolist()
            if stored < chance:
                info["jpeg"] = round(low + (high - low) * quality)
                degraded = jpeg_round_trip(degraded[0], info["jpeg"])[None]
        key = f"{self.split}-{Path(name).name}-{index:07d}"
        return {"rainy": degraded[0], "clean": clean, "key": key}, {"key": key, **info, **params[0]}


def synthetic_datasets(config: SyntheticDataConfig) -> dict[str, SyntheticPairs]:
    """Train, val and test :class:`SyntheticPairs` as ``config`` describes.

    Train: ``crop_size`` crops seeded by ``seed``, downscaled by ``scale`` and jittered by ``jitter``,
    endless. Val and test: whole photos (or ``eval_crop_size`` crops) with the fixed :data:`EVAL_SEEDS`,
    never jittered, so their scores compare across runs.
    """
    degradation = config.degradation
    degrade = build_degradation(degradation) if isinstance(degradation, str) else degradation
    common = {"clean_dir": config.clean_dir, "photos": config.photos}
    return {
        "train": SyntheticPairs(
            "train", degrade, TRAIN_LENGTH, config.crop_size, config.seed,
            scale=tuple(config.scale), jitter=config.jitter,
            jpeg=(config.jpeg_chance, *config.jpeg_quality), **common,
        ),
        "val": SyntheticPairs(
            "val", degrade, config.val_length, config.eval_crop_size, jitter=None, **common
        ),
        "test": SyntheticPairs(
            "test", degrade, config.test_length, config.eval_crop_size, jitter=None, **common
        ),
    }  # fmt: skip
