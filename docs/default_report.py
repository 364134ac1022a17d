"""What the adaptive default does on every set of the shared real rain (docs/results.md, issue 27): per set,
how many images it leaves to its first expert, blends, or hands to a rain expert; the rain presence
lpnet:gauge reads (min / median / max); its scores where there is a clean image; the rain it leaves (as
lpnet:gauge sees it: the strength the gauge reads in the outputs over the inputs', summed over the set); and
how far the output is from the input.

    python docs/default_report.py REAL_RAIN_DIR [MODEL ...]     (default model: lpnet:auto)
    python docs/default_report.py REAL_RAIN_DIR --readings      (the gauge's readings alone: seconds)
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
from lpnet.models.router import box_preview

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


def kind(choice: str, first: str) -> str:
    """``first`` alone, a blend, or a rain expert alone (``rain``)."""
    return first if choice == first else "blend" if "%" in choice else "rain"


def spread(values: list[float], digits: int = 2) -> str:
    """``min / median / max``."""
    return " / ".join(f"{v:.{digits}f}" for v in (min(values), statistics.median(values), max(values)))


def readings(real_rain: Path) -> list[str]:
    """The gauge's presence and strength on every set (min / median / max), with no derainer."""
    gauge = load_gauge("lpnet:gauge")
    lines = ["| set | n | presence | strength |", "|---|---|---|---|"]
    for name, rainy_dir, _ in SETS:
        if (real_rain / rainy_dir).is_dir():
            read = [
                gauge.read(box_preview(read_image(p)[None], PREVIEW_SIDE))
                for p in list_images(real_rain / rainy_dir)
            ]
            presence, strength = [float(r.presence) for r in read], [float(r.strength) for r in read]
            lines.append(f"| {name} | {len(read)} | {spread(presence)} | {spread(strength, 3)} |")
    return lines


def report(real_rain: Path, model: str) -> list[str]:
    derainer = Derainer(model, device="cpu")
    router = derainer.router
    gauge = load_gauge("lpnet:gauge")
    first = router.names[0] if router is not None else "net"
    lines = [
        f"`{model}`",
        "",
        f"| set | n | {first} alone / blend / rain expert | presence | Y-PSNR / SSIM (input) | rain left "
        "| output vs input |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, rainy_dir, clean_dir in SETS:
        if not (real_rain / rainy_dir).is_dir():
            continue
        choices, psnrs, ssims, inputs, moved, presence = Counter(), [], [], [], [], []
        previews = []
        for path in list_images(real_rain / rainy_dir):
            rainy = read_image(path)
            presence.append(float(gauge.read(box_preview(rainy[None], PREVIEW_SIDE)).presence))
            derained = quantize(derainer.derain_tensor(rainy))[None]
            choices[kind(derainer.last_expert, first)] += 1
            if clean_dir is not None:
                pair = path if clean_dir == rainy_dir else real_rain / clean_dir / f"no{path.name}"
                clean = read_image(pair)[None]
                psnrs.append(float(psnr_y(derained, clean)))
                ssims.append(float(ssim_y(derained, clean)))
                if clean_dir != rainy_dir:
                    inputs.append(float(psnr_y(rainy[None], clean)))
            previews.append((box_preview(rainy[None], PREVIEW_SIDE), box_preview(derained, PREVIEW_SIDE)))
            moved.append(float(psnr_y(derained, rainy[None])))
        counts = " / ".join(str(choices[k]) for k in (first, "blend", "rain"))
        scores = (
            f"{statistics.fmean(psnrs):.2f} / {statistics.fmean(ssims):.4f}"
            + (f" ({statistics.fmean(inputs):.2f})" if inputs else "")
            if psnrs
            else ""
        )
        # rain-free photos hold no rain to speak of: what the gauge reads there is its error
        left = "" if rainy_dir == clean_dir else f"{100 * rain_left(gauge, previews):.0f} %"
        lines.append(
            f"| {name} | {len(moved)} | {counts} | {spread(presence)} | {scores} | "
            f"{left} | {statistics.fmean(moved):.2f} dB |"
        )
    return lines


if __name__ == "__main__":
    with torch.inference_mode():
        if sys.argv[2:] == ["--readings"]:
            print("\n".join(readings(Path(sys.argv[1]))), flush=True)
        for model in [] if sys.argv[2:] == ["--readings"] else sys.argv[2:] or ["lpnet:auto"]:
            print("\n".join(report(Path(sys.argv[1]), model)) + "\n", flush=True)
