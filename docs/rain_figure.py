"""The README's picture of the rain renderer against real rain (`make figures`): real Rain100L/H crops beside
the presets' rain rendered on the same clean backgrounds, at the same scale, with the streak statistics of
every pair of the shared 51-pair sets (``lpnet.data.rain.rain_statistics``; medians, 10th–90th percentile).

    python docs/rain_figure.py REAL_RAIN_DIR OUTPUT.png
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from lpnet.data.rain import PRESETS, rain_statistics, render_rain
from lpnet.io import read_image, write_image
from lpnet.pictures import Panel, centre_crop, compose

SETS = {"light": "rain100l-val", "heavy": "rain100h-val"}
SHOWN = ("rain-001.png", "rain-010.png", "rain-020.png")
CROP = 200
KEYS = ("mean_added", "coverage", "angle", "length", "width")


def _summary(stats: list[dict[str, float]]) -> str:
    parts = []
    for key in KEYS:
        values = np.array([s[key] for s in stats])
        low, mid, high = np.percentile(values, [10, 50, 90])
        parts.append(f"{key} {mid:.3g} [{low:.3g}, {high:.3g}]")
    return ", ".join(parts)


def main(real_rain: Path, output: Path) -> None:
    rows, legend = [], []
    for preset, folder in SETS.items():
        real, rendered, panels = [], [], []
        for k, rain_file in enumerate(sorted((real_rain / folder / "rain").glob("*.png"))):
            clean = read_image(real_rain / folder / "norain" / rain_file.name.replace("rain-", "norain-"))
            rainy = read_image(rain_file)
            synthetic = render_rain(clean[None], PRESETS[preset], torch.Generator().manual_seed(k))[0][0]
            real.append(rain_statistics(rainy, clean))
            rendered.append(rain_statistics(synthetic, clean))
            if rain_file.name in SHOWN:
                panels += [
                    Panel(centre_crop(rainy, CROP), f"real {folder}/{rain_file.name}"),
                    Panel(centre_crop(synthetic, CROP), f"rain_{preset}, same background"),
                ]
        rows.append(panels)
        legend += [
            f"{folder} real ({len(real)}): {_summary(real)}",
            f"rain_{preset} rendered: {_summary(rendered)}",
        ]
    heading = (
        f"Real rain beside lpnet's rendered rain on the same clean backgrounds (centre {CROP}×{CROP} crops)"
    )
    write_image(output, compose(rows, heading=heading, legend="\n".join(legend)).tensor())


if __name__ == "__main__":
    with torch.inference_mode():
        main(Path(sys.argv[1]), Path(sys.argv[2]))
