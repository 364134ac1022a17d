"""The adaptive default: per image, the LPNet for the rain it sees.

No single LPNet-sized model is right for every photo: one trained on downpours over-corrects drizzle and
changes rain-free photos (it learns to take light away), one trained on drizzle leaves most of a downpour.
:class:`RainRouter` measures how much rain an image holds and hands it to the expert for that strength.

The rain-strength estimate is the rain a *probe* model would remove: rain only ever adds light (real
Rain100L/H pairs: rainy >= clean in every channel of every pixel), so the mean of the positive part of
``grey(x − probe(x))`` is small on a rain-free photo and grows with the rain. It is computed on a preview of
at most ``preview_side`` pixels per side (a box downscale by a whole factor): the benchmark images
(481×321) are measured as they are, and a 40-megapixel photo costs one small extra network call.

The thresholds are lpnet's settings, chosen on the shared 51-pair real validation sets (docs/results.md,
which also shows where they misjudge other rain); a plain ``nn.Module`` with no Lightning or Hydra.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lpnet.models.lpnet import LPNet

# The longest preview side: Rain100L/H images (481 px) are measured whole.
PREVIEW_SIDE = 512


def preview_factor(height: int, width: int, preview_side: int = PREVIEW_SIDE) -> int:
    """The whole downscale factor that brings ``max(height, width)`` to at most ``preview_side``."""
    return max(1, math.ceil(max(height, width) / preview_side))


def residual_strength(x: Tensor, derained: Tensor) -> Tensor:
    """Mean positive grey residual ``mean(max(mean_c(x − derained), 0))`` per image.

    Args:
        x: rainy images ``(B, 3, H, W)`` in [0, 1].
        derained: the probe's output for ``x``, same shape.

    Returns:
        ``(B,)`` float tensor, in [0, 1].
    """
    return (x - derained.clamp(0, 1)).mean(1).clamp_min(0).mean((-2, -1))


class RainRouter(nn.Module):
    """Per image, one of several LPNets (light to heavy) chosen by a rain-strength estimate.

    Args:
        experts: named LPNets, ordered from the lightest rain they suit to the heaviest.
        probe: the expert whose removed rain measures the strength (:func:`residual_strength`).
        thresholds: ``len(experts) - 1`` increasing strengths; an image whose strength is below
            ``thresholds[i]`` (and not below any earlier one) goes to expert ``i``, the rest to the last.
        preview_side: longest side of the preview the strength is measured on.

    Raises:
        ValueError: no experts, an unknown probe, or thresholds that do not fit the experts.

    Shape:
        ``derain``: ``(B, 3, H, W)`` in [0, 1] → ``(B, 3, H, W)``.
    """

    def __init__(
        self,
        experts: Mapping[str, LPNet],
        probe: str,
        thresholds: Sequence[float],
        preview_side: int = PREVIEW_SIDE,
    ) -> None:
        super().__init__()
        if not experts:
            raise ValueError("a RainRouter needs at least one expert")
        if probe not in experts:
            raise ValueError(f"probe {probe!r} is not one of the experts {list(experts)}")
        thresholds = [float(t) for t in thresholds]
        if len(thresholds) != len(experts) - 1 or thresholds != sorted(thresholds):
            raise ValueError(
                f"thresholds must be {len(experts) - 1} increasing strengths (one between each two experts), "
                f"got {thresholds}"
            )
        self.experts = nn.ModuleDict(dict(experts))
        self.probe = probe
        self.thresholds = thresholds
        self.preview_side = int(preview_side)

    @property
    def names(self) -> list[str]:
        return list(self.experts)

    def preview(self, x: Tensor) -> Tensor:
        """``x`` box-downscaled by :func:`preview_factor`: ``(B, 3, H, W)`` → ``(B, 3, H // k, W // k)``."""
        k = preview_factor(*x.shape[-2:], self.preview_side)
        return x if k == 1 else F.avg_pool2d(x, k)

    @torch.no_grad()
    def strength(self, preview: Tensor, derain: Callable[[Tensor], Tensor] | None = None) -> Tensor:
        """The rain strength of each image of a preview batch ``(B, 3, h, w)`` → ``(B,)``.

        ``derain`` computes the probe's output (default: the probe's own ``derain``; the Derainer passes
        its fast path, which gives the same numbers).
        """
        return residual_strength(preview, (derain or self.experts[self.probe].derain)(preview))

    def choose(self, strength: Tensor) -> list[str]:
        """The expert's name for each strength."""
        bounds = torch.tensor(self.thresholds, dtype=torch.float64)
        picks = torch.bucketize(strength.double().cpu(), bounds, right=True)
        return [self.names[int(i)] for i in picks]

    @torch.no_grad()
    def derain(self, x: Tensor) -> Tensor:
        """Each image through the expert its strength chooses."""
        names = self.choose(self.strength(self.preview(x)))
        return torch.cat([self.experts[n].derain(x[i : i + 1]) for i, n in enumerate(names)])

    def extra_repr(self) -> str:
        return f"probe={self.probe}, thresholds={self.thresholds}, preview_side={self.preview_side}"
