"""The main job on the embedded default: ``make demo`` / ``python -m lpnet.demo``.

Trains LPNet on synthetic heavy rain (clean photos bundled with the installed packages, rain rendered on
the fly), scores the best checkpoint on the fixed synthetic test set next to the rainy input (training's
own test: :mod:`lpnet.scoring`), and writes a labelled before/after picture (:mod:`lpnet.pictures`). Any
training override works here too, e.g. ``python -m lpnet.demo trainer.max_steps=20000 trainer.max_time=null``.
"""

from __future__ import annotations

from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig

from lpnet.apply import Derainer
from lpnet.cli import Outcome, command
from lpnet.files import write_json
from lpnet.io import write_image
from lpnet.pictures import Example, before_after
from lpnet.scoring import INPUT_PREFIX, SCORES, Scoreboard
from lpnet.train import exit_when_stopped, train


def demo(cfg: DictConfig) -> tuple[Path, dict[str, dict[str, float]]]:
    """Train, then picture the first test images; returns the picture's path and the test scores.

    The picture's per-image scores come from a :class:`~lpnet.scoring.Scoreboard`, as the training's
    test scores do, on the whole images shown (the panels are centre crops).
    """
    output_dir = Path(cfg.paths.output_dir)
    summary = train(cfg)
    metrics = summary["metrics"]
    scores = {
        "test_rainy_input": {name: metrics[f"test/{INPUT_PREFIX}{name}"] for name in SCORES},
        "test_derained": {name: metrics[f"test/{name}"] for name in SCORES},
    }
    write_json(output_dir / "demo.json", scores)
    derainer = Derainer(summary["best_checkpoint"], device="cpu")
    datamodule = instantiate(cfg.data)
    datamodule.setup("test")
    board = Scoreboard()
    shown = []
    for index in range(min(cfg.demo.images, len(datamodule.test_set))):
        sample = datamodule.test_set[index]
        derained = derainer.derain_tensor(sample["rainy"])
        board.update(derained[None], sample["clean"][None], rainy=sample["rainy"][None], keys=[sample["key"]])
        shown.append(Example(sample["key"], sample["rainy"], derained, sample["clean"], board.rows()[-1]))
    heading = (
        f"lpnet demo: {summary['global_step']} steps on synthetic {cfg.degradation.name} "
        f"(centre {cfg.demo.crop}×{cfg.demo.crop} crops; scores of the whole test images)"
    )
    picture = before_after([example.cropped(cfg.demo.crop) for example in shown], heading)
    return write_image(output_dir / "before_after.png", picture.tensor()), scores


def run(cfg: DictConfig) -> Outcome:
    with exit_when_stopped(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt", tool="lpnet.demo"):
        grid, scores = demo(cfg)
    before, after = scores["test_rainy_input"], scores["test_derained"]
    facts = [
        ("test set", "synthetic heavy rain, Y-channel PSNR / SSIM"),
        ("rainy input", f"{before['psnr_y']:6.2f} dB / {before['ssim_y']:.4f}"),
        ("derained", f"{after['psnr_y']:6.2f} dB / {after['ssim_y']:.4f}"),
        ("before/after picture", f"{grid} (rainy | derained | clean | error ×4, with scores)"),
        ("run directory", Path(cfg.paths.output_dir)),
    ]
    return Outcome("lpnet demo done", facts)


main = command("demo", run, show_config=True)

if __name__ == "__main__":
    main()
