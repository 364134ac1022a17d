"""Deraining memory stays bounded: the 8-bit image in and out, plus one tile's work, whatever the size.

Each test derains a generated photo with ``python -m lpnet.derain`` in a process of its own and reads that
process's peak resident memory (``ru_maxrss`` of the finished child). The bounds are the README's:

- up to Pillow's pixel limit (89,478,485 pixels, the default ``max_pixels``) at the default tile: 1.5 GB;
- beyond it: what the decoder needs (Pillow keeps RGB in 4 bytes per pixel), the 3-byte output, and a
  constant for the runtime and one tile's work.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import PROJECT_ROOT
from PIL import Image

from lpnet import LPNet, save_checkpoint

GB = 2**30
# The runtime (Python, torch, Hydra: ~0.25 GB) and one default tile's work in row strips (~0.5 GB).
CONSTANT_BYTES = 1 * GB
DECODER_BYTES_PER_PIXEL = 4  # Pillow stores RGB as 32-bit pixels
OUTPUT_BYTES_PER_PIXEL = 3


def photo(path: Path, side: int) -> Path:
    """A ``side``² RGB PNG made of a repeated 256² random patch (fast to write, costly to derain)."""
    patch = Image.fromarray(np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8))
    canvas = Image.new("RGB", (side, side))
    for top in range(0, side, 256):
        for left in range(0, side, 256):
            canvas.paste(patch, (left, top))
    canvas.save(path, compress_level=1)
    return path


def peak_rss_of_derain(tmp_path: Path, side: int, *settings: str) -> int:
    """Peak RSS in bytes of ``python -m lpnet.derain`` on a ``side``² photo (checked to finish)."""
    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "official-size.pt", LPNet())
    source = photo(tmp_path / "big.png", side)
    # A fresh parent process runs the command and reports its only child's peak (ru_maxrss, kB).
    measure = (
        "import resource, subprocess, sys; done = subprocess.run(sys.argv[1:]); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(done.returncode)"
    )
    cmd = [sys.executable, "-c", measure, sys.executable, "-m", "lpnet.derain", f"ckpt_path={ckpt}",
           f"input={source}", f"output={tmp_path / 'out'}", "device=cpu", "progress=false",
           *settings]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT / "src")}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
    assert done.returncode == 0, done.stderr[-2000:]
    peak = int(done.stdout.strip().splitlines()[-1]) * 1024
    with Image.open(tmp_path / "out" / "big.png") as out:
        assert out.size == (side, side)
    return peak


@pytest.mark.slow
def test_a_photo_at_the_pixel_limit_fits_in_one_and_a_half_gigabytes(tmp_path):
    side = 9400  # 88.4 megapixels, just under Pillow's limit
    assert side * side <= Image.MAX_IMAGE_PIXELS
    peak = peak_rss_of_derain(tmp_path, side)
    assert peak <= 1.5 * GB, f"{peak / GB:.2f} GB"


@pytest.mark.slow
def test_beyond_the_limit_memory_grows_by_the_output_only(tmp_path):
    side = 12000  # 144 megapixels: needs max_pixels raised
    pixels = side * side
    peak = peak_rss_of_derain(tmp_path, side, f"max_pixels={pixels}")
    bound = (DECODER_BYTES_PER_PIXEL + OUTPUT_BYTES_PER_PIXEL) * pixels + CONSTANT_BYTES
    assert peak <= bound, f"{peak / GB:.2f} GB > {bound / GB:.2f} GB"
