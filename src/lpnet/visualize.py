"""Pictures of what LPNet does: before/after grids and pyramid levels, as ``(3, H, W)`` tensors in [0, 1]."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def centre_crop(x: Tensor, side: int) -> Tensor:
    """The central ``side × side`` window of a ``(C, H, W)`` image (the whole side where it is smaller)."""
    h, w = x.shape[-2:]
    top, left = max(0, (h - side) // 2), max(0, (w - side) // 2)
    return x[..., top : top + side, left : left + side]


def before_after_grid(triplets: Sequence[tuple[Tensor, Tensor, Tensor]], gap: int = 4) -> Tensor:
    """Rows of ``rainy | derained | clean``, one row per image, separated by white gaps.

    Args:
        triplets: ``(rainy, derained, clean)`` per row, each ``(3, H, W)`` in [0, 1] (rows may differ in
            size; narrower rows are padded with white on the right).
        gap: white pixels between panels and rows.

    Returns:
        ``(3, H', W')`` in [0, 1].
    """
    if not triplets:
        raise ValueError("before_after_grid needs at least one (rainy, derained, clean) triplet")
    rows = []
    for panels in triplets:
        h = panels[0].shape[-2]
        spacer = torch.ones(3, h, gap)
        rows.append(torch.cat([panels[0], spacer, panels[1].clamp(0, 1), spacer, panels[2]], dim=-1))
    width = max(row.shape[-1] for row in rows)
    padded = [F.pad(row, (0, width - row.shape[-1]), value=1.0) for row in rows]
    with_gaps = [part for row in padded for part in (row, torch.ones(3, gap, width))][:-1]
    return torch.cat(with_gaps, dim=-2)


def comparison_grid(rainy: Tensor, derained: Tensor, clean: Tensor, levels: list[Tensor]) -> Tensor:
    """One picture: ``rainy | derained | clean`` on top, every pyramid output (coarsest first) below.

    Args:
        rainy, derained, clean: ``(3, H, W)`` in [0, 1].
        levels: LPNet's outputs for this image, each ``(3, h, w)``; shown enlarged (nearest) to ``H × W``
            and tiled three per row under the comparison.

    Returns:
        ``(3, H', W')`` image in [0, 1].
    """
    h, w = rainy.shape[-2:]
    top = torch.cat([rainy, derained, clean], dim=-1)
    tiles = [F.interpolate(lv[None].clamp(0, 1), size=(h, w), mode="nearest")[0] for lv in levels]
    tiles += [torch.zeros_like(rainy)] * (-len(tiles) % 3)
    rows = [torch.cat(tiles[i : i + 3], dim=-1) for i in range(0, len(tiles), 3)]
    return torch.cat([top, *rows], dim=-2)
