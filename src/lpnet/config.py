"""Every setting lpnet has, with its default, stated once: one dataclass per component.

In the spirit of nanoGPT's ``GPTConfig``: the network is built from an :class:`LPNetConfig`, the loss from a
:class:`LossConfig`, the optimiser from an :class:`OptimConfig`, the data modules from the data configs,
and every command from its own config. Python signatures that take a setting refer to these defaults
(``tile: int = DerainConfig.tile``) instead of repeating a literal, and Hydra registers the same classes as
structured configs (:mod:`lpnet.conf`), so the YAML files keep only experiment overrides and wiring, and a
wrong type or an unknown choice (``optim.scheduler=cosin``) stops at composition naming the key.
``tests/test_config.py`` fails if a default is stated anywhere else.

This module imports nothing heavier than the standard library: ``import lpnet`` stays light.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class Scheduler(str, Enum):
    """Learning-rate schedules, stepped every iteration."""

    none = "none"
    cosine = "cosine"
    step = "step"


class PixelLoss(str, Enum):
    """The per-level pixel term of the loss."""

    l1 = "l1"
    l2 = "l2"


# A member named ``raise`` (a Python keyword) is only possible through the functional API; users type
# ``model.nan_policy=raise`` and OmegaConf matches members by name.
NanPolicy = Enum("NanPolicy", {"raise": "raise", "skip": "skip"}, type=str)
NanPolicy.__doc__ = "What a NaN/Inf training loss does: stop the run (raise) or drop that step (skip)."


def plain(value: Any) -> Any:
    """A config (dataclass, enum, nested lists/dicts) as plain Python data: what checkpoints store.

    Enums become their values, dataclasses dicts, tuples lists; everything ``torch.load(weights_only=True)``
    reads back.
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):  # dicts, and OmegaConf's DictConfig
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):  # lists, tuples, ListConfig
        return [plain(v) for v in value]
    return value


def from_dict(config_type: type, values: Any, where: str) -> Any:
    """Build ``config_type`` from a mapping (or return an instance as is), naming unknown keys.

    Args:
        config_type: a dataclass of this module.
        values: an instance, a mapping of some of its fields, or None (all defaults).
        where: the setting's name in messages, e.g. ``"model.net"``.

    Raises:
        ValueError: a key that is not a field (the message lists the fields), or a value its
            ``__post_init__`` refuses.
    """
    if values is None:
        return config_type()
    if isinstance(values, config_type):
        return values
    if not hasattr(values, "items"):
        raise TypeError(f"{where} must be a mapping of settings, got {type(values).__name__}")
    names = {f.name for f in dataclasses.fields(config_type) if f.init}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"{where}: unknown setting(s) {unknown}; expected some of {sorted(names)}")
    try:
        return config_type(**dict(values.items()))
    except TypeError as err:
        raise ValueError(f"{where}: {err}") from None


def with_overrides(config_type: type, config: Any, overrides: dict[str, Any], where: str) -> Any:
    """``config`` (an instance, a mapping or None for the defaults) with ``overrides`` applied, checked.

    The one way lpnet's classes take ``(config=None, **overrides)``, e.g. ``LPNet(recursions=3)``.
    """
    base = from_dict(config_type, config, where)
    return from_dict(config_type, {**vars(base), **overrides}, where) if overrides else base


def _choice(enum: type[Enum], value: Any, where: str) -> Any:
    """``value`` as a member of ``enum`` (by value or name); a ValueError lists the choices."""
    if value is None or isinstance(value, enum):
        return value
    for member in enum:
        if value in (member.value, member.name):
            return member
    raise ValueError(f"{where} must be one of {[m.value for m in enum]}, got {value!r}")


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


# --------------------------------------------------------------------------------------------------
# The network, its loss and its optimiser


OFFICIAL_FINEST_WIDTH = 16
# Architecture bounds: far beyond any LPNet anyone trains, close enough to stop a crafted checkpoint
# from hanging or exhausting memory before anything is allocated (see lpnet.checkpoint).
MAX_LEVELS = 10
MAX_WIDTH = 512
MAX_RECURSIONS = 64


