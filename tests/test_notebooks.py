"""The notebooks are stored with current outputs, run top to bottom in a fresh kernel of this
interpreter, and make what they promise.

The stored outputs (what a code host shows) come from ``make notebooks`` (``notebooks/execute.py``); a
fast test checks every cell's outputs were made from its present source and the pictures decode. The
slow tests run each notebook as ``make notebooks`` does and compare the outputs' shape with the stored
ones. Each notebook writes its figures and a JSON summary of what it found to ``LPNET_NOTEBOOK_OUT``; the
tests check the files are real PNGs and hold the notebooks' claims against independent computations and
the official reference scores.
"""

from __future__ import annotations

import base64
import csv
import importlib.util
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import PROJECT_ROOT
from PIL import Image

import lpnet
from lpnet.data.clean import SyntheticPairs
from lpnet.metrics import psnr_y, quantize

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOK_DIR = PROJECT_ROOT / "notebooks"
PARAMETERS = ("LPNET_OFFICIAL_DIR", "LPNET_NOTEBOOK_CKPT", "LPNET_SWEEP_DIR", "LPNET_NOTEBOOK_PAIRS")
# How many pictures each notebook displays (what a reader sees on a code host).
DISPLAYED = {"01_pyramid.ipynb": 4, "02_results.ipynb": 5}


