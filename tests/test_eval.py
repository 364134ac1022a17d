"""`python -m lpnet.eval` scores checkpoints like the deraining papers do."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import PROJECT_ROOT, write_pair_tree
from PIL import Image

from lpnet.checkpoint import save_checkpoint
from lpnet.convert import convert
from lpnet.io import read_image
from lpnet.models.lpnet import LPNet
from lpnet.pictures import Example, before_after

# Official README table: light_model on the three Rain100L-style samples (Y PSNR / SSIM).
LIGHT = {"rain-001": (34.97, 0.9637), "rain-002": (35.49, 0.9478), "rain-003": (33.17, 0.9602)}
RAINY = {"rain-001": (27.30, 0.8582), "rain-002": (28.99, 0.8638), "rain-003": (22.41, 0.7460)}


def run_eval(*overrides: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "disabled"}
    cmd = [sys.executable, "-m", "lpnet.eval", *overrides]
    return subprocess.run(cmd, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.official
def test_official_light_weights_reproduce_the_table(official_dir, tmp_path):
    convert(official_dir / "weights" / "light_model", tmp_path / "light.pt")
    out = tmp_path / "eval"
    result = run_eval(
        f"ckpt_path={tmp_path / 'light.pt'}", f"data.root={official_dir / 'test'}", f"hydra.run.dir={out}",
        "save_outputs=true",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {row["key"]: row for row in csv.DictReader((out / "per_image.csv").open())}
    assert sorted(rows) == sorted(LIGHT)
    for key, (psnr, ssim) in LIGHT.items():
        assert float(rows[key]["psnr_y"]) == pytest.approx(psnr, abs=0.01), key
        assert float(rows[key]["ssim_y"]) == pytest.approx(ssim, abs=0.0005), key
        assert float(rows[key]["input_psnr_y"]) == pytest.approx(RAINY[key][0], abs=0.01), key
        assert float(rows[key]["input_ssim_y"]) == pytest.approx(RAINY[key][1], abs=0.0005), key
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["metrics"]["test/psnr_y"] == pytest.approx(sum(p for p, _ in LIGHT.values()) / 3, abs=0.01)
    assert summary["images"] == 3 and summary["layout"] == "rain_norain"
    assert sorted(p.name for p in (out / "outputs").iterdir()) == [f"{k}.png" for k in sorted(LIGHT)]
    assert "mean" in result.stdout and "34.5" in result.stdout
    assert_picture_shows(out, official_dir / "test", rows, tmp_path / "light.pt")


def assert_picture_shows(out, root, rows, ckpt):
    """before_after.png is lpnet.pictures' sheet of the pairs (256-pixel centre crops): the rainy, derained
    (the saved outputs) and clean panels pixel for pixel, and the per_image.csv scores under them."""
    keys = sorted(rows)
    examples = []
    for key in keys:
        number = key.split("-")[1]
        images = [read_image(root / "rain" / f"{key}.png"), read_image(out / "outputs" / f"{key}.png")]
        scores = {name: float(value) for name, value in rows[key].items() if name != "key"}
        examples.append(Example(key, *images, read_image(root / "norain" / f"norain-{number}.png"), scores))
    heading = f"lpnet eval: {ckpt.name} on {root} (centre 256×256 crops; scores of the whole images)"
    expected = before_after([e.cropped(256) for e in examples], heading)
    written = np.asarray(Image.open(out / "before_after.png").convert("RGB"))
    assert written.shape == expected.pixels.shape
    for row in expected.panels:
        for box in row[:3]:  # the |error| panel differs: eval's is of the unquantised output
            np.testing.assert_array_equal(box.of(written), box.of(expected.pixels))
    for label in expected.labels:
        if not label.text.startswith("mean "):
            np.testing.assert_array_equal(label.box.of(written), label.box.of(expected.pixels), label.text)
    assert f"PSNR {float(rows['rain-001']['psnr_y']):.2f} dB · SSIM" in " ".join(expected.texts())


def test_missing_root_names_the_path(tmp_path):
    save_checkpoint(tmp_path / "m.pt", LPNet())
    result = run_eval(
        f"ckpt_path={tmp_path / 'm.pt'}", f"data.root={tmp_path / 'absent'}", f"hydra.run.dir={tmp_path}"
    )
    assert result.returncode != 0
    assert "absent" in result.stderr


def test_trained_style_checkpoint_on_generic_layout(tmp_path):
    save_checkpoint(tmp_path / "m.pt", LPNet())
    root = write_pair_tree(tmp_path / "pairs", count=2, size=(24, 30))
    out = tmp_path / "eval"
    result = run_eval(
        f"ckpt_path={tmp_path / 'm.pt'}", f"data.root={root}", f"hydra.run.dir={out}", "save_outputs=true"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = list(csv.DictReader((out / "per_image.csv").open()))
    assert [r["key"] for r in rows] == ["rain-001", "rain-002"]
    assert all(0 < float(r["ssim_y"]) <= 1 for r in rows)
    assert_picture_shows(out, root, {row["key"]: row for row in rows}, tmp_path / "m.pt")
