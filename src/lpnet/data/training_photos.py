"""The clean photos the rain gauge trains on: ``python -m lpnet.data.training_photos FOLDER`` (``make
training-photos``).

The bundled photos (:data:`lpnet.data.clean.BUNDLED_SPLITS`' training ones) are few and of a few kinds; the
gauge must tell rain from every texture a photo can hold, so it also sees the photographs that Debian ships
as desktop wallpapers, each under the licence its package's ``copyright`` file states (:data:`WALLPAPERS`:
CC0, CC-BY-4.0, CC-BY-SA-3.0/4.0, GPL-2+; ``plasma-workspace-wallpapers`` is left out: its copyright file
and its wallpapers' own metadata disagree on the licence). The packages are fetched with ``apt-get
download`` and unpacked with ``dpkg-deb -x`` into ``FOLDER-debs`` (never installed); every photo is written
as a PNG with a long side of at most :data:`LONG_SIDE` pixels. Nothing of them is copied into the
repository or the package: the weights trained on them are (credits in the README).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from lpnet.data.clean import BUNDLED_SPLITS, PHOTOS
from lpnet.files import atomic_write

LONG_SIDE = 1024
# Where each package keeps its wallpapers.
FOLDERS = {
    "lomiri-wallpapers-16.04": "usr/share/backgrounds",
    "lomiri-wallpapers-20.04": "usr/share/backgrounds",
    "mate-backgrounds": "usr/share/backgrounds/mate/nature",
}
# (package, file in its folder, licence, author as the package's copyright file names them)
WALLPAPERS: tuple[tuple[str, str, str, str], ...] = (
    ("lomiri-wallpapers-16.04", "aitzgorri_by_Aitzol_Berasategi.jpg", "CC-BY-4.0", "Aitzol Berasategi"),
    ("lomiri-wallpapers-16.04", "Bridge_by_Sander_Klootwijk.jpg", "CC-BY-SA-4.0", "Sander Klootwijk"),
    ("lomiri-wallpapers-16.04", "Dragonfly_by_Bolly.jpg", "CC-BY-SA-4.0", "Bolly"),
    ("lomiri-wallpapers-16.04", "free_by_Peter_Nerlich.jpg", "CC-BY-SA-4.0", "Peter Nerlich"),
    ("lomiri-wallpapers-16.04", "friends_by_Aitzol_Berasategi.jpg", "CC-BY-4.0", "Aitzol Berasategi"),
    ("lomiri-wallpapers-16.04", "greentock_by_Peter_Nerlich.jpg", "CC-BY-SA-4.0", "Peter Nerlich"),
    ("lomiri-wallpapers-16.04", "life_by_Aitzol_Berasategi.jpg", "CC-BY-4.0", "Aitzol Berasategi"),
    ("lomiri-wallpapers-16.04", "picosdeeuropa_by_Aitzol_Berasategi.jpg", "CC-BY-4.0", "Aitzol Berasategi"),
    ("lomiri-wallpapers-16.04", "Picture_0B_by_freespace.jpg", "CC-BY-4.0", 'Trevor "Freespace"'),
    ("lomiri-wallpapers-16.04", "Picture_1A_by_freespace.jpg", "CC-BY-4.0", 'Trevor "Freespace"'),
    ("lomiri-wallpapers-16.04", "seeding_by_Clements_Engelhardt.jpg", "CC0-1.0", "Clemens Engelhardt"),
    ("lomiri-wallpapers-16.04", "sunset_by_Aitzol_Berasategi.jpg", "CC-BY-4.0", "Aitzol Berasategi"),
    ("lomiri-wallpapers-16.04", "Wine_by_Jakkub_Mede.jpg", "CC-BY-4.0", "Jakub Mede"),
    ("lomiri-wallpapers-20.04", "Kleiber_by_Lukas_Baubkus.jpg", "CC-BY-SA-3.0", "Lukas Baubkus"),
    ("mate-backgrounds", "Aqua.jpg", "GPL-2+", "Charles Barbin"),
    ("mate-backgrounds", "Blinds.jpg", "GPL-2+", "Lennart Poettering, Andrea Cimitan"),
    ("mate-backgrounds", "Dune.jpg", "GPL-2+", "Marco Cogoni, Hylke Bons"),
    ("mate-backgrounds", "FreshFlower.jpg", "GPL-2+", "Jens Ansorg"),
    ("mate-backgrounds", "Garden.jpg", "GPL-2+", "Charles Barbin"),
    ("mate-backgrounds", "GreenMeadow.jpg", "GPL-2+", "Timothy Schellhase, Lapo Calamandrei"),
    ("mate-backgrounds", "LadyBird.jpg", "GPL-2+", "Charles Barbin"),
    ("mate-backgrounds", "RainDrops.jpg", "GPL-2+", '"blackcombwhistler07"'),
    ("mate-backgrounds", "Storm.jpg", "GPL-2+", "Sergey Nazarov"),
    ("mate-backgrounds", "TwoWings.jpg", "GPL-2+", "Charles Barbin, Hylke Bons"),
    ("mate-backgrounds", "Wood.jpg", "GPL-2+", "Jean-François Fortin Tam"),
    ("mate-backgrounds", "YellowFlower.jpg", "GPL-2+", "Charles Barbin"),
)


def _save(pixels: np.ndarray, path: Path) -> Path:
    image = Image.fromarray(pixels)
    scale = LONG_SIDE / max(image.size)
    if scale < 1:
        image = image.resize((round(image.width * scale), round(image.height * scale)), Image.LANCZOS)
    with atomic_write(path) as tmp:
        image.save(tmp, format="PNG")
    return path


def fetch_wallpapers(folder: Path, debs: Path) -> list[Path]:
    """Download and unpack the packages of :data:`WALLPAPERS` into ``debs``; write their photos to ``folder``.

    Raises:
        RuntimeError: ``apt-get`` or ``dpkg-deb`` is missing or failed (the message says which package).
    """
    for tool in ("apt-get", "dpkg-deb"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} not found: the wallpaper photos come from Debian's packages")
    debs.mkdir(parents=True, exist_ok=True)
    written = []
    for package in sorted({entry[0] for entry in WALLPAPERS}):
        unpacked = debs / package
        if not unpacked.is_dir():
            if not list(debs.glob(f"{package}_*.deb")):
                done = subprocess.run(
                    ["apt-get", "download", package], cwd=debs, capture_output=True, text=True
                )
                if done.returncode != 0:
                    raise RuntimeError(f"apt-get download {package} failed: {done.stderr.strip()[-300:]}")
            (deb,) = debs.glob(f"{package}_*.deb")
            subprocess.run(["dpkg-deb", "-x", str(deb), str(unpacked)], check=True)
        for owner, name, _, _ in WALLPAPERS:
            if owner == package:
                with Image.open(unpacked / FOLDERS[package] / name) as image:
                    pixels = np.asarray(image.convert("RGB"))
                written.append(_save(pixels, folder / f"{package}__{Path(name).stem}.png"))
    return written


def write_training_photos(folder: Path) -> list[Path]:
    """The bundled training photos and the wallpapers, as PNGs in ``folder`` (greyscale ones as RGB); the
    packages are kept in ``<folder>-debs`` beside it (a folder of images must hold only the photos)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name in BUNDLED_SPLITS["train"]:
        pixels = PHOTOS[name].load()
        pixels = np.repeat(pixels[..., None], 3, axis=-1) if pixels.ndim == 2 else pixels[..., :3]
        if pixels.dtype != np.uint8:  # float photos in [0, 1]
            pixels = (np.clip(pixels, 0, 1) * 255 + 0.5).astype(np.uint8)
        written.append(_save(np.ascontiguousarray(pixels), folder / f"bundled__{name}.png"))
    return written + fetch_wallpapers(folder, folder.with_name(folder.name + "-debs"))


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "outputs/training-photos")
    print(f"wrote {len(write_training_photos(target))} photos to {target}")
