"""Every experiment and hparams_search config composes, and the ablation sweeps expand as documented.

``conf/data/benchmark.yaml`` (the default data option) may not exist yet on every branch: the tests put a
placeholder on Hydra's search path. The package's own config comes first on that path, so once the real
file exists it wins and the placeholder is never read.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import lpnet
import lpnet.conf
from lpnet.models.lpnet import LPNet
from lpnet.report import collect_runs, table

CONF = Path(lpnet.__file__).parent / "conf"
EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
HPARAMS_SEARCHES = sorted(p.stem for p in (CONF / "hparams_search").glob("*.yaml"))
ABLATIONS = {
    "ablation_loss": {"loss": "paper,l1,l2,l1_ssim_all"},
    "ablation_width": {
        "model.net": "{width_multiplier:0.5},{width_multiplier:1},{width_multiplier:2},"
        "{widths:[16,16,16,16,16]}"
    },
    "ablation_recursion": {"model.net.recursions": "1,3,5,7"},
    "ablation_sharing": {"model.net.share_weights": "true,false"},
    "ablation_skip": {"model.net.residual_skip": "true,false"},
    "ablation_levels": {"model.net.num_levels": "3,4,5,6"},
}


def has_plugin(name: str) -> bool:
    return importlib.util.find_spec(f"hydra_plugins.{name}") is not None


@pytest.fixture(scope="module")
def searchpath(tmp_path_factory) -> str:
    extra = tmp_path_factory.mktemp("conf_placeholder")
    (extra / "data").mkdir()
    (extra / "data" / "benchmark.yaml").write_text("# placeholder for tests only\n{}\n")
    return f"hydra.searchpath=[file://{extra}]"


def compose_train(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", overrides=overrides, return_hydra_config=True)


def test_every_ablation_has_a_config():
    assert set(ABLATIONS) <= set(EXPERIMENTS)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_composes(name, searchpath):
    cfg = compose_train([searchpath, f"experiment={name}"])
    assert cfg.hydra.runtime.choices.experiment == name
    assert cfg.model.net is not None


@pytest.mark.parametrize("name", sorted(ABLATIONS))
def test_ablation_sweeps(name, searchpath):
    cfg = compose_train([searchpath, f"experiment={name}"])
    assert cfg.hydra.mode.name == "MULTIRUN"
    assert OmegaConf.to_container(cfg.hydra.sweeper.params) == ABLATIONS[name]
    assert cfg.task_name == name
    assert list(cfg.tags) == ["ablation", name]
    # W&B groups a sweep's runs by task_name (conf/logger/wandb.yaml).
    wandb = compose_train([searchpath, f"experiment={name}", "logger=wandb"]).logger.wandb
    assert wandb.group == name and list(wandb.tags) == ["ablation", name]


def test_without_an_experiment_nothing_is_swept(searchpath):
    cfg = compose_train([searchpath])
    assert cfg.hydra.mode is None and not cfg.hydra.sweeper.get("params")


@pytest.mark.skipif(not has_plugin("hydra_optuna_sweeper"), reason="needs hydra-optuna-sweeper")
@pytest.mark.parametrize("name", HPARAMS_SEARCHES)
def test_hparams_search_composes(name, searchpath):
    cfg = compose_train([searchpath, f"hparams_search={name}"])
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_ == "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper"
    assert cfg.hydra.mode.name == "MULTIRUN" and cfg.task_name == name
    assert sweeper.direction == "maximize" and cfg.optimized_metric == "val/psnr_y_best"
    if name == "optuna_lr_width":
        assert OmegaConf.to_container(sweeper.params) == {
            "optim.lr": "tag(log, interval(1e-4, 1e-2))",
            "model.net.width_multiplier": "choice(0.5, 1, 2, 4)",
        }
        assert sweeper.sampler._target_ == "optuna.samplers.TPESampler" and sweeper.sampler.seed == 1234


@pytest.mark.parametrize(
    ("launcher", "plugin", "target"),
    [
        ("joblib", "hydra_joblib_launcher", "JoblibLauncher"),
        ("submitit_slurm", "hydra_submitit_launcher", "SlurmLauncher"),
        ("slurm_gpu", "hydra_submitit_launcher", "SlurmLauncher"),
    ],
)
def test_launchers_compose(launcher, plugin, target, searchpath):
    if not has_plugin(plugin):
        pytest.skip(f"needs the {plugin} plugin")
    cfg = compose_train([searchpath, "experiment=ablation_loss", f"hydra/launcher={launcher}"])
    assert cfg.hydra.launcher._target_.endswith(target)
    if launcher == "slurm_gpu":
        assert cfg.hydra.launcher.gpus_per_node == 1 and cfg.hydra.launcher.timeout_min == 1440


# A stand-in for lpnet.train with the same config and the same outputs (config.yaml, metrics.json), so the
# real Hydra multirun machinery runs in a second without data or training.
FAKE_TRAIN = """
import json
from pathlib import Path

