"""TensorBoard logging, read back from the event files: the validation pictures pixel for pixel, and the
HParams record (what the HParams tab shows): the run's settings beside its final scores, ``hp_metric`` the
best validation Y-PSNR, not Lightning's -1."""

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


def test_the_hparams_tab_holds_the_settings_and_every_final_score(tiny_benchmark, tmp_path):
    from tensorboard.plugins.hparams import plugin_data_pb2

    out = tmp_path / "run"
    real = tiny_benchmark / "test"
    summary = train(
        small_run(tiny_benchmark, out, "logger=tensorboard", "seed=7", f"data.real_val={{wet:{real}}}")
    )
    events = event_accumulator.EventAccumulator(str(out / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    records = {
        tag: plugin_data_pb2.HParamsPluginData.FromString(content)
        for tag, content in events.PluginTagToContent("hparams").items()
    }
    # one record, written at the end: no placeholder session with hp_metric = -1 from the start
    assert sorted(records) == [
        "_hparams_/experiment",
        "_hparams_/session_end_info",
        "_hparams_/session_start_info",
    ]
    started = records["_hparams_/session_start_info"].session_start_info.hparams
    assert started["seed"].number_value == 7 and started["model/net/recursions"].number_value == 5
    columns = {info.name.tag for info in records["_hparams_/experiment"].experiment.metric_infos}
    finals = {
        "final/val/psnr_y", "final/val/ssim_y", "final/val_real_wet/psnr_y", "final/val_real_wet/ssim_y",
        "final/test/psnr_y", "final/test/ssim_y",
    }  # fmt: skip
    assert columns == {"hp_metric", *finals}
    for column in finals:  # each column's value is the score metrics.json holds
        (logged,) = events.Scalars(column)
        assert logged.value == pytest.approx(summary["metrics"][column.removeprefix("final/")], rel=1e-6)
    assert events.Scalars("hp_metric")[-1].value == pytest.approx(summary["metrics"]["val/psnr_y_best"])
