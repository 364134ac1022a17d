"""LPNet: Lightweight Pyramid Networks for Image Deraining.

Fu, Liang, Huang, Ding, Paisley, IEEE Transactions on Neural Networks and Learning Systems, 2019.

The input's Laplacian pyramid is split into bands; each band goes through a small recursive subnet, and
the outputs are rebuilt as a Gaussian pyramid from the coarsest level up. The defaults are the official
model (7,548 parameters), whose converted TensorFlow weights load as they are.

One detail follows the official code rather than the paper's equation: inside a recursion the
LeakyReLU comes *before* the skip back to the first features (``lrelu(conv(...)) + f0``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from lpnet.models.pyramid import binomial_kernel, laplacian_pyramid, pyr_up

OFFICIAL_FINEST_WIDTH = 16


def default_widths(num_levels: int, multiplier: float = 1.0) -> list[int]:
    """Subnet widths from the coarsest level to the finest: the official 1, 2, 4, 8, 16 for 5 levels.

    The finest level has ``16 * multiplier`` kernels and each coarser level half as many (at least 1).
    """
    if multiplier <= 0:
        raise ValueError(f"width multiplier must be > 0, got {multiplier}")
    return [max(1, round(OFFICIAL_FINEST_WIDTH * multiplier / 2**k)) for k in reversed(range(num_levels))]


class RecursiveBlock(nn.Module):
    """3×3 → LReLU → 1×1 → LReLU → 3×3 → LReLU, width ``f`` in and out."""

    def __init__(self, width: int, negative_slope: float) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, width, 1)
        self.conv3 = nn.Conv2d(width, width, 3, padding=1)
        self.act = nn.LeakyReLU(negative_slope)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.conv3(self.act(self.conv2(self.act(self.conv1(x))))))


class Subnet(nn.Module):
    """One pyramid level's network: features, ``recursions`` blocks, back to 3 channels plus the input.

    Args:
        width: number of feature maps ``f``.
        recursions: how many times the recursive block runs (the paper's T).
        share_weights: one block reused ``recursions`` times (the paper) or a block per recursion.
        residual_skip: add the first features to each recursion's output (the paper) or not.
        negative_slope: LeakyReLU slope (0.2 in the official code).
        channels: image channels in and out.
    """

    def __init__(
        self,
        width: int,
        recursions: int = 5,
        share_weights: bool = True,
        residual_skip: bool = True,
        negative_slope: float = 0.2,
        channels: int = 3,
    ) -> None:
        super().__init__()
        if width < 1 or recursions < 0:
            raise ValueError(f"Subnet needs width >= 1 and recursions >= 0, got {width} and {recursions}")
        self.recursions = recursions
        self.residual_skip = residual_skip
        self.head = nn.Conv2d(channels, width, 3, padding=1)
        num_blocks = min(1, recursions) if share_weights else recursions
        self.blocks = nn.ModuleList(RecursiveBlock(width, negative_slope) for _ in range(num_blocks))
        self.tail = nn.Conv2d(width, channels, 1)
        self.act = nn.LeakyReLU(negative_slope)

    def forward(self, band: Tensor) -> Tensor:
        """``(B, C, H, W)`` band → ``(B, C, H, W)`` band plus the predicted residual."""
        first = self.act(self.head(band))
        features = first
        for step in range(self.recursions):
            features = self.blocks[step % len(self.blocks)](features)
            if self.residual_skip:
                features = features + first
        return self.tail(features) + band


class LPNet(nn.Module):
    """The Lightweight Pyramid Network.

    Args:
        num_levels: pyramid levels (5 in the paper).
        widths: subnet widths from the coarsest level to the finest; default :func:`default_widths`.
        width_multiplier: scales the default widths (ignored when ``widths`` is given).
        recursions: recursions per subnet (T = 5 in the paper).
        share_weights: share each subnet's block across its recursions.
        residual_skip: skip from each subnet's first features to every recursion.
        final_relu: ReLU on every level's output (the paper; keeps outputs non-negative).
        negative_slope: LeakyReLU slope.
        channels: image channels (3 for RGB).

    Shape:
        Input ``(B, C, H, W)`` in [0, 1], any ``H, W >= 1``. Output: a list of ``num_levels`` tensors,
        coarsest first; the last, ``(B, C, H, W)``, is the derained image (unclipped: clip it to save it).

    Example:
        >>> net = LPNet()
        >>> sum(p.numel() for p in net.parameters())
        7548
    """

    def __init__(
        self,
        num_levels: int = 5,
        widths: Sequence[int] | None = None,
        width_multiplier: float = 1.0,
        recursions: int = 5,
        share_weights: bool = True,
        residual_skip: bool = True,
        final_relu: bool = True,
        negative_slope: float = 0.2,
        channels: int = 3,
    ) -> None:
        super().__init__()
        if num_levels < 1:
            raise ValueError(f"num_levels must be >= 1, got {num_levels}")
        widths = list(widths) if widths is not None else default_widths(num_levels, width_multiplier)
        if len(widths) != num_levels:
            raise ValueError(f"widths has {len(widths)} entries for {num_levels} levels: {widths}")
        self.num_levels = num_levels
        self.widths = widths
        self.final_relu = final_relu
        self.channels = channels
        self.subnets = nn.ModuleList(
            Subnet(w, recursions, share_weights, residual_skip, negative_slope, channels) for w in widths
        )
        self.register_buffer("kernel", binomial_kernel(channels), persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier-uniform weights and zero biases, as the official code initialises them."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(
        self, x: Tensor, run_subnet: Callable[[Subnet, Tensor], Tensor] | None = None
    ) -> list[Tensor]:
        """Every level's output, coarsest first.

        Args:
            x: ``(B, C, H, W)`` images in [0, 1].
            run_subnet: how each level's subnet is computed, ``run_subnet(subnet, band)``; default
                ``subnet(band)`` (:func:`lpnet.models.fast.fast_subnet` computes the same with oneDNN).
        """
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise ValueError(f"LPNet expects (B, {self.channels}, H, W) images, got {tuple(x.shape)}")
        kernel = self.kernel.to(x.dtype)
        bands = laplacian_pyramid(x, self.num_levels, kernel)
        outputs: list[Tensor] = []
        for subnet, band in zip(self.subnets, bands):
            level = run_subnet(subnet, band) if run_subnet is not None else subnet(band)
            if outputs:
                level = level + pyr_up(outputs[-1], band.shape[-2:], kernel)
            outputs.append(torch.relu(level) if self.final_relu else level)
        return outputs

    def derain(self, x: Tensor) -> Tensor:
        """The finest output only: ``(B, C, H, W)`` → ``(B, C, H, W)``."""
        return self(x)[-1]

    def config(self) -> dict:
        """Plain constructor arguments that rebuild this network (stored in every checkpoint)."""
        first = self.subnets[0]
        return {
            "num_levels": self.num_levels,
            "widths": list(self.widths),
            "recursions": first.recursions,
            "share_weights": len(first.blocks) <= 1,
            "residual_skip": first.residual_skip,
            "final_relu": self.final_relu,
            "negative_slope": first.act.negative_slope,
            "channels": self.channels,
        }

    def extra_repr(self) -> str:
        params = sum(p.numel() for p in self.parameters())
        return f"levels={self.num_levels}, widths={self.widths}, params={params:,}"
