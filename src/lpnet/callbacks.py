"""Lightning callbacks: pictures of what the model does while it trains."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.exceptions import SIGTERMException

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


class InterruptCheckpoint(L.Callback):
    """SIGTERM or Ctrl-C: stop at the next step boundary, save ``last.ckpt``, exit without a traceback.

    Lightning turns SIGTERM into a ``SIGTERMException`` between steps; the first Ctrl-C is routed the same
    way (a second one interrupts at once). The checkpoint therefore holds a whole step, and
    ``ckpt_path=<dirpath>/last.ckpt`` resumes exactly. Lightning writes it atomically.
    """

    def __init__(self, dirpath: str, filename: str = "last.ckpt") -> None:
        super().__init__()
        self.path = Path(dirpath) / filename
        self._previous_sigint: Any = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if threading.current_thread() is threading.main_thread():
            self._previous_sigint = signal.signal(signal.SIGINT, self._sigint_as_sigterm)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore_sigint()

    def _sigint_as_sigterm(self, signum: int, frame: Any) -> None:
        self._restore_sigint()  # a second Ctrl-C interrupts at once
        os.kill(os.getpid(), signal.SIGTERM)

    def _restore_sigint(self) -> None:
        if self._previous_sigint is not None:
            signal.signal(signal.SIGINT, self._previous_sigint)
            self._previous_sigint = None

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        self._restore_sigint()
        if not isinstance(exception, SIGTERMException) or trainer.sanity_checking or trainer.fast_dev_run:
            return
        trainer.save_checkpoint(self.path)
        rank_zero_info(
            f"stopped at step {trainer.global_step}: saved {self.path}; resume with ckpt_path={self.path}"
        )
