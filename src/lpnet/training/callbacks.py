"""Lightning callbacks (pictures of training, an always-current ``last.ckpt``) and the checkpoint writer."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
from lightning.pytorch.plugins import TorchCheckpointIO
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.exceptions import SIGTERMException

from lpnet.checkpoint import save_torch
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


class LastCheckpoint(L.Callback):
    """Keep ``last.ckpt`` at the state a run stopped in: the end of fit, SIGTERM or Ctrl-C.

    ``ModelCheckpoint(save_last=True)`` writes it only after validations, so a run whose ``max_steps``
    falls between two would leave it behind the final weights. SIGTERM: Lightning raises a
    ``SIGTERMException`` between steps; the first Ctrl-C is routed the same way (a second one
    interrupts at once). Either way ``ckpt_path=<dirpath>/last.ckpt`` resumes exactly where the run
    stopped. A SIGKILL cannot be caught: resuming then starts from the last validation's checkpoint.
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
        if not trainer.fast_dev_run:
            trainer.save_checkpoint(self.path, weights_only=False)

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
        trainer.save_checkpoint(self.path, weights_only=False)
        rank_zero_info(
            f"stopped at step {trainer.global_step}: saved {self.path}; resume with ckpt_path={self.path}"
        )


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, made atomic: serialise to a temporary file beside the target, rename.

    Lightning's own writer stages the file in the system temp folder and *moves* it, which is a copy
    (not atomic) whenever that folder is on another file system than the run; a kill during the copy
    would leave a truncated ``last.ckpt``.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        save_torch(checkpoint, path)
