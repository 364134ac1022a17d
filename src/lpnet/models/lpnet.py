"""LPNet: Lightweight Pyramid Networks for Image Deraining.

Fu, Liang, Huang, Ding, Paisley, IEEE Transactions on Neural Networks and Learning Systems, 2019.

The input's Laplacian pyramid is split into bands; each band goes through a small recursive subnet, and
the outputs are rebuilt as a Gaussian pyramid from the coarsest level up. The defaults
(:class:`~lpnet.config.LPNetConfig`) are the official model (7,548 parameters), whose converted
TensorFlow weights load as they are.

One detail follows the official code rather than the paper's equation: inside a recursion the
LeakyReLU comes *before* the skip back to the first features (``lrelu(conv(...)) + f0``).

The order of a subnet's convolutions is written once, in :meth:`Subnet.apply`, which takes the
function that computes one convolution (+ LeakyReLU). ``forward`` passes PyTorch's own; the fast CPU path
(:mod:`lpnet.models.fast`) passes fused oneDNN kernels; the cost model and the receptive field
(:mod:`lpnet.models.complexity`) pass one that only records which convolutions run.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lpnet.config import LPNetConfig, with_overrides
from lpnet.models.pyramid import binomial_kernel, laplacian_pyramid, pyr_up

# conv_fn(x, conv, slope): ``conv(x)``, then LeakyReLU with ``slope`` unless it is None.
ConvFn = Callable[[Tensor, nn.Conv2d, "float | None"], Tensor]


def eager_conv(x: Tensor, conv: nn.Conv2d, slope: float | None) -> Tensor:
    """PyTorch's convolution, then LeakyReLU (none when ``slope`` is None): the reference arithmetic."""
    y = conv(x)
    return F.leaky_relu(y, slope) if slope is not None else y


class RecursiveBlock(nn.Module):
    """3×3 → LReLU → 1×1 → LReLU → 3×3 → LReLU, width ``f`` in and out."""

    def __init__(self, width: int, negative_slope: float) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, width, 1)
        self.conv3 = nn.Conv2d(width, width, 3, padding=1)
        self.negative_slope = negative_slope

    def apply_convs(self, x: Tensor, conv_fn: ConvFn) -> Tensor:
        for conv in (self.conv1, self.conv2, self.conv3):
            x = conv_fn(x, conv, self.negative_slope)
        return x

    def forward(self, x: Tensor) -> Tensor:
        return self.apply_convs(x, eager_conv)


class Subnet(nn.Module):
    """One pyramid level's network: features, ``recursions`` blocks, back to ``channels`` plus the input.

    Args:
        width: number of feature maps ``f``.
        config: the network's settings (recursions, weight sharing, skip, slope, channels).
    """

    def __init__(self, width: int, config: LPNetConfig) -> None:
        super().__init__()
        self.recursions = config.recursions
        self.residual_skip = config.residual_skip
        self.negative_slope = config.negative_slope
        self.head = nn.Conv2d(config.channels, width, 3, padding=1)
        num_blocks = min(1, config.recursions) if config.share_weights else config.recursions
        self.blocks = nn.ModuleList(RecursiveBlock(width, config.negative_slope) for _ in range(num_blocks))
        self.tail = nn.Conv2d(width, config.channels, 1)

    def apply_convs(self, band: Tensor, conv_fn: ConvFn) -> Tensor:
        """The subnet with ``conv_fn`` computing each convolution: the one statement of its structure."""
        first = conv_fn(band, self.head, self.negative_slope)
        features = first
        for step in range(self.recursions):
            features = self.blocks[step % len(self.blocks)].apply_convs(features, conv_fn)
            if self.residual_skip:
                features = features + first
        return conv_fn(features, self.tail, None) + band

    def forward(self, band: Tensor) -> Tensor:
        """``(B, C, H, W)`` band → ``(B, C, H, W)`` band plus the predicted residual."""
        return self.apply_convs(band, eager_conv)


class LPNet(nn.Module):
    """The Lightweight Pyramid Network.

    Args:
        config: the architecture (:class:`~lpnet.config.LPNetConfig`; default: the official model).
        **overrides: settings that replace the config's, e.g. ``LPNet(recursions=3)``.

    Attributes:
        config: the resolved :class:`~lpnet.config.LPNetConfig` (widths written out): what checkpoints
            store and what rebuilds this network.

    Shape:
        Input ``(B, C, H, W)`` in [0, 1], any ``H, W >= 1``. Output: a list of ``num_levels`` tensors,
        coarsest first; the last, ``(B, C, H, W)``, is the derained image (unclipped: clip it to save it).

    Example:
        >>> net = LPNet()
        >>> sum(p.numel() for p in net.parameters())
        7548
    """

    def __init__(self, config: LPNetConfig | None = None, **overrides) -> None:
        super().__init__()
        self.config = with_overrides(LPNetConfig, config, overrides, "model.net").resolved()
        self.subnets = nn.ModuleList(Subnet(width, self.config) for width in self.config.widths)
        self.register_buffer("kernel", binomial_kernel(self.config.channels), persistent=False)
        self.reset_parameters()

    @property
    def num_levels(self) -> int:
        return self.config.num_levels

    @property
    def widths(self) -> list[int]:
        return list(self.config.widths)

    @property
    def channels(self) -> int:
        return self.config.channels

    def reset_parameters(self) -> None:
        """Xavier-uniform weights and zero biases, as the official code initialises them."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)

    def apply_convs(self, x: Tensor, conv_fn: ConvFn) -> list[Tensor]:
        """Every level's output, coarsest first, each subnet's convolutions computed by ``conv_fn``."""
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise ValueError(f"LPNet expects (B, {self.channels}, H, W) images, got {tuple(x.shape)}")
        kernel = self.kernel.to(x.dtype)
        bands = laplacian_pyramid(x, self.num_levels, kernel)
        outputs: list[Tensor] = []
        for subnet, band in zip(self.subnets, bands):
            level = subnet.apply_convs(band, conv_fn)
            if outputs:
                level = level + pyr_up(outputs[-1], band.shape[-2:], kernel)
            outputs.append(torch.relu(level) if self.config.final_relu else level)
        return outputs

    def forward(self, x: Tensor) -> list[Tensor]:
        """Every level's output, coarsest first: ``(B, C, H, W)`` in [0, 1] → ``num_levels`` tensors."""
        return self.apply_convs(x, eager_conv)

    def derain(self, x: Tensor) -> Tensor:
        """The finest output only: ``(B, C, H, W)`` → ``(B, C, H, W)``."""
        return self(x)[-1]

    def extra_repr(self) -> str:
        params = sum(p.numel() for p in self.parameters())
        return f"levels={self.num_levels}, widths={self.widths}, params={params:,}"
