"""TensorBoard logging, read back from the event files: the validation pictures pixel for pixel, and
``hp_metric`` (what the HParams tab shows) holding the run's best validation Y-PSNR, not Lightning's -1."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from test_train import small_run

from lpnet.train import train

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


def test_tensorboard_stores_the_pictures_and_the_best_psnr(tiny_benchmark, tmp_path):
    out = tmp_path / "run"
    summary = train(small_run(tiny_benchmark, out, "logger=tensorboard", "test=false"))
    events = event_accumulator.EventAccumulator(
        str(out / "tensorboard"), size_guidance={"images": 0, "scalars": 0}
    )
    events.Reload()
    tags = sorted(tag for tag in events.Tags()["images"] if tag.startswith("val/examples/"))
    assert tags == ["val/examples/rain-001", "val/examples/rain-005"]  # the 2 validation images
    for tag in tags:
        logged = events.Images(tag)
        assert [image.step for image in logged] == [2, 4]
        for image in logged:
            stored = np.asarray(Image.open(io.BytesIO(image.encoded_image_string)).convert("RGB"))
            on_disk = out / "images" / f"val_step{image.step:07d}_{tag.rsplit('/', 1)[1]}.png"
            np.testing.assert_array_equal(stored, np.asarray(Image.open(on_disk).convert("RGB")))
            assert stored.std() > 30, "not a blank picture"
    hp_metric = events.Scalars("hp_metric")
    assert hp_metric[-1].step == 4
    assert hp_metric[-1].value == pytest.approx(summary["metrics"]["val/psnr_y_best"], rel=1e-6)
