"""The main job on the embedded default: ``make demo`` / ``python -m lpnet.demo``.

Trains LPNet on synthetic heavy rain for a few minutes (clean photos bundled with the installed packages,
rain rendered on the fly, the recipe of the bundled ``lpnet:heavy`` with fewer steps), scores the best
checkpoint on the fixed synthetic test set next to the rainy input (training's own test:
:mod:`lpnet.scoring`) and the bundled model, and writes a labelled picture of both
(:mod:`lpnet.pictures`). Any training override works here too, e.g.
``python -m lpnet.demo trainer.max_steps=3000 optim.lr=1e-3 trainer.max_time=null`` (the bundled model's
recipe).
"""

from __future__ import annotations

import time
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig

from lpnet.apply import Derainer
from lpnet.cli import Outcome, command
from lpnet.files import write_json
from lpnet.io import write_image
from lpnet.pictures import Comparison, comparison
from lpnet.scoring import INPUT_PREFIX, SCORES, Scoreboard
from lpnet.train import exit_when_stopped, train


def demo(cfg: DictConfig) -> tuple[Path, dict[str, dict[str, float]]]:
    """Train, then picture the first test images beside the bundled model; returns the picture's path and
    the test scores.

    The freshly trained model's test scores are the training run's own test (one scoring path,
    :mod:`lpnet.scoring`); the bundled model (``demo.bundled``) is scored by a
    :class:`~lpnet.scoring.Scoreboard` on the same whole test images, and the picture's captions are
    those boards' rows (the panels are centre crops).
    """
    output_dir = Path(cfg.paths.output_dir)
    started = time.perf_counter()
    summary = train(cfg)
    minutes = (time.perf_counter() - started) / 60
    metrics = summary["metrics"]
    # The fresh model derains only the pictured images (its whole-set scores are the training's test); the
    # bundled one derains the whole test set, for its scores.
    fresh = Derainer(summary["best_checkpoint"], device="cpu")
    bundled = Derainer(cfg.demo.bundled, device="cpu")
    fresh_name, bundled_name = f"trained now: {summary['global_step']} steps", f"bundled {cfg.demo.bundled}"
    fresh_board, bundled_board = Scoreboard(), Scoreboard()
    datamodule = instantiate(cfg.data)
    datamodule.setup("test")
    rows = []
    for index in range(len(datamodule.test_set)):
        sample = datamodule.test_set[index]
        rainy, clean, keys = sample["rainy"], sample["clean"], [sample["key"]]
        by_bundled = bundled.derain_tensor(rainy)
        bundled_board.update(by_bundled[None], clean[None], rainy=rainy[None], keys=keys)
        if index < cfg.demo.images:
            by_fresh = fresh.derain_tensor(rainy)
            fresh_board.update(by_fresh[None], clean[None], rainy=rainy[None], keys=keys)
            outputs = {
                fresh_name: (by_fresh, fresh_board.rows()[-1]),
                bundled_name: (by_bundled, bundled_board.rows()[-1]),
            }
            rows.append(Comparison(sample["key"], rainy, outputs, clean).cropped(cfg.demo.crop))
    bundled_scores = {name: float(value) for name, value in bundled_board.compute().items()}
    scores = {
        "test_rainy_input": {name: metrics[f"test/{INPUT_PREFIX}{name}"] for name in SCORES},
        "test_derained": {name: metrics[f"test/{name}"] for name in SCORES},
        "test_bundled": {name: bundled_scores[name] for name in SCORES},
    }
    write_json(output_dir / "demo.json", scores)
    heading = (
        f"lpnet demo: synthetic {cfg.degradation.name} test photos; the model trained just now "
        f"({minutes:.1f} min) beside the bundled {cfg.demo.bundled} (centre {cfg.demo.crop}² crops; "
        "scores of the whole images)"
    )
    picture = comparison(rows, heading)
    return write_image(output_dir / "before_after.png", picture.tensor()), scores


def run(cfg: DictConfig) -> Outcome:
    with exit_when_stopped(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt", tool="lpnet.demo"):
        grid, scores = demo(cfg)

    def line(name: str) -> str:
        return f"{scores[name]['psnr_y']:6.2f} dB / {scores[name]['ssim_y']:.4f}"

    facts = [
        ("test set", f"synthetic {cfg.degradation.name}, Y-channel PSNR / SSIM of the whole images"),
        ("rainy input", line("test_rainy_input")),
        ("trained now", line("test_derained")),
        (f"bundled {cfg.demo.bundled}", line("test_bundled")),
        ("picture", f"{grid} (rainy | trained now | bundled | clean, with scores)"),
        ("run directory", Path(cfg.paths.output_dir)),
    ]
    return Outcome("lpnet demo done", facts)


main = command("demo", run, show_config=True)

if __name__ == "__main__":
    main()