import hydra
from omegaconf import OmegaConf

import lpnet.conf  # the structured configs the YAML files start from
from lpnet.models.lpnet import LPNet


@hydra.main(version_base="1.3", config_path={conf!r}, config_name="train")
def main(cfg):
    out = Path(cfg.paths.output_dir)
    OmegaConf.save(cfg, out / "config.yaml", resolve=True)
    net = LPNet(**cfg.model.net)
    psnr = 30.0 + sum(net.widths) / 100
    record = {{"net": OmegaConf.to_container(cfg.model.net), "loss": OmegaConf.to_container(cfg.loss)}}
    (out / "job.json").write_text(json.dumps(record))
    params = sum(p.numel() for p in net.parameters())
    summary = {{"metrics": {{"val/psnr_y_best": psnr}}, "params": params, "global_step": 1}}
    (out / "metrics.json").write_text(json.dumps(summary))
    return psnr


main()
"""


def run_sweep(tmp_path: Path, searchpath: str, *overrides: str) -> Path:
    script = tmp_path / "fake_train.py"
    script.write_text(textwrap.dedent(FAKE_TRAIN.format(conf=str(CONF))))
    sweep_dir = tmp_path / "sweep"
    command = [sys.executable, str(script), searchpath, f"hydra.sweep.dir={sweep_dir}", *overrides]
    # The child imports the same lpnet as this test, installed or from src/.
    pythonpath = os.pathsep.join(filter(None, [str(CONF.parents[1]), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": pythonpath}
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return sweep_dir


def jobs(sweep_dir: Path) -> list[dict]:
    runs = sorted((p for p in sweep_dir.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    return [json.loads((run / "job.json").read_text()) for run in runs]


def test_width_ablation_runs_four_jobs_without_dash_m(tmp_path, searchpath):
    # No -m on the command line: hydra.mode=MULTIRUN in the experiment file starts the sweep.
    sweep_dir = run_sweep(tmp_path, searchpath, "experiment=ablation_width")
    widths = [LPNet(**job["net"]).widths for job in jobs(sweep_dir)]
    assert widths == [[1, 1, 2, 4, 8], [1, 2, 4, 8, 16], [2, 4, 8, 16, 32], [16] * 5]
    # ... and the report reads Hydra's real layout: one row per job, the dict sweep as dotted columns.
    columns, rows = table(collect_runs([sweep_dir]))
    assert {"model.net.width_multiplier", "model.net.widths"} <= set(columns)
    assert [row["status"] for row in rows] == ["complete"] * 4
    assert rows[3]["model.net.widths"] == [16] * 5 and rows[3]["params"] == 5 * 5411  # 5 subnets of width 16


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "key", "expected"),
    [
        ("ablation_loss", "loss", [("l1", 2), ("l1", 0), ("l2", 0), ("l1", 1000)]),
        ("ablation_levels", "num_levels", [3, 4, 5, 6]),
    ],
)
def test_sweep_expands(name, key, expected, tmp_path, searchpath):
    found = jobs(run_sweep(tmp_path, searchpath, f"experiment={name}"))
    if key == "loss":
        assert [(job["loss"]["pixel"], job["loss"]["ssim_levels"]) for job in found] == expected
    else:
        assert [job["net"][key] for job in found] == expected


@pytest.mark.slow
@pytest.mark.skipif(not has_plugin("hydra_optuna_sweeper"), reason="needs hydra-optuna-sweeper")
def test_optuna_search_runs(tmp_path, searchpath):
    sweep_dir = run_sweep(tmp_path, searchpath, "hparams_search=optuna_lr_width", "hydra.sweeper.n_trials=3")
    assert len(jobs(sweep_dir)) == 3
    results = OmegaConf.load(sweep_dir / "optimization_results.yaml")
    assert set(results.best_params) == {"optim.lr", "model.net.width_multiplier"}
    assert 1e-4 <= results.best_params["optim.lr"] <= 1e-2
