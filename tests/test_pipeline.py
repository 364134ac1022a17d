"""The pipelined folder run: the same bytes, errors and order as one image after another, bounded memory."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lpnet import LPNet
from lpnet.apply import Derainer, folder
from lpnet.io import OutputImage


@pytest.fixture(scope="module")
def derainer() -> Derainer:
    torch.manual_seed(0)
    return Derainer(LPNet(width_multiplier=0.25, recursions=1), device="cpu")


@pytest.fixture
def photos(tmp_path) -> Path:
    """A folder of twelve inputs of several kinds, two of them unreadable."""
    rng = np.random.default_rng(0)
    root = tmp_path / "in"
    root.mkdir()
    for i in range(9):
        Image.fromarray(rng.integers(0, 256, (24 + i, 30, 3), dtype=np.uint8)).save(root / f"p{i}.png")
    Image.fromarray(rng.integers(0, 256, (20, 20), dtype=np.uint8)).save(root / "gray.png")
    (root / "broken.png").write_bytes(b"not a png")
    (root / "empty.jpg").write_bytes(b"")
    return root


def files(folder_path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder_path.iterdir())}


def test_pipelined_and_sequential_runs_write_the_same_bytes(derainer, photos, tmp_path):
    piped = derainer.derain_files(photos, tmp_path / "piped", progress=False)
    plain = derainer.derain_files(photos, tmp_path / "plain", progress=False, pipeline=False)
    assert files(tmp_path / "piped") == files(tmp_path / "plain") and len(files(tmp_path / "plain")) == 10
    assert [p.name for p in piped.written] == [p.name for p in plain.written]  # input order
    assert piped.failed == plain.failed and [s.name for s, _ in piped.failed] == ["broken.png", "empty.jpg"]


def _count_images_in_flight(monkeypatch) -> list[int]:
    """Instrument decoding and writing: the largest number of images decoded and not yet written."""
    alive, peak, lock = [0], [0], threading.Lock()
    open_image, write = folder.open_image, OutputImage.write

    def counted_open(*args, **kwargs):
        image = open_image(*args, **kwargs)
        with lock:
            alive[0] += 1
            peak[0] = max(peak[0], alive[0])
        return image

    def counted_write(self, path):
        try:
            return write(self, path)
        finally:
            with lock:
                alive[0] -= 1

    monkeypatch.setattr(folder, "open_image", counted_open)
    monkeypatch.setattr(OutputImage, "write", counted_write)
    return peak


def test_small_images_overlap_at_most_three_at_a_time(derainer, photos, tmp_path, monkeypatch):
    peak = _count_images_in_flight(monkeypatch)
    derainer.derain_files(photos, tmp_path / "out", progress=False)
    assert 1 <= peak[0] <= 3  # one decoded ahead, one being derained, one being written


def test_large_images_run_one_at_a_time(derainer, photos, tmp_path, monkeypatch):
    monkeypatch.setattr(folder, "PIPELINE_PIXELS", 0)  # every image counts as large
    peak = _count_images_in_flight(monkeypatch)
    derainer.derain_files(photos, tmp_path / "out", progress=False)
    assert peak[0] == 1
