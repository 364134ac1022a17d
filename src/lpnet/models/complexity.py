"""What an LPNet costs and how far it sees, derived from the network itself.

Every figure here comes from :meth:`lpnet.models.lpnet.Subnet.applied_convs`, a trace of the one statement
of a subnet's structure that records each convolution instead of computing it. So a change to the
architecture changes these figures too, and a configuration can be costed before any weight exists: its
subnets are traced as blueprints (:meth:`~lpnet.models.lpnet.Subnet.blueprint`, convolution shapes without
weights, plain arithmetic), which is how the checkpoint loader refuses absurd networks before building
them (:func:`architecture_cost`) in a few milliseconds and without importing torch's compiler.

Conventions (the ones ``torch.utils.flop_counter`` and most papers use):

- A MAC is one multiplication and one addition of a convolution; 1 MAC = 2 FLOPs. Biases, activations,
  the skip additions and the per-level additions/ReLUs are not counted (they are < 1 % here).
- Every convolution is counted at its own level's resolution, and a subnet's recursive block once per
  recursion (weight sharing saves parameters, not compute).
- The fixed pyramid (``pyramid=True``, the default) is included: the ``n − 1`` depthwise 5×5 stride-2
  blurs of the Laplacian split (counted per output pixel), and the ``2 (n − 1)`` depthwise transposed 5×5
  convolutions (``n − 1`` in the split, ``n − 1`` rebuilding the outputs), counted per *input* pixel as
  :func:`torch.nn.functional.conv_transpose2d` computes them (the cropped border included).

For the official model (widths 1, 2, 4, 8, 16; T = 5) on a 481×321 image this gives ≈ 26.6 kMAC per
pixel (≈ 53 kFLOP per pixel, the figure quoted for LPNet), of which the finest subnet alone is 24.8 kMAC
and the pyramid ≈ 0.2 kMAC.
"""

from __future__ import annotations

from dataclasses import dataclass

from lpnet.config import LPNetConfig
from lpnet.models.lpnet import LPNet, Subnet
from lpnet.models.pyramid import BINOMIAL_1D

# The images of Rain100H/L and of the official samples: the size costs are usually quoted at.
REFERENCE_SIZE = (321, 481)
# Taps of the pyramid's binomial kernel (5×5, one per channel) and its reach from the centre.
PYRAMID_TAPS = len(BINOMIAL_1D) ** 2
PYRAMID_REACH = len(BINOMIAL_1D) // 2


