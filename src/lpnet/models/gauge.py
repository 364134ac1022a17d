"""RainGauge: whether an image holds rain, and how much, read by a small CNN trained on lpnet's rain only.

Rain is told from rain-free content by what it is rather than by the levels of one benchmark: the gauge
learns, from lpnet's synthetic rain at every strength (none, drizzle, downpour, veils, motion blur, JPEG,
on many photos), to map an image to two values per 16×16 cell:

- the rain's **strength** there: the mean of ``max(grey(rainy − clean), 0)`` over the cell (what rain adds:
  real Rain100L/H pairs never darken a pixel), read as ``exp(log_strength) − eps``;
- the **presence** of rain there: the logit of "rain adds at least ``present`` in this cell".

An image's strength is the mean of its cells' (the global definition, cell by cell, so sparse streaks count
where they are), its presence the mean of its cells' probabilities. Both come from one preview of at most
:data:`PREVIEW_SIDE` pixels per side. A plain ``nn.Module``: no Lightning, no Hydra.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lpnet.config import GaugeConfig, with_overrides

# The longest side of the preview a gauge reads (trained on crops of photos seen at up to twice this).
PREVIEW_SIDE = 1024


def rain_maps(rainy: Tensor, clean: Tensor, cell: int) -> Tensor:
    """What rain adds per cell: ``mean(max(grey(rainy − clean), 0))`` over each ``cell × cell`` block.

    Args:
        rainy, clean: ``(B, 3, H, W)`` in [0, 1], ``H`` and ``W`` multiples of ``cell``.
        cell: the block side.

    Returns:
        ``(B, H / cell, W / cell)`` float tensor, in [0, 1].
    """
    added = (rainy - clean).mean(1, keepdim=True).clamp_min(0)
    return F.avg_pool2d(added, cell)[:, 0]


@dataclass(frozen=True)
class GaugeReading:
    """A gauge's reading of a batch: ``strength`` (mean rain added, in [0, 1]) and ``presence`` (the share
    of the image where rain is seen, in [0, 1]), each ``(B,)``."""

    strength: Tensor
    presence: Tensor


class RainGauge(nn.Module):
    """A small fully convolutional network: ``(B, 3, H, W)`` → per-cell rain strength and presence.

    Args:
        config: the architecture (:class:`~lpnet.config.GaugeConfig`; its defaults are lpnet's gauge).
        **overrides: settings that replace the config's.

    Shape:
        ``forward``: ``(B, 3, H, W)`` in [0, 1] → ``(B, 2, H', W')`` with ``H' = ceil(H / cell)``: channel 0
        the log of ``strength + eps``, channel 1 the presence logit. ``read``: → :class:`GaugeReading`.
    """

    def __init__(self, config: GaugeConfig | None = None, **overrides) -> None:
        super().__init__()
        self.config = with_overrides(GaugeConfig, config, overrides, "gauge")
        layers: list[nn.Module] = []
        channels = 3
        for width, stride in zip(self.config.widths, self.config.strides, strict=True):
            layers += [nn.Conv2d(channels, width, 3, stride, 1), nn.LeakyReLU(self.config.negative_slope)]
            channels = width
        layers.append(nn.Conv2d(channels, 2, 1))
        self.body = nn.Sequential(*layers)

    @property
    def cell(self) -> int:
        """The side of the block each output value describes."""
        return self.config.cell

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)

    def strength_map(self, maps: Tensor) -> Tensor:
        """Per-cell strength ``(B, H', W')`` from :meth:`forward`'s maps."""
        return (maps[:, 0].exp() - self.config.eps).clamp_min(0)

    @torch.no_grad()
    def read(self, x: Tensor) -> GaugeReading:
        """The image-level reading of a batch ``(B, 3, H, W)`` in [0, 1] (any size; read it as a preview)."""
        maps = self(x)
        return GaugeReading(
            strength=self.strength_map(maps).mean((-2, -1)), presence=maps[:, 1].sigmoid().mean((-2, -1))
        )

    def extra_repr(self) -> str:
        params = sum(p.numel() for p in self.parameters())
        return f"widths={list(self.config.widths)}, cell={self.cell}, params={params:,}"


@torch.no_grad()
def rain_left(gauge: RainGauge, pairs: Iterable[tuple[Tensor, Tensor]]) -> float:
    """How much of the rain a set of derained images still holds, as the gauge sees it: the strength it reads
    in the outputs over the strength it reads in the inputs, each summed over the set (so an image with next
    to no rain cannot swing it). For photos with no clean image to score against.

    Args:
        gauge: the gauge that reads them.
        pairs: ``(rainy, derained)``, each ``(B, 3, H, W)`` in [0, 1], read as they are (give previews of
            large photos); sizes may differ from pair to pair.

    Returns:
        0 all the rain removed, 1 none of it (above 1: rain made stronger); NaN where the gauge reads no rain
        in the inputs.
    """
    before = after = 0.0
    for rainy, derained in pairs:
        before += float(gauge.read(rainy).strength.sum())
        after += float(gauge.read(derained).strength.sum())
    return after / before if before > 0 else float("nan")
