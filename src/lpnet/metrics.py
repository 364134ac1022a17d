"""Image-quality metrics as the deraining literature computes them.

Deraining papers (JORDER, DDN, PReNet, LPNet, ...) score the luma channel of MATLAB's ``rgb2ycbcr`` with
MATLAB scripts: ``psnr = 20·log10(255 / rmse)`` and Wang et al.'s ``ssim_index``. The functions here are
those scripts in torch (float64, runs on GPU). :mod:`lpnet.scoring` adds the plain RGB metrics of
torchmetrics and averages per image.

| convention | value |
| --- | --- |
| input | RGB float ``(B, 3, H, W)`` in [0, 1], channels R, G, B |
| predictions | quantised like the saved outputs, ``uint8(clip(x, 0, 1) * 255)`` (truncation) |
| Y channel | MATLAB ``rgb2ycbcr`` (BT.601): ``16 + 65.481 R + 128.553 G + 24.966 B``, 0..255 units |
| Y rounding | to integers, half up, as ``rgb2ycbcr`` does on uint8 images (``round_y=True``) |
| precision | float64 |
| crop border | 0 (whole image) |
| PSNR | ``20·log10(255 / rmse)`` per image (``inf`` for identical images) |
| SSIM | Wang et al. 2004: 11×11 Gaussian window, σ = 1.5, K1 = 0.01, K2 = 0.03, L = 255, 'valid' |
| SSIM pooling | mean of the 'valid' SSIM map, no downsampling |
| dataset score | mean of the per-image scores |

Notes:

- Y rounding: the published tables come from MATLAB scripts that read the saved PNGs (uint8) and call
  ``rgb2ycbcr``, which then returns uint8 Y. That is what reproduces the official LPNet figures (see
  ``tests/test_parity.py``); float Y (``round_y=False``, BasicSR's ``test_y_channel``) reads up to
  0.03 dB / 0.0012 SSIM higher on the official samples.
- Quantisation applies to predictions only (``quantize=True`` in the metric classes); targets are read
  from 8-bit files and used as given.
- SSIM is ``ssim_index.m``; the later ``ssim.m`` first downsamples by ``round(min(H, W) / 256)``, which is 1
  (no change) for images whose short side is under 384 pixels, such as Rain100L/H.

Scoring a whole set (per image, then the mean; with the rainy input's scores beside) is
:class:`lpnet.scoring.Scoreboard`: the one scoring path of ``lpnet.eval``, training's validation and test,
and the demo.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

# MATLAB rgb2ycbcr, first row of Poynton's matrix (BT.601), for R, G, B in [0, 1] → Y in 0..255.
Y_WEIGHTS = (65.481, 128.553, 24.966)
Y_OFFSET = 16.0
PEAK = 255.0
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03


def _check_pair(pred: Tensor, target: Tensor) -> None:
    for name, x in (("pred", pred), ("target", target)):
        if not isinstance(x, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"{name} must be RGB images of shape (B, 3, H, W), got {tuple(x.shape)}")
    if pred.shape != target.shape:
        raise ValueError(f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")


def rgb_to_y(x: Tensor) -> Tensor:
    """MATLAB ``rgb2ycbcr`` luma of float RGB: ``16 + 65.481 R + 128.553 G + 24.966 B``.

    Args:
        x: RGB images ``(B, 3, H, W)`` in [0, 1].

    Returns:
        float64 ``(B, 1, H, W)`` in [16, 235] (0..255 units), not rounded.
    """
    weights = torch.tensor(Y_WEIGHTS, dtype=torch.float64, device=x.device).view(1, 3, 1, 1)
    return (x.to(torch.float64) * weights).sum(dim=1, keepdim=True) + Y_OFFSET


def quantize(x: Tensor) -> Tensor:
    """The official test's saved output ``uint8(clip(x, 0, 1) * 255)`` (truncation), back in [0, 1].

    Computed in ``x``'s dtype like :func:`lpnet.io.to_uint8`, so scores equal those of the saved PNGs.

    Args:
        x: images of any shape, any range.

    Returns:
        Tensor like ``x`` holding multiples of 1/255 in [0, 1].
    """
    return torch.floor(x.clamp(0, 1) * 255) / 255


def _luma(x: Tensor, round_y: bool) -> Tensor:
    """Y in 0..255, float64; rounded half up like MATLAB's uint8 ``rgb2ycbcr`` when ``round_y``."""
    y = rgb_to_y(x)
    return torch.floor(y + 0.5) if round_y else y


