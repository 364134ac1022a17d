"""Lightning callbacks: pictures of what the model does while it trains."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger

from lpnet.io import write_image
from lpnet.visualize import comparison_grid


class ImageLogger(L.Callback):
    """Every ``every_n_val`` validations, render the first validation image as a comparison grid.

    The grid goes to ``<default_root_dir>/images/val_step<step>.png`` and to W&B / TensorBoard when
    those loggers are on.
    """

    def __init__(self, every_n_val: int = 1, max_side: int = 512) -> None:
        super().__init__()
        if every_n_val < 1:
            raise ValueError(f"callbacks.image_logger.every_n_val must be >= 1, got {every_n_val}")
        self.every_n_val = every_n_val
        self.max_side = max_side
        self.validations = 0

    @torch.no_grad()
    def on_validation_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int, *_
    ) -> None:
        if batch_idx != 0 or trainer.sanity_checking or not trainer.is_global_zero:
            return
        self.validations += 1
        if (self.validations - 1) % self.every_n_val:
            return
        rainy = batch["rainy"][:1, :, : self.max_side, : self.max_side]
        clean = batch["clean"][:1, :, : self.max_side, : self.max_side]
        levels = pl_module(rainy)
        grid = comparison_grid(rainy[0], levels[-1][0].clamp(0, 1), clean[0], [lv[0] for lv in levels])
        step = trainer.global_step
        write_image(Path(trainer.default_root_dir) / "images" / f"val_step{step:07d}.png", grid.cpu())
        caption = "rainy | derained | clean; pyramid outputs coarse → fine"
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image("val/examples", images=[grid.cpu()], caption=[caption], step=step)
            elif isinstance(logger, TensorBoardLogger):
                logger.experiment.add_image("val/examples", grid.cpu(), global_step=step)