@dataclass
class LPNetConfig:
    """LPNet's architecture (Fu et al., TNNLS 2019); the defaults are the official model, 7,548 parameters.

    Attributes:
        num_levels: pyramid levels (5 in the paper).
        widths: subnet widths from the coarsest level to the finest; None = ``16 · width_multiplier`` at
            the finest level, halving per coarser level (at least 1): the official 1, 2, 4, 8, 16.
        width_multiplier: scales the default widths (ignored when ``widths`` is given).
        recursions: how many times each subnet's block runs (the paper's T).
        share_weights: one block reused every recursion (the paper) or one block per recursion.
        residual_skip: add each subnet's first features to every recursion's output (the paper).
        final_relu: ReLU on every level's output (the paper; keeps outputs non-negative).
        negative_slope: LeakyReLU slope (0.2 in the official code).
        channels: image channels (3 for RGB).
    """

    num_levels: int = 5
    widths: list[int] | None = None
    width_multiplier: float = 1.0
    recursions: int = 5
    share_weights: bool = True
    residual_skip: bool = True
    final_relu: bool = True
    negative_slope: float = 0.2
    channels: int = 3

    def __post_init__(self) -> None:
        _require(
            isinstance(self.num_levels, int) and 1 <= self.num_levels <= MAX_LEVELS,
            f"model.net.num_levels must be an int in [1, {MAX_LEVELS}], got {self.num_levels!r}",
        )
        _require(
            isinstance(self.recursions, int) and 0 <= self.recursions <= MAX_RECURSIONS,
            f"model.net.recursions must be an int in [0, {MAX_RECURSIONS}], got {self.recursions!r}",
        )
        _require(
            isinstance(self.channels, int) and self.channels >= 1,
            f"model.net.channels must be an int >= 1, got {self.channels!r}",
        )
        _require(
            isinstance(self.width_multiplier, int | float) and self.width_multiplier > 0,
            f"model.net.width_multiplier must be > 0, got {self.width_multiplier!r}",
        )
        if self.widths is not None:
            self.widths = list(self.widths)
            _require(
                len(self.widths) == self.num_levels,
                f"model.net.widths has {len(self.widths)} entries for {self.num_levels} levels: "
                f"{self.widths}",
            )
        for width in self.level_widths():
            _require(
                isinstance(width, int) and not isinstance(width, bool) and 1 <= width <= MAX_WIDTH,
                f"model.net.widths must be ints in [1, {MAX_WIDTH}], got {self.level_widths()}",
            )

    def level_widths(self) -> list[int]:
        """Each subnet's width, coarsest first (``widths``, or the defaults scaled by the multiplier)."""
        if self.widths is not None:
            return list(self.widths)
        scaled = OFFICIAL_FINEST_WIDTH * self.width_multiplier
        return [max(1, round(scaled / 2**k)) for k in reversed(range(self.num_levels))]

    def resolved(self) -> LPNetConfig:
        """The same network with ``widths`` written out: one canonical form, so equal networks compare
        equal (a multiplier of 0.5 and ``widths=[1, 1, 2, 4, 8]`` are the same LPNet)."""
        return dataclasses.replace(self, widths=self.level_widths(), width_multiplier=1.0)


@dataclass
class GaugeConfig:
    """The rain gauge's architecture (:class:`lpnet.models.gauge.RainGauge`): 3×3 convolutions with
    LeakyReLU, then a 1×1 convolution to two maps (log strength, presence logit) per cell.

    Attributes:
        widths: each convolution's output channels.
        strides: each convolution's stride (their product is the cell side).
        negative_slope: LeakyReLU slope.
        eps: strength offset of the log map (``log(strength + eps)``): below it, rain and none look alike.
    """

    widths: list[int] = field(default_factory=lambda: [16, 32, 32, 64, 64, 64, 64])
    strides: list[int] = field(default_factory=lambda: [1, 2, 2, 2, 1, 2, 1])
    negative_slope: float = 0.2
    eps: float = 2e-3

    def __post_init__(self) -> None:
        self.widths, self.strides = list(self.widths), list(self.strides)
        _require(
            len(self.widths) == len(self.strides) >= 1,
            f"gauge: widths and strides must be lists of one length, got {self.widths} and {self.strides}",
        )
        _require(
            all(isinstance(w, int) and 1 <= w <= MAX_WIDTH for w in self.widths),
            f"gauge.widths must be ints in [1, {MAX_WIDTH}], got {self.widths}",
        )
        _require(all(s in (1, 2) for s in self.strides), f"gauge.strides must be 1 or 2, got {self.strides}")
        _require(0 < self.eps < 1, f"gauge.eps must be in (0, 1), got {self.eps!r}")

    @property
    def cell(self) -> int:
        """The side of the block of pixels each output value describes (the product of the strides)."""
        return 2 ** sum(s == 2 for s in self.strides)


