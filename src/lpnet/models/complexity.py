"""How much an LPNet costs: parameters and multiply–accumulates (MACs), counted analytically.

Conventions (the ones ``torch.utils.flop_counter`` and most papers use):

- A MAC is one multiplication and one addition of a convolution; 1 MAC = 2 FLOPs. Biases, activations,
  the skip additions and the per-level additions/ReLUs are not counted (they are < 1 % here).
- Every convolution is counted at its own level's resolution, and a subnet's recursive block once per
  recursion (weight sharing saves parameters, not compute).
- The fixed pyramid (``pyramid=True``, the default) is included: the ``n − 1`` depthwise 5×5 stride-2
  blurs of the Laplacian split (counted per output pixel), and the ``2 (n − 1)`` depthwise transposed 5×5
  convolutions (``n − 1`` in the split, ``n − 1`` rebuilding the outputs), counted per *input* pixel as
  :func:`torch.nn.functional.conv_transpose2d` computes them (the cropped border included).

For the official model (widths 1, 2, 4, 8, 16; T = 5) on a 481×321 image this gives ≈ 26.5 kMAC per
pixel (≈ 53 kFLOP per pixel, the figure quoted for LPNet), of which the finest subnet alone is 24.8 kMAC
and the pyramid ≈ 0.2 kMAC.
"""

from __future__ import annotations

from lpnet.models.lpnet import LPNet

# The images of Rain100H/L and of the official samples: the size costs are usually quoted at.
REFERENCE_SIZE = (321, 481)
# Taps of the pyramid's binomial kernel (5×5, one per channel).
PYRAMID_TAPS = 25


def subnet_macs_per_pixel(width: int, recursions: int, channels: int = 3) -> int:
    """MACs of one :class:`~lpnet.models.lpnet.Subnet` per pixel of its level.

    Head 3×3 (``C → f``), ``recursions`` × [3×3, 1×1, 3×3] (``f → f``), tail 1×1 (``f → C``):
    ``9 C f + recursions · 19 f² + C f``.
    """
    return 9 * channels * width + recursions * 19 * width * width + channels * width


def level_sizes(height: int, width: int, num_levels: int) -> list[tuple[int, int]]:
    """``(h, w)`` of every pyramid level, coarsest first: ``ceil(size / 2^k)`` as the TF-'SAME' pyramid."""
    sizes = [(height, width)]
    for _ in range(num_levels - 1):
        h, w = sizes[-1]
        sizes.append(((h + 1) // 2, (w + 1) // 2))
    return sizes[::-1]


def count_macs(net: LPNet, height: int, width: int, *, pyramid: bool = True) -> int:
    """Multiply–accumulates of one forward pass of ``net`` on a ``(1, C, height, width)`` image.

    Args:
        net: the network (only its widths, recursions and channels are read).
        height: image height in pixels, ``>= 1``.
        width: image width in pixels, ``>= 1``.
        pyramid: add the fixed blur/upsampling convolutions of the pyramid (see the module docstring).

    Returns:
        MACs for a batch of one (multiply by 2 for FLOPs, by ``B`` for a batch).

    Raises:
        TypeError: ``net`` is not an :class:`LPNet`.
        ValueError: a side is smaller than 1.
    """
    if not isinstance(net, LPNet):
        raise TypeError(f"count_macs expects an LPNet, got {type(net).__name__}")
    if height < 1 or width < 1:
        raise ValueError(f"count_macs needs an image of at least 1×1 pixels, got {height}×{width}")
    channels = net.channels
    sizes = level_sizes(height, width, net.num_levels)
    total = sum(
        subnet_macs_per_pixel(subnet.head.out_channels, subnet.recursions, channels) * h * w
        for subnet, (h, w) in zip(net.subnets, sizes)
    )
    if pyramid:
        # Each coarser level is one strided blur (per output pixel) and two upsamplings (per input pixel).
        total += sum(3 * PYRAMID_TAPS * channels * h * w for h, w in sizes[:-1])
    return total


def macs_per_pixel(net: LPNet, height: int = REFERENCE_SIZE[0], width: int = REFERENCE_SIZE[1]) -> float:
    """MACs per input pixel at ``height × width`` (default 321×481, the Rain100 image size).

    Nearly size-independent: levels round up, so small images cost slightly more per pixel.
    """
    return count_macs(net, height, width) / (height * width)


def count_params(net: LPNet, trainable_only: bool = False) -> int:
    """Number of parameters (7,548 for the official model); ``trainable_only`` skips frozen ones."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad or not trainable_only)
