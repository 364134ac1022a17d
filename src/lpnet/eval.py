"""Score a checkpoint on paired images: ``python -m lpnet.eval ckpt_path=CKPT data.root=DIR``.

Scores any checkpoint (converted official or trained) on any supported layout with the deraining
literature's metrics (:mod:`lpnet.scoring`), per image and averaged, next to the rainy input's scores.
Writes ``metrics.json``, ``per_image.csv``, ``before_after.png`` and, with ``save_outputs=true``,
``outputs/<key>.png`` into ``output=DIR`` (default: the run directory ``outputs/eval/<time>/``),
and prints the table. A pair that cannot be read is reported by name on one line, left out of the means
and listed under ``failed`` in ``metrics.json``. Exit status: 0 all scored, 1 some pairs failed, 2 nothing
scored (bad setting, folder, layout or checkpoint).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig
from tqdm import tqdm

from lpnet.apply import Derainer
from lpnet.cli import Outcome, command
from lpnet.data.datasets import PairedImageDataset
from lpnet.data.layouts import detect_layout, find_pairs
from lpnet.files import ensure_writable_folder, write_json, write_text
from lpnet.io import ImageReadError, write_image
from lpnet.metrics import SSIM_WINDOW
from lpnet.pictures import Example, before_after
from lpnet.scoring import INPUT_PREFIX, SCORES, Scoreboard, format_table


def output_folder(cfg: DictConfig) -> Path:
    """Where this run writes: ``output``, else Hydra's run directory (``hydra.run.dir``)."""
    return Path(cfg.output) if cfg.output else Path(HydraConfig.get().runtime.output_dir)


def evaluate(cfg: DictConfig, output_dir: Path) -> dict[str, Any]:
    """Derain every pair under ``cfg.data.root``, score it, write the results; returns the summary.

    A pair that cannot be read (:class:`~lpnet.io.ImageReadError`, a size mismatch, too small to score)
    is reported on stderr, listed under ``failed`` and left out.

    Raises:
        ValueError: no pair could be read (or a bad setting, folder or layout).
        PermissionError: the output folder cannot be written (checked first).
    """
    started = time.perf_counter()
    ensure_writable_folder(output_dir)  # before an hour of deraining
    derainer = Derainer(
        cfg.ckpt_path,
        device=cfg.device,
        tile=cfg.tile,
        overlap=cfg.overlap,
        batch_size=cfg.batch_size,
        precision=cfg.precision,
    )
    root = Path(cfg.data.root)
    layout = detect_layout(root) if cfg.data.layout == "auto" else cfg.data.layout
    dataset = PairedImageDataset(find_pairs(root, layout, rainy_side=cfg.data.rainy_side))
    board = Scoreboard(quantize_pred=cfg.metrics.quantize, round_y=cfg.metrics.round_y)
    failed: list[str] = []
    choices: dict[str, str] = {}  # per image, what a router chose ("net" for one network)
    shown: list[Example] = []  # the first grid.images pairs, centre-cropped; their scores come after
    for index in tqdm(range(len(dataset)), desc=f"eval {root.name}", unit="img", file=sys.stderr):
        try:
            sample = dataset[index]
            rainy, clean = sample["rainy"][None], sample["clean"][None]
            if min(rainy.shape[-2:]) < SSIM_WINDOW:
                raise ValueError(
                    f"{sample['rainy_path']}: {rainy.shape[-2]}×{rainy.shape[-1]} is smaller than the "
                    f"{SSIM_WINDOW}×{SSIM_WINDOW} SSIM window; not scored"
                )
        except (ImageReadError, ValueError) as err:  # the message names the file
            failed.append(str(err))
            tqdm.write(f"failed: {err}", file=sys.stderr)
            continue
        derained = derainer.derain_tensor(rainy).cpu()
        board.update(derained, clean, rainy=rainy, keys=[sample["key"]])
        choices[sample["key"]] = derainer.last_expert
        if cfg.save_outputs:
            write_image(output_dir / "outputs" / f"{sample['key']}.png", derained[0])
        if len(shown) < cfg.grid.images:
            shown.append(Example(sample["key"], rainy[0], derained[0], clean[0]).cropped(cfg.grid.crop))
    rows = board.rows()
    if not rows:
        raise ValueError(f"no pair under {root} could be scored ({len(failed)} failed)")
    mean = {name: float(value) for name, value in board.compute().items()}

    # a router's choice per image: which expert, or which blend of two ("light 40% + mixed 60%")
    routed = derainer.router is not None
    rows = [{**row, "derained_with": choices[row["key"]]} if routed else row for row in rows]
    buffer = io.StringIO()
    writer = csv.DictWriter(
        buffer,
        fieldnames=["key", *SCORES, *(INPUT_PREFIX + s for s in SCORES), *(["derained_with"] * routed)],
    )
    writer.writeheader()
    writer.writerows(rows)
    write_text(output_dir / "per_image.csv", buffer.getvalue())
    summary = {
        "metrics": {f"test/{name}": mean[name] for name in SCORES},
        "rainy_input": {f"test/{name}": mean[INPUT_PREFIX + name] for name in SCORES},
        "images": len(rows),
        "failed": failed,
        "ckpt_path": str(cfg.ckpt_path),
        "data_root": str(cfg.data.root),
        "layout": layout,
        "device": str(derainer.device),
        "wall_time_s": round(time.perf_counter() - started, 2),
    }
    if routed:  # how many images each expert (or blend of two, "light+mixed") derained
        summary["derained_with"] = dict(sorted(Counter(_experts(c) for c in choices.values()).items()))
    write_json(output_dir / "metrics.json", summary)
    if shown:
        scores = {row["key"]: row for row in rows}
        examples = [dataclasses.replace(e, scores=scores[e.key]) for e in shown]
        crops = f"centre {cfg.grid.crop}×{cfg.grid.crop} crops; " if cfg.grid.crop else ""
        heading = f"lpnet eval: {Path(cfg.ckpt_path).name} on {root} ({crops}scores of the whole images)"
        write_image(output_dir / "before_after.png", before_after(examples, heading).tensor())
    print(format_table(rows, mean))
    return summary


def _experts(choice: str) -> str:
    """``"light 40% + mixed 60%"`` → ``"light+mixed"``; an expert's name as it is."""
    return "+".join(part.rsplit(" ", 1)[0] for part in choice.split(" + "))


def run(cfg: DictConfig) -> Outcome:
    """The command: :func:`evaluate` into the run directory, then the summary."""
    output_dir = output_folder(cfg)
    with torch.inference_mode():
        summary = evaluate(cfg, output_dir)
    metrics, rainy = summary["metrics"], summary["rainy_input"]
    facts = [
        ("images", summary["images"]),
        ("Y-PSNR / SSIM", f"{metrics['test/psnr_y']:.4f} / {metrics['test/ssim_y']:.4f}"),
        ("rainy input", f"{rainy['test/psnr_y']:.4f} / {rainy['test/ssim_y']:.4f}"),
    ]
    if "derained_with" in summary:
        facts.append(("derained with", ", ".join(f"{k} {n}" for k, n in summary["derained_with"].items())))
    facts.append(("results", output_dir))
    return Outcome(f"lpnet eval: {cfg.data.root}", facts, failed=summary["failed"])


main = command("eval", run, show_config=True)

if __name__ == "__main__":
    main()
