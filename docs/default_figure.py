"""The README's picture of the adaptive default (`make figures`): lpnet:auto on the three real rainy photos of
photos/ at full resolution (no ground truth), and on a light-rain, a heavy-rain and a rain-free example of the
shared 51-pair sets (centre crops).

    python docs/default_figure.py REAL_RAIN_DIR OUTPUT.png
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from lpnet import Derainer
from lpnet.io import read_image, write_image
from lpnet.pictures import Example, before_after
from lpnet.scoring import Scoreboard

CROP = 320  # centre crops of the benchmark examples keep the sheet readable; scores are of the whole images


def main(real_rain: Path, output: Path) -> None:
    derainer = Derainer("lpnet:auto", device="cpu")
    rows = []
    for photo in sorted((real_rain / "photos").glob("*.jpg")):
        rainy = read_image(photo)
        derained = derainer.derain_tensor(rainy)
        rows.append(Example(f"{photo.name} → {derainer.last_expert}", rainy, derained))
    for folder, rainy_name, clean_name in (
        ("rain100l-val", "rain/rain-001.png", "norain/norain-001.png"),
        ("rain100h-val", "rain/rain-001.png", "norain/norain-001.png"),
        ("rain100l-val", "norain/norain-002.png", "norain/norain-002.png"),
    ):
        rainy, clean = (
            read_image(real_rain / folder / rainy_name),
            read_image(real_rain / folder / clean_name),
        )
        derained = derainer.derain_tensor(rainy)
        board = Scoreboard()
        board.update(derained[None], clean[None], rainy=rainy[None], keys=[rainy_name])
        key = f"{folder}/{rainy_name} → {derainer.last_expert}"
        rows.append(Example(key, rainy, derained, clean, board.rows()[0]).cropped(CROP))
    heading = (
        "lpnet:auto (the default of lpnet.derain): real rainy photos at full resolution (no ground "
        "truth: the last panel is what was removed), then light rain, heavy rain and a rain-free photo "
        f"(centre {CROP}×{CROP})"
    )
    write_image(output, before_after(rows, heading).tensor())


if __name__ == "__main__":
    with torch.inference_mode():
        main(Path(sys.argv[1]), Path(sys.argv[2]))
