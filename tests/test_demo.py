"""`make demo` end to end with a test-sized budget: it trains, scores, and writes its grid and metrics."""

from __future__ import annotations

import json

import numpy as np
from conftest import compose_train
from hydra.utils import instantiate
from PIL import Image

from lpnet.apply import Derainer
from lpnet.demo import demo
from lpnet.pictures import Example, before_after
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
    assert set(scores) == {"test_rainy_input", "test_derained"}
    assert 0 < scores["test_derained"]["psnr_y"] < 100 and scores == returned
    # The demo's scores are the training run's test (one scoring path), not a second evaluation.
    test = json.loads((tmp_path / "metrics.json").read_text())["metrics"]
    assert scores["test_derained"]["psnr_y"] == test["test/psnr_y"]
    assert scores["test_rainy_input"]["psnr_y"] == test["test/input_psnr_y"]
    assert json.loads((tmp_path / "metrics.json").read_text())["global_step"] == 3


def assert_picture_shows(path, cfg, checkpoint):
    """The picture: the first 2 synthetic test images (48-pixel centre crops) derained by the best
    checkpoint, each with its Scoreboard scores, rainy | derained | clean | |error| ×4."""
    datamodule = instantiate(cfg.data)
    datamodule.setup("test")
    derainer = Derainer(checkpoint, device="cpu")
    examples = []
    for sample in (datamodule.test_set[0], datamodule.test_set[1]):
        derained = derainer.derain_tensor(sample["rainy"])
        board = Scoreboard()
        board.update(derained[None], sample["clean"][None], rainy=sample["rainy"][None], keys=[sample["key"]])
        example = Example(sample["key"], sample["rainy"], derained, sample["clean"], board.rows()[0])
        examples.append(example.cropped(48))
    written = np.asarray(Image.open(path).convert("RGB"))
    expected = before_after(examples)
    assert [len(row) for row in expected.panels] == [4, 4]
    # The same rows as expected, under a heading: compare everything below the heading band.
    offset = written.shape[0] - expected.pixels.shape[0]
    assert offset > 0 and written.shape[1] >= expected.pixels.shape[1]
    np.testing.assert_array_equal(written[offset:, : expected.pixels.shape[1]], expected.pixels)
    row = examples[0].scores
    assert f"PSNR {row['psnr_y']:.2f} dB · SSIM {row['ssim_y']:.4f}" in expected.texts()
