"""Train LPNet: ``python -m lpnet.train experiment=heavy_rain`` (or ``lpnet-train``).

Composes ``conf/train.yaml`` with its groups (data, degradation, model, loss, optim, trainer, logger,
callbacks, paths, experiment, hparams_search, debug), fits, tests the best checkpoint, and writes
``checkpoints/{best,last}.ckpt``, ``metrics.json`` and the composed ``config.yaml`` into the run directory
(``outputs/<task_name>/<time>/``, or ``hydra.run.dir=DIR``). Examples::

    python -m lpnet.train experiment=heavy_rain model.net.recursions=3 optim.lr=5e-4
    python -m lpnet.train data=synthetic degradation=rain_light trainer.max_steps=20000
    python -m lpnet.train experiment=heavy_rain ckpt_path=outputs/heavy_rain/<run>/checkpoints/last.ckpt

``train(cfg)`` is a plain function (tests and sweeps call it); the command only wraps it.
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import RunMode
from hydra.utils import instantiate
from lightning.pytorch.loggers import Logger, WandbLogger
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf, open_dict

from lpnet.allocator import tune_cpu_allocator
from lpnet.checkpoint import check_resumable
from lpnet.cli import Outcome, command
from lpnet.files import ensure_writable_folder, write_json, write_text
from lpnet.models.complexity import count_params, macs_per_pixel


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


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit (and test) LPNet as ``cfg`` describes; returns the summary also written to ``metrics.json``.

    Writes ``<output_dir>/checkpoints/{best,last}.ckpt``, ``metrics.json`` and the composed
    ``config.yaml`` into ``cfg.paths.output_dir``.
    """
    started = time.perf_counter()
    tune_cpu_allocator()  # CPU steps reuse freed feature maps, not page-fault them in (lpnet.allocator)
    refuse_a_finished_run(Path(cfg.paths.output_dir), cfg.get("ckpt_path"))
    output_dir = ensure_writable_folder(cfg.paths.output_dir)
    with open_dict(cfg):  # a sweep's runs also share tags naming what it sweeps (W&B filters by them)
        cfg.tags = [*cfg.get("tags", []), *(f"sweep:{key}" for key in swept_keys())]
    write_text(output_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    L.seed_everything(cfg.seed, workers=True)

    datamodule: L.LightningDataModule = instantiate(cfg.data)
    model: L.LightningModule = instantiate(cfg.model)
    if cfg.get("ckpt_path"):
        check_resumable(cfg.ckpt_path, model.net.config)
    callbacks = _instantiate_dict(cfg.get("callbacks"))
    loggers: list[Logger] = _instantiate_dict(cfg.get("logger"))
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    for logger in loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True, enum_to_str=True))

    # weights_only: resuming unpickles no code, whatever torch's default is (lpnet.checkpoint likewise)
    trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"), weights_only=True)
    metrics = {k: _plain(v) for k, v in trainer.callback_metrics.items()}
    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    if cfg.get("test") and not trainer.fast_dev_run:
        trainer.test(model, datamodule=datamodule, ckpt_path=best or None, weights_only=True)
        metrics.update({k: _plain(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")})

    summary = {
        "metrics": metrics,
        "params": count_params(model.net),
        "macs_per_pixel": macs_per_pixel(model.net),  # at 321×481, the benchmark size (1 MAC = 2 FLOPs)
        "global_step": trainer.global_step,
        "wall_time_s": round(time.perf_counter() - started, 2),
        "overrides": list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else [],
        "best_checkpoint": best or None,
    }
    if trainer.is_global_zero:
        write_json(output_dir / "metrics.json", summary)
    for logger in loggers:
        if isinstance(logger, WandbLogger):  # each run of a multirun must be its own W&B run
            logger.experiment.finish()
    return summary


def run(cfg: DictConfig) -> Outcome:
    """The command: :func:`train`, then a summary of where the results are."""
    output_dir = Path(cfg.paths.output_dir)
    last = output_dir / "checkpoints" / "last.ckpt"
    try:
        summary = train(cfg)
    except SIGTERMException:  # LastCheckpoint saved last.ckpt; a sweep stops too
        print(f"stopped by SIGTERM/Ctrl-C; resume with ckpt_path={last}", file=sys.stderr)
        sys.exit(128 + signal.SIGTERM)
    metrics = summary["metrics"]
    facts: list[tuple[str, Any]] = [("run directory", output_dir)]
    if summary["best_checkpoint"]:
        facts.append(("best checkpoint", summary["best_checkpoint"]))
    if last.is_file():
        facts.append(("last checkpoint", last))
    for key in ("val/psnr_y_best", "test/psnr_y", "test/ssim_y", "test/input_psnr_y"):
        if metrics.get(key) is not None:
            facts.append((key, f"{metrics[key]:.4f}"))
    facts += [("steps", summary["global_step"]), ("wall time", f"{summary['wall_time_s']:.0f} s")]
    if last.is_file():
        facts.append(("continue with", f"ckpt_path={last} trainer.max_steps=<more>"))
    value = metrics.get(cfg.get("optimized_metric"))
    return Outcome(
        f"lpnet train: {cfg.task_name} done", facts, value=float(value) if value is not None else None
    )


main = command("train", run)

if __name__ == "__main__":
    main()
