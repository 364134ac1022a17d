"""Degradations that turn clean images into training inputs: rain, Gaussian noise, haze.

All share one interface, :class:`Degradation`: ``degrade(clean, generator) -> (degraded, params)`` with
``clean`` of shape ``(B, 3, H, W)`` in [0, 1], the result of the same shape in [0, 1] and one
JSON-serialisable dict of drawn parameters per image. :func:`build_degradation` makes one by name:

===============  =============================================================================
name             what
===============  =============================================================================
rain_light       Rain100L-like streaks (:data:`lpnet.data.rain.PRESETS` ``["light"]``)
rain_heavy       Rain100H/Rain200H-like dense streaks in several layers and directions (no veil)
rain_heavy_veil  the earlier, denser heavy preset with a veil and background blur
rain_mixed       every range from light's minimum to heavy's maximum
noise            additive white Gaussian noise, σ in /255 units (the paper's denoising experiment)
haze             atmospheric scattering ``I = J t + A (1 − t)``, ``t = exp(−β d)``
===============  =============================================================================
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from lpnet.data._common import Range, check_clean, rand, randn, replace_config, sample, validate_ranges
from lpnet.data.rain import PRESETS, RainConfig, render_rain


class Degradation(Protocol):
    """A seeded, batched degradation: ``(B, 3, H, W)`` clean in [0, 1] → degraded in [0, 1] + params."""

    def __call__(
        self, clean: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, list[dict[str, Any]]]: ...


@dataclass(frozen=True)
class NoiseConfig:
    """Additive white Gaussian noise.

    Attributes:
        sigma: noise standard deviation in /255 units (25 means 25/255), drawn per image.
        clip: clip the result to [0, 1] (as saved 8-bit images are); clipping lowers the σ near 0 and 1.
    """

    sigma: Range = (25.0, 25.0)
    clip: bool = True

    def __post_init__(self) -> None:
        validate_ranges(self, {"sigma": (0.0, 255.0)})
        if not isinstance(self.clip, bool):
            raise TypeError(f"NoiseConfig.clip must be true or false, got {self.clip!r}")


def add_noise(
    clean: Tensor, config: NoiseConfig, generator: torch.Generator | None = None
) -> tuple[Tensor, list[dict[str, Any]]]:
    """Add Gaussian noise of a per-image σ (the same σ on every channel and pixel).

    Args:
        clean: ``(B, 3, H, W)`` in [0, 1].
        config: the σ range and clipping.
        generator: source of randomness (see :func:`lpnet.data.rain.render_rain`).

    Returns:
        ``(noisy, params)``: ``(B, 3, H, W)`` (in [0, 1] when ``config.clip``), ``{"sigma": σ}`` per image.
    """
    check_clean(clean)
    sigma = sample(config.sigma, clean.shape[0], generator, clean.device)
    noise = randn(clean.shape, generator, clean.device).to(clean.dtype)
    noisy = clean + (sigma / 255).to(clean.dtype)[:, None, None, None] * noise
    if config.clip:
        noisy = noisy.clamp(0, 1)
    return noisy, [{"kind": "noise", "sigma": float(s)} for s in sigma]


@dataclass(frozen=True)
class HazeConfig:
    """Atmospheric scattering ``I = J t + A (1 − t)`` with transmission ``t = exp(−β d)``.

    The depth proxy ``d`` in [0, 1] mixes a vertical gradient (the top of a photo is usually farther) with
    smooth random noise (bilinear upsampling of a coarse grid), so ``t`` lies in ``[exp(−β), 1]``.

    Attributes:
        beta: scattering coefficient β; the farthest point keeps ``exp(−β)`` of its radiance.
        atmosphere: atmospheric light A, a grey level.
        gradient: weight of the vertical gradient in ``d`` (the rest is the smooth noise).
        cells: coarse grid size (cells along the shorter side) of the smooth noise; fewer = smoother.
    """

    beta: Range = (0.5, 2.0)
    atmosphere: Range = (0.7, 1.0)
    gradient: Range = (0.4, 0.9)
    cells: Range = (2.0, 6.0)

    def __post_init__(self) -> None:
        validate_ranges(
            self,
            {"beta": (0.0, 20.0), "atmosphere": (0.0, 1.0), "gradient": (0.0, 1.0), "cells": (1.0, 64.0)},
        )


def haze_transmission(
    shape: tuple[int, int, int], config: HazeConfig, generator: torch.Generator | None, device: torch.device
) -> tuple[Tensor, dict[str, Tensor]]:
    """Transmission maps ``t = exp(−β d)`` of shape ``(B, 1, H, W)`` in ``(0, 1]``, and the drawn scalars."""
    b, h, w = shape
    p = {
        name: sample(getattr(config, name), b, generator, device)
        for name in ("beta", "atmosphere", "gradient")
    }
    p["cells"] = sample(config.cells, b, generator, device).round()
    # One coarse noise grid big enough for the most cells; each image reads its own top-left part.
    cells_max = int(config.cells[1] + 0.5)
    gh, gw = cells_max + 1, math.ceil(cells_max * max(h, w) / min(h, w)) + 1
    coarse = rand((b, 1, gh, gw), generator, device)
    ys = torch.linspace(0, 1, h, device=device)
    xs = torch.linspace(0, 1, w, device=device)
    short = min(h, w)
    # Grid coordinates (normalised to [-1, 1] over the coarse grid) of each pixel for its image's cells.
    scale_y = (p["cells"] * h / short)[:, None] * ys[None] / (gh - 1) * 2 - 1  # (B, H)
    scale_x = (p["cells"] * w / short)[:, None] * xs[None] / (gw - 1) * 2 - 1  # (B, W)
    grid = torch.stack(torch.broadcast_tensors(scale_x[:, None, :], scale_y[:, :, None]), -1)
    smooth = F.grid_sample(coarse, grid, mode="bilinear", align_corners=True)  # (B, 1, H, W)
    lo = smooth.amin((2, 3), keepdim=True)
    hi = smooth.amax((2, 3), keepdim=True)
    smooth = (smooth - lo) / (hi - lo).clamp_min(1e-6)
    vertical = (1 - ys)[None, None, :, None]  # 1 at the top (far), 0 at the bottom
    g = p["gradient"][:, None, None, None]
    depth = g * vertical + (1 - g) * smooth
    return torch.exp(-p["beta"][:, None, None, None] * depth), p


def add_haze(
    clean: Tensor, config: HazeConfig, generator: torch.Generator | None = None
) -> tuple[Tensor, list[dict[str, Any]]]:
    """Haze a batch: ``I = J t + A (1 − t)``.

    Args:
        clean: ``(B, 3, H, W)`` in [0, 1].
        config: ranges of β, A and the depth proxy.
        generator: source of randomness (see :func:`lpnet.data.rain.render_rain`).

    Returns:
        ``(hazy, params)``: ``(B, 3, H, W)`` in [0, 1], and per image β, A, the depth mix and the minimum and
        mean transmission.
    """
    check_clean(clean)
    b, _, h, w = clean.shape
    t, p = haze_transmission((b, h, w), config, generator, clean.device)
    t = t.to(clean.dtype)
    a = p["atmosphere"].to(clean.dtype)[:, None, None, None]
    hazy = (clean * t + a * (1 - t)).clamp(0, 1)
    params = [
        {
            "kind": "haze",
            **{name: float(v[i]) for name, v in p.items()},
            "t_min": float(t[i].min()),
            "t_mean": float(t[i].mean()),
        }
        for i in range(b)
    ]
    return hazy, params


def jpeg_round_trip(image: Tensor, quality: int) -> Tensor:
    """``(3, H, W)`` in [0, 1] stored as an 8-bit JPEG of ``quality`` and decoded again."""
    pixels = (image.detach().permute(1, 2, 0).cpu().numpy() * 255 + 0.5).clip(0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=int(quality))
    decoded = np.asarray(Image.open(buffer).convert("RGB"), dtype=np.float32) / 255
    return torch.from_numpy(decoded).permute(2, 0, 1).to(image)


@dataclass(frozen=True)
class ConfiguredDegradation:
    """A degradation function bound to its config: what :func:`build_degradation` returns.

    Calling it is ``fn(clean, config, generator)``; ``name`` and ``config`` say what it does (for logs).
    """

    name: str
    config: RainConfig | NoiseConfig | HazeConfig
    fn: Callable[..., tuple[Tensor, list[dict[str, Any]]]]

    def __call__(
        self, clean: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, list[dict[str, Any]]]:
        return self.fn(clean, self.config, generator)


# name → (default config, function). The rain entries share render_rain with different presets.
_REGISTRY: dict[str, tuple[Any, Callable[..., tuple[Tensor, list[dict[str, Any]]]]]] = {
    **{f"rain_{preset}": (config, render_rain) for preset, config in PRESETS.items()},
    "noise": (NoiseConfig(), add_noise),
    "haze": (HazeConfig(), add_haze),
}
DEGRADATIONS: frozenset[str] = frozenset(_REGISTRY)


def build_degradation(name: str, **overrides: Any) -> ConfiguredDegradation:
    """Make the degradation ``name`` with some of its defaults replaced.

    Args:
        name: one of :data:`DEGRADATIONS` (rain_light, rain_heavy, rain_heavy_veil, rain_mixed, noise, haze).
        **overrides: fields of its config (:class:`RainConfig`, :class:`NoiseConfig`, :class:`HazeConfig`),
            ranges as ``[min, max]`` (a single number fixes the value); None keeps the default, so a Hydra
            config may list every field as ``null``.

    Raises:
        ValueError: unknown name or field (the message lists the allowed ones), or a range out of bounds.
        TypeError: a range that is not a pair of numbers.

    Example:
        >>> degrade = build_degradation("rain_heavy", length=[60, 120])
        >>> rainy, params = degrade(torch.rand(2, 3, 64, 64), torch.Generator().manual_seed(0))
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown degradation {name!r}; expected one of {sorted(DEGRADATIONS)}")
    config, fn = _REGISTRY[name]
    return ConfiguredDegradation(name, replace_config(config, overrides), fn)
