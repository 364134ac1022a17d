"""Multi-level training loss: every pyramid output against the Gaussian pyramid of the clean image.

The paper's loss (and the official code's) is

    L = Σ_{all levels} L1(out_n, G_n(clean)) + Σ_{2 finest levels} (1 − SSIM(out_n, G_n(clean))) / 2

with an 11×11 Gaussian window (σ = 1.5) and 'valid' filtering, all weights 1. The variants the paper
contrasts (pure L2, pure L1, SSIM on every level) are the same class with other arguments; see
``conf/loss/*.yaml``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from kornia.losses import ssim_loss
from torch import Tensor, nn

from lpnet.models.pyramid import gaussian_pyramid

PIXEL_LOSSES = {"l1": F.l1_loss, "l2": F.mse_loss}
SSIM_WINDOW = 11


def level_ssim_loss(pred: Tensor, target: Tensor) -> Tensor:
    """``(1 − SSIM) / 2`` with an 11×11 Gaussian window, σ 1.5, 'valid' filtering (the official loss).

    Inputs are ``(B, C, H, W)`` in [0, 1]. A level smaller than the window (only reachable by putting SSIM
    on the coarse levels of small crops) uses the largest odd window that fits instead of failing.
    """
    side = min(pred.shape[-2:])
    window = SSIM_WINDOW if side >= SSIM_WINDOW else max(1, side - (1 - side % 2))
    return ssim_loss(pred, target, window, max_val=1.0, padding="valid")


class MultiLevelLoss(nn.Module):
    """Weighted sum of a pixel loss on every level and an SSIM loss on the finest levels.

    Args:
        pixel: ``"l1"``, ``"l2"`` or ``None`` (no pixel term).
        pixel_weight: weight of the pixel term on each level.
        ssim_levels: how many of the finest levels get the SSIM term (2 in the paper; 0 turns it off;
            a number ≥ the level count means every level).
        ssim_weight: weight of the SSIM term on each of those levels.
        level_weights: optional per-level multipliers, coarsest first (default all 1).

    Shape:
        ``forward(outputs, clean)``: ``outputs`` is LPNet's list of ``n`` levels (coarsest first), ``clean``
        is ``(B, C, H, W)`` in [0, 1]. Returns ``(total, terms)`` where ``terms`` maps names like
        ``"level4/l1"`` and ``"level4/ssim"`` (levels numbered 0 = coarsest) to detached scalars.
    """

    def __init__(
        self,
        pixel: str | None = "l1",
        pixel_weight: float = 1.0,
        ssim_levels: int = 2,
        ssim_weight: float = 1.0,
        level_weights: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        if pixel is not None and pixel not in PIXEL_LOSSES:
            raise ValueError(f"loss.pixel must be one of {sorted(PIXEL_LOSSES)} or null, got {pixel!r}")
        if ssim_levels < 0:
            raise ValueError(f"loss.ssim_levels must be >= 0, got {ssim_levels}")
        if pixel is None and ssim_levels == 0:
            raise ValueError("loss has no terms: set loss.pixel or loss.ssim_levels > 0")
        self.pixel = pixel
        self.pixel_weight = pixel_weight
        self.ssim_levels = ssim_levels
        self.ssim_weight = ssim_weight
        self.level_weights = list(level_weights) if level_weights is not None else None

    def forward(self, outputs: Sequence[Tensor], clean: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        num_levels = len(outputs)
        weights = self.level_weights or [1.0] * num_levels
        if len(weights) != num_levels:
            raise ValueError(f"loss.level_weights has {len(weights)} entries for {num_levels} levels")
        targets = gaussian_pyramid(clean, num_levels)
        total = clean.new_zeros(())
        terms: dict[str, Tensor] = {}
        for level, (out, target, weight) in enumerate(zip(outputs, targets, weights)):
            if self.pixel is not None:
                value = PIXEL_LOSSES[self.pixel](out, target)
                total = total + weight * self.pixel_weight * value
                terms[f"level{level}/{self.pixel}"] = value.detach()
            if level >= num_levels - self.ssim_levels:
                value = level_ssim_loss(out, target)
                total = total + weight * self.ssim_weight * value
                terms[f"level{level}/ssim"] = value.detach()
        return total, terms
