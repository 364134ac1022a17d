"""LitLPNet: LPNet's training, validation and test steps as a LightningModule.

The module owns the loss, the metrics and the optimiser; the network itself is the plain
:class:`lpnet.models.lpnet.LPNet`. Hyper-parameters are saved as plain dicts only, so every checkpoint
loads with ``torch.load(weights_only=True)`` and with :func:`lpnet.load_model`.
"""

from __future__ import annotations

from typing import Any

import torch
from lightning import LightningModule
from torch import Tensor
from torchmetrics import MaxMetric

from lpnet.checkpoint import read_checkpoint
from lpnet.metrics import deraining_metrics
from lpnet.models.fast import fast_forward
from lpnet.models.losses import MultiLevelLoss
from lpnet.models.lpnet import LPNet

SCHEDULERS = ("none", "cosine", "step")
NAN_POLICIES = ("raise", "skip")


class LitLPNet(LightningModule):
    """Train and evaluate an LPNet.

    Args:
        net: :class:`LPNet` keyword arguments (plain values).
        loss: :class:`MultiLevelLoss` keyword arguments.
        optim: ``lr``, ``weight_decay``, ``betas`` for Adam, and ``scheduler`` (``none`` | ``cosine`` |
            ``step`` with ``step_size``/``gamma``), stepped per iteration.
        init_from: optional checkpoint (converted official or trained) whose weights start the run.
        nan_policy: what a NaN/Inf training loss does: ``raise`` stops the run with a
            :class:`FloatingPointError` naming the step (checkpoints already written stay intact); ``skip``
            drops that step (no optimiser update) and counts it in ``train/skipped_steps``.
        fast_cpu: run float32 CPU steps through :func:`lpnet.models.fast.fast_forward` (oneDNN kernels,
            the same outputs and gradients within fp32 rounding, ~1.6× faster training steps measured by
            ``python -m lpnet.bench``); ``False`` runs ``LPNet.forward`` as written. Other devices always
            run ``LPNet.forward``.

    Batches are dicts with ``"rainy"`` and ``"clean"`` tensors ``(B, 3, H, W)`` in [0, 1].
    """

    def __init__(
        self,
        net: dict[str, Any] | None = None,
        loss: dict[str, Any] | None = None,
        optim: dict[str, Any] | None = None,
        init_from: str | None = None,
        nan_policy: str = "raise",
        fast_cpu: bool = True,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if nan_policy not in NAN_POLICIES:
            raise ValueError(f"model.nan_policy must be one of {NAN_POLICIES}, got {nan_policy!r}")
        self.nan_policy = nan_policy
        self.fast_cpu = fast_cpu
        self.skipped_steps = 0
        self.net = LPNet(**(net or {}))
        self.criterion = MultiLevelLoss(**(loss or {}))
        self.optim_cfg = {"lr": 1e-3, "weight_decay": 0.0, "betas": (0.9, 0.999), "scheduler": "none"}
        self.optim_cfg.update(optim or {})
        if self.optim_cfg["scheduler"] not in SCHEDULERS:
            raise ValueError(
                f"optim.scheduler must be one of {SCHEDULERS}, got {self.optim_cfg['scheduler']!r}"
            )
        if init_from:
            config, state, _ = read_checkpoint(init_from)
            if config != self.net.config():
                raise ValueError(
                    f"model.init_from={init_from} holds an LPNet {config}, "
                    f"but this run builds {self.net.config()} (set model.net to match)"
                )
            self.net.load_state_dict(state)
        self.val_metrics = deraining_metrics()
        self.test_metrics = deraining_metrics()
        self.val_psnr_y_best = MaxMetric()
        self.num_params = sum(p.numel() for p in self.net.parameters())

    def forward(self, x: Tensor) -> list[Tensor]:
        return fast_forward(self.net, x) if self.fast_cpu else self.net(x)

    def on_train_start(self) -> None:
        # The sanity-check validation must not count as a best score.
        self.val_psnr_y_best.reset()
        self.log("params", float(self.num_params), rank_zero_only=True)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor | None:
        outputs = self(batch["rainy"])
        total, terms = self.criterion(outputs, batch["clean"])
        if not torch.isfinite(total) and self.nan_policy == "skip":
            # Returning None makes Lightning skip backward and the optimiser step.
            self.skipped_steps += 1
            self.log("train/skipped_steps", float(self.skipped_steps))
            return None
        if not torch.isfinite(total):
            raise FloatingPointError(
                f"training loss became {total.item()} at step {self.global_step}; checkpoints saved "
                "before it are kept (lower optim.lr, check the data, or model.nan_policy=skip)"
            )
        self.log("train/loss", total, prog_bar=True)
        self.log_dict({f"train/{k}": v for k, v in terms.items()})
        return total

    def _evaluate(self, batch: dict[str, Tensor], metrics, stage: str) -> Tensor:
        outputs = self(batch["rainy"])
        derained = outputs[-1].clamp(0, 1)
        metrics.update(derained, batch["clean"])
        total, _ = self.criterion(outputs, batch["clean"])
        self.log(f"{stage}/loss", total, batch_size=batch["rainy"].shape[0])
        return derained

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        return self._evaluate(batch, self.val_metrics, "val")

    def on_validation_epoch_end(self) -> None:
        scores = self.val_metrics.compute()
        self.val_metrics.reset()
        self.log_dict({f"val/{k}": v for k, v in scores.items()}, prog_bar=False)
        self.val_psnr_y_best(scores["psnr_y"])
        self.log("val/psnr_y_best", self.val_psnr_y_best.compute(), prog_bar=True)

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        return self._evaluate(batch, self.test_metrics, "test")

    def on_test_epoch_end(self) -> None:
        scores = self.test_metrics.compute()
        self.test_metrics.reset()
        self.log_dict({f"test/{k}": v for k, v in scores.items()})

    def configure_optimizers(self):
        cfg = self.optim_cfg
        optimizer = torch.optim.Adam(
            self.net.parameters(), lr=cfg["lr"], betas=tuple(cfg["betas"]), weight_decay=cfg["weight_decay"]
        )
        if cfg["scheduler"] == "none":
            return optimizer
        if cfg["scheduler"] == "cosine":
            total = self.trainer.max_steps if self.trainer.max_steps > 0 else cfg.get("t_max", 300_000)
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
        else:
            scheduler = torch.optim.lr_scheduler.StepLR(
                optimizer, step_size=cfg.get("step_size", 100_000), gamma=cfg.get("gamma", 0.1)
            )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