def psnr_y(pred: Tensor, target: Tensor, *, round_y: bool = True) -> Tensor:
    """Per-image Y-channel PSNR, ``20·log10(255 / rmse)``, as the deraining MATLAB scripts compute it.

    Args:
        pred: RGB images ``(B, 3, H, W)`` in [0, 1]; :func:`quantize` them first to score saved outputs.
        target: RGB images ``(B, 3, H, W)`` in [0, 1].
        round_y: round Y to integers as MATLAB ``rgb2ycbcr`` does on uint8 images.

    Returns:
        float64 ``(B,)`` in dB (``inf`` where the images are identical).
    """
    _check_pair(pred, target)
    mse = (_luma(pred, round_y) - _luma(target, round_y)).square().mean(dim=(1, 2, 3))
    return 20 * torch.log10(PEAK / mse.sqrt())


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA, **tensor_kwargs: Any) -> Tensor:
    """1-D normalised Gaussian taps; ``outer(w, w)`` is MATLAB's ``fspecial('gaussian', size, sigma)``.

    Returns:
        Tensor ``(size,)`` summing to 1.
    """
    coords = torch.arange(size, **tensor_kwargs) - (size - 1) / 2
    taps = torch.exp(-coords.square() / (2 * sigma**2))
    return taps / taps.sum()


def _filter_valid(x: Tensor, taps: Tensor) -> Tensor:
    """Separable 'valid' filtering (MATLAB ``filter2(w, x, 'valid')`` with a symmetric window)."""
    k = taps.numel()
    x = F.conv2d(x, taps.view(1, 1, k, 1))
    return F.conv2d(x, taps.view(1, 1, 1, k))


def ssim_map(x: Tensor, y: Tensor, peak: float = PEAK) -> Tensor:
    """Wang et al.'s SSIM map of single-channel images, 'valid' region only.

    Args:
        x: images ``(B, 1, H, W)`` in [0, ``peak``], ``H, W >= 11``.
        y: images like ``x``.
        peak: dynamic range ``L``.

    Returns:
        ``(B, 1, H - 10, W - 10)`` in ``x``'s dtype.
    """
    taps = gaussian_window(dtype=x.dtype, device=x.device)
    c1, c2 = (SSIM_K1 * peak) ** 2, (SSIM_K2 * peak) ** 2
    mu_x, mu_y = _filter_valid(x, taps), _filter_valid(y, taps)
    var_x = _filter_valid(x * x, taps) - mu_x.square()
    var_y = _filter_valid(y * y, taps) - mu_y.square()
    cov = _filter_valid(x * y, taps) - mu_x * mu_y
    return ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / (
        (mu_x.square() + mu_y.square() + c1) * (var_x + var_y + c2)
    )


def ssim_y(pred: Tensor, target: Tensor, *, round_y: bool = True) -> Tensor:
    """Per-image Y-channel SSIM (Wang et al. 2004, ``ssim_index.m``), as the deraining scripts compute it.

    Args:
        pred: RGB images ``(B, 3, H, W)`` in [0, 1], ``H, W >= 11``.
        target: RGB images ``(B, 3, H, W)`` in [0, 1].
        round_y: round Y to integers as MATLAB ``rgb2ycbcr`` does on uint8 images.

    Returns:
        float64 ``(B,)``, 1 for identical images.
    """
    _check_pair(pred, target)
    if min(pred.shape[-2:]) < SSIM_WINDOW:
        raise ValueError(
            f"ssim_y needs images of at least {SSIM_WINDOW}×{SSIM_WINDOW}, got {tuple(pred.shape)}"
        )
    return ssim_map(_luma(pred, round_y), _luma(target, round_y)).mean(dim=(1, 2, 3))
