"""LPNet: Lightweight Pyramid Networks for Image Deraining.

Fu, Liang, Huang, Ding, Paisley, IEEE Transactions on Neural Networks and Learning Systems, 2019.

The input's Laplacian pyramid is split into bands; each band goes through a small recursive subnet, and
the outputs are rebuilt as a Gaussian pyramid from the coarsest level up. The defaults
(:class:`~lpnet.config.LPNetConfig`) are the official model (7,548 parameters), whose converted
TensorFlow weights load as they are.

One detail follows the official code rather than the paper's equation: inside a recursion the
LeakyReLU comes *before* the skip back to the first features (``lrelu(conv(...)) + f0``).

The order of a subnet's convolutions is written once, in :meth:`Subnet._run`, which takes the
function that computes one convolution (+ LeakyReLU). ``forward`` passes PyTorch's own; the fast CPU path
(:mod:`lpnet.models.fast`) passes fused oneDNN kernels; the cost model and the receptive field
(:mod:`lpnet.models.complexity`) pass one that only records which convolutions run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

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


def _add(fresh: Tensor, other: Tensor) -> Tensor:
    """``fresh + other``; in place on ``fresh`` (a convolution's new output) when no gradient is recorded,
    which saves a full-resolution feature map per addition: a 1504² window's inference peaks ~0.3 GB lower."""
    return fresh + other if torch.is_grad_enabled() else fresh.add_(other)


@dataclass(frozen=True)
class ConvShape:
    """A convolution's geometry without weights, built where a subnet would build an ``nn.Conv2d``: a
    subnet of these is a blueprint that :mod:`lpnet.models.complexity` traces to cost a configuration
    before any weight exists (describing a 16,000-wide subnet allocates nothing). Plain Python: no meta
    tensors, whose operations import torch's compiler and sympy (~1.5 s of a one-photo run)."""

    in_channels: int
    out_channels: int
    kernel_size: tuple[int, int]
    groups: int = 1
    dilation: tuple[int, int] = (1, 1)

    @classmethod
    def like_conv2d(
        cls, in_channels: int, out_channels: int, kernel_size: int, padding: int = 0
    ) -> ConvShape:
        """The shape ``nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding)`` would have."""
        return cls(in_channels, out_channels, (kernel_size, kernel_size))

    def num_params(self) -> int:
        """Weights and bias, as ``nn.Conv2d`` holds them."""
        k_h, k_w = self.kernel_size
        return k_h * k_w * (self.in_channels // self.groups) * self.out_channels + self.out_channels


# Builds one convolution: ``nn.Conv2d`` for a network, :meth:`ConvShape.like_conv2d` for a blueprint.
ConvFactory = Callable[..., "nn.Conv2d | ConvShape"]


class RecursiveBlock(nn.Module):
    """3×3 → LReLU → 1×1 → LReLU → 3×3 → LReLU, width ``f`` in and out."""

    def __init__(self, width: int, negative_slope: float, conv: ConvFactory = nn.Conv2d) -> None:
        super().__init__()
        self.conv1 = conv(width, width, 3, padding=1)
        self.conv2 = conv(width, width, 1)
        self.conv3 = conv(width, width, 3, padding=1)
        self.negative_slope = negative_slope

    @property
    def convs(self) -> tuple[nn.Conv2d, nn.Conv2d, nn.Conv2d]:
        """The block's convolutions in the order they run, each followed by the LeakyReLU."""
        return self.conv1, self.conv2, self.conv3

    def forward(self, x: Tensor) -> Tensor:
        for conv in self.convs:
            x = eager_conv(x, conv, self.negative_slope)
        return x


class Subnet(nn.Module):
    """One pyramid level's network: features, ``recursions`` blocks, back to ``channels`` plus the input.

    Args:
        width: number of feature maps ``f``.
        config: the network's settings (recursions, weight sharing, skip, slope, channels).
        conv: builds each convolution: ``nn.Conv2d``, or :meth:`ConvShape.like_conv2d` for a weightless
            blueprint (:meth:`blueprint`).
    """

    def __init__(self, width: int, config: LPNetConfig, conv: ConvFactory = nn.Conv2d) -> None:
        super().__init__()
        self.recursions = config.recursions
        self.residual_skip = config.residual_skip
        self.negative_slope = config.negative_slope
        self.head = conv(config.channels, width, 3, padding=1)
        num_blocks = min(1, config.recursions) if config.share_weights else config.recursions
        self.blocks = nn.ModuleList(
            RecursiveBlock(width, config.negative_slope, conv) for _ in range(num_blocks)
        )
        self.tail = conv(width, config.channels, 1)

    @classmethod
    def blueprint(cls, width: int, config: LPNetConfig) -> Subnet:
        """The subnet with :class:`ConvShape` in place of every convolution: its structure, no weights."""
        return cls(width, config, ConvShape.like_conv2d)

    def _run(self, band: Tensor, conv_fn: ConvFn) -> Tensor:
        """The subnet with ``conv_fn`` computing each convolution: the one statement of its structure."""
        first = conv_fn(band, self.head, self.negative_slope)
        features = first
        for step in range(self.recursions):
            # Rebinding ``features`` after every convolution frees each map as soon as it is used: at most
            # three full-resolution maps (first, input, output) are alive at once.
            for conv in self.blocks[step % len(self.blocks)].convs:
                features = conv_fn(features, conv, self.negative_slope)
            if self.residual_skip:
                features = _add(features, first)
        return _add(conv_fn(features, self.tail, None), band)

    def applied_convs(self) -> list[nn.Conv2d | ConvShape]:
        """The convolutions the subnet applies, in order, once per use (a shared block once per recursion).

        Traced from :meth:`_run` on a one-pixel image whose convolutions are only recorded (nothing is
        computed), so every figure derived from it (receptive field, MACs, parameters:
        :mod:`lpnet.models.complexity`) follows the structure.
        """
        applied: list[nn.Conv2d | ConvShape] = []

        def record(x: Tensor, conv: nn.Conv2d | ConvShape, slope: float | None) -> Tensor:
            applied.append(conv)
            return x.new_zeros((1, conv.out_channels, 1, 1))

        with torch.no_grad():
            self._run(torch.zeros(1, self.head.in_channels, 1, 1), record)
        return applied

    @property
    def radius(self) -> int:
        """How far (in its own level's pixels) one output pixel of the subnet sees."""
        return sum((c.kernel_size[0] - 1) // 2 * c.dilation[0] for c in self.applied_convs())

    def apply_convs(self, band: Tensor, conv_fn: ConvFn, max_rows: int | None = None) -> Tensor:
        """The subnet on ``band`` ``(B, C, H, W)``, each convolution computed by ``conv_fn``.

        Args:
            band: the level's input.
            conv_fn: computes one convolution and its LeakyReLU (:func:`eager_conv`, or the fast path's).
            max_rows: run in horizontal strips of at most this many rows, each with :attr:`radius` rows of
                context above and below that are cropped away: the same numbers, but only a strip's
                feature maps exist at once (a 1504² window's inference: ~0.9 GB → ~0.35 GB of maps).
        """
        rows = band.shape[-2]
        if max_rows is None or rows <= max_rows:
            return self._run(band, conv_fn)
        radius = self.radius
        out = torch.empty_like(band)
        for top in range(0, rows, max_rows):
            low, high = max(0, top - radius), min(rows, top + max_rows + radius)
            strip = self._run(band[..., low:high, :], conv_fn)
            kept = min(max_rows, rows - top)
            out[..., top : top + kept, :] = strip[..., top - low : top - low + kept, :]
        return out

    def forward(self, band: Tensor) -> Tensor:
        """``(B, C, H, W)`` band → ``(B, C, H, W)`` band plus the predicted residual."""
        return self._run(band, eager_conv)


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

    def apply_convs(self, x: Tensor, conv_fn: ConvFn, max_rows: int | None = None) -> list[Tensor]:
        """Every level's output, coarsest first, each subnet's convolutions computed by ``conv_fn``
        (in strips of at most ``max_rows`` rows: :meth:`Subnet.apply_convs`)."""
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise ValueError(f"LPNet expects (B, {self.channels}, H, W) images, got {tuple(x.shape)}")
        kernel = self.kernel.to(x.dtype)
        bands = laplacian_pyramid(x, self.num_levels, kernel)
        outputs: list[Tensor] = []
        for subnet, band in zip(self.subnets, bands):
            level = subnet.apply_convs(band, conv_fn, max_rows)
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
