"""The main job on the embedded default: ``make demo`` / ``python -m lpnet.demo``.

Trains LPNet on synthetic heavy rain (clean photos bundled with scikit-image, rain rendered on the fly),
scores it on the fixed synthetic test set next to the rainy input, and writes a before/after grid.
Any training override works here too, e.g.
``python -m lpnet.demo trainer.max_steps=20000 trainer.max_time=null``.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig

from lpnet.inference import Derainer
from lpnet.io import write_image, write_json
from lpnet.metrics import deraining_metrics
from lpnet.train import train
from lpnet.visualize import before_after_grid, centre_crop


def demo(cfg: DictConfig) -> Path:
    """Train, then score the rainy input and the derained output on the test set; returns the grid path."""
    output_dir = Path(cfg.paths.output_dir)
    train(cfg)
    derainer = Derainer(output_dir / "checkpoints" / "best.ckpt", device="cpu")
    datamodule = instantiate(cfg.data)
    datamodule.setup("test")
    rainy_scores, derained_scores = deraining_metrics(), deraining_metrics()
    triplets = []
    for index in range(len(datamodule.test_set)):
        sample = datamodule.test_set[index]
        rainy, clean = sample["rainy"][None], sample["clean"][None]
        derained = derainer.derain_tensor(rainy).clamp(0, 1)
        rainy_scores.update(rainy, clean)
        derained_scores.update(derained, clean)
        if index < cfg.demo.images:
            triplets.append(tuple(centre_crop(t[0], cfg.demo.crop) for t in (rainy, derained, clean)))
    before = {k: float(v) for k, v in rainy_scores.compute().items()}
    after = {k: float(v) for k, v in derained_scores.compute().items()}
    grid = write_image(output_dir / "before_after.png", before_after_grid(triplets))
    write_json(output_dir / "demo.json", {"test_rainy_input": before, "test_derained": after})
    print(
        f"\nsynthetic heavy-rain test set ({len(datamodule.test_set)} images), Y-channel PSNR / SSIM:\n"
        f"  rainy input  {before['psnr_y']:6.2f} dB / {before['ssim_y']:.4f}\n"
        f"  derained     {after['psnr_y']:6.2f} dB / {after['ssim_y']:.4f}\n"
        f"before/after grid (rainy | derained | clean): {grid}\n"
        f"scores: {output_dir / 'metrics.json'}, {output_dir / 'demo.json'}\n"
        f"checkpoint: {output_dir / 'checkpoints' / 'best.ckpt'}"
    )
    return grid


@hydra.main(version_base="1.3", config_path="conf", config_name="demo")
def main(cfg: DictConfig) -> None:
    demo(cfg)


if __name__ == "__main__":
    main()