@dataclass
class LossConfig:
    """The multi-level loss: a pixel term on every level, (1 − SSIM)/2 on the finest ones.

    The defaults are the paper's: L1 on all levels + SSIM on the two finest, all weights 1.

    Attributes:
        pixel: ``l1``, ``l2`` or None (no pixel term).
        pixel_weight: weight of the pixel term on each level.
        ssim_levels: how many of the finest levels get the SSIM term (0: none; ≥ the level count: all).
        ssim_weight: weight of the SSIM term on each of those levels.
        level_weights: optional per-level multipliers, coarsest first (None: all 1).
    """

    pixel: PixelLoss | None = PixelLoss.l1
    pixel_weight: float = 1.0
    ssim_levels: int = 2
    ssim_weight: float = 1.0
    level_weights: list[float] | None = None

    def __post_init__(self) -> None:
        self.pixel = _choice(PixelLoss, self.pixel, "loss.pixel")
        _require(
            isinstance(self.ssim_levels, int) and self.ssim_levels >= 0,
            f"loss.ssim_levels must be an int >= 0, got {self.ssim_levels!r}",
        )
        _require(
            self.pixel is not None or self.ssim_levels > 0,
            "loss has no terms: set loss.pixel or loss.ssim_levels > 0",
        )
        for name in ("pixel_weight", "ssim_weight"):
            value = getattr(self, name)
            _require(
                isinstance(value, int | float) and value >= 0, f"loss.{name} must be >= 0, got {value!r}"
            )


@dataclass
class OptimConfig:
    """Adam as in the official code, and the learning-rate schedule (stepped every iteration).

    Attributes:
        lr: learning rate (1e-3 in the paper).
        betas: Adam's betas.
        weight_decay: L2 penalty.
        scheduler: ``none`` (the paper), ``cosine`` (to 0 over ``trainer.max_steps``) or ``step``.
        step_size: iterations between decays, for ``step``.
        gamma: decay factor, for ``step``.
    """

    lr: float = 1e-3
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    weight_decay: float = 0.0
    scheduler: Scheduler = Scheduler.none
    step_size: int = 100_000
    gamma: float = 0.1

    def __post_init__(self) -> None:
        self.scheduler = _choice(Scheduler, self.scheduler, "optim.scheduler")
        _require(isinstance(self.lr, int | float) and self.lr > 0, f"optim.lr must be > 0, got {self.lr!r}")
        _require(
            len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas),
            f"optim.betas must be two numbers in [0, 1), got {list(self.betas)}",
        )
        _require(self.weight_decay >= 0, f"optim.weight_decay must be >= 0, got {self.weight_decay!r}")
        _require(self.step_size >= 1, f"optim.step_size must be >= 1, got {self.step_size!r}")
        _require(0 < self.gamma <= 1, f"optim.gamma must be in (0, 1], got {self.gamma!r}")


@dataclass
class ModelConfig:
    """The LightningModule (:class:`lpnet.training.LitLPNet`): network, loss, optimiser and step options.

    Attributes:
        net: the architecture.
        loss: the training loss.
        optim: the optimiser and schedule.
        init_from: a checkpoint (converted official or trained) whose weights start the run.
        nan_policy: a NaN/Inf training loss stops the run (``raise``) or drops that step (``skip``).
        fast_cpu: float32 CPU steps through :mod:`lpnet.models.fast` (oneDNN kernels: the same numbers,
            ~1.6× faster steps); false runs ``LPNet.forward`` as written.
    """

    _target_: str = "lpnet.training.LitLPNet"
    _convert_: str = "all"  # Hydra passes plain containers, not DictConfig
    net: LPNetConfig = field(default_factory=LPNetConfig)
    # LossConfig / OptimConfig, or None for their defaults. Typed Any so that Hydra can wire in the
    # top-level loss and optim groups (``loss: ${loss}``; OmegaConf refuses to merge an interpolation into
    # a dataclass-typed field); those groups are typed themselves, so their settings are still checked.
    loss: Any = None
    optim: Any = None
    init_from: str | None = None
    nan_policy: NanPolicy = NanPolicy["raise"]
    fast_cpu: bool = True

    def __post_init__(self) -> None:
        self.loss = self.loss or LossConfig()
        self.optim = self.optim or OptimConfig()
        self.nan_policy = _choice(NanPolicy, self.nan_policy, "model.nan_policy")


