"""Typed schemas of the config groups people override most, so a wrong type fails at composition.

``optim.lr=fast`` or ``data.batch_size=ten`` then stops before any work with OmegaConf's validation error
naming the key (``Value 'fast' of type 'str' could not be converted to Float ... full_key: optim.lr``)
instead of a traceback from deep inside training. Each group's YAML puts its schema first in its
defaults list (``/schema/<group>@_here_``); the YAML keeps the values, the schema only the types
(``MISSING`` defaults, so nothing is stated twice). ``import lpnet`` registers them (any import from
the package does), so every script that composes lpnet's configs finds them.
Groups without one (trainer, logger, callbacks) take whatever their ``_target_`` accepts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


@dataclass
class OptimSchema:
    lr: float = MISSING
    betas: list[float] = MISSING
    weight_decay: float = MISSING
    scheduler: str = MISSING
    step_size: int = MISSING
    gamma: float = MISSING


@dataclass
class LossSchema:
    pixel: str = MISSING
    pixel_weight: float = MISSING
    ssim_levels: int = MISSING
    ssim_weight: float = MISSING
    level_weights: list[float] | None = MISSING


@dataclass
class NetSchema:
    num_levels: int = MISSING
    widths: list[int] | None = MISSING
    width_multiplier: float = MISSING
    recursions: int = MISSING
    share_weights: bool = MISSING
    residual_skip: bool = MISSING
    final_relu: bool = MISSING
    negative_slope: float = MISSING


@dataclass
class ModelSchema:
    _target_: str = MISSING
    _convert_: str = MISSING
    net: NetSchema = field(default_factory=NetSchema)
    loss: Any = MISSING
    optim: Any = MISSING
    init_from: str | None = MISSING
    nan_policy: str = MISSING
    fast_cpu: bool = MISSING


@dataclass
class LoaderSchema:
    """What both data options share."""

    _target_: str = MISSING
    crop_size: int = MISSING
    batch_size: int = MISSING
    num_workers: int = MISSING
    seed: int = MISSING


@dataclass
class BenchmarkDataSchema(LoaderSchema):
    fallback: Any = MISSING  # null, a degradation name, or a degradation config (${degradation})
    synthetic: dict[str, Any] = MISSING
    root: str = MISSING
    layout: str = MISSING
    train_dir: str | None = MISSING
    val_dir: str | None = MISSING
    test_dir: str | None = MISSING
    flips: bool = MISSING
    val_fraction: float = MISSING
    layout_options: dict[str, Any] = MISSING
    cache: bool = MISSING


@dataclass
class SyntheticDataSchema(LoaderSchema):
    degradation: Any = MISSING
    clean_dir: str | None = MISSING
    val_length: int = MISSING
    test_length: int = MISSING
    eval_crop_size: int | None = MISSING


SCHEMAS = {
    "optim": OptimSchema,
    "loss": LossSchema,
    "model": ModelSchema,
    "data_benchmark": BenchmarkDataSchema,
    "data_synthetic": SyntheticDataSchema,
}


def register() -> None:
    """Store every schema as ``schema/<name>`` in Hydra's ConfigStore (idempotent)."""
    store = ConfigStore.instance()
    for name, node in SCHEMAS.items():
        store.store(group="schema", name=name, node=node)
