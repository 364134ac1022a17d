"""Helpers shared by the degradations: the input check, parameter ranges, seeded per-image sampling.

Every degradation parameter is a closed range ``(min, max)``; each image of a batch draws its own value
uniformly from it. ``min == max`` fixes the value.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TypeVar

import torch
from torch import Tensor

Range = tuple[float, float]
T = TypeVar("T")


def check_clean(clean: Tensor) -> None:
    """Check a degradation's input: a float ``(B, 3, H, W)`` tensor (values are not scanned).

    Raises:
        TypeError: not a float tensor.
        ValueError: not ``(B, 3, H, W)``.
    """
    if not isinstance(clean, Tensor) or not clean.is_floating_point():
        kind = clean.dtype if isinstance(clean, Tensor) else type(clean).__name__
        raise TypeError(f"clean images must be a float torch.Tensor in [0, 1], got {kind}")
    if clean.dim() != 4 or clean.shape[1] != 3:
        raise ValueError(f"clean images must have shape (B, 3, H, W), got {tuple(clean.shape)}")


def as_range(name: str, value: object, low: float, high: float) -> Range:
    """Check that ``value`` is a ``(min, max)`` pair inside ``[low, high]`` and return it as a float tuple.

    Raises:
        TypeError: ``value`` is not a pair of numbers (Hydra gives lists: they are accepted).
        ValueError: ``min > max`` or a bound lies outside ``[low, high]``; the message names the setting.
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = (value, value)
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != 2:
        raise TypeError(f"{name} must be a [min, max] pair of numbers, got {value!r}")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        raise TypeError(f"{name} must be a [min, max] pair of numbers, got {value!r}")
    lo, hi = float(value[0]), float(value[1])
    if lo > hi:
        raise ValueError(f"{name} must have min <= max, got [{lo}, {hi}]")
    if lo < low or hi > high:
        raise ValueError(f"{name} must lie within [{low}, {high}], got [{lo}, {hi}]")
    return lo, hi


def validate_ranges(config: object, bounds: dict[str, tuple[float, float]]) -> None:
    """Normalise every range field of a frozen dataclass ``config`` in place (lists → tuples), checked."""
    for name, (low, high) in bounds.items():
        value = as_range(f"{type(config).__name__}.{name}", getattr(config, name), low, high)
        object.__setattr__(config, name, value)


def range_fields(config_type: type) -> list[str]:
    """Names of the fields of a config dataclass (what Hydra may override)."""
    return [f.name for f in dataclasses.fields(config_type)]


def rand(shape: Sequence[int], generator: torch.Generator | None, device: torch.device) -> Tensor:
    """Uniform [0, 1) samples of ``shape`` on ``device``, drawn from ``generator`` (on its own device).

    Drawing on the generator's device keeps a seed's result independent of where the image lives.
    """
    source = generator.device if generator is not None else device
    return torch.rand(tuple(shape), generator=generator, device=source).to(device)


def randn(shape: Sequence[int], generator: torch.Generator | None, device: torch.device) -> Tensor:
    """Standard normal samples of ``shape`` on ``device``, drawn from ``generator`` (see :func:`rand`)."""
    source = generator.device if generator is not None else device
    return torch.randn(tuple(shape), generator=generator, device=source).to(device)


def sample(value: Range, n: int, generator: torch.Generator | None, device: torch.device) -> Tensor:
    """``n`` values drawn uniformly from the closed range ``value``; float32 tensor of shape ``(n,)``."""
    lo, hi = value
    return lo + (hi - lo) * rand((n,), generator, device)


def replace_config(config: T, overrides: dict[str, object]) -> T:
    """``dataclasses.replace`` that skips None values (keep the default) and names unknown fields.

    Raises:
        ValueError: a key is not a field of ``config`` (the message lists the fields), or a bad range.
    """
    fields = range_fields(type(config))
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise ValueError(f"unknown {type(config).__name__} setting(s) {unknown}; expected some of {fields}")
    return dataclasses.replace(config, **{k: v for k, v in overrides.items() if v is not None})
