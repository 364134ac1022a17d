"""`make demo` end to end with a test-sized budget: it trains, scores, and writes its grid and metrics."""

from __future__ import annotations

import json

from conftest import compose_train

from lpnet.demo import demo


def test_demo_writes_grid_and_metrics(tmp_path):
    overrides = [
        "trainer.max_steps=3", "trainer.val_check_interval=3", "data.num_workers=0", "data.crop_size=32",
        "data.batch_size=2", "data.val_length=1", "data.test_length=2", "data.eval_crop_size=64",
        "callbacks.progress_bar.refresh_rate=0", "demo.images=2", "demo.crop=48",
    ]  # fmt: skip
    grid, returned = demo(compose_train(tmp_path, overrides, config_name="demo"))
    assert grid == tmp_path / "before_after.png" and grid.read_bytes()[:4] == b"\x89PNG"
    from PIL import Image

    assert Image.open(grid).size == (3 * 48 + 2 * 4, 2 * 48 + 4)  # 2 rows of rainy | derained | clean
    scores = json.loads((tmp_path / "demo.json").read_text())
    assert set(scores) == {"test_rainy_input", "test_derained"}
    assert 0 < scores["test_derained"]["psnr_y"] < 100 and scores == returned
    # The demo's scores are the training run's test (one scoring path), not a second evaluation.
    test = json.loads((tmp_path / "metrics.json").read_text())["metrics"]
    assert scores["test_derained"]["psnr_y"] == test["test/psnr_y"]
    assert scores["test_rainy_input"]["psnr_y"] == test["test/input_psnr_y"]
    assert json.loads((tmp_path / "metrics.json").read_text())["global_step"] == 3
