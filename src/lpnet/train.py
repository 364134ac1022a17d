"""Train LPNet: ``python -m lpnet.train experiment=heavy_rain`` (or ``lpnet-train``).

Composes ``conf/train.yaml`` with its groups (data, degradation, model, loss, optim, trainer, logger,
callbacks, paths, experiment, hparams_search, debug), fits, tests the best checkpoint, and writes
``checkpoints/{best,last}.ckpt``, ``metrics.json``, the composed ``config.yaml``, validation pictures
(``images/``) and the run's log (``<task_name>.log``: the settings, Lightning's messages, the summary) into
the run directory (``outputs/<task_name>/<time>/``, or ``hydra.run.dir=DIR``). The command prints the
resolved settings as a tree when it starts and, at the end, where everything went, the scores and the
command that continues the run. Examples::

    python -m lpnet.train experiment=heavy_rain model.net.recursions=3 optim.lr=5e-4
    python -m lpnet.train data=synthetic degradation=rain_light trainer.max_steps=20000
    python -m lpnet.train experiment=heavy_rain ckpt_path=outputs/heavy_rain/<run>/checkpoints/last.ckpt

``train(cfg)`` is a plain function (tests and sweeps call it); the command only wraps it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import shlex
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import RunMode
from hydra.utils import instantiate
from lightning.pytorch.callbacks import LearningRateMonitor, ModelSummary
from lightning.pytorch.loggers import Logger, TensorBoardLogger, WandbLogger
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf, open_dict

from lpnet.allocator import tune_cpu_allocator
from lpnet.checkpoint import check_resumable
from lpnet.cli import Outcome, command
from lpnet.files import ensure_writable_folder, write_json, write_text
from lpnet.models.complexity import count_params, macs_per_pixel
from lpnet.models.lpnet import LPNet
from lpnet.training.callbacks import CostSummary

log = logging.getLogger(__name__)


def _instantiate_dict(section: DictConfig | None) -> list[Any]:
    """Instantiate every entry of a config group that maps names to ``_target_`` blocks."""
    if not section:
        return []
    return [instantiate(entry) for entry in section.values() if entry is not None and "_target_" in entry]


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, torch.Tensor) else value


def swept_keys() -> list[str]:
    """The keys a Hydra multirun sweeps: its sweeper's ``params`` and its command line's sweep overrides.

    Empty outside a multirun. Each job finds the sweep's own command line in ``<sweep dir>/multirun.yaml``,
    which Hydra writes before it launches the jobs.
    """
    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return []
    hydra_cfg = HydraConfig.get()
    keys = set(hydra_cfg.sweeper.get("params") or {})
    multirun = Path(hydra_cfg.sweep.dir) / "multirun.yaml"
    if multirun.is_file():
        overrides = OverridesParser.create().parse_overrides(
            list(OmegaConf.load(multirun).hydra.overrides.task)
        )
        keys |= {o.get_key_element() for o in overrides if o.is_sweep_override()}
    return sorted(keys)


def refuse_a_finished_run(output_dir: Path, ckpt_path: str | None) -> None:
    """Refuse to start a new run in a directory that holds another run's checkpoints or scores.

    Resuming from a checkpoint inside that directory continues the run there, as it should.

    Raises:
        FileExistsError: naming the directory, what it holds, and the two ways on.
    """
    held = [
        p
        for p in (output_dir / "metrics.json", *sorted((output_dir / "checkpoints").glob("*.ckpt")))
        if p.exists()
    ]
    resuming_here = ckpt_path and output_dir.resolve() in Path(ckpt_path).resolve().parents
    if held and not resuming_here:
        names = ", ".join(str(p.relative_to(output_dir)) for p in held)
        raise FileExistsError(
            f"run directory {output_dir} already holds a run ({names}); continue it with "
            f"ckpt_path={output_dir / 'checkpoints' / 'last.ckpt'}, or start a new one in another "
            "hydra.run.dir"
        )


def task_overrides() -> list[str]:
    """The command line's overrides of this run (a sweep's job: its own values), or [] outside Hydra."""
    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def run_name(task_name: str, overrides: Sequence[str]) -> str:
    """A run's name on W&B: ``<task_name>/<overrides>`` (``ablation_recursion/model.net.recursions=3``),
    or the task name alone when nothing was overridden."""
    return f"{task_name}/{','.join(overrides)}" if overrides else task_name


# The scores a run ends with, as TensorBoard's HParams tab shows them: every evaluated set's Y-PSNR and SSIM.
FINAL_SCORE = re.compile(r"^(val\w*|test)/(psnr_y|ssim_y)$")


def final_scores(metrics: dict[str, Any]) -> dict[str, float]:
    """``hp_metric`` (the best validation Y-PSNR) and ``final/<set>/<score>`` for every finite score of
    :data:`FINAL_SCORE` at the end of the run: the columns of TensorBoard's HParams tab."""
    scores = {f"final/{k}": float(v) for k, v in metrics.items() if FINAL_SCORE.match(k) and math.isfinite(v)}
    best = metrics.get("val/psnr_y_best")
    return ({"hp_metric": float(best)} if best is not None and math.isfinite(best) else {}) | scores


