"""Training end to end on tiny generated pairs: the real config, shrunk."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import PROJECT_ROOT, compose_train, run_cli
from hydra.utils import instantiate

from lpnet.checkpoint import load_model, save_checkpoint
from lpnet.models.lpnet import LPNet
from lpnet.train import main as train_main
from lpnet.train import train
from lpnet.training.module import LitLPNet

SMALL = [
    "trainer.max_steps=4",
    "trainer.val_check_interval=2",
    "trainer.log_every_n_steps=1",
    "trainer.enable_model_summary=false",
    "data.crop_size=24",
    "data.batch_size=2",
    "data.num_workers=0",
    "data.val_fraction=0.34",
    "callbacks.progress_bar.refresh_rate=0",
]


def small_run(root, out, *extra):
    return compose_train(
        out, [f"data.root={root}", "data.train_dir=train", "data.test_dir=test", *SMALL, *extra]
    )


CONF = PROJECT_ROOT / "src/lpnet/conf"
EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
GROUP_OPTIONS = sorted(
    (group.name, option.stem)
    for group in CONF.iterdir()
    if group.is_dir() and group.name not in {"experiment", "hparams_search", "hydra", "__pycache__"}
    for option in group.glob("*.yaml")
)


@pytest.mark.parametrize(("group", "option"), GROUP_OPTIONS, ids=[f"{g}={o}" for g, o in GROUP_OPTIONS])
def test_every_group_option_resolves(group, option, tmp_path):
    from omegaconf import OmegaConf

    cfg = compose_train(tmp_path, [f"{group}={option}"])
    assert OmegaConf.to_yaml(cfg, resolve=True)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_resolves_as_train_resolves_it(name, tmp_path):
    """train() writes the fully resolved config first: a type clash in any interpolation stops it there."""
    from omegaconf import OmegaConf

    cfg = compose_train(tmp_path, [f"experiment={name}"])
    assert OmegaConf.to_yaml(cfg, resolve=True)


def test_paper_experiment_without_its_data_trains_on_the_synthetic_fallback(tmp_path, caplog):
    out = tmp_path / "run"
    small = [o for o in SMALL if not o.startswith("data.val_fraction")]
    cfg = compose_train(
        out, ["experiment=heavy_rain", f"paths.data_dir={tmp_path / 'no-data'}", *small, "test=false",
              "data.synthetic.val_length=1", "data.synthetic.eval_crop_size=48"],
    )  # fmt: skip
    train(cfg)
    assert "SYNTHETIC rain" in caplog.text and "data.fallback=null" in caplog.text
    assert json.loads((out / "metrics.json").read_text())["global_step"] == 4


def test_fast_dev_run(tiny_benchmark, tmp_path):
    cfg = small_run(tiny_benchmark, tmp_path / "run", "debug=fast_dev_run")
    train(cfg)


def test_run_writes_checkpoints_metrics_config_and_images(tiny_benchmark, tmp_path):
    out = tmp_path / "run"
    returned = train(small_run(tiny_benchmark, out))
    for name in ("checkpoints/best.ckpt", "checkpoints/last.ckpt", "config.yaml", "metrics.json"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "metrics.json").read_text())
    for key in ("test/psnr_y", "test/ssim_y", "test/psnr_rgb", "test/ssim_rgb", "val/psnr_y"):
        assert isinstance(summary["metrics"][key], float), key
    assert summary["params"] == 7548 and summary["global_step"] == 4
    assert summary["macs_per_pixel"] == pytest.approx(26575.4, abs=0.1)  # the README's official figure
    assert returned["metrics"] == pytest.approx(summary["metrics"])
    assert list((out / "images").glob("val_step*.png"))
    # Both checkpoints load without unpickling code, through the one loader.
    torch.load(out / "checkpoints/last.ckpt", weights_only=True)
    assert load_model(out / "checkpoints/best.ckpt").config.widths == [1, 2, 4, 8, 16]


@pytest.mark.parametrize("stop", [3, 4], ids=["between-validations", "at-a-validation"])
def test_resume_gives_the_weights_of_an_uninterrupted_run(tiny_benchmark, tmp_path, stop):
    straight = tmp_path / "straight"
    train(small_run(tiny_benchmark, straight, "trainer.max_steps=6", "test=false"))
    first = tmp_path / "first"
    train(small_run(tiny_benchmark, first, f"trainer.max_steps={stop}", "test=false"))
    resumed = tmp_path / "resumed"
    last = first / "checkpoints" / "last.ckpt"
    # last.ckpt holds the final step even when no validation fell on it (val_check_interval=2)
    assert torch.load(last, weights_only=True)["global_step"] == stop
    train(small_run(tiny_benchmark, resumed, "trainer.max_steps=6", "test=false", f"ckpt_path={last}"))
    a = torch.load(straight / "checkpoints/last.ckpt", weights_only=True)
    b = torch.load(resumed / "checkpoints/last.ckpt", weights_only=True)
    assert a["global_step"] == b["global_step"] == 6
    for key, value in a["state_dict"].items():
        torch.testing.assert_close(b["state_dict"][key], value, rtol=0, atol=1e-6, msg=key)
    # and it really trained: the resumed weights differ from the step-4 checkpoint
    c = torch.load(last, weights_only=True)
    assert any(not torch.equal(c["state_dict"][k], v) for k, v in a["state_dict"].items())


def test_unwritable_output_folder_fails_before_any_work(tiny_benchmark, tmp_path):
    (tmp_path / "file").write_text("in the way")
    with pytest.raises(PermissionError, match="is not writable"):
        train(small_run(tiny_benchmark, tmp_path / "file" / "run"))


def test_fine_tune_starts_from_given_weights(tmp_path):
    torch.manual_seed(3)
    start = LPNet()
    save_checkpoint(tmp_path / "start.pt", start)
    module = LitLPNet(net={}, init_from=str(tmp_path / "start.pt"))
    for key, value in start.state_dict().items():
        assert torch.equal(module.net.state_dict()[key], value)
    with pytest.raises(ValueError, match="model.init_from"):
        LitLPNet(net={"recursions": 2}, init_from=str(tmp_path / "start.pt"))


def test_fine_tune_from_a_trained_run(tiny_benchmark, tmp_path):
    """A run's own checkpoint stores model.net as given (widths: null, a multiplier): it still fits."""
    first = tmp_path / "first"
    train(small_run(tiny_benchmark, first, "test=false"))
    trained = load_model(first / "checkpoints" / "last.ckpt")
    module = LitLPNet(
        net={"widths": None, "width_multiplier": 1.0}, init_from=str(first / "checkpoints" / "last.ckpt")
    )
    for key, value in trained.state_dict().items():
        assert torch.equal(module.net.state_dict()[key], value)


