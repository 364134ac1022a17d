"""LitLPNet: LPNet's training, validation and test steps as a LightningModule.

The module owns the loss, the scores and the optimiser; the network itself is the plain
:class:`lpnet.models.lpnet.LPNet`. Its settings are one :class:`~lpnet.config.ModelConfig`; the
hyper-parameters it saves are that config as plain data, so every checkpoint loads with
``torch.load(weights_only=True)`` and with :func:`lpnet.load_model`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from lightning import LightningModule
from torch import Tensor
from torchmetrics import MaxMetric

from lpnet.checkpoint import check_same_architecture, read_checkpoint
from lpnet.config import (
    LossConfig,
    LPNetConfig,
    ModelConfig,
    NanPolicy,
    OptimConfig,
    Scheduler,
    from_dict,
    plain,
)
from lpnet.models.fast import fast_forward
from lpnet.models.losses import MultiLevelLoss
from lpnet.models.lpnet import LPNet
from lpnet.scoring import Scoreboard

# The evaluation sets, whose scores are logged under their names: validation, test, and any further
# validation set whose samples carry their stage name ("stage": "val_real", "val_clean_photos", ...: the
# data module tags them); every validation set keeps its best Y-PSNR.
STAGES = ("val", "test")


class LitLPNet(LightningModule):
    """Train and evaluate an LPNet.

    Args:
        net: the architecture (:class:`~lpnet.config.LPNetConfig` or a mapping of its settings).
        loss: the loss (:class:`~lpnet.config.LossConfig` or a mapping).
        optim: Adam and its schedule (:class:`~lpnet.config.OptimConfig` or a mapping).
        init_from: optional checkpoint (converted official or trained) whose weights start the run.
        nan_policy: a NaN/Inf training loss: ``raise`` stops the run with a :class:`FloatingPointError`
            naming the step (checkpoints already written stay intact); ``skip`` drops that step (no
            optimiser update) and counts it in ``train/skipped_steps``.
        fast_cpu: run float32 CPU steps through :func:`lpnet.models.fast.fast_forward`.

    The defaults of every argument are :class:`~lpnet.config.ModelConfig`'s. Batches are dicts with
    ``"rainy"`` and ``"clean"`` tensors ``(B, 3, H, W)`` in [0, 1] (and ``"key"`` names in val/test).
    Validation and test log ``<stage>/<score>`` for every score of :mod:`lpnet.scoring`, and
    ``<stage>/input_<score>`` for the rainy inputs.
    """

    def __init__(
        self,
        net: LPNetConfig | Mapping[str, Any] | None = None,
        loss: LossConfig | Mapping[str, Any] | None = None,
        optim: OptimConfig | Mapping[str, Any] | None = None,
        init_from: str | None = ModelConfig.init_from,
        nan_policy: str = ModelConfig.nan_policy,
        fast_cpu: bool = ModelConfig.fast_cpu,
    ) -> None:
        super().__init__()
        self.config = ModelConfig(
            net=from_dict(LPNetConfig, net, "model.net"),
            loss=from_dict(LossConfig, loss, "model.loss"),
            optim=from_dict(OptimConfig, optim, "model.optim"),
            init_from=init_from,
            nan_policy=nan_policy,
            fast_cpu=bool(fast_cpu),
        )
        # The constructor's arguments as plain data (Hydra's _target_/_convert_ are not arguments), for the
        # checkpoints; not logged: train() logs the whole resolved config, where they are model.*.
        hparams = {k: v for k, v in plain(self.config).items() if not k.startswith("_")}
        self.save_hyperparameters(hparams, logger=False)
        self.skipped_steps = 0
        self.net = LPNet(self.config.net)
        self.criterion = MultiLevelLoss(self.config.loss)
        if init_from:
            config, state, _ = read_checkpoint(init_from)
            check_same_architecture(f"model.init_from={init_from}", config, self.net.config)
            self.net.load_state_dict(state)
        self.scores = torch.nn.ModuleDict({stage: Scoreboard() for stage in STAGES})
        self.best = torch.nn.ModuleDict({"val": MaxMetric()})

    def forward(self, x: Tensor) -> list[Tensor]:
        return fast_forward(self.net, x) if self.config.fast_cpu else self.net(x)

    def on_train_start(self) -> None:
        # The sanity-check validation must not count as a best score.
        for best in self.best.values():
            best.reset()

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor | None:
        outputs = self(batch["rainy"])
        total, terms = self.criterion(outputs, batch["clean"])
        if not torch.isfinite(total) and self.config.nan_policy == NanPolicy["skip"]:
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

    def _evaluate(self, batch: dict[str, Tensor], stage: str) -> Tensor:
        stage = batch["stage"][0] if "stage" in batch else stage
        outputs = self(batch["rainy"])
        derained = outputs[-1]
        if not torch.isfinite(derained).all():
            raise FloatingPointError(
                f"the network's output holds NaN or infinite values on {stage} image(s) "
                f"{list(batch.get('key', []))} at step {self.global_step} (lower optim.lr)"
            )
        derained = derained.clamp(0, 1)
        if stage not in self.scores:  # a tagged validation set seen for the first time
            self.scores[stage] = Scoreboard().to(self.device)
            self.best[stage] = MaxMetric().to(self.device)
        self.scores[stage].update(derained, batch["clean"], rainy=batch["rainy"], keys=batch.get("key"))
        total, _ = self.criterion(outputs, batch["clean"])
        self.log(f"{stage}/loss", total, batch_size=batch["rainy"].shape[0], add_dataloader_idx=False)
        return derained

    def _log_scores(self, stage: str) -> dict[str, Tensor]:
        if not self.scores[stage].keys:  # no image of this set in this evaluation
            return {}
        scores = self.scores[stage].compute()
        self.scores[stage].reset()
        self.log_dict(
            {f"{stage}/{name}": value.float() for name, value in scores.items()}, add_dataloader_idx=False
        )
        return scores

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int, dataloader_idx: int = 0) -> Tensor:
        return self._evaluate(batch, "val")

    def on_validation_epoch_end(self) -> None:
        for stage, best in self.best.items():
            scores = self._log_scores(stage)
            if "psnr_y" in scores:
                best(scores["psnr_y"])
                self.log(f"{stage}/psnr_y_best", best.compute(), prog_bar=stage == "val")

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        return self._evaluate(batch, "test")

    def on_test_epoch_end(self) -> None:
        self._log_scores("test")

    def configure_optimizers(self):
        return adam(self.net.parameters(), self.config.optim, trainer_max_steps(self))


def trainer_max_steps(module: LightningModule) -> int:
    """The attached trainer's ``max_steps``; -1 (none) for a module used on its own, as the benchmark does."""
    return module._trainer.max_steps if module._trainer is not None else -1


def adam(parameters: Any, cfg: OptimConfig, max_steps: int) -> Any:
    """Adam and its schedule, stepped every iteration, as ``configure_optimizers`` returns them.

    Raises:
        ValueError: ``scheduler=cosine`` without ``trainer.max_steps``.
    """
    optimizer = torch.optim.Adam(parameters, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)
    if cfg.scheduler == Scheduler.none:
        return optimizer
    if cfg.scheduler == Scheduler.cosine:
        if max_steps <= 0:
            raise ValueError("optim.scheduler=cosine decays over trainer.max_steps: set it (> 0)")
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max_steps)
    else:
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.step_size, gamma=cfg.gamma)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
