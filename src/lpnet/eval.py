"""Evaluation entry point: ``python -m lpnet.eval ckpt_path=CKPT data.root=DIR hydra.run.dir=OUT``.

Scores any checkpoint (converted official or trained) on any supported layout with the deraining
literature's metrics, per image and averaged. Writes ``OUT/metrics.json``, ``OUT/per_image.csv`` and,
with ``save_outputs=true``, ``OUT/outputs/<key>.png``; prints a table. A pair that cannot be read is
reported by name on one line, left out of the means and listed under ``failed`` in ``metrics.json``. Exit
status: 0 all scored, 1 some pairs failed, 2 nothing scored (bad setting, folder, layout or checkpoint).
"""

from __future__ import annotations

import csv
import io as _stdio
import sys
import time
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig
from omegaconf.errors import MissingMandatoryValue
from tqdm import tqdm

from lpnet.checkpoint import CheckpointError
from lpnet.data.datasets import PairedImageDataset
from lpnet.data.layouts import detect_layout, find_pairs
from lpnet.inference import Derainer
from lpnet.io import ImageReadError, ensure_writable_folder, write_image, write_json, write_text
from lpnet.metrics import SSIM_WINDOW, deraining_metrics
from lpnet.visualize import before_after_grid, centre_crop

SCORES = ("psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb")


COLUMNS = (*SCORES, "input_psnr_y", "input_ssim_y")


def format_table(rows: list[dict[str, Any]], mean: dict[str, float]) -> str:
    """A plain-text table: one line per image, then the mean (``input_*``: the rainy input's scores)."""
    lines = [f"{'image':<24}" + "".join(f"{name:>13}" for name in COLUMNS)]
    for row in [*rows, {"key": "mean", **mean}]:
        cells = "".join(f"{row[name]:>13.4f}" for name in COLUMNS)
        lines.append(f"{row['key']:<24}{cells}")
    return "\n".join(lines)


def score(metrics, pred: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """One image's scores from a fresh ``deraining_metrics`` collection."""
    metrics.update(pred, target)
    values = {name: float(value) for name, value in metrics.compute().items()}
    metrics.reset()
    return values


def evaluate(cfg: DictConfig, failed: list[str] | None = None) -> dict[str, float]:
    """Derain every pair under ``cfg.data.root`` and score it; returns the mean scores.

    A pair that cannot be read (:class:`~lpnet.io.ImageReadError`, or a size mismatch) is reported on
    stderr, appended to ``failed`` (one line naming the file) and left out.

    Raises:
        ValueError: no pair could be read (or a bad setting, folder or layout).
        PermissionError: the output folder cannot be written (checked first).
    """
    failed = [] if failed is None else failed
    started = time.perf_counter()
    output_dir = ensure_writable_folder(cfg.paths.output_dir)  # before an hour of deraining
    root = Path(cfg.data.root)
    layout = detect_layout(root) if cfg.data.layout == "auto" else cfg.data.layout
    pairs = find_pairs(root, layout, rainy_side=cfg.data.get("rainy_side"))
    dataset = PairedImageDataset(pairs)
    derainer = Derainer(cfg.ckpt_path, device=cfg.device, tile=cfg.tile)
    metrics = deraining_metrics(quantize=cfg.metrics.quantize, round_y=cfg.metrics.round_y)
    rows: list[dict[str, Any]] = []
    triplets = []
    for index in tqdm(range(len(dataset)), desc=f"eval {root.name}", unit="img"):
        try:
            sample = dataset[index]
        except (ImageReadError, ValueError) as err:  # the message names the file
            failed.append(str(err))
            tqdm.write(f"failed: {err}", file=sys.stderr)
            continue
        rainy, clean = sample["rainy"][None], sample["clean"][None]
        if min(rainy.shape[-2:]) < SSIM_WINDOW:
            failed.append(
                f"{sample['rainy_path']}: {rainy.shape[-2]}×{rainy.shape[-1]} is smaller than the "
                f"{SSIM_WINDOW}×{SSIM_WINDOW} SSIM window; not scored"
            )
            tqdm.write(f"failed: {failed[-1]}", file=sys.stderr)
            continue
        derained = derainer.derain_tensor(rainy).clamp(0, 1).cpu()
        before = score(metrics, rainy, clean)
        row = {"key": sample["key"], **score(metrics, derained, clean)}
        rows.append(row | {"input_psnr_y": before["psnr_y"], "input_ssim_y": before["ssim_y"]})
        if cfg.save_outputs:
            write_image(output_dir / "outputs" / f"{sample['key']}.png", derained[0])
        if len(triplets) < cfg.grid.images:
            triplets.append(tuple(centre_crop(t[0], cfg.grid.crop) for t in (rainy, derained, clean)))
    if not rows:
        raise ValueError(f"no pair under {root} could be read ({len(failed)} failed)")
    mean = {name: sum(row[name] for row in rows) / len(rows) for name in COLUMNS}

    buffer = _stdio.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["key", *COLUMNS])
    writer.writeheader()
    writer.writerows(rows)
    write_text(output_dir / "per_image.csv", buffer.getvalue())
    write_json(
        output_dir / "metrics.json",
        {
            "metrics": {f"test/{name}": mean[name] for name in SCORES},
            "rainy_input": {
                f"test/{name[len('input_') :]}": mean[name] for name in COLUMNS if name.startswith("input_")
            },
            "images": len(rows),
            "failed": failed,
            "ckpt_path": str(cfg.ckpt_path),
            "data_root": str(cfg.data.root),
            "layout": layout,
            "device": str(derainer.device),
            "wall_time_s": round(time.perf_counter() - started, 2),
        },
    )
    if triplets:
        grid = write_image(output_dir / "before_after.png", before_after_grid(triplets))
        print(f"before/after grid (rainy | derained | clean): {grid}")
    print(format_table(rows, mean))
    print(f"wrote {output_dir / 'metrics.json'} and {output_dir / 'per_image.csv'}")
    return mean


def run(cfg: DictConfig) -> int:
    """The command line: :func:`evaluate` with one-line errors instead of tracebacks; the exit status."""
    failed: list[str] = []
    try:
        evaluate(cfg, failed)
    except MissingMandatoryValue as err:
        print(f"error: missing setting {err.full_key}=...\n{__doc__.splitlines()[0]}", file=sys.stderr)
        return 2
    except (CheckpointError, OSError, ValueError, TypeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if failed:
        print(f"{len(failed)} failed:\n" + "\n".join(f"  {line}" for line in failed), file=sys.stderr)
    return 1 if failed else 0


@hydra.main(version_base="1.3", config_path="conf", config_name="eval")
def main(cfg: DictConfig) -> None:
    torch.set_grad_enabled(False)
    sys.exit(run(cfg))


if __name__ == "__main__":
    main()