@pytest.mark.slow
def test_ddp_two_cpu_processes(tiny_benchmark, tmp_path):
    """`trainer=ddp` on 2 CPU processes (gloo), through the command line as users run it."""
    out = tmp_path / "ddp"
    cmd = [
        sys.executable, "-m", "lpnet.train", "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2",
        f"data.root={tiny_benchmark}", "data.train_dir=train", "data.test_dir=test", *SMALL,
        f"hydra.run.dir={out}", "logger=csv",
    ]  # fmt: skip
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONUNBUFFERED": "1"}
    result = subprocess.run(cmd, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["global_step"] == 4
    assert "test/psnr_y" in summary["metrics"]


def test_real_pairs_are_validated_beside_the_main_set_and_never_trained_on(tiny_benchmark, tmp_path, capsys):
    """data.real_val_dir, data.real_val and data.clean_val: each set scored at every validation under its own
    name with its own best (CSV log, metrics.json, the end-of-run summary); none is a training set. A
    rain-free set is scored against itself: its rainy input is the clean photo (infinite PSNR)."""
    from conftest import write_pair_tree

    real = write_pair_tree(tmp_path / "real", count=2, size=(36, 44), seed=7)
    light = write_pair_tree(tmp_path / "light", count=3, size=(36, 44), seed=8)
    out = tmp_path / "run"
    cfg = small_run(
        tiny_benchmark, out, f"data.real_val_dir={real}", f"data.real_val={{light:{light}}}",
        f"data.clean_val={{photos:{light / 'norain'}}}",
    )  # fmt: skip
    summary = train(cfg)
    metrics = summary["metrics"]
    for stage in ("val_real", "val_real_light", "val_clean_photos"):
        for score in ("psnr_y", "ssim_y", "input_psnr_y", "psnr_y_best"):
            assert isinstance(metrics[f"{stage}/{score}"], float), f"{stage}/{score}"
    assert metrics["val_real/psnr_y"] != metrics["val/psnr_y"] != metrics["val_real_light/psnr_y"]
    # The rain-free photos are their own targets: the input is perfect, the network's output is not.
    assert metrics["val_clean_photos/input_psnr_y"] == float("inf") > metrics["val_clean_photos/psnr_y"]
    assert metrics["val_clean_photos/input_ssim_y"] == pytest.approx(1.0)
    with (out / "csv" / "metrics.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    logged = list(rows[0])
    assert {"val_real/psnr_y", "val_real_light/psnr_y_best", "val_clean_photos/psnr_y"} <= set(logged)
    assert not any("dataloader_idx" in column for column in logged)
    last = [float(r["val_real_light/psnr_y"]) for r in rows if r["val_real_light/psnr_y"]][-1]
    assert last == pytest.approx(metrics["val_real_light/psnr_y"], rel=1e-5)
    # The real pairs were read by validation only: the training stream draws from the benchmark's pairs.
    dm = instantiate(cfg.data)
    dm.setup("fit")
    assert {str(p.rainy.parent.parent) for p in dm.train_set.pairs} == {str(tiny_benchmark / "train")}
    sets = dm.extra_val_sets
    assert {name: len(s) for name, s in sets.items()} == {
        "val_real": 2,
        "val_real_light": 3,
        "val_clean_photos": 3,
    }
    assert sets["val_clean_photos"][0]["stage"] == "val_clean_photos"
    assert torch.equal(sets["val_clean_photos"][0]["rainy"], sets["val_clean_photos"][0]["clean"])


def test_a_rain_free_validation_folder_without_images_is_refused_by_name(tiny_benchmark, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    dm = instantiate(small_run(tiny_benchmark, tmp_path / "run", f"data.clean_val={{photos:{empty}}}").data)
    with pytest.raises(ValueError, match=f"(?s){empty}: does not fit layout 'rain_free'.*no images at all"):
        dm.setup("fit")


def test_short_runs_log_their_training_losses(tiny_benchmark, tmp_path):
    """log_every_n_steps (50 by default) is lowered to the validation interval: a 4-step run logs losses."""
    out = tmp_path / "run"
    small = [o for o in SMALL if not o.startswith("trainer.log_every_n_steps")]
    train(compose_train(out, [f"data.root={tiny_benchmark}", "data.test_dir=test", *small, "test=false"]))
    assert "log_every_n_steps: 2" in (out / "config.yaml").read_text()
    with (out / "csv" / "metrics.csv").open(newline="") as handle:
        logged = [row for row in csv.DictReader(handle) if row["train/loss"]]
    assert [int(row["step"]) for row in logged] == [1, 3]


def test_the_command_shows_its_settings_and_where_everything_went(tiny_benchmark, tmp_path, capsys):
    """The resolved settings as a tree at the start, the summary at the end, and both, with Lightning's
    own messages (its model summary with LPNet's MACs instead of 0 FLOPs), in the run's train.log."""
    out = tmp_path / "run"
    small = [o for o in SMALL if o != "trainer.enable_model_summary=false"]
    status = run_cli(
        train_main, f"data.root={tiny_benchmark}", "data.train_dir=train", "data.test_dir=test", *small,
        f"hydra.run.dir={out}", "model.net.recursions=2",
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert status == 0
    assert printed.index("settings (resolved)") < printed.index("lpnet train: train done")
    assert "recursions: 2" in printed and "├── model" in printed
    last = out / "checkpoints" / "last.ckpt"
    for fact in ("run directory", "best checkpoint", "last checkpoint", "test/psnr_y", "test/input_psnr_y"):
        assert f"\n  {fact} " in printed, fact
    resume = next(line for line in printed.splitlines() if "continue with" in line)
    assert "python -m lpnet.train" in resume and "model.net.recursions=2" in resume
    assert resume.endswith(f"ckpt_path={last} trainer.max_steps=<more than 4>")
    log = (out / "train.log").read_text()
    assert "resolved settings:" in log and "recursions: 2" in log
    assert "MACs per pixel at 321×481" in log and "Total Flops" not in log  # Lightning's summary, mended
    assert "`Trainer.fit` stopped: `max_steps=4` reached." in log  # a Lightning message
    assert "lpnet train: train done" in log and f"ckpt_path={last}" in log


def test_logger_none_trains(tiny_benchmark, tmp_path):
    """logger=none: no learning-rate monitor either (it needs a logger), and the run completes."""
    summary = train(small_run(tiny_benchmark, tmp_path / "run", "logger=none"))
    assert summary["global_step"] == 4 and not (tmp_path / "run" / "csv").exists()


@pytest.mark.parametrize("value", ["5", "[a,b]", "{light:[1,2]}"])
def test_a_validation_set_mapping_of_the_wrong_shape_is_one_line_naming_it(
    tiny_benchmark, tmp_path, value, capsys
):
    status = run_cli(
        train_main,
        f"data.root={tiny_benchmark}",
        *SMALL,
        f"hydra.run.dir={tmp_path / 'run'}",
        f"data.real_val={value}",
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1
    assert err[0].startswith("error: data.real_val must map set names to folders")