def _load_executor():
    """``notebooks/execute.py``, what ``make notebooks`` runs: the tests run the notebooks the same way."""
    spec = importlib.util.spec_from_file_location("notebook_executor", NOTEBOOK_DIR / "execute.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


executor = _load_executor()
NOTEBOOKS = executor.NOTEBOOKS


@pytest.fixture
def notebook_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Kernel and environment for one notebook run; returns the notebook's output folder.

    The kernelspec runs this very interpreter and is found before any user-installed ``python3`` spec
    (:func:`executor.install_kernel`), so CI's ``.venv`` and a local venv both test themselves.
    """
    for name, value in executor.install_kernel(tmp_path).items():
        monkeypatch.setenv(name, value)
    for name in PARAMETERS:
        monkeypatch.delenv(name, raising=False)
    out = tmp_path / "out"
    monkeypatch.setenv("LPNET_NOTEBOOK_OUT", str(out))
    return out


def execute(name: str, workdir: Path) -> nbformat.NotebookNode:
    """Run a notebook top to bottom in ``workdir`` as ``make notebooks`` does (any error raises), and check
    that its outputs have the shape of the stored ones: the stored outputs are current."""
    workdir.mkdir()
    nb = executor.execute(NOTEBOOK_DIR / name, workdir)
    outputs = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs]
    assert not [out for out in outputs if out.output_type == "error"]
    stored = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
    assert output_kinds(nb) == output_kinds(stored), f"{name}: run `make notebooks` to store current outputs"
    return nb


def output_kinds(nb: nbformat.NotebookNode) -> list[list[tuple[str, ...]]]:
    """Per code cell, each output's type and the kinds of data it holds (text, image/jpeg, ...).

    A run of stream outputs counts as one: the kernel splits a cell's printing into one or several of them
    depending on timing and on stdout/stderr (the official-sample run's slower conversion splits it in two).
    """
    kinds = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        cell_kinds = [(out.output_type, *sorted(out.get("data", {}))) for out in cell.outputs]
        kinds.append(
            [k for i, k in enumerate(cell_kinds) if not (k == ("stream",) and cell_kinds[i - 1 : i] == [k])]
        )
    return kinds


def displayed_images(nb: nbformat.NotebookNode) -> list[bytes]:
    """The pictures a notebook displays, decoded from its outputs."""
    return [
        base64.b64decode(data)
        for cell in nb.cells
        for out in cell.get("outputs", [])
        for mime, data in out.get("data", {}).items()
        if mime.startswith("image/")
    ]


def assert_png(path: Path, min_side: int = 100) -> tuple[int, int]:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert min(image.size) >= min_side, (path, image.size)
        return image.size


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebooks_are_stored_with_their_current_outputs(name: str):
    """What a code host shows: every code cell ran (in order, no error) from the source it holds now, and
    the pictures are there and decode."""
    nb = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
    nbformat.validate(nb)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert [cell.execution_count for cell in code] == list(range(1, len(code) + 1)), f"{name}: run it whole"
    for cell in code:
        stamp = cell.metadata.get("lpnet", {}).get("source_sha256")
        edited = f"{name}: a cell was edited after its outputs were made; run `make notebooks`"
        assert stamp == executor.source_sha256(cell), f"{edited}:\n{cell.source[:200]}"
        assert not [out for out in cell.outputs if out.output_type == "error"]
    pictures = displayed_images(nb)
    assert len(pictures) == DISPLAYED[name]
    for picture in pictures:
        with Image.open(io.BytesIO(picture)) as image:
            image.load()
            assert min(image.size) >= 150 and np.asarray(image).std() > 10, "a real picture, not a blank"
    assert nb.metadata.kernelspec.name == "python3"


def sparsity(image: torch.Tensor, threshold: float = 0.02) -> list[float]:
    """Fraction of |v| < threshold per Laplacian level, computed here without lpnet.pictures."""
    levels = lpnet.laplacian_pyramid(image[None].double(), 5)
    return [float((level.abs() < threshold).sum()) / level.numel() for level in levels]


@pytest.mark.slow
def test_pyramid_notebook_on_synthetic_rain(notebook_out: Path, tmp_path: Path):
    nb = execute("01_pyramid.ipynb", tmp_path / "work")
    figures = ("01_before_after.png", "01_pyramid.png", "01_histograms.png", "01_levels.png")
    for figure in figures:
        assert_png(notebook_out / figure)
    assert len(displayed_images(nb)) == len(figures) == DISPLAYED["01_pyramid.ipynb"]
    summary = json.loads((notebook_out / "01_summary.json").read_text())
    assert summary["source"].startswith("synthetic heavy rain")
    assert summary["weights"] == "checkpoint lpnet:heavy"
    assert summary["psnr_y"]["derained"] > summary["psnr_y"]["rainy"] + 3  # lpnet:heavy derains it: +3.4 dB
    fractions = summary["near_zero_fraction"]
    # The notebook's numbers are those of the synthetic test image, recomputed here.
    sample = SyntheticPairs("test", "rain_heavy", length=1, crop_size=None)[0]
    # float32 (the notebook) against float64 (here): a value within rounding of the threshold may count
    # either way, so a few pixels of slack (1 pixel of the finest 512² level is 3.8e-6).
    assert fractions["rainy"] == pytest.approx(sparsity(sample["rainy"]), abs=2e-5)
    assert fractions["clean"] == pytest.approx(sparsity(sample["clean"]), abs=2e-5)
    # The claims the notebook illustrates: the bands of a clean image get sparser from coarse to fine, the
    # low-pass level is not sparse at all, and rain makes the finest band much less sparse.
    clean, rainy = fractions["clean"], fractions["rainy"]
    assert clean[1:] == sorted(clean[1:]), clean
    assert clean[-1] > 0.5 > 0.1 > clean[0]
    assert rainy[-1] > rainy[0]
    assert rainy[-1] < clean[-1] - 0.2


@pytest.mark.slow
def test_pyramid_notebook_on_the_official_sample(
    notebook_out: Path, tmp_path: Path, official_dir: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("LPNET_OFFICIAL_DIR", str(official_dir))
    execute("01_pyramid.ipynb", tmp_path / "work")
    for figure in ("01_before_after.png", "01_pyramid.png", "01_histograms.png", "01_levels.png"):
        assert_png(notebook_out / figure)
    summary = json.loads((notebook_out / "01_summary.json").read_text())
    assert summary["weights"] == "official light_model, converted"
    assert summary["size"] == [321, 481]
    # The official light model on rain-001: 27.30 dB rainy, 34.97 dB derained (official-lpnet/README.md).
    assert summary["psnr_y"]["rainy"] == pytest.approx(27.30, abs=0.006)
    assert summary["psnr_y"]["derained"] == pytest.approx(34.97, abs=0.006)
    # Deraining gives the fine bands back their clean sparsity.
    fractions = summary["near_zero_fraction"]
    rainy, derained, clean = fractions["rainy"][-1], fractions["derained"][-1], fractions["clean"][-1]
    assert rainy < derained - 0.03
    assert abs(derained - clean) < 0.01


@pytest.mark.slow
def test_results_notebook_builds_a_tiny_sweep_and_reports_it(notebook_out: Path, tmp_path: Path):
    nb = execute("02_results.ipynb", tmp_path / "work")
    summary = json.loads((notebook_out / "02_summary.json").read_text())
    sweep = Path(summary["sweep_dir"])
    assert sweep == notebook_out / "tiny_sweep"
    assert summary["runs"] == ["0", "1"] and summary["swept_keys"] == ["model.net.recursions"]
    with (notebook_out / "report" / "report.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["status"] for row in rows] == ["complete", "complete"]
    assert [row["model.net.recursions"] for row in rows] == ["1", "5"]
    assert all(math.isfinite(float(row["test/psnr_y"])) for row in rows)
    report = (notebook_out / "report" / "report.md").read_text()
    assert "| 0 | complete | 1 |" in report and "| 1 | complete | 5 |" in report
    for plot in ("psnr_vs_params.png", "psnr_by_model_net_recursions.png", "loss_curves.png"):
        assert_png(notebook_out / "report" / plot)
    # Three plots, the best run's validation picture and the before/after grid were displayed.
    assert len(displayed_images(nb)) == DISPLAYED["02_results.ipynb"]

    # The best run is the one with the highest validation Y-PSNR (never chosen on the test set), and its
    # checkpoint derained the crops.
    best = max(rows, key=lambda row: float(row["val/psnr_y_best"]))
    assert summary["metric"] == "val/psnr_y_best" and summary["best_run"] == best["run"]
    checkpoint = Path(summary["checkpoint"])
    assert checkpoint == sweep / best["run"] / "checkpoints" / "best.ckpt"
    # 2 rows of rainy | derained | clean | |error| ×4 160-pixel crops, with titles and captions.
    width, height = assert_png(notebook_out / "02_before_after.png")
    assert width >= 4 * 160 and height >= 2 * 160
    net = lpnet.load_model(checkpoint)
    samples = SyntheticPairs("test", "rain_heavy", length=2, crop_size=None)
    assert [score["key"] for score in summary["psnr_y"]] == [sample["key"] for sample in samples]
    for score, sample in zip(summary["psnr_y"], samples):
        with torch.no_grad():
            derained = net.derain(sample["rainy"][None]).clamp(0, 1)
        rainy, clean = sample["rainy"][None], sample["clean"][None]
        assert score["rainy"] == pytest.approx(float(psnr_y(quantize(rainy), clean)), abs=1e-6)
        assert score["derained"] == pytest.approx(float(psnr_y(quantize(derained), clean)), abs=0.02)