def logging_interval(trainer_cfg: DictConfig) -> int:
    """``trainer.log_every_n_steps``, lowered to the validation interval and to ``trainer.max_steps``.

    Lightning logs the training losses every ``log_every_n_steps`` steps: with 50 and a 20-step run, the
    CSV, W&B and TensorBoard would get none, and a validation every 10 steps would see no loss between.
    """
    bounds = [trainer_cfg.get("log_every_n_steps") or 50]  # 50: Lightning's own default
    interval = trainer_cfg.get("val_check_interval")
    if isinstance(interval, int) and not isinstance(interval, bool) and interval > 0:
        bounds.append(interval)  # an int counts steps; a float is a fraction of an epoch
    if (trainer_cfg.get("max_steps") or -1) > 0:
        bounds.append(trainer_cfg.max_steps)
    return min(bounds)


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit (and test) LPNet as ``cfg`` describes; returns the summary also written to ``metrics.json``.

    Writes ``<output_dir>/checkpoints/{best,last}.ckpt``, ``metrics.json`` and the composed
    ``config.yaml`` into ``cfg.paths.output_dir``.
    """
    started = time.perf_counter()
    tune_cpu_allocator()  # CPU steps reuse freed feature maps, not page-fault them in (lpnet.allocator)
    refuse_a_finished_run(Path(cfg.paths.output_dir), cfg.get("ckpt_path"))
    output_dir = ensure_writable_folder(cfg.paths.output_dir)
    overrides = task_overrides()
    with open_dict(cfg):
        # a sweep's runs also share tags naming what it sweeps (W&B filters by them)
        cfg.tags = [*cfg.get("tags", []), *(f"sweep:{key}" for key in swept_keys())]
        interval, asked = logging_interval(cfg.trainer), cfg.trainer.get("log_every_n_steps")
        if interval != asked:
            log.info(
                f"trainer.log_every_n_steps lowered from {asked} to {interval} (the validation interval or "
                "max_steps): training losses are logged before every validation"
            )
        cfg.trainer.log_every_n_steps = interval
        wandb_cfg = (cfg.get("logger") or {}).get("wandb")
        if wandb_cfg is not None and wandb_cfg.get("name") is None:
            wandb_cfg.name = run_name(cfg.task_name, overrides)
    write_text(output_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    L.seed_everything(cfg.seed, workers=True)

    datamodule: L.LightningDataModule = instantiate(cfg.data)
    model: L.LightningModule = instantiate(cfg.model)
    lpnet = isinstance(model.net, LPNet)  # else the rain gauge (model=gauge)
    if cfg.get("ckpt_path") and lpnet:
        check_resumable(cfg.ckpt_path, model.net.config)
    callbacks = _instantiate_dict(cfg.get("callbacks"))
    if (
        lpnet
        and cfg.trainer.get("enable_model_summary", True)
        and not any(isinstance(c, ModelSummary) for c in callbacks)
    ):
        callbacks.append(CostSummary())  # Lightning's summary, with LPNet's MACs instead of 0 FLOPs
    loggers: list[Logger] = _instantiate_dict(cfg.get("logger"))
    if not loggers:  # logger=none: nothing to send the learning rate to (Lightning would refuse the run)
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    # 1 MAC = 2 FLOPs; per pixel at 321×481, the benchmark size
    cost = {
        "params": count_params(model.net) if lpnet else sum(p.numel() for p in model.net.parameters()),
        "macs_per_pixel": macs_per_pixel(model.net) if lpnet else None,
    }
    hyperparams = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    for logger in loggers:
        logger.log_hyperparams(hyperparams)
        if isinstance(logger, WandbLogger):  # once, as summary values: they do not change during a run
            logger.experiment.summary.update(cost)

    # weights_only: resuming unpickles no code, whatever torch's default is (lpnet.checkpoint likewise)
    trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"), weights_only=True)
    metrics = {k: _plain(v) for k, v in trainer.callback_metrics.items()}
    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    if cfg.get("test") and not trainer.fast_dev_run:
        trainer.test(model, datamodule=datamodule, ckpt_path=best or None, weights_only=True)
        metrics.update({k: _plain(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")})

    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            # The HParams tab: the run's settings beside its final scores, written once, at the end
            # (conf/logger/tensorboard.yaml turns Lightning's placeholder hp_metric = -1 off)
            logger.log_hyperparams(hyperparams, metrics=final_scores(metrics), step=trainer.global_step)
            logger.finalize("success")

    summary = {
        "metrics": metrics,
        **cost,
        "global_step": trainer.global_step,
        "wall_time_s": round(time.perf_counter() - started, 2),
        "overrides": overrides,
        "best_checkpoint": best or None,
    }
    if trainer.is_global_zero:
        write_json(output_dir / "metrics.json", summary)
    for logger in loggers:
        if isinstance(logger, WandbLogger):  # each run of a multirun must be its own W&B run
            logger.experiment.finish()
    return summary


def resume_command(
    overrides: Sequence[str], last: Path, more_steps_than: int | None = None, tool: str = "lpnet.train"
) -> str:
    """The command line that continues a run from ``last`` (its overrides, with ``ckpt_path`` replaced).

    Args:
        overrides: the run's command-line overrides.
        last: its ``last.ckpt``.
        more_steps_than: the step at which the run reached ``trainer.max_steps``: continuing needs a
            larger one (left for the user to fill in).
        tool: the command that trained (``lpnet.demo`` trains too).
    """
    kept = [o for o in overrides if not o.startswith("ckpt_path=")]
    if more_steps_than is not None:
        kept = [o for o in kept if not o.startswith("trainer.max_steps=")]
    command = shlex.join(["python", "-m", tool, *kept, f"ckpt_path={last}"])
    return (
        command if more_steps_than is None else f"{command} trainer.max_steps=<more than {more_steps_than}>"
    )


@contextlib.contextmanager
def exit_when_stopped(last: Path, tool: str = "lpnet.train") -> Iterator[None]:
    """Around a command that trains: SIGTERM or Ctrl-C (LastCheckpoint saved ``last``; a sweep stops too)
    prints how to resume and exits with 143. Lightning's SIGTERMException is a SystemExit without a code,
    which would otherwise end the command with status 0, as if it had finished."""
    try:
        yield
    except SIGTERMException:
        resume = resume_command(task_overrides(), last, tool=tool)
        print(f"stopped by SIGTERM/Ctrl-C; resume with {resume}", file=sys.stderr)
        sys.exit(128 + signal.SIGTERM)


def run(cfg: DictConfig) -> Outcome:
    """The command: :func:`train`, then where everything went, the scores and how to continue."""
    output_dir = Path(cfg.paths.output_dir)
    last = output_dir / "checkpoints" / "last.ckpt"
    with exit_when_stopped(last):
        summary = train(cfg)
    metrics = summary["metrics"]
    facts: list[tuple[str, Any]] = [("run directory", output_dir)]
    if summary["best_checkpoint"]:
        facts.append(("best checkpoint", summary["best_checkpoint"]))
    if last.is_file():
        facts.append(("last checkpoint", last))
    # Every validation set's best (the main one first, then the real-rain and rain-free ones), then test.
    bests = sorted(
        (k for k in metrics if k.endswith("/psnr_y_best")), key=lambda k: (k != "val/psnr_y_best", k)
    )
    for key in (*bests, "test/psnr_y", "test/ssim_y", "test/input_psnr_y", "test/input_ssim_y"):
        if metrics.get(key) is not None:
            facts.append((key, f"{metrics[key]:.4f}"))
    facts += [("steps", summary["global_step"]), ("wall time", f"{summary['wall_time_s']:.0f} s")]
    facts += [
        (name, output_dir / name)
        for name in ("config.yaml", "metrics.json", f"{cfg.task_name}.log")
        if (output_dir / name).is_file()
    ]
    if last.is_file():
        finished = summary["global_step"] >= cfg.trainer.max_steps > 0
        more = summary["global_step"] if finished else None
        facts.append(("continue with", resume_command(summary["overrides"], last, more)))
    value = metrics.get(cfg.get("optimized_metric"))
    return Outcome(
        f"lpnet train: {cfg.task_name} done", facts, value=float(value) if value is not None else None
    )


main = command("train", run, show_config=True)

if __name__ == "__main__":
    main()
