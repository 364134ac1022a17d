"""What the adaptive default does on every set of the shared real rain (docs/results.md, issue 27): per set,
how many images it leaves to its first expert, blends, or hands to a rain expert; its mean rain presence;
its scores where there is a clean image; the rain it leaves (as lpnet:gauge sees it: the strength the gauge
reads in the output over the input's); and how far the output is from the input.

    python docs/default_report.py REAL_RAIN_DIR [MODEL ...]     (default model: lpnet:auto)
"""

from __future__ import annotations

import statistics
import sys
from collections import Counter
from pathlib import Path

import torch

from lpnet import Derainer
from lpnet.checkpoint import load_gauge
from lpnet.io import list_images, read_image
from lpnet.metrics import psnr_y, quantize, ssim_y
from lpnet.models.gauge import PREVIEW_SIDE, rain_left
from lpnet.models.router import preview_factor

# (name, rainy folder, clean folder or None; a rain-free set is its own clean folder)
SETS = (
    ("rain100l-val", "rain100l-val/rain", "rain100l-val/norain"),
    ("rain100h-val", "rain100h-val/rain", "rain100h-val/norain"),
    ("heavy-val-2", "heavy-val-2/rain", "heavy-val-2/norain"),
    ("heavy-val", "heavy-val/rain", "heavy-val/norain"),
    ("light-val", "light-val/rain", "light-val/norain"),
    ("rain-free (rain100l-val/norain)", "rain100l-val/norain", "rain100l-val/norain"),
    ("real-photos", "real-photos", None),
    ("photos", "photos", None),
)


def preview(x: torch.Tensor) -> torch.Tensor:
    """What the gauge reads of a photo: box-downscaled to at most PREVIEW_SIDE per side."""
    k = preview_factor(*x.shape[-2:], PREVIEW_SIDE)
    return x if k == 1 else torch.nn.functional.avg_pool2d(x, k)


def kind(choice: str, first: str) -> str:
    """``first`` alone, a blend, or a rain expert alone (``rain``)."""
    return first if choice == first else "blend" if "%" in choice else "rain"


def report(real_rain: Path, model: str) -> list[str]:
    derainer = Derainer(model, device="cpu")
    router = derainer.router
    gauge = load_gauge("lpnet:gauge")
    first = router.names[0] if router is not None else "net"
    lines = [
        f"`{model}`",
        "",
        f"| set | n | {first} alone / blend / rain expert | Y-PSNR / SSIM (input) | rain left "
        "| output vs input |",
        "|---|---|---|---|---|---|",
    ]
    for name, rainy_dir, clean_dir in SETS:
        if not (real_rain / rainy_dir).is_dir():
            continue
        choices, psnrs, ssims, inputs, left, moved = Counter(), [], [], [], [], []
        for path in list_images(real_rain / rainy_dir):
            rainy = read_image(path)
            derained = quantize(derainer.derain_tensor(rainy))[None]
            choices[kind(derainer.last_expert, first)] += 1
            if clean_dir is not None:
                clean = read_image(real_rain / clean_dir / path.name.replace("rain-", "norain-"))[None]
                psnrs.append(float(psnr_y(derained, clean)))
                ssims.append(float(ssim_y(derained, clean)))
                if clean_dir != rainy_dir:
                    inputs.append(float(psnr_y(rainy[None], clean)))
            left.append(float(rain_left(gauge, preview(rainy[None]), preview(derained))))
            moved.append(float(psnr_y(derained, rainy[None])))
        counts = " / ".join(str(choices[k]) for k in (first, "blend", "rain"))
        scores = (
            f"{statistics.fmean(psnrs):.2f} / {statistics.fmean(ssims):.4f}"
            + (f" ({statistics.fmean(inputs):.2f})" if inputs else "")
            if psnrs
            else ""
        )
        valid = [v for v in left if v == v]
        lines.append(
            f"| {name} | {len(moved)} | {counts} | {scores} | {100 * statistics.fmean(valid):.0f} % | "
            f"{statistics.fmean(moved):.2f} dB |"
        )
    return lines


if __name__ == "__main__":
    with torch.inference_mode():
        for model in sys.argv[2:] or ["lpnet:auto"]:
            print("\n".join(report(Path(sys.argv[1]), model)) + "\n", flush=True)