@dataclass
class GaugeModelConfig:
    """The rain gauge's training (:class:`lpnet.training.LitGauge`): it learns from synthetic pairs what
    rain adds per cell (:func:`lpnet.models.gauge.rain_maps`), seen as a user's photo would show it.

    Attributes:
        net: the architecture.
        optim: Adam and its schedule (the ``optim`` group).
        present: the rain a cell must hold to count as rain (mean added light; 0.0015: one faint streak).
        sides: each step sees its batch at one of these sides (a preview of a larger photo: rain at
            several scales; multiples of the cell).
        jpeg_chance: share of the rainy inputs stored as JPEG first (photos are JPEGs; the label is the rain
            before the compression).
        jpeg_quality: the JPEG quality range.
    """

    _target_: str = "lpnet.training.LitGauge"
    _convert_: str = "all"
    net: GaugeConfig = field(default_factory=GaugeConfig)
    optim: Any = None
    present: float = 0.0015
    sides: list[int] = field(default_factory=lambda: [160, 144, 128, 112, 96, 80])
    jpeg_chance: float = 0.8
    jpeg_quality: list[int] = field(default_factory=lambda: [40, 95])

    def __post_init__(self) -> None:
        self.optim = self.optim or OptimConfig()
        _require(0 < self.present < 1, f"model.present must be in (0, 1), got {self.present!r}")
        _require(0 <= self.jpeg_chance <= 1, f"model.jpeg_chance must be in [0, 1], got {self.jpeg_chance!r}")
        low, high = self.jpeg_quality
        _require(
            1 <= low <= high <= 100, f"model.jpeg_quality must be [low, high] in [1, 100], got {low, high}"
        )


@dataclass
class ImageLoggerConfig:
    """Training's validation pictures (:class:`lpnet.training.callbacks.ImageLogger`), set as
    ``callbacks.image_logger.*``.

    Attributes:
        every_n_val: picture every n-th validation.
        examples: how many validation images are pictured (the first ones).
        max_side: larger validation images are pictured by their top-left square of this side.
    """

    _target_: str = "lpnet.training.callbacks.ImageLogger"
    every_n_val: int = 1
    examples: int = 2
    max_side: int = 512


# --------------------------------------------------------------------------------------------------
# Data


@dataclass
class LoaderConfig:
    """What every training data source shares.

    Attributes:
        crop_size: side of the square training crops (80 in the paper).
        batch_size: training batch size (10 in the paper); validation and test run whole images, batch 1.
        num_workers: DataLoader worker processes (the data order does not depend on it).
        seed: seeds the training stream (sample n is a pure function of (seed, n)).
        real_val_dir: a folder of real rainy/clean pairs (any layout) scored at every validation beside
            the main set, logged as ``val_real/<score>``; never trained on.
        real_val: more such folders by name, e.g. ``{light: DIR, heavy: DIR}``, each logged as
            ``val_real_<name>/<score>`` with its own best.
        clean_val: folders of rain-free photos by name, each photo scored against itself (does the model
            leave a photo without rain alone?), logged as ``val_clean_<name>/<score>``.
    """

    crop_size: int = 80
    batch_size: int = 10
    num_workers: int = 2
    seed: int = 0
    real_val_dir: str | None = None
    real_val: Any = None  # a mapping; Any so that `data.real_val={...}` replaces None (omegaconf)
    clean_val: Any = None

    def __post_init__(self) -> None:
        for name, low in (("crop_size", 1), ("batch_size", 1), ("num_workers", 0)):
            value = getattr(self, name)
            _require(
                isinstance(value, int) and not isinstance(value, bool) and value >= low,
                f"data.{name} must be an int >= {low}, got {value!r}",
            )
        for name in ("real_val", "clean_val"):
            value = getattr(self, name)
            _require(
                value is None
                or (
                    isinstance(value, Mapping)
                    and all(
                        isinstance(k, str) and isinstance(v, (str, os.PathLike)) for k, v in value.items()
                    )
                ),
                f"data.{name} must map set names to folders, e.g. data.{name}={{light: DIR}}, got {value!r}",
            )


# Downscaling of a clean training photo before the crop: more scene per crop, never an upscaling blur.
TRAIN_PHOTO_SCALE = (0.5, 1.0)


