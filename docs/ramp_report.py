"""How lpnet:auto's presence ramp was chosen (docs/results.md, issue 27): each expert's output on every image
of the shared sets computed once, then every ramp scored from them (blends at shares 0, 0.05, ..., 1).

    python docs/ramp_report.py REAL_RAIN_DIR

Per ramp ``[low, high]`` (the rain expert's share grows from 0 at presence ``low`` to 1 at ``high``): mean
Y-PSNR on the paired sets, how many rain-free and real photos get some of the rain expert, and the real
photos' rain left as lpnet:gauge reads it (lpnet.models.gauge.rain_left).
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

import torch
from default_report import SETS, preview

from lpnet import Derainer
from lpnet.checkpoint import load_gauge
from lpnet.io import list_images, read_image
from lpnet.metrics import psnr_y, quantize
from lpnet.models.gauge import rain_left
from lpnet.models.router import presence_share

SHARES = [i / 20 for i in range(21)]
PAIRED = ("rain100l-val", "rain100h-val", "heavy-val-2", "rain-free (rain100l-val/norain)")
RAMPS = ((0.2, 0.5), (0.25, 0.55), (0.3, 0.5), (0.35, 0.55), (0.4, 0.6), (0.4, 0.7), (0.45, 0.75),
         (0.55, 0.85), (0.7, 0.9))  # fmt: skip


def readings(real_rain: Path) -> dict[str, list[dict]]:
    """Per set and image: the gauge's presence; per share, the blend's Y-PSNR (paired sets) or its preview
    pair for rain_left (photos without ground truth)."""
    gauge = load_gauge("lpnet:gauge")
    light, rain = Derainer("lpnet:light", device="cpu"), Derainer("lpnet:mixed", device="cpu")
    sets = {}
    for name, rainy_dir, clean_dir in SETS:
        if name not in (*PAIRED, "real-photos") or not (real_rain / rainy_dir).is_dir():
            continue
        rows = []
        for path in list_images(real_rain / rainy_dir):
            x = read_image(path)[None]
            row = {"presence": float(gauge.read(preview(x)).presence)}
            a, b = light.derain_tensor(x[0])[None], rain.derain_tensor(x[0])[None]
            if clean_dir is None:  # a preview is a box average: the blend's is the blend of the previews
                row["previews"] = (preview(x), preview(a), preview(b))
            else:
                pair = path if clean_dir == rainy_dir else real_rain / clean_dir / f"no{path.name}"
                y = read_image(pair)[None]
                row["psnr"] = [float(psnr_y(quantize((1 - w) * a + w * b), y)) for w in SHARES]
            rows.append(row)
        sets[name] = rows
    return sets


def exact_share(row: dict, low: float, high: float) -> float:
    """The rain expert's share for the row's presence under the ramp, as lpnet:auto computes it."""
    return float(presence_share(torch.tensor(row["presence"]), low, high))


def share(row: dict, low: float, high: float) -> int:
    """The index in SHARES nearest the rain expert's share."""
    return round(20 * exact_share(row, low, high))


def blend(previews: tuple, w: float) -> tuple:
    """``(rainy, derained)`` previews at the rain expert's share ``w``."""
    rainy, light, rain = previews
    return rainy, (1 - w) * light + w * rain


def table(sets: dict[str, list[dict]]) -> list[str]:
    gauge = load_gauge("lpnet:gauge")
    lines = [
        "| presence ramp | " + " | ".join(PAIRED) + " | rain-free blended | real photos blended | "
        "real photos: rain left |",
        "|---" * (len(PAIRED) + 4) + "|",
    ]
    for ramp in RAMPS:
        scores = [f"{statistics.fmean(r['psnr'][share(r, *ramp)] for r in sets[n]):.2f}" for n in PAIRED]
        free = sum(exact_share(r, *ramp) > 0 for r in sets[PAIRED[-1]])
        real = sets["real-photos"]
        left = rain_left(gauge, [blend(r["previews"], SHARES[share(r, *ramp)]) for r in real])
        lines.append(
            f"| {list(ramp)} | {' | '.join(scores)} | {free} of {len(sets[PAIRED[-1]])} | "
            f"{sum(exact_share(r, *ramp) > 0 for r in real)} of {len(real)} | {100 * left:.0f} % |"
        )
    return lines


if __name__ == "__main__":
    torch.set_num_threads(1)
    with torch.inference_mode():
        print("\n".join(table(readings(Path(sys.argv[1])))), flush=True)
