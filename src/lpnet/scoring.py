"""The one scoring path: per-image scores of derained images and of their rainy inputs, then the means.

``lpnet.eval``, training's validation and test (:class:`lpnet.training.LitLPNet`), and through the test the
demo, all score with :class:`Scoreboard`, so a figure means the same wherever it is printed. The metric
conventions (Y channel of MATLAB ``rgb2ycbcr``, quantised predictions, float64, whole images) are written
down in :mod:`lpnet.metrics`.

=========  =================================================================================
score      what
=========  =================================================================================
psnr_y     :func:`lpnet.metrics.psnr_y`: the papers' figure
ssim_y     :func:`lpnet.metrics.ssim_y`: the papers' figure
psnr_rgb   torchmetrics PSNR on RGB in [0, 1], per image
ssim_rgb   torchmetrics SSIM on RGB in [0, 1] (11×11 Gaussian window, σ 1.5), per image
=========  =================================================================================

Each score also exists as ``input_<score>``: the rainy input scored the same way (the baseline). A set's
score is the mean of its per-image scores; the PSNR of an image identical to its target is infinite, and
so is then the mean (strict JSON writes it as null: :func:`lpnet.files.write_json`).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from lpnet.metrics import psnr_y, quantize, ssim_y

SCORES = ("psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb")
INPUT_PREFIX = "input_"


def score_images(
    pred: Tensor, target: Tensor, *, quantize_pred: bool = True, round_y: bool = True
) -> dict[str, Tensor]:
    """Every score of :data:`SCORES` for each image of a batch.

    Args:
        pred: RGB ``(B, 3, H, W)``, any range (clipped; quantised like a saved 8-bit output when
            ``quantize_pred``, the official protocol).
        target: RGB ``(B, 3, H, W)`` in [0, 1], ``H, W >= 11``.
        quantize_pred: score ``uint8(clip(pred) * 255)`` rather than ``clip(pred)``.
        round_y: round Y like MATLAB ``rgb2ycbcr`` on uint8 images.

    Returns:
        ``{score: (B,) float64}``.
    """
    pred = quantize(pred) if quantize_pred else pred.clamp(0, 1)
    target = target.to(pred.dtype)
    return {
        "psnr_y": psnr_y(pred, target, round_y=round_y),
        "ssim_y": ssim_y(pred, target, round_y=round_y),
        "psnr_rgb": peak_signal_noise_ratio(
            pred, target, data_range=1.0, reduction="none", dim=(1, 2, 3)
        ).double(),
        "ssim_rgb": structural_similarity_index_measure(
            pred, target, data_range=1.0, reduction="none"
        ).double(),
    }


class Scoreboard(Metric):
    """Per-image scores of derained images (and of their rainy inputs) against clean ones, and their means.

    A torchmetrics ``Metric``: the per-image scores are its states, gathered across processes under DDP.

    Args:
        quantize_pred: score predictions as saved 8-bit outputs (the official protocol).
        round_y: round Y like MATLAB ``rgb2ycbcr`` on uint8 images.

    Example:
        >>> board = Scoreboard()
        >>> board.update(derained, clean, rainy=rainy, keys=["rain-001"])  # (B, 3, H, W) in [0, 1]
        >>> board.compute()  # {"psnr_y": ..., ..., "input_psnr_y": ..., ...}
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, quantize_pred: bool = True, round_y: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.quantize_pred = quantize_pred
        self.round_y = round_y
        for name in (*SCORES, *(INPUT_PREFIX + s for s in SCORES)):
            self.add_state(name, default=[], dist_reduce_fx="cat")
        self.keys: list[str] = []

    def update(
        self, derained: Tensor, clean: Tensor, rainy: Tensor | None = None, keys: list[str] | None = None
    ) -> None:
        """Add a batch: RGB ``(B, 3, H, W)``; ``rainy`` adds the baseline; ``keys`` name the images."""
        batch = derained.shape[0]
        for name, values in score_images(derained, clean, **self._options()).items():
            getattr(self, name).append(values)
        if rainy is not None:
            for name, values in score_images(rainy, clean, **self._options()).items():
                getattr(self, INPUT_PREFIX + name).append(values)
        self.keys.extend(keys if keys is not None else [str(len(self.keys) + i) for i in range(batch)])

    def _options(self) -> dict[str, bool]:
        return {"quantize_pred": self.quantize_pred, "round_y": self.round_y}

    def _values(self, name: str) -> Tensor | None:
        state = getattr(self, name)
        if isinstance(state, Tensor):  # after a DDP sync the list is already concatenated
            return state
        return torch.cat(state) if state else None

    def compute(self) -> dict[str, Tensor]:
        """Mean of every score the images have (``input_*`` only when rainy inputs were given)."""
        means = {}
        for name in (*SCORES, *(INPUT_PREFIX + s for s in SCORES)):
            values = self._values(name)
            if values is not None and values.numel():
                means[name] = values.mean()
        return means

    def rows(self) -> list[dict[str, Any]]:
        """One dict per image of this process: ``key`` and every score, as Python floats."""
        columns = {name: self._values(name) for name in (*SCORES, *(INPUT_PREFIX + s for s in SCORES))}
        present = {name: v for name, v in columns.items() if v is not None}
        return [
            {"key": key, **{name: float(values[i]) for name, values in present.items()}}
            for i, key in enumerate(self.keys)
        ]

    def reset(self) -> None:
        super().reset()
        self.keys = []


def format_table(rows: list[dict[str, Any]], mean: dict[str, float]) -> str:
    """A plain-text table: one line per image, then the mean (``input_*``: the rainy input's scores)."""
    columns = [c for c in (*SCORES, *(INPUT_PREFIX + s for s in SCORES[:2])) if c in mean]
    lines = [f"{'image':<24}" + "".join(f"{name:>13}" for name in columns)]
    for row in [*rows, {"key": "mean", **mean}]:
        cells = "".join(_cell(row.get(name)) for name in columns)
        lines.append(f"{row['key']:<24}{cells}")
    return "\n".join(lines)


def _cell(value: float | None) -> str:
    if value is None:
        return f"{'':>13}"
    return f"{'inf':>13}" if math.isinf(value) else f"{value:>13.4f}"
