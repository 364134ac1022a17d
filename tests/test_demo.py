"""`make demo` end to end with a test-sized budget: it trains, scores, and writes its grid and metrics."""

from __future__ import annotations

import json

import numpy as np
from conftest import compose_train
from hydra.utils import instantiate
from PIL import Image

from lpnet.apply import Derainer
from lpnet.demo import demo
from lpnet.pictures import Comparison, comparison
from lpnet.scoring import Scoreboard


def test_demo_writes_grid_and_metrics(tmp_path):
    overrides = [
        "trainer.max_steps=3", "trainer.val_check_interval=3", "data.num_workers=0", "data.crop_size=32",
        "data.batch_size=2", "data.val_length=1", "data.test_length=2", "data.eval_crop_size=64",
        "callbacks.progress_bar.refresh_rate=0", "demo.images=2", "demo.crop=48",
    ]  # fmt: skip
    cfg = compose_train(tmp_path, overrides, config_name="demo")
    grid, returned = demo(cfg)
    assert grid == tmp_path / "before_after.png"
    assert_picture_shows(grid, cfg, tmp_path / "checkpoints" / "best.ckpt")
    scores = json.loads((tmp_path / "demo.json").read_text())
    assert set(scores) == {"test_rainy_input", "test_derained", "test_bundled"}
    assert 0 < scores["test_derained"]["psnr_y"] < 100 and scores == returned
    # The demo's scores are the training run's test (one scoring path), not a second evaluation.
    test = json.loads((tmp_path / "metrics.json").read_text())["metrics"]
    assert scores["test_derained"]["psnr_y"] == test["test/psnr_y"]
    assert scores["test_rainy_input"]["psnr_y"] == test["test/input_psnr_y"]
    assert json.loads((tmp_path / "metrics.json").read_text())["global_step"] == 3
    # The bundled model is scored on the same whole test images by a Scoreboard, and does better than
    # three steps of training.
    assert scores["test_bundled"]["psnr_y"] > scores["test_derained"]["psnr_y"]


def assert_picture_shows(path, cfg, checkpoint):
    """The picture: the first 2 synthetic test images (48-pixel centre crops) derained by the best
    checkpoint and by the bundled lpnet:heavy, with their Scoreboard scores: rainy | now | bundled | clean."""
    datamodule = instantiate(cfg.data)
    datamodule.setup("test")
    models = {"trained now: 3 steps": Derainer(checkpoint), "bundled lpnet:heavy": Derainer("lpnet:heavy")}
    rows = []
    for sample in (datamodule.test_set[0], datamodule.test_set[1]):
        outputs = {}
        for name, derainer in models.items():
            derained = derainer.derain_tensor(sample["rainy"])
            board = Scoreboard()
            board.update(derained[None], sample["clean"][None], rainy=sample["rainy"][None], keys=["k"])
            outputs[name] = (derained, board.rows()[0])
        rows.append(Comparison(sample["key"], sample["rainy"], outputs, sample["clean"]).cropped(48))
    written = np.asarray(Image.open(path).convert("RGB"))
    expected = comparison(rows)
    assert [len(row) for row in expected.panels] == [4, 4]
    # The same rows as expected, under a heading: compare everything below the heading band.
    offset = written.shape[0] - expected.pixels.shape[0]
    assert offset > 0 and written.shape[1] >= expected.pixels.shape[1]
    np.testing.assert_array_equal(written[offset:, : expected.pixels.shape[1]], expected.pixels)
    bundled = rows[0].outputs["bundled lpnet:heavy"][1]
    assert f"PSNR {bundled['psnr_y']:.2f} dB · SSIM {bundled['ssim_y']:.4f}" in expected.texts()
    assert "bundled lpnet:heavy" in expected.texts()
