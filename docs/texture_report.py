"""Where real photos' blotchy texture comes from (docs/results.md, issue 27): two measurements on the shared
51-pair sets.

    python docs/texture_report.py REAL_RAIN_DIR [MODEL ...]     (default: lpnet:light lpnet:mixed lpnet:heavy)

1. JPEG: does an expert amplify JPEG artefacts? ``|f(jpeg(x)) − f(x)| / |jpeg(x) − x|`` (RMS) on rain-free
   photos stored as JPEG at quality 50, 75 and 90 (1: passed on as they are; above 1: amplified).
2. Levels: each pyramid level's share of an expert's gain and harm: Y-PSNR with that level's subnet replaced
   by the identity (its band passed on untouched), on real heavy and light rain and on rain-free photos.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

import torch

from lpnet import load_model
from lpnet.data.degradations import jpeg_round_trip
from lpnet.io import list_images, read_image
from lpnet.metrics import psnr_y, quantize
from lpnet.models.lpnet import LPNet
from lpnet.models.pyramid import laplacian_pyramid, pyr_up

SETS = {  # name: (rainy folder, clean folder)
    "rain100h-val": ("rain100h-val/rain", "rain100h-val/norain"),
    "rain100l-val": ("rain100l-val/rain", "rain100l-val/norain"),
    "rain-free": ("rain100l-val/norain", "rain100l-val/norain"),
}


def without_levels(net: LPNet, x: torch.Tensor, identity: set[int]) -> torch.Tensor:
    """``net.derain(x)`` with the subnets of the levels in ``identity`` (0 = coarsest) left out."""
    bands = laplacian_pyramid(x, net.num_levels, net.kernel)
    out = None
    for level, (subnet, band) in enumerate(zip(net.subnets, bands, strict=True)):
        y = band if level in identity else subnet(band)
        out = torch.relu(y if out is None else y + pyr_up(out, band.shape[-2:], net.kernel))
    return out


def jpeg_amplification(net: LPNet, photos: list[Path]) -> str:
    cells = []
    for quality in (50, 75, 90):
        ratios = []
        for path in photos:
            x = read_image(path)[None]
            j = jpeg_round_trip(x[0], quality)[None]
            change = (net.derain(j) - net.derain(x)).pow(2).mean().sqrt()
            ratios.append(float(change / (j - x).pow(2).mean().sqrt()))
        cells.append(f"{statistics.median(ratios):.2f} (max {max(ratios):.2f})")
    return " | ".join(cells)


def level_knockouts(net: LPNet, real_rain: Path) -> list[str]:
    variants = {"all levels": set(), **{f"level {k} left out": {k} for k in range(net.num_levels)}}
    lines = []
    for name, (rainy_dir, clean_dir) in SETS.items():
        scores = {v: [] for v in variants}
        for path in list_images(real_rain / rainy_dir):
            x = read_image(path)[None]
            pair = path if clean_dir == rainy_dir else real_rain / clean_dir / f"no{path.name}"
            y = read_image(pair)[None]
            for variant, identity in variants.items():
                derained = quantize(without_levels(net, x, identity).clamp(0, 1))
                scores[variant].append(float(psnr_y(derained, y)))
        means = " | ".join(f"{statistics.fmean(s):.2f}" for s in scores.values())
        lines.append(f"| {name} | {means} |")
    header = "| set | " + " | ".join(variants) + " |"
    return [header, "|---" * (len(variants) + 1) + "|", *lines]


def main(real_rain: Path, models: list[str]) -> None:
    photos = list_images(real_rain / "rain100l-val" / "norain")
    print("| model | JPEG q50 | q75 | q90 |\n|---|---|---|---|")
    nets = {model: load_model(model) for model in models}
    for model, net in nets.items():
        print(f"| {model} | {jpeg_amplification(net, photos)} |", flush=True)
    for model, net in nets.items():
        print(f"\n`{model}`, Y-PSNR with one level left out (0 = coarsest):\n")
        print("\n".join(level_knockouts(net, real_rain)), flush=True)


if __name__ == "__main__":
    torch.set_num_threads(1)
    with torch.inference_mode():
        main(Path(sys.argv[1]), sys.argv[2:] or ["lpnet:light", "lpnet:mixed", "lpnet:heavy"])
