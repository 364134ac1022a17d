"""The adaptive default: per image, the LPNet (or the blend of two) for the rain it sees.

No single LPNet-sized model is right for every photo: one trained on downpours over-corrects drizzle and
changes rain-free photos (it learns to take light away), one trained on drizzle leaves most of a downpour.
:class:`RainRouter` measures the rain an image holds and hands it to the experts for it. Two ways to measure:

- a **gauge** (:class:`lpnet.models.gauge.RainGauge`, what ``lpnet:auto`` reads): a small network trained on
  lpnet's synthetic rain of every kind reads the rain's *presence* (the share of the image where rain is
  seen) and *strength* (mean light it adds). The presence sets how much of the rain experts' output the
  image gets: none below ``presence[0]`` (the first expert alone, which leaves rain-free photos as they
  are), all of it from ``presence[1]`` on, a blend between; the strength picks which rain expert
  (``thresholds`` between the experts after the first).
- a **probe** (earlier router files): the rain a probe expert would remove, the mean positive part of
  ``grey(x − probe(x))`` (rain only ever adds light), bucketed by ``thresholds`` into one expert.

Either is computed on a preview of at most ``preview_side`` pixels per side (a box downscale by a whole
factor: :func:`box_preview`), so a 40-megapixel photo costs one small extra network call. The side belongs
to the measure: a gauge's is :data:`lpnet.models.gauge.PREVIEW_SIDE` (what it was trained to read), a
probe's :data:`PROBE_PREVIEW_SIDE`. A plain ``nn.Module``: no Lightning or
Hydra.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lpnet.models.gauge import PREVIEW_SIDE as GAUGE_PREVIEW_SIDE
from lpnet.models.gauge import RainGauge
from lpnet.models.lpnet import LPNet

# A probe's longest preview side: Rain100L/H images (481 px) are measured whole.
PROBE_PREVIEW_SIDE = 512


def preview_factor(height: int, width: int, preview_side: int) -> int:
    """The whole downscale factor that brings ``max(height, width)`` to at most ``preview_side``."""
    return max(1, math.ceil(max(height, width) / preview_side))


def box_preview(x: Tensor, preview_side: int) -> Tensor:
    """``x`` box-downscaled by :func:`preview_factor`: ``(B, 3, H, W)`` → ``(B, 3, H // k, W // k)``."""
    k = preview_factor(*x.shape[-2:], preview_side)
    return x if k == 1 else F.avg_pool2d(x, k)


def residual_strength(x: Tensor, derained: Tensor) -> Tensor:
    """Mean positive grey residual ``mean(max(mean_c(x − derained), 0))`` per image.

    Args:
        x: rainy images ``(B, 3, H, W)`` in [0, 1].
        derained: the probe's output for ``x``, same shape.

    Returns:
        ``(B,)`` float tensor, in [0, 1].
    """
    return (x - derained.clamp(0, 1)).mean(1).clamp_min(0).mean((-2, -1))


def presence_share(presence: Tensor, low: float, high: float) -> Tensor:
    """The rain experts' share of the output for a gauge's ``presence`` ``(B,)``: 0 up to ``low``, 1 from
    ``high``, linear between. Returns ``(B,)`` in [0, 1]."""
    return ((presence - low) / (high - low)).clamp(0, 1)


class RainRouter(nn.Module):
    """Per image, one of several LPNets (light to heavy), or a blend of the first and a rain expert, chosen
    by a measure of its rain (see the module doc).

    Args:
        experts: named LPNets, ordered from the lightest rain they suit to the heaviest.
        probe: with no gauge, the expert whose removed rain measures the strength (:func:`residual_strength`).
        thresholds: increasing strengths between consecutive experts: with a probe ``len(experts) - 1``
            (an image whose strength is below ``thresholds[i]``, and not below an earlier one, goes to
            expert ``i``, the rest to the last); with a gauge ``len(experts) - 2``, between the rain experts.
        preview_side: longest side of the preview the rain is measured on (None: the measure's own, the
            gauge's :data:`~lpnet.models.gauge.PREVIEW_SIDE` or :data:`PROBE_PREVIEW_SIDE`).
        gauge: the rain gauge that measures instead of a probe.
        presence: with a gauge, ``[low, high]``: the rain experts' share of the output grows from 0 at a
            presence of ``low`` to 1 at ``high``.

    Raises:
        ValueError: no experts, an unknown probe, a probe and a gauge, or thresholds or presence that do not
            fit the experts.

    Shape:
        ``derain``: ``(B, 3, H, W)`` in [0, 1] → ``(B, 3, H, W)``.
    """

    def __init__(
        self,
        experts: Mapping[str, LPNet],
        probe: str | None = None,
        thresholds: Sequence[float] = (),
        preview_side: int | None = None,
        gauge: RainGauge | None = None,
        presence: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        if not experts:
            raise ValueError("a RainRouter needs at least one expert")
        if (gauge is None) == (probe is None):
            raise ValueError("a RainRouter measures the rain with a probe expert or with a gauge: give one")
        if probe is not None and probe not in experts:
            raise ValueError(f"probe {probe!r} is not one of the experts {list(experts)}")
        thresholds = [float(t) for t in thresholds]
        between = len(experts) - (1 if gauge is None else 2)
        if len(thresholds) != max(between, 0) or thresholds != sorted(thresholds):
            raise ValueError(
                f"thresholds must be {max(between, 0)} increasing strengths (one between each two "
                f"{'rain ' if gauge is not None else ''}experts), got {thresholds}"
            )
        if gauge is not None:
            presence = [float(p) for p in presence or ()]
            if len(experts) < 2 or len(presence) != 2 or not 0 <= presence[0] < presence[1] <= 1:
                raise ValueError(
                    "a gauge's router needs a first expert and at least one rain expert, and presence "
                    f"[low, high] with 0 <= low < high <= 1; got {list(experts)} and {presence}"
                )
        self.experts = nn.ModuleDict(dict(experts))
        self.probe = probe
        self.gauge = gauge
        self.presence = presence
        self.thresholds = thresholds
        if preview_side is None:
            preview_side = PROBE_PREVIEW_SIDE if gauge is None else GAUGE_PREVIEW_SIDE
        self.preview_side = int(preview_side)

    @property
    def names(self) -> list[str]:
        return list(self.experts)

    def preview(self, x: Tensor) -> Tensor:
        """``x`` as the measure reads it: :func:`box_preview` at ``preview_side``."""
        return box_preview(x, self.preview_side)

    @torch.no_grad()
    def strength(self, preview: Tensor, derain: Callable[[Tensor], Tensor] | None = None) -> Tensor:
        """The rain strength of each image of a preview batch ``(B, 3, h, w)`` → ``(B,)``: the gauge's, or
        the rain the probe removes (``derain`` computes the probe's output; default its own ``derain``, the
        Derainer passes its fast path, which gives the same numbers)."""
        if self.gauge is not None:
            return self.gauge.read(preview).strength
        return residual_strength(preview, (derain or self.experts[self.probe].derain)(preview))

    def choose(self, strength: Tensor) -> list[str]:
        """The expert's name for each strength (with a gauge: the rain expert's)."""
        names = self.names if self.gauge is None else self.names[1:]
        bounds = torch.tensor(self.thresholds, dtype=torch.float64)
        picks = torch.bucketize(strength.double().cpu(), bounds, right=True)
        return [names[int(i)] for i in picks]

    @torch.no_grad()
    def mixture(
        self, preview: Tensor, derain: Callable[[Tensor], Tensor] | None = None
    ) -> list[dict[str, float]]:
        """Each image's experts and their shares of its output, ``{name: weight}`` summing to 1, from a
        preview batch ``(B, 3, h, w)`` (``derain``: the probe's, as for :meth:`strength`)."""
        if self.gauge is None:
            return [{name: 1.0} for name in self.choose(self.strength(preview, derain))]
        reading = self.gauge.read(preview)
        shares = presence_share(reading.presence, *self.presence).tolist()
        first = self.names[0]
        return [
            {first: 1.0} if share == 0 else {rain: 1.0} if share == 1 else {first: 1 - share, rain: share}
            for share, rain in zip(shares, self.choose(reading.strength))
        ]

    @torch.no_grad()
    def derain(self, x: Tensor) -> Tensor:
        """Each image through the experts its rain chooses, blended by their shares."""
        parts = []
        for i, weights in enumerate(self.mixture(self.preview(x))):
            image = x[i : i + 1]
            parts.append(sum(w * self.experts[name].derain(image) for name, w in weights.items()))
        return torch.cat(parts)

    def extra_repr(self) -> str:
        measure = f"probe={self.probe}" if self.gauge is None else f"gauge, presence={self.presence}"
        return f"{measure}, thresholds={self.thresholds}, preview_side={self.preview_side}"
