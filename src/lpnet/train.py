"""Training entry point: ``python -m lpnet.train experiment=heavy_rain``.

``train(cfg)`` is a plain function (tests and sweeps call it); ``main`` only wraps it in Hydra.
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from typing import Any

import hydra
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
from lpnet.checkpoint import CheckpointError, check_resumable
from lpnet.data.layouts import LayoutError
from lpnet.io import ImageReadError, ensure_writable_folder, write_json, write_text
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


def train(cfg: DictConfig) -> float | None:
    """Fit (and test) LPNet as ``cfg`` describes; returns ``cfg.optimized_metric`` for sweepers.

    Writes ``<output_dir>/checkpoints/{best,last}.ckpt``, ``metrics.json`` and the composed
    ``config.yaml`` into ``cfg.paths.output_dir``.
    """
    started = time.perf_counter()
    tune_cpu_allocator()  # CPU steps reuse freed feature maps, not page-fault them in (lpnet.allocator)
    output_dir = ensure_writable_folder(cfg.paths.output_dir)
    with open_dict(cfg):  # a sweep's runs also share tags naming what it sweeps (W&B filters by them)
        cfg.tags = [*cfg.get("tags", []), *(f"sweep:{key}" for key in swept_keys())]
    write_text(output_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    L.seed_everything(cfg.seed, workers=True)

    datamodule: L.LightningDataModule = instantiate(cfg.data)
    model: L.LightningModule = instantiate(cfg.model)
    if cfg.get("ckpt_path"):
        check_resumable(cfg.ckpt_path, model.net.config())
    callbacks = _instantiate_dict(cfg.get("callbacks"))
    loggers: list[Logger] = _instantiate_dict(cfg.get("logger"))
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    for logger in loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))

    # weights_only: resuming unpickles no code, whatever torch's default is (lpnet.checkpoint likewise)
    trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"), weights_only=True)
    metrics = {k: _plain(v) for k, v in trainer.callback_metrics.items()}
    if cfg.get("test") and not trainer.fast_dev_run:
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        trainer.test(model, datamodule=datamodule, ckpt_path=best or None, weights_only=True)
        metrics.update({k: _plain(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")})

    if trainer.is_global_zero:
        summary = {
            "metrics": metrics,
            "params": count_params(model.net),
            "macs_per_pixel": macs_per_pixel(model.net),  # at 321×481, the benchmark size (1 MAC = 2 FLOPs)
            "global_step": trainer.global_step,
            "wall_time_s": round(time.perf_counter() - started, 2),
            "overrides": list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else [],
        }
        write_json(output_dir / "metrics.json", summary)
    for logger in loggers:
        if isinstance(logger, WandbLogger):  # each run of a multirun must be its own W&B run
            logger.experiment.finish()
    value = metrics.get(cfg.get("optimized_metric"))
    return float(value) if value is not None else None


# Problems the user can fix, reported on one line: a NaN loss (exit 1), or bad data, checkpoint or output
# folder (exit 2). Anything else is a bug and keeps its traceback.
USER_ERRORS = (
    FloatingPointError,
    ImageReadError,
    LayoutError,
    CheckpointError,
    FileNotFoundError,
    PermissionError,
)


def _user_error(err: BaseException | None) -> BaseException | None:
    """The user-fixable error behind ``err`` (Hydra wraps errors raised while instantiating a config)."""
    while err is not None and not isinstance(err, USER_ERRORS):
        err = err.__cause__
    return err


def _message(err: BaseException) -> str:
    """``err``'s own message; a DataLoader worker's error carries the worker's traceback before it."""
    text = str(err).strip()
    if "Original Traceback" not in text:
        return text
    last = text.splitlines()[-1]
    prefix = f"{type(err).__module__}.{type(err).__qualname__}: "
    return last.removeprefix(prefix)


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    try:
        return train(cfg)
    except SIGTERMException:  # LastCheckpoint saved last.ckpt and said how to resume; a sweep stops too
        print("stopped by SIGTERM/Ctrl-C", file=sys.stderr)
        sys.exit(128 + signal.SIGTERM)
    except Exception as err:
        problem = _user_error(err)
        if problem is None or HydraConfig.get().mode == RunMode.MULTIRUN:
            raise  # a bug keeps its traceback; a failed job of a sweep is recorded and the others run
        print(f"error: {_message(problem)}", file=sys.stderr)
        sys.exit(1 if isinstance(problem, FloatingPointError) else 2)


if __name__ == "__main__":
    main()
