"""Lightning callbacks (pictures of training, the model summary, an always-current ``last.ckpt``) and the
checkpoint writer."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelSummary
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
from lightning.pytorch.plugins import TorchCheckpointIO
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.exceptions import SIGTERMException
from lightning.pytorch.utilities.model_summary.model_summary import _format_summary_table

from lpnet.checkpoint import save_torch
from lpnet.config import ImageLoggerConfig
from lpnet.files import slug
from lpnet.io import write_image
from lpnet.models.complexity import macs_per_pixel
from lpnet.pictures import Example, Picture, score_caption, validation_sheet
from lpnet.scoring import INPUT_PREFIX, Scoreboard

# The scores of the W&B table of validation pictures: the derained image's, then the rainy input's.
TABLE_SCORES = ("psnr_y", "ssim_y", f"{INPUT_PREFIX}psnr_y", f"{INPUT_PREFIX}ssim_y")


class ImageLogger(L.Callback):
    """Every ``every_n_val`` validations, picture the first ``examples`` validation images
    (settings: :class:`lpnet.config.ImageLoggerConfig`).

    Each picture is a :func:`lpnet.pictures.validation_sheet` of the image's top-left ``max_side`` square:
    rainy | derained | clean | |error| ×4 with the :mod:`lpnet.scoring` Y-PSNR/SSIM of that square, a zoom
    on its rain, and the network's output at every pyramid level. The pictures go, pixel for pixel, to

    - ``<default_root_dir>/images/val_step<step>_<key>.png``;
    - W&B: ``val/examples`` (8-bit images with captions, at the step), and when training ends
      ``val/examples_table``: one row per picture with its step, key, picture and scores;
    - TensorBoard: ``val/examples/<key>`` at the step.
    """

    def __init__(
        self,
        every_n_val: int = ImageLoggerConfig.every_n_val,
        examples: int = ImageLoggerConfig.examples,
        max_side: int = ImageLoggerConfig.max_side,
    ) -> None:
        super().__init__()
        for name, value in (("every_n_val", every_n_val), ("examples", examples), ("max_side", max_side)):
            if value < 1:
                raise ValueError(f"callbacks.image_logger.{name} must be >= 1, got {value}")
        self.every_n_val = every_n_val
        self.examples = examples
        self.max_side = max_side
        self.validations = 0
        self._pending: list[tuple[Picture, Example]] = []
        # (step, key, picture file, scores) of every picture so far: the rows of the W&B table
        self.pictured: list[tuple[int, str, Path, dict[str, float]]] = []

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.validations += 1

    @torch.no_grad()
    def on_validation_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int, *_
    ) -> None:
        # batch_idx counts within each validation set (the main one, then data.real_val_dir's if set):
        # the first `examples` images of each are pictured.
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        if batch_idx >= self.examples or (self.validations - 1) % self.every_n_val:
            return
        side = slice(None, self.max_side)
        rainy, clean = batch["rainy"][:1, :, side, side], batch["clean"][:1, :, side, side]
        levels = [level.clamp(0, 1).cpu() for level in pl_module(rainy)]
        key = str(batch["key"][0]) if "key" in batch else f"val-{batch_idx}"
        if "stage" in batch:  # the real-rain validation set: its keys may repeat the main set's
            key = f"{batch['stage'][0]}-{key}"
        board = Scoreboard()
        board.update(levels[-1], clean.cpu(), rainy=rainy.cpu(), keys=[key])
        example = Example(key, rainy[0].cpu(), levels[-1][0], clean[0].cpu(), board.rows()[0])
        sheet = validation_sheet(example, [level[0] for level in levels], trainer.global_step)
        self._pending.append((sheet, example))

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._pending:
            return
        step = trainer.global_step
        captions = []
        for sheet, example in self._pending:
            path = Path(trainer.default_root_dir) / "images" / f"val_step{step:07d}_{slug(example.key)}.png"
            write_image(path, sheet.tensor())
            self.pictured.append((step, example.key, path, dict(example.scores)))
            captions.append(
                f"step {step} · {example.key}: rainy {score_caption(example.scores, INPUT_PREFIX)}"
                f" → derained {score_caption(example.scores)}"
            )
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                images = [sheet.pil() for sheet, _ in self._pending]
                logger.log_image("val/examples", images=images, caption=captions, step=step)
            elif isinstance(logger, TensorBoardLogger):
                for sheet, example in self._pending:
                    logger.experiment.add_image(
                        f"val/examples/{example.key}", sheet.pixels, global_step=step, dataformats="HWC"
                    )
        self._pending = []

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        wandb_loggers = [logger for logger in trainer.loggers if isinstance(logger, WandbLogger)]
        if not self.pictured or not wandb_loggers:
            return
        import wandb

        columns = ["step", "key", "picture", *TABLE_SCORES]
        rows = [
            [step, key, wandb.Image(str(path)), *(scores.get(name) for name in TABLE_SCORES)]
            for step, key, path, scores in self.pictured
        ]
        for logger in wandb_loggers:
            logger.log_table("val/examples_table", columns=columns, data=rows)


class CostSummary(ModelSummary):
    """Lightning's model summary (layers and parameters) with LPNet's cost where Lightning's FLOPs were.

    Lightning counts FLOPs by running the module's ``example_input_array``; LitLPNet has none (LPNet takes
    any size), so Lightning printed 0 FLOPs for every layer and in total. This summary drops that column
    and line and states :func:`lpnet.models.complexity.macs_per_pixel` instead (at the benchmark size,
    321×481; 1 MAC = 2 FLOPs).
    """

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.macs_per_pixel = macs_per_pixel(pl_module.net)
        super().on_fit_start(trainer, pl_module)

    def summarize(
        self,
        summary_data: list[tuple[str, list[str]]],
        total_parameters: int,
        trainable_parameters: int,
        model_size: float,
        total_training_modes: dict[str, int],
        total_flops: int,
        **summarize_kwargs: Any,
    ) -> None:
        columns = [column for column in summary_data if column[0] != "FLOPs"]
        table = _format_summary_table(
            total_parameters, trainable_parameters, model_size, total_training_modes, total_flops, *columns
        )
        lines = [line for line in table.splitlines() if not line.endswith("Total Flops")]
        cost = f"{self.macs_per_pixel / 1000:.1f} K"
        lines.append(f"{cost:<10}MACs per pixel at 321×481 (lpnet.models.complexity; 1 MAC = 2 FLOPs)")
        rank_zero_info("\n" + "\n".join(lines))


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
