"""LitGauge: the rain gauge's training, validation and test steps as a LightningModule.

The gauge (:class:`lpnet.models.gauge.RainGauge`) learns from the same synthetic pairs LPNet trains on
(``data=synthetic``): each step sees its batch at one preview side, some rainy inputs stored as JPEG first,
and learns per 16×16 cell the rain added there (:func:`lpnet.models.gauge.rain_maps` of the pair before the
JPEG) as a log strength (smooth L1) and as present or not (cross-entropy). Every evaluation set (the
synthetic one, and the real ``data.real_val`` / rain-free ``data.clean_val`` sets, which it is never trained
on) logs its mean reading and the mean rain its pairs really hold: ``<stage>/strength``,
``<stage>/strength_true``, ``<stage>/presence`` and ``<stage>/strength_log_error``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from lightning import LightningModule
from torch import Tensor

from lpnet.config import GaugeConfig, GaugeModelConfig, OptimConfig, from_dict, plain
from lpnet.data.degradations import jpeg_round_trip
from lpnet.models.gauge import RainGauge, rain_maps
from lpnet.training.module import adam, trainer_max_steps


class LitGauge(LightningModule):
    """Train and evaluate a :class:`~lpnet.models.gauge.RainGauge` (settings: :class:`GaugeModelConfig`).

    Batches are LitLPNet's: dicts with ``"rainy"`` and ``"clean"`` tensors ``(B, 3, H, W)`` in [0, 1].
    """

    def __init__(
        self,
        net: GaugeConfig | Mapping[str, Any] | None = None,
        optim: OptimConfig | Mapping[str, Any] | None = None,
        present: float = GaugeModelConfig.present,
        sides: list[int] | None = None,
        jpeg_chance: float = GaugeModelConfig.jpeg_chance,
        jpeg_quality: list[int] | None = None,
    ) -> None:
        super().__init__()
        defaults = GaugeModelConfig()
        self.config = GaugeModelConfig(
            net=from_dict(GaugeConfig, net, "model.net"),
            optim=from_dict(OptimConfig, optim, "model.optim"),
            present=present,
            sides=list(sides or defaults.sides),
            jpeg_chance=jpeg_chance,
            jpeg_quality=list(jpeg_quality or defaults.jpeg_quality),
        )
        self.save_hyperparameters(
            {k: v for k, v in plain(self.config).items() if not k.startswith("_")}, logger=False
        )
        self.net = RainGauge(self.config.net)
        self.readings: dict[str, list[Tensor]] = {}

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def loss(self, rainy: Tensor, added: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """The gauge's loss on inputs ``rainy`` whose cells hold ``added`` rain."""
        maps = self.net(rainy)
        log_strength = F.smooth_l1_loss(maps[:, 0], torch.log(added + self.config.net.eps), beta=0.5)
        presence = F.binary_cross_entropy_with_logits(maps[:, 1], (added > self.config.present).float())
        return log_strength + presence, {"log_strength": log_strength, "presence": presence}

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        rainy, clean = batch["rainy"], batch["clean"]
        generator = torch.Generator().manual_seed(
            int(self.global_step) * 7919 + int(self.config.present * 1e6)
        )
        side = self.config.sides[int(torch.randint(len(self.config.sides), (1,), generator=generator))]
        if side != rainy.shape[-1]:
            pair = F.interpolate(torch.cat([rainy, clean]), size=(side, side), mode="area")
            rainy, clean = pair.split(len(rainy))
        added = rain_maps(rainy, clean, self.net.cell)
        chances = torch.rand(len(rainy), generator=generator) < self.config.jpeg_chance
        low, high = self.config.jpeg_quality
        qualities = torch.randint(low, high + 1, (len(rainy),), generator=generator)
        rainy = torch.stack(
            [jpeg_round_trip(x, int(q)) if c else x for x, c, q in zip(rainy, chances, qualities)]
        )
        total, terms = self.loss(rainy, added)
        self.log("train/loss", total, prog_bar=True)
        self.log_dict({f"train/{k}": v for k, v in terms.items()})
        return total

    def _evaluate(self, batch: dict[str, Tensor], stage: str) -> None:
        stage = batch["stage"][0] if "stage" in batch else stage
        cell = self.net.cell
        rainy, clean = batch["rainy"], batch["clean"]
        h, w = rainy.shape[-2] // cell * cell, rainy.shape[-1] // cell * cell
        rainy, clean = rainy[..., :h, :w], clean[..., :h, :w]
        maps = self.net(rainy)
        strength = self.net.strength_map(maps).mean((-2, -1))
        true = rain_maps(rainy, clean, cell).mean((-2, -1))
        error = (torch.log(strength + self.config.net.eps) - torch.log(true + self.config.net.eps)).abs()
        row = torch.stack([strength, true, maps[:, 1].sigmoid().mean((-2, -1)), error], 1)
        self.readings.setdefault(stage, []).append(row.detach())

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int, dataloader_idx: int = 0) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def _log_readings(self) -> None:
        for stage, rows in self.readings.items():
            means = torch.cat(rows).mean(0)
            names = ("strength", "strength_true", "presence", "strength_log_error")
            self.log_dict({f"{stage}/{n}": v for n, v in zip(names, means)}, add_dataloader_idx=False)
        self.readings.clear()

    def on_validation_epoch_end(self) -> None:
        self._log_readings()

    def on_test_epoch_end(self) -> None:
        self._log_readings()

    def configure_optimizers(self):
        return adam(self.net.parameters(), self.config.optim, trainer_max_steps(self))
