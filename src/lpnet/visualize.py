"""Pictures of what LPNet does: before/after grids and pyramid levels.

The grids are ``(3, H, W)`` tensors in [0, 1] (write them with :func:`lpnet.io.write_image`); the plots are
matplotlib ``Figure`` objects made without pyplot (save with :func:`lpnet.io.save_figure`; notebooks display
them).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

if TYPE_CHECKING:  # matplotlib is imported by the plots only: training imports this module too
    from matplotlib.figure import Figure


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


def band_image(band: Tensor, scale: float) -> Tensor:
    """A signed Laplacian band as a picture: 0 is mid-grey, ``-scale`` black and ``+scale`` white.

    Args:
        band: ``(C, H, W)`` band-pass values (about ``[-1, 1]``; most near 0).
        scale: the magnitude shown at full contrast (larger values saturate); > 0.

    Returns:
        ``(C, H, W)`` in [0, 1].
    """
    if not scale > 0:
        raise ValueError(f"band_image needs a positive scale, got {scale}")
    return (0.5 + 0.5 * band / scale).clamp(0, 1)


def near_zero_fraction(levels: Sequence[Tensor], threshold: float = 0.02) -> list[float]:
    """Per pyramid level, the fraction of values with ``|v| < threshold``: how sparse each band is.

    Args:
        levels: tensors of any shape (e.g. :func:`lpnet.laplacian_pyramid`'s, coarsest first).
        threshold: "near zero", in image units ([0, 1] images: 0.02 ≈ 5/255).

    Returns:
        One fraction in [0, 1] per level, in the order given.
    """
    return [float((level.abs() < threshold).double().mean()) for level in levels]


def _robust_max(tensors: Sequence[Tensor], quantile: float = 99.5) -> float:
    """The ``quantile``-th percentile of ``|values|`` over all tensors (outliers saturate, not dim)."""
    values = np.concatenate([t.detach().abs().float().cpu().numpy().ravel() for t in tensors])
    return max(float(np.percentile(values, quantile)), 1e-6)


def _hwc(x: Tensor) -> np.ndarray:
    if x.dim() != 3 or x.shape[0] not in (1, 3):
        raise ValueError(f"expected a (C, H, W) level with 1 or 3 channels, got {tuple(x.shape)}")
    return x.detach().float().cpu().permute(1, 2, 0).numpy()


def plot_pyramids(
    pyramids: Mapping[str, Sequence[Tensor]], signed_rows: Collection[str] = (), panel: float = 2.6
) -> Figure:
    """One row per pyramid, one column per level (coarsest left), as in the paper's Fig. 5.

    The first level of a Laplacian pyramid is a small image and is drawn as one; every other level is a
    signed band drawn by :func:`band_image` with one scale per column (the 99.5th percentile of ``|v|``
    over the rows), so the rows of a column compare directly. Rows named in ``signed_rows`` (e.g. the
    pyramid of ``rainy - derained``) draw their first level as a band too.

    Args:
        pyramids: ``{row title: levels}``; every row has the same number of ``(C, H, W)`` levels (``C`` 1
            or 3), the first in [0, 1] unless the row is signed.
        signed_rows: titles of rows whose every level is signed.
        panel: width of one panel in inches.

    Returns:
        A matplotlib ``Figure`` (not registered with pyplot; save it or display it).
    """
    if not pyramids:
        raise ValueError("plot_pyramids needs at least one pyramid")
    counts = {len(levels) for levels in pyramids.values()}
    if len(counts) != 1:
        raise ValueError(f"every pyramid needs the same number of levels, got {sorted(counts)}")
    from matplotlib.figure import Figure

    n = counts.pop()
    names = list(pyramids)
    finest = next(iter(pyramids.values()))[-1]
    aspect = finest.shape[-2] / finest.shape[-1]  # panels take the images' shape: no blank bands
    fig = Figure(figsize=(panel * n, (panel * aspect + 0.3) * len(names) + 0.1), layout="constrained")
    axes = fig.subplots(len(names), n, squeeze=False)
    for col in range(n):
        bands = [pyramids[name][col] for name in names if col > 0 or name in signed_rows]
        scale = _robust_max(bands) if bands else 1.0
        for row, name in enumerate(names):
            level = pyramids[name][col]
            signed = col > 0 or name in signed_rows
            ax = axes[row, col]
            shown = band_image(level, scale) if signed else level.clamp(0, 1)
            ax.imshow(_hwc(shown))  # matplotlib's default: nearest when enlarging, antialiased when shrinking
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                kind = "low-pass" if col == 0 else "band"
                ax.set_title(f"level {col} ({kind}) {level.shape[-2]}×{level.shape[-1]}", fontsize=9)
            if col == 0:
                ax.set_ylabel(name, fontsize=10)
            if signed:
                box = {"facecolor": "black", "alpha": 0.6, "pad": 1.5, "linewidth": 0}
                ax.text(0.02, 0.03, f"±{scale:.3f}", transform=ax.transAxes, fontsize=7, color="w", bbox=box)
    return fig


def plot_level_histograms(
    pyramids: Mapping[str, Sequence[Tensor]],
    threshold: float = 0.02,
    band_range: float = 0.3,
    bins: int = 121,
    panel: float = 3.0,
) -> Figure:
    """Histograms of every level's values (log counts), one panel per level, a line per pyramid.

    The legend gives each pyramid's :func:`near_zero_fraction` for that level; the shaded strip is
    ``|v| < threshold``. The first level (the low-pass image) spans [0, 1], the bands
    ``[-band_range, band_range]``; values beyond the range count in the end bins.

    Args:
        pyramids: ``{name: levels}``, each a Laplacian pyramid coarsest first (the same number of levels).
        threshold: the "near zero" bound of :func:`near_zero_fraction`.
        band_range: the x-range of the band panels.
        bins: histogram bins per panel.
        panel: panel width in inches.

    Returns:
        A matplotlib ``Figure``.
    """
    if not pyramids:
        raise ValueError("plot_level_histograms needs at least one pyramid")
    n = len(next(iter(pyramids.values())))
    if any(len(levels) != n for levels in pyramids.values()):
        raise ValueError("every pyramid needs the same number of levels")
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullLocator

    fractions = {name: near_zero_fraction(levels, threshold) for name, levels in pyramids.items()}
    fig = Figure(figsize=(panel * n, panel * 0.9), layout="constrained")
    axes = fig.subplots(1, n, squeeze=False)[0]
    for col, ax in enumerate(axes):
        lo, hi = (0.0, 1.0) if col == 0 else (-band_range, band_range)
        edges = np.linspace(lo, hi, bins + 1)
        for name, levels in pyramids.items():
            values = levels[col].detach().float().cpu().numpy().ravel()
            counts, _ = np.histogram(np.clip(values, lo, hi), bins=edges)
            density = counts / max(values.size, 1)
            label = f"{name}: {fractions[name][col]:.2f}"
            ax.stairs(np.where(density > 0, density, np.nan), edges, label=label)
        ax.axvspan(-threshold, threshold, color="grey", alpha=0.2, linewidth=0)
        ax.set_yscale("log")
        ax.yaxis.set_minor_locator(NullLocator())  # decades suffice; minor log ticks are slow to lay out
        ax.set_xlim(lo, hi)
        ax.set_title(f"level {col} ({'low-pass' if col == 0 else 'band'})", fontsize=9)
        ax.set_xlabel("value", fontsize=8)
        ax.legend(fontsize=7, title=f"|v| < {threshold}", title_fontsize=7)
    axes[0].set_ylabel("fraction of values")
    fig.suptitle("values per Laplacian level (coarsest left): the finer bands concentrate at 0")
    return fig