def subnet_macs_per_pixel(subnet: Subnet) -> int:
    """MACs of one subnet per pixel of its level: ``Σ k_h k_w (C_in / groups) C_out`` over its convs."""
    return sum(
        c.kernel_size[0] * c.kernel_size[1] * (c.in_channels // c.groups) * c.out_channels
        for c in subnet.applied_convs()
    )


def _structure(net: LPNet | LPNetConfig) -> tuple[LPNetConfig, list[Subnet]]:
    """The resolved config and the subnets, coarsest first: ``net``'s own, or a config's blueprints
    (:meth:`Subnet.blueprint`: shapes only, nothing allocated whatever the widths)."""
    if isinstance(net, LPNet):
        return net.config, list(net.subnets)
    if isinstance(net, LPNetConfig):
        config = net.resolved()
        return config, [Subnet.blueprint(width, config) for width in config.widths]
    raise TypeError(f"expected an LPNet or an LPNetConfig, got {type(net).__name__}")


def level_sizes(height: int, width: int, num_levels: int) -> list[tuple[int, int]]:
    """``(h, w)`` of every pyramid level, coarsest first: ``ceil(size / 2^k)`` as the TF-'SAME' pyramid."""
    sizes = [(height, width)]
    for _ in range(num_levels - 1):
        h, w = sizes[-1]
        sizes.append(((h + 1) // 2, (w + 1) // 2))
    return sizes[::-1]


def count_macs(net: LPNet | LPNetConfig, height: int, width: int, *, pyramid: bool = True) -> int:
    """Multiply–accumulates of one forward pass on a ``(1, C, height, width)`` image.

    Args:
        net: the network, or its :class:`~lpnet.config.LPNetConfig`.
        height: image height in pixels, ``>= 1``.
        width: image width in pixels, ``>= 1``.
        pyramid: add the fixed blur/upsampling convolutions of the pyramid (see the module docstring).

    Returns:
        MACs for a batch of one (multiply by 2 for FLOPs, by ``B`` for a batch).

    Raises:
        TypeError: ``net`` is neither an :class:`LPNet` nor an :class:`LPNetConfig`.
        ValueError: a side is smaller than 1.
    """
    config, subnets = _structure(net)
    if height < 1 or width < 1:
        raise ValueError(f"count_macs needs an image of at least 1×1 pixels, got {height}×{width}")
    sizes = level_sizes(height, width, config.num_levels)
    total = sum(subnet_macs_per_pixel(subnet) * h * w for subnet, (h, w) in zip(subnets, sizes))
    if pyramid:
        # Each coarser level is one strided blur (per output pixel) and two upsamplings (per input pixel).
        total += sum(3 * PYRAMID_TAPS * config.channels * h * w for h, w in sizes[:-1])
    return total


def macs_per_pixel(
    net: LPNet | LPNetConfig, height: int = REFERENCE_SIZE[0], width: int = REFERENCE_SIZE[1]
) -> float:
    """MACs per input pixel at ``height × width`` (default 321×481, the Rain100 image size).

    Nearly size-independent: levels round up, so small images cost slightly more per pixel.
    """
    return count_macs(net, height, width) / (height * width)


def count_params(net: LPNet | LPNetConfig, trainable_only: bool = False) -> int:
    """Number of parameters (7,548 for the official model); ``trainable_only`` skips frozen ones (a
    config's are all trainable)."""
    if isinstance(net, LPNet):
        return sum(p.numel() for p in net.parameters() if p.requires_grad or not trainable_only)
    _, subnets = _structure(net)
    # A shared block is applied once per recursion but holds its weights once.
    distinct = {id(conv): conv for subnet in subnets for conv in subnet.applied_convs()}
    return sum(conv.num_params() for conv in distinct.values())


def receptive_field_radius(net: LPNet | LPNetConfig) -> int:
    """The largest distance, in input pixels, at which an input pixel can change an output pixel.

    Level ``k`` (0 = finest, scale ``s = 2^k``) sees ``r_k * s`` through its subnet, plus the 5-tap blurs:
    ``2 (s - 1)`` px to build the Gaussian level and the same back up through the reconstruction; a
    band-pass level also subtracts the upsampled next level, which costs ``2 s + 2 s`` more. The official
    model: ``max(16·11 + 30 + 30, 8·11 + 46 + 14, ...) = 236`` (the tests check it against autograd).

    Returns:
        The radius ``R``: output pixel ``(i, j)`` depends only on inputs within ``|di|, |dj| <= R``.
    """
    config, subnets = _structure(net)
    top = config.num_levels - 1
    reach = PYRAMID_REACH
    radius = 0
    for index, subnet in enumerate(subnets):
        k = top - index
        scale = 2**k
        down = reach * (scale - 1) if k == top else reach * (2 * scale - 1) + reach * scale
        radius = max(radius, down + subnet.radius * scale + reach * (scale - 1))
    return radius


# What one float32 feature map costs per pixel of the finest level, in bytes; a forward pass keeps a few
# maps of the widest subnet alive at once (measured: the official model's eager inference peaks at
# ~0.6 GB per megapixel, i.e. ~10 maps of 16 channels).
_LIVE_MAPS = 10


@dataclass(frozen=True)
class ArchitectureCost:
    """A network's size before it is built: parameters, MACs per pixel, inference memory per megapixel."""

    params: int
    macs_per_pixel: float
    bytes_per_megapixel: int


def architecture_cost(config: LPNetConfig) -> ArchitectureCost:
    """Cost of the LPNet ``config`` describes, from its blueprint (nothing is allocated, no weight built).

    The memory figure is an estimate of float32 inference: ``_LIVE_MAPS`` maps of the widest subnet's
    width at full resolution.
    """
    widest = max(config.resolved().widths)
    return ArchitectureCost(
        params=count_params(config),
        macs_per_pixel=macs_per_pixel(config),
        bytes_per_megapixel=_LIVE_MAPS * widest * 4 * 1_000_000,
    )