@dataclass
class SyntheticDataConfig(LoaderConfig):
    """Clean photos degraded on the fly (:mod:`lpnet.data.clean`): no dataset on disk.

    Attributes:
        degradation: a name of :data:`lpnet.data.degradations.DEGRADATIONS` or a built degradation.
        clean_dir: a folder of your own clean photos instead of the bundled ones.
        val_length: validation samples (fixed, seeded; whole photos).
        test_length: test samples (fixed, seeded; whole photos).
        eval_crop_size: crop validation/test photos to this side (None: whole photos).
        scale: range of the random downscaling of a training photo before the crop.
        jitter: photometric jitter of training photos (:class:`lpnet.data.clean.PhotoJitter`): ``default``
            (exposure, gamma, white balance, saturation), None (none), or ranges, e.g.
            ``{gain: [0.6, 1.2], gamma: [0.8, 1.25], channel_gain: [0.9, 1.1], saturation: [0.6, 1.3]}``.
        photos: bundled photo names per split, e.g. ``{train: [coffee, rocket]}``; None:
            :data:`lpnet.data.clean.BUNDLED_SPLITS`.
        jpeg_chance: share of the training inputs stored as JPEG after the rain is drawn (photos people
            derain are JPEGs; the target stays the clean photo); 0: none (and nothing drawn for it).
        jpeg_quality: the JPEG quality range ``[low, high]``.
    """

    _target_: str = "lpnet.data.datamodule.synthetic_datamodule"
    _convert_: str = "all"
    degradation: Any = "rain_heavy"
    clean_dir: str | None = None
    val_length: int = 9  # 3 validation photos, 3 renderings each
    test_length: int = 18  # 3 test photos, 6 renderings each
    eval_crop_size: int | None = None
    scale: list[float] = field(default_factory=lambda: list(TRAIN_PHOTO_SCALE))
    jitter: Any = "default"
    photos: Any = None  # a mapping; Any so that `data.photos={...}` replaces None (omegaconf)
    jpeg_chance: float = 0.0
    jpeg_quality: list[int] = field(default_factory=lambda: [60, 95])


# What the synthetic fallback of a missing benchmark takes (listed, so data.synthetic.clean_dir=... works).
_FALLBACK_SETTINGS = (
    "clean_dir", "val_length", "test_length", "eval_crop_size", "scale", "jitter", "photos", "jpeg_chance",
    "jpeg_quality",
)  # fmt: skip


