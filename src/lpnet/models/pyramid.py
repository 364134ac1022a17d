"""Gaussian and Laplacian pyramids with the exact sampling phase of the official LPNet code.

The official TensorFlow code blurs with the binomial kernel ``outer([1, 4, 6, 4, 1] / 16)`` per channel,
downsamples with ``conv2d(stride=2, padding='SAME')`` and upsamples with
``conv2d_transpose(kernel * 4, stride=2, padding='SAME')``. TF's 'SAME' pads zeros asymmetrically: for a
side of ``n`` pixels and output ``ceil(n / 2)`` the total padding is ``2 * ceil(n / 2) + 3 - n`` (3 for even
``n``, 4 for odd), ``floor(total / 2)`` of it before. Every size from 1×1 up works, odd or even.

Neither ``kornia.geometry.pyrdown``/``pyrup`` (bilinear resampling, other phase) nor
``kornia.filters.filter2d`` (no stride: blurring at full resolution and subsampling costs 4× the work) give
this, so both directions are one depthwise ``conv2d``/``conv_transpose2d`` here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lpnet.config import LPNetConfig

BINOMIAL_1D = (0.0625, 0.25, 0.375, 0.25, 0.0625)


def _check_image(x: Tensor, name: str = "input") -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"{name} must have shape (B, C, H, W), got {tuple(x.shape)}")


def binomial_kernel(channels: int, *, device=None, dtype=None) -> Tensor:
    """The paper's 5×5 blur kernel, one copy per channel, shaped for a depthwise convolution.

    Returns:
        Tensor of shape ``(channels, 1, 5, 5)`` summing to 1 per channel.
    """
    k1 = torch.tensor(BINOMIAL_1D, device=device, dtype=dtype or torch.float32)
    return torch.outer(k1, k1).expand(channels, 1, 5, 5).contiguous()


def _same_pad_before(size: int) -> int:
    """Zero padding TF 'SAME' puts before a side of ``size`` for a stride-2, 5-tap convolution."""
    out = (size + 1) // 2
    return (2 * (out - 1) + 5 - size) // 2


def pyr_down(x: Tensor, kernel: Tensor | None = None) -> Tensor:
    """Blur and halve an image like TF ``conv2d(x, k, stride=2, padding='SAME')``.

    Args:
        x: images of shape ``(B, C, H, W)``, any range.
        kernel: optional precomputed :func:`binomial_kernel` of ``C`` channels (same device/dtype as ``x``).

    Returns:
        Tensor of shape ``(B, C, ceil(H / 2), ceil(W / 2))``.
    """
    _check_image(x)
    c, h, w = x.shape[1:]
    if kernel is None:
        kernel = binomial_kernel(c, device=x.device, dtype=x.dtype)
    top, left = _same_pad_before(h), _same_pad_before(w)
    out_h, out_w = (h + 1) // 2, (w + 1) // 2
    # F.pad order is (left, right, top, bottom); the far side gets the rest of TF's total padding.
    padded = F.pad(x, (left, 2 * out_w + 3 - w - left, top, 2 * out_h + 3 - h - top))
    return F.conv2d(padded, kernel, stride=2, groups=c)


def pyr_up(x: Tensor, size: tuple[int, int], kernel: Tensor | None = None) -> Tensor:
    """Upsample to ``size`` like TF ``conv2d_transpose(x, 4 * k, output_shape=size, stride=2, 'SAME')``.

    The transpose of :func:`pyr_down` times 4, so ``pyr_up(pyr_down(x), x.shape[-2:])`` is the low-pass part
    of ``x`` at full resolution.

    Args:
        x: images of shape ``(B, C, h, w)`` with ``h == ceil(H / 2)`` and ``w == ceil(W / 2)``.
        size: the target ``(H, W)``.
        kernel: optional precomputed :func:`binomial_kernel` of ``C`` channels.

    Returns:
        Tensor of shape ``(B, C, H, W)``.
    """
    _check_image(x)
    c, h, w = x.shape[1:]
    out_h, out_w = size
    if ((out_h + 1) // 2, (out_w + 1) // 2) != (h, w):
        raise ValueError(f"pyr_up: a {h}×{w} level cannot come from {out_h}×{out_w}; expected ceil(size / 2)")
    if kernel is None:
        kernel = binomial_kernel(c, device=x.device, dtype=x.dtype)
    # A padding-free transposed convolution gives the full 2h+3 rows; TF's output is the window that
    # starts at the forward pass's 'before' padding.
    full = F.conv_transpose2d(x, kernel * 4, stride=2, groups=c)
    top, left = _same_pad_before(out_h), _same_pad_before(out_w)
    return full[..., top : top + out_h, left : left + out_w]


def gaussian_pyramid(x: Tensor, num_levels: int, kernel: Tensor | None = None) -> list[Tensor]:
    """Gaussian pyramid, coarsest first: ``[down^(n-1)(x), ..., down(x), x]``.

    Args:
        x: images of shape ``(B, C, H, W)``.
        num_levels: number of levels ``n >= 1`` (the input itself is the finest).
        kernel: optional precomputed :func:`binomial_kernel` of ``C`` channels (a constant for exporters).

    Returns:
        ``n`` tensors; level ``i`` (from the coarsest) has side ``ceil(H / 2^(n-1-i))``.
    """
    _check_levels(num_levels)
    levels = [x]
    if kernel is None:
        kernel = binomial_kernel(x.shape[1], device=x.device, dtype=x.dtype)
    for _ in range(num_levels - 1):
        levels.append(pyr_down(levels[-1], kernel))
    return levels[::-1]


def laplacian_pyramid(x: Tensor, num_levels: int, kernel: Tensor | None = None) -> list[Tensor]:
    """Laplacian pyramid, coarsest first: ``[G_top, L_(n-1), ..., L_1]`` as in the official ``lap_split``.

    ``L_k = G_k - up(G_(k+1))`` is the band-pass residual; the first entry is the low-pass remainder.

    Args:
        x: images of shape ``(B, C, H, W)``.
        num_levels: number of levels ``n >= 1``.
        kernel: optional precomputed :func:`binomial_kernel` of ``C`` channels.

    Returns:
        ``n`` tensors with the shapes of :func:`gaussian_pyramid`.
    """
    if kernel is None:
        kernel = binomial_kernel(x.shape[1], device=x.device, dtype=x.dtype)
    gauss = gaussian_pyramid(x, num_levels, kernel)
    bands = [fine - pyr_up(coarse, fine.shape[-2:], kernel) for coarse, fine in zip(gauss, gauss[1:])]
    return [gauss[0], *bands]


def collapse_laplacian(levels: list[Tensor]) -> Tensor:
    """Invert :func:`laplacian_pyramid`: ``G_k = L_k + up(G_(k+1))`` from the coarsest level up.

    Returns:
        Tensor with the shape of the finest level.
    """
    if not levels:
        raise ValueError("collapse_laplacian needs at least one level")
    out = levels[0]
    kernel = binomial_kernel(out.shape[1], device=out.device, dtype=out.dtype)
    for band in levels[1:]:
        out = band + pyr_up(out, band.shape[-2:], kernel)
    return out


def _check_levels(num_levels: int) -> None:
    if not isinstance(num_levels, int) or num_levels < 1:
        raise ValueError(f"num_levels must be an int >= 1, got {num_levels!r}")


class GaussianPyramid(nn.Module):
    """Module twin of :func:`gaussian_pyramid` (no parameters)."""

    def __init__(self, num_levels: int = LPNetConfig.num_levels) -> None:
        super().__init__()
        _check_levels(num_levels)
        self.num_levels = num_levels

    def forward(self, x: Tensor) -> list[Tensor]:
        return gaussian_pyramid(x, self.num_levels)


class LaplacianPyramid(GaussianPyramid):
    """Module twin of :func:`laplacian_pyramid` (no parameters)."""

    def forward(self, x: Tensor) -> list[Tensor]:
        return laplacian_pyramid(x, self.num_levels)