@dataclass
class BenchmarkDataConfig(LoaderConfig):
    """Paired images on disk in any layout of :mod:`lpnet.data.layouts`.

    Attributes:
        root: benchmark folder; split folders are relative to it.
        layout: a layout name for every split folder, or ``auto`` (detected per folder).
        train_dir, val_dir, test_dir: split folders, relative to ``root`` or absolute; ``.`` is ``root``;
            None: no such split.
        flips: random horizontal flips in training (off in the paper).
        val_fraction: share of the training pairs held out for validation when ``val_dir`` is None.
        layout_options: e.g. ``{rainy_side: left}`` for side-by-side layouts.
        cache: keep decoded images in memory as uint8, per worker.
        fallback: the degradation to synthesise when the training folder is missing (None: an error).
        synthetic: :class:`SyntheticDataConfig` settings for the fallback (e.g. ``clean_dir``).
    """

    _target_: str = "lpnet.data.datamodule.benchmark_datamodule"
    _convert_: str = "all"
    root: str | None = None
    layout: str = "auto"
    train_dir: str | None = "train"
    val_dir: str | None = None
    test_dir: str | None = "test"
    flips: bool = False
    val_fraction: float = 0.05
    layout_options: dict[str, Any] = field(default_factory=dict)
    cache: bool = False
    fallback: Any = None
    synthetic: dict[str, Any] = field(
        default_factory=lambda: {name: getattr(SyntheticDataConfig(), name) for name in _FALLBACK_SETTINGS}
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        _require(
            0 <= self.val_fraction < 1, f"data.val_fraction must be in [0, 1), got {self.val_fraction!r}"
        )


# --------------------------------------------------------------------------------------------------
# Applying a trained model


def check_max_pixels(max_pixels: Any) -> None:
    """Refuse a ``max_pixels`` no image can meet (a folder run would fail every file): a positive int or
    None (Pillow's own limit).

    Raises:
        ValueError: naming the setting.
    """
    _require(
        max_pixels is None
        or (isinstance(max_pixels, int) and not isinstance(max_pixels, bool) and max_pixels >= 1),
        f"max_pixels must be a positive number of pixels or null (Pillow's limit), got {max_pixels!r}",
    )


@dataclass
class DerainConfig:
    """How a trained LPNet is applied to images of any size (:class:`lpnet.Derainer`).

    Attributes:
        device: ``auto`` (CUDA when available), ``cpu``, ``cuda``, ``cuda:N``.
        tile: output pixels kept per tile side; larger images run tile by tile (exactly).
        overlap: context pixels per tile side; None = the network's receptive field (exact results).
        batch_size: tiles per network call (raise it on a GPU).
        precision: ``fp32`` (exact) or ``bf16``: feature convolutions in bfloat16, on CUDA or a CPU with
            AMX or AVX512-BF16 (refused elsewhere, naming the missing feature). Its cost was measured on an
            AMX CPU: 1.45x the fp32 speed at 481x321, 2.0x at 1024x1024, 0.02-0.04 dB less Y-PSNR on 3 real
            rain pairs (docs/results.md).
    """

    device: str = "auto"
    tile: int = 1024
    overlap: int | None = None
    batch_size: int = 1
    precision: str = "fp32"


# --------------------------------------------------------------------------------------------------
# The metric protocol and the commands (``???`` marks a setting the command line must give)

MISSING = "???"  # OmegaConf's marker of a mandatory value (spelled out: this module imports no omegaconf)


@dataclass
class MetricsConfig:
    """How predictions are scored (the official protocol; see :mod:`lpnet.metrics`).

    Attributes:
        quantize: score ``uint8(clip(x) * 255)`` as the official test saves its outputs.
        round_y: round Y to integers like MATLAB ``rgb2ycbcr`` on uint8 images.
    """

    quantize: bool = True
    round_y: bool = True


@dataclass
class DerainCommandConfig(DerainConfig):
    """``python -m lpnet.derain``: every image below ``input`` into ``output``.

    Attributes:
        ckpt_path: an lpnet checkpoint (``lpnet.convert``, ``save_checkpoint``), a training ``.ckpt``, or
            ``lpnet:<name>`` for weights bundled with the package, or a router file; by default
            ``lpnet:auto``, lpnet's own adaptive model: per image, ``lpnet:light`` for drizzle and rain-free
            photos, ``lpnet:mixed`` for downpours, chosen by a rain-strength estimate (scores on real rain
            in docs/results.md).
        input: an image file, or a folder searched recursively.
        output: the output folder (created; not the input folder or inside it).
        format: ``png``, ``tif`` or ``tiff`` (lossless; keep alpha and grayscale).
        skip_existing: leave inputs whose output already exists (and is an image) alone: resume a folder.
        overwrite: replace files already where outputs go; otherwise such files stop the run before any
            work, naming them.
        max_pixels: refuse image files with more pixels than this (one line naming the file and this
            setting); None = Pillow's own limit, 89,478,485. Memory: about 7 bytes per pixel plus a tile.
        progress: a progress bar on stderr.
        pipeline: decode the next image and encode/write the previous one while the current one is
            derained (the same outputs, byte for byte); false runs them one after the other.
        shard: ``K/N``: derain only part K of N of the folder (split by a hash of each relative path, so
            reruns and skip_existing agree; names as in the whole run): ``-m shard=0/4,1/4,2/4,3/4
            hydra/launcher=joblib`` runs four in parallel. None: the whole folder.
    """

    ckpt_path: str = "lpnet:auto"
    input: str = MISSING
    output: str = MISSING
    format: str = "png"
    skip_existing: bool = False
    overwrite: bool = False
    max_pixels: int | None = None
    progress: bool = True
    pipeline: bool = True
    shard: str | None = None


@dataclass
class EvalDataConfig:
    """Where ``lpnet.eval`` finds its pairs: one split folder of any layout (:mod:`lpnet.data.layouts`)."""

    root: str = MISSING
    layout: str = "auto"
    rainy_side: str | None = None


@dataclass
class GridConfig:
    """The before/after picture: the first ``images`` images, centre crops of side ``crop`` (0: none)."""

    images: int = 3
    crop: int = 256


@dataclass
class EvalCommandConfig(DerainConfig):
    """``python -m lpnet.eval``: score a checkpoint on paired images.

    Attributes:
        task_name: names the run directory, ``outputs/<task_name>/<time>/``.
        output: where the results go; None = the run directory (``hydra.run.dir``).
        ckpt_path: converted official weights or a training checkpoint.
        data: the pairs (``data.layout=rain_free``: rain-free photos, each its own target). A pair whose
            images differ in kind (colour against grayscale, 8- against 16-bit, 16-bit colour included,
            which Pillow reads at 8 bits) is refused by name, never scored truncated.
        save_outputs: also write every derained image to ``<run dir>/outputs/<key>.png``.
        grid: the before/after picture.
        metrics: the scoring protocol.
    """

    task_name: str = "eval"
    output: str | None = None
    ckpt_path: str = MISSING
    data: EvalDataConfig = field(default_factory=EvalDataConfig)
    save_outputs: bool = False
    grid: GridConfig = field(default_factory=GridConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)


@dataclass
class SynthesizeCommandConfig:
    """``python -m lpnet.synthesize``: write a paired set of synthetic rain (the benchmark layout).

    Attributes:
        preset: ``light``, ``heavy`` or ``mixed`` (shorthand for ``degradation=rain_<preset>``), or None.
        output: the folder to write (``rain/``, ``norain/``, ``params.json``).
        count: number of pairs.
        seed: None = the split's fixed seed (val/test) or 0 (train).
        split: whose clean photos: ``train``, ``val`` or ``test``.
        clean_dir: a folder of your own clean photos instead.
        crop_size: None for whole photos, else random square crops of that side.
        overwrite: replace a set lpnet wrote before in ``output``.
        degradation: what is rendered (the ``degradation`` config group fills it).
    """

    preset: str | None = None
    output: str = MISSING
    count: int = 100
    seed: int | None = None
    split: str = "test"
    clean_dir: str | None = None
    crop_size: int | None = None
    overwrite: bool = False
    degradation: Any = None


@dataclass
class ExportCommandConfig:
    """``python -m lpnet.export``: a checkpoint as an ONNX graph with dynamic batch, height and width.

    Attributes:
        ckpt_path: an lpnet checkpoint or a training checkpoint.
        output: the ``.onnx`` file to write.
        overwrite: replace an existing file.
        opset: the ONNX opset.
        check: run the graph with onnxruntime (when installed) and compare with PyTorch.
    """

    ckpt_path: str = MISSING
    output: str = MISSING
    overwrite: bool = False
    opset: int = 17
    check: bool = True


@dataclass
class ConvertCommandConfig:
    """``python -m lpnet.convert``: official TensorFlow weights (or a training checkpoint) to lpnet's format.

    Attributes:
        source: the TF checkpoint prefix (``.../heavy_model``) or its ``.index`` file, or a training
            checkpoint (``.ckpt``), whose network alone is kept.
        output: the lpnet checkpoint to write (``.pt``).
        overwrite: replace an existing file.
    """

    source: str = MISSING
    output: str = MISSING
    overwrite: bool = False


@dataclass
class ReportCommandConfig:
    """``python -m lpnet.report``: tables and plots of training runs and sweeps.

    Attributes:
        input: a sweep or run directory, a glob pattern (``multirun/ablation_*/*``), or a list of them.
        output: where the report goes; None = the (single) input directory itself.
    """

    input: Any = MISSING
    output: str | None = None


@dataclass
class StudyCommandConfig:
    """``python -m lpnet.study`` (``make ablations``): the ablation study, run as a resumable ledger.

    Attributes:
        ledger: the folder of finished runs' small outputs, ``<axis>/<value>/seed<k>/`` (committed).
        runs_dir: where each run trains (checkpoints, full logs; not kept in the ledger).
        real_rain_dir: the folder that holds the sets of ``real_val`` and ``clean_val``.
        axes: the axes, in order: ``conf/experiment/ablation_<axis>.yaml``, whose sweep gives the values
            (``loss``, ``width``, ``recursion``, ``skip``, ``sharing``; ``levels`` on request: its three
            other values would add 9 runs, ~1.5 h on 2 CPU cores).
        seeds: every configuration runs once with each.
        recipe: the ``lpnet.train`` overrides every run shares; the baseline is this recipe alone:
            lpnet:heavy's data and schedule (``experiment=weights_heavy``) at 1,000 steps, validated every
            250 (docs/ablations.md: where the rankings stop changing).
        real_val: real rain pairs every run is scored on, ``{name: folder under real_rain_dir}``.
        clean_val: rain-free photos every run is scored on (each against itself), likewise.
        loggers: ``lpnet.train``'s loggers for every run (CSV always): ``tensorboard`` (its HParams tab
            with each run's final scores), ``wandb`` (the axis as the W&B group, value and seed as tags).
        max_runs: run at most this many of the runs left, then stop (None: all).
        dry_run: print the plan and what is left, run nothing.
        quiet: keep each run's own output in its log file (``runs_dir``) instead of the terminal.
    """

    ledger: str = "results/ablations"
    runs_dir: str = "outputs/ablations"
    real_rain_dir: str = MISSING
    axes: list[str] = field(default_factory=lambda: ["loss", "width", "recursion", "skip", "sharing"])
    seeds: list[int] = field(default_factory=lambda: [1, 2, 3])
    recipe: list[str] = field(
        default_factory=lambda: [
            "experiment=weights_heavy",
            "trainer.max_steps=1000",
            "trainer.val_check_interval=250",
        ]
    )
    real_val: dict[str, str] = field(
        default_factory=lambda: {"heavy": "rain100h-val", "light": "rain100l-val"}
    )
    clean_val: dict[str, str] = field(default_factory=lambda: {"photos": "rain100l-val/norain"})
    loggers: list[str] = field(default_factory=lambda: ["tensorboard"])
    max_runs: int | None = None
    dry_run: bool = False
    quiet: bool = True


@dataclass
class BenchCommandConfig:
    """``python -m lpnet.bench``: inference and training speed against the plain eager model.

    Attributes:
        quick: small sizes and 2 repeats (seconds).
        threads: ``torch.set_num_threads`` of every measured process.
        repeats: timed calls per figure (None: 5, or 2 when quick).
        compile: add ``torch.compile`` rows (slow to compile).
        targets_only: only the whole-process rows against the plain script (one photo, a folder in fp32
            and in bf16) and their three ratios.
        output: also write the results to this JSON file.
    """

    quick: bool = False
    threads: int = 2
    repeats: int | None = None
    compile: bool = False
    targets_only: bool = False
    output: str | None = None


@dataclass
class AppCommandConfig(DerainConfig):
    """``lpnet-app`` (``python -m lpnet.app``): the local web app that derains dropped photos.

    Attributes:
        host: the address it listens on; 127.0.0.1 (this machine only) unless you mean to share it.
        port: its port (open http://127.0.0.1:7860 in a browser).
        models: checkpoints offered besides lpnet's own (``[mine.pt, runs/x/last.ckpt]``), checked when the
            app starts; a browser can choose only from this list, never name a file of its own.
        max_pixels: refuse photos with more pixels (one line naming the file); None = Pillow's limit,
            89,478,485. Memory: about 7 bytes per pixel plus a tile, per request (requests run one at a time).
        max_upload_mb: the largest file a browser may upload, in megabytes.
    """

    host: str = "127.0.0.1"
    port: int = 7860
    models: list[str] = field(default_factory=list)
    max_pixels: int | None = None
    max_upload_mb: int = 200

    def __post_init__(self) -> None:
        _require(
            isinstance(self.port, int) and not isinstance(self.port, bool) and 1 <= self.port <= 65535,
            f"port must be a port number in [1, 65535], got {self.port!r}",
        )
        _require(
            isinstance(self.host, str) and self.host.strip() != "",
            f"host must be an address such as 127.0.0.1, got {self.host!r}",
        )
        _require(
            isinstance(self.max_upload_mb, int)
            and not isinstance(self.max_upload_mb, bool)
            and self.max_upload_mb >= 1,
            f"max_upload_mb must be a whole number of megabytes >= 1, got {self.max_upload_mb!r}",
        )
        check_max_pixels(self.max_pixels)
        self.models = [str(m) for m in self.models]


@dataclass
class DemoConfig:
    """What ``make demo`` shows after training: the first ``images`` test photos, crops of side ``crop``,
    derained by the model just trained and by the bundled weights ``bundled``."""

    images: int = 4
    crop: int = 256
    bundled: str = "lpnet:heavy"


# What Hydra registers (lpnet.conf): config files refer to them as ``/lpnet/<name>``.
STRUCTURED_CONFIGS: dict[str, type] = {
    "model": ModelConfig,
    "gauge_model": GaugeModelConfig,
    "loss": LossConfig,
    "optim": OptimConfig,
    "data_synthetic": SyntheticDataConfig,
    "data_benchmark": BenchmarkDataConfig,
    "derain": DerainCommandConfig,
    "eval": EvalCommandConfig,
    "synthesize": SynthesizeCommandConfig,
    "export": ExportCommandConfig,
    "convert": ConvertCommandConfig,
    "report": ReportCommandConfig,
    "study": StudyCommandConfig,
    "bench": BenchCommandConfig,
    "app": AppCommandConfig,
    "demo": DemoConfig,
    "image_logger": ImageLoggerConfig,
}
