"""lpnet.study: the plan, a real miniature study killed and restarted, the ledger's checks, and the report
recomputed from the ledger's files.

The miniature study is the real code path (``python -m lpnet.study`` starting ``python -m lpnet.train``),
on tiny generated "real" sets, with the skip-connection axis (2 values: the baseline and ``false``) × 2
seeds × 2 steps.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import ctrl_c_as_in_a_terminal, write_pair_tree

from lpnet.config import StudyCommandConfig
from lpnet.study import (
    BASELINE,
    ENTRY_FILES,
    REJECTED,
    axis_values,
    compose_train,
    manifest_settings,
    plan,
    read_ledger,
    read_manifest,
    recipe_of,
    train_command,
)

RECIPE = [
    "experiment=weights_heavy",
    "trainer.max_steps=2",
    "trainer.val_check_interval=1",
    "data.crop_size=32",
    "data.val_length=1",
    "data.test_length=1",
    "data.num_workers=0",
]
SLOTS = ["baseline/paper/seed1", "baseline/paper/seed2", "skip/false/seed1", "skip/false/seed2"]


def mini_settings(real: Path, ledger: Path, runs: Path, *extra: str) -> list[str]:
    recipe = ",".join(f'"{o}"' for o in RECIPE)
    return [
        f"real_rain_dir={real}",
        "real_val={heavy:heavy,light:light}",
        "clean_val={photos:light/norain}",
        f"recipe=[{recipe}]",
        "axes=[skip]",
        "seeds=[1,2]",
        f"ledger={ledger}",
        f"runs_dir={runs}",
        *extra,
    ]


def mini_config(real: Path, ledger: Path) -> StudyCommandConfig:
    return StudyCommandConfig(
        real_rain_dir=str(real),
        ledger=str(ledger),
        recipe=list(RECIPE),
        real_val={"heavy": "heavy", "light": "light"},
        clean_val={"photos": "light/norain"},
        axes=["skip"],
        seeds=[1, 2],
    )


def study(cwd: Path, *settings: str, env: dict | None = None) -> subprocess.Popen:
    command = [sys.executable, "-m", "lpnet.study", *settings]
    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True, preexec_fn=ctrl_c_as_in_a_terminal,
    )  # fmt: skip


def finish(proc: subprocess.Popen, timeout: float = 300) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-3000:]
    return out


@pytest.fixture(scope="module")
def real_sets(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("real")
    write_pair_tree(root / "heavy", count=2, size=(48, 64), seed=3)
    write_pair_tree(root / "light", count=2, size=(48, 64), seed=4)
    return root


@pytest.fixture(scope="module")
def interrupted_study(real_sets, tmp_path_factory) -> dict:
    """The miniature study, stopped (Ctrl-C to its process group) once its first run is in the ledger,
    then started again until nothing is left, then once more."""
    work = tmp_path_factory.mktemp("study")
    ledger, runs = work / "ledger", work / "runs"
    settings = mini_settings(real_sets, ledger, runs)
    first = study(work, *settings)
    deadline = time.monotonic() + 240
    while not (ledger / SLOTS[0]).is_dir():
        assert first.poll() is None and time.monotonic() < deadline, "the first run never reached the ledger"
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends: the study and its training run
    interrupted, _ = first.communicate(timeout=60)
    held_after_stop = sorted(p.relative_to(ledger).as_posix() for p in ledger.glob("*/*/seed*"))
    second = finish(study(work, *settings))
    third = finish(study(work, *settings))
    return {
        "ledger": ledger, "runs": runs, "work": work, "interrupted": interrupted, "held": held_after_stop,
        "second": second, "third": third, "settings": settings,
    }  # fmt: skip


def test_the_default_plan_shares_one_baseline_and_takes_each_axis_from_its_sweep():
    cfg = StudyCommandConfig(real_rain_dir="/real")
    runs = plan(cfg)
    configurations = list(dict.fromkeys((r.axis, r.value) for r in runs))
    assert configurations == [
        (BASELINE, "paper"),
        ("loss", "l1"), ("loss", "l2"), ("loss", "l1_ssim_all"),
        ("width", "width_multiplier=0.5"), ("width", "width_multiplier=2"),
        ("width", "widths=16-16-16-16-16"),
        ("recursion", "1"), ("recursion", "3"), ("recursion", "7"),
        ("skip", "false"), ("sharing", "false"),
    ]  # fmt: skip
    assert len(runs) == 36 and {r.seed for r in runs} == {1, 2, 3}
    # the paper's value of each axis is not run again: it is the baseline
    assert [label for label, _ in axis_values("recursion")] == ["1", "3", "5", "7"]
    baseline = recipe_of(compose_train(runs[0].overrides))
    for run in runs[3:]:
        recipe = recipe_of(compose_train(run.overrides))
        assert recipe != baseline
        # everything but the value and the seed is the baseline's recipe
        differ = {k for k in baseline if baseline[k] != recipe[k]}
        assert differ <= {"model", "loss", "seed", "data"}, differ
        assert recipe["data"] | {"seed": 0} == baseline["data"] | {"seed": 0}
    assert baseline["data"]["real_val"] == {"heavy": "rain100h-val", "light": "rain100l-val"}
    assert baseline["trainer"]["max_steps"] == 1000


def test_a_stopped_study_runs_only_what_is_missing(interrupted_study):
    ledger = interrupted_study["ledger"]
    assert interrupted_study["held"] == [SLOTS[0]], interrupted_study["interrupted"][-2000:]
    assert "interrupted (Ctrl-C)" in interrupted_study["interrupted"]
    assert not list(ledger.rglob(".*partial*")), "a half-copied entry was left in the ledger"
    second = interrupted_study["second"]
    assert "4 runs planned, 1 in the ledger" in second and "3 left" in second
    started = re.findall(r"^\[(\d+)/(\d+)\] (\S+):", second, flags=re.M)
    assert [slot for _, _, slot in started] == SLOTS[1:]
    third = interrupted_study["third"]
    assert "nothing left to run" in third and not re.search(r"^\[\d+/\d+\]", third, flags=re.M)
    assert sorted(p.relative_to(ledger).as_posix() for p in ledger.glob("*/*/seed*")) == SLOTS


def test_the_ledger_layout_is_small_files_only(interrupted_study):
    ledger = interrupted_study["ledger"]
    for slot in SLOTS:
        entry = ledger / slot
        assert sorted(p.name for p in entry.iterdir()) == sorted(ENTRY_FILES)
        assert sum(p.stat().st_size for p in entry.iterdir()) < 200_000  # no checkpoints
        facts = json.loads((entry / "study.json").read_text())
        axis, value, seed = slot.split("/")
        assert (facts["axis"], facts["value"], f"seed{facts['seed']}") == (axis, value, seed)
        assert facts["wall_time_s"] > 0 and "lpnet.train" in facts["command"]
        written = yaml.safe_load((entry / "config.yaml").read_text())  # the run's own composed settings
        assert written["seed"] == facts["seed"] and written["task_name"] == f"ablation_{axis}"
        assert written["model"]["net"]["residual_skip"] is (axis != "skip")
    assert read_manifest(ledger)["axes"] == ["skip"]


def test_the_study_runs_log_final_scores_to_tensorboard(interrupted_study):
    from tensorboard.backend.event_processing import event_accumulator

    ledger, runs = interrupted_study["ledger"], interrupted_study["runs"]
    (run_dir,) = [p for p in (runs / "skip" / "false").iterdir() if p.name.startswith("seed2-")]
    events = event_accumulator.EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    metrics = json.loads((ledger / "skip/false/seed2/metrics.json").read_text())["metrics"]
    for score in ("val_real_heavy/psnr_y", "val_real_light/ssim_y", "val_clean_photos/psnr_y", "test/psnr_y"):
        assert events.Scalars(f"final/{score}")[-1].value == pytest.approx(metrics[score], rel=1e-6)


def damage(ledger: Path) -> dict[str, str]:
    """Damage a copy of the ledger in every way the checks know; returns ``{slot: expected problem}``."""
    entry = ledger / "skip/false/seed1"
    (entry / "metrics.csv").unlink()
    (ledger / "skip/false/seed2/metrics.json").write_text('{"metrics": {"val/psnr_y": 3')
    config = ledger / "baseline/paper/seed2/config.yaml"
    config.write_text(config.read_text().replace("lr: 0.001", "lr: 0.0005"))
    shutil.copytree(ledger / "baseline/paper/seed1", ledger / "baseline/paper/seed7")
    shutil.copytree(ledger / "baseline/paper/seed1", ledger / "levels/9/seed1")
    return {
        "skip/false/seed1": "incomplete: no metrics.csv",
        "skip/false/seed2": "damaged",
        "baseline/paper/seed2": "trained with another recipe: model.optim.lr=0.0005 (the study's: 0.001)",
        "baseline/paper/seed7": "trained with another recipe: ",
        "levels/9/seed1": "not in the study's plan",
    }


def test_every_bad_entry_is_named_and_none_is_counted(interrupted_study, real_sets, tmp_path):
    ledger = tmp_path / "ledger"
    shutil.copytree(interrupted_study["ledger"], ledger)
    expected = damage(ledger)
    cfg = mini_config(real_sets, ledger)
    cfg.seeds = [1, 2, 7]
    found = read_ledger(ledger, plan(cfg), cfg)
    problems = {e.slot.as_posix(): e.problem for e in found.bad}
    assert set(problems) == set(expected)
    for slot, problem in expected.items():
        assert problems[slot].startswith(problem), (slot, problems[slot])
    assert "seed=1 (the study's: 7)" in problems["baseline/paper/seed7"]
    assert [e.slot.as_posix() for e in found.good] == ["baseline/paper/seed1"]


def test_a_copied_entry_is_a_duplicate(interrupted_study, real_sets, tmp_path):
    ledger = tmp_path / "ledger"
    shutil.copytree(interrupted_study["ledger"], ledger)
    source, copy = ledger / "baseline/paper/seed1", ledger / "baseline/paper/seed2"
    shutil.copy(source / "metrics.json", copy / "metrics.json")
    cfg = mini_config(real_sets, ledger)
    found = read_ledger(ledger, plan(cfg), cfg)
    assert {e.slot.as_posix(): e.problem for e in found.bad} == {
        "baseline/paper/seed2": "duplicate: the same scores as baseline/paper/seed1"
    }


def test_the_study_moves_a_bad_entry_aside_and_runs_it_again(interrupted_study, tmp_path):
    work = tmp_path / "work"
    shutil.copytree(interrupted_study["work"], work)
    ledger = work / "ledger"
    (ledger / "skip/false/seed1/metrics.csv").unlink()
    settings = [s.replace(str(interrupted_study["work"]), str(work)) for s in interrupted_study["settings"]]
    out = finish(study(work, *settings))
    assert "ledger skip/false/seed1: incomplete: no metrics.csv (moved to" in out
    assert re.findall(r"^\[\d+/\d+\] (\S+):", out, flags=re.M) == ["skip/false/seed1"]
    (kept,) = (ledger / REJECTED / "skip/false").iterdir()  # never deleted
    assert kept.name.startswith("seed1-") and not (kept / "metrics.csv").exists()
    assert (ledger / "skip/false/seed1/metrics.csv").is_file()


def test_dry_run_says_what_is_left_and_how_long(interrupted_study, tmp_path):
    work = tmp_path / "work"
    shutil.copytree(interrupted_study["work"], work)
    shutil.rmtree(work / "ledger/skip")
    settings = [s.replace(str(interrupted_study["work"]), str(work)) for s in interrupted_study["settings"]]
    out = finish(study(work, *settings, "dry_run=true"))
    assert re.search(r"4 runs planned, 2 in the ledger \S+, 2 left, about \d+ min", out)
    assert re.findall(r"to run: (\S+) \(~\d+ min\)", out) == ["skip/false/seed1", "skip/false/seed2"]
    assert not (work / "ledger/skip").exists()


def table_row(page: str, heading: str, value: str) -> list[str]:
    section = page.split(heading, 1)[1]
    line = next(line for line in section.splitlines() if line.startswith(f"| {value}"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_the_report_is_recomputed_from_the_ledger_files(interrupted_study, tmp_path):
    from conftest import run_cli

    from lpnet.report import main

    ledger = interrupted_study["ledger"]
    assert run_cli(main, f"input={ledger}", f"output={tmp_path / 'docs'}") == 0
    page = (tmp_path / "docs/ablations.md").read_text()
    scores = {slot: json.loads((ledger / slot / "metrics.json").read_text())["metrics"] for slot in SLOTS}
    for value, slots in (("**true** (baseline)", SLOTS[:2]), ("false", SLOTS[2:])):
        row = table_row(page, "## Axis: skip", value)
        assert row[1] == "2"
        for column, metric, digits in ((4, "val_real_heavy/psnr_y", 2), (5, "val_real_heavy/ssim_y", 4)):
            values = [scores[s][metric] for s in slots]
            mean, std = statistics.fmean(values), statistics.stdev(values)
            assert row[column] == f"{mean:.{digits}f} ± {std:.{digits}f}"
    # claim (d) judged by the written rule from the same numbers
    claim = table_row(page, "## The paper's claims", "(d)")
    verdicts = []
    for metric in ("val_real_heavy/psnr_y", "val_real_heavy/ssim_y"):
        a = [scores[s][metric] for s in SLOTS[:2]]
        b = [scores[s][metric] for s in SLOTS[2:]]
        gap, spread = statistics.fmean(a) - statistics.fmean(b), statistics.stdev(a) + statistics.stdev(b)
        verdicts.append("holds" if gap > spread else "contradicted" if gap < -spread else "within")
    expected = (
        "mixed" if {"holds", "contradicted"} <= set(verdicts)
        else "contradicted" if "contradicted" in verdicts
        else "holds" if "holds" in verdicts
        else "within the seed spread"
    )  # fmt: skip
    assert claim[1].strip("*").startswith(expected), (claim, verdicts)
    assert "not run" in table_row(page, "## The paper's claims", "(a)")[1]
    for name in ("skip_psnr.png", "skip_ssim.png", "learning_curves.png"):
        assert (tmp_path / "docs/ablations" / name).read_bytes()[:4] == b"\x89PNG"
    # regenerated from the same ledger: the same page
    assert run_cli(main, f"input={ledger}", f"output={tmp_path / 'again'}") == 0
    assert (tmp_path / "again/ablations.md").read_text() == page.replace(
        str(tmp_path / "docs"), str(tmp_path / "again")
    )


@pytest.mark.slow
def test_wandb_groups_a_configurations_seeds_by_axis(interrupted_study, tmp_path):
    """One more run with W&B on (offline): its group is the axis, its value and seed are tags and config."""
    from test_wandb import read_finished_run

    work = tmp_path / "work"
    shutil.copytree(interrupted_study["work"], work)
    shutil.rmtree(work / "ledger/skip/false/seed2")
    settings = [s.replace(str(interrupted_study["work"]), str(work)) for s in interrupted_study["settings"]]
    env = {"WANDB_MODE": "offline", "WANDB_DATA_DIR": str(tmp_path / "wandb-data")}
    finish(study(work, *settings, "loggers=[wandb,tensorboard]", env=env))
    (run_file,) = (work / "runs/skip/false").glob("seed2-*/wandb/offline-run-*/run-*.wandb")
    records = read_finished_run(run_file)
    (run,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert run.run_group == "ablation_skip"
    assert {"ablation", "ablation_skip", "skip=false", "seed=2"} <= set(run.tags)
    config = {
        item.key: json.loads(item.value_json)
        for r in records
        if r.WhichOneof("record_type") == "config"
        for item in r.config.update
    }
    assert config["seed"] == 2 and config["model"]["net"]["residual_skip"] is False
    # the ledger entry of this run is whole and counted
    cfg = mini_config(Path(settings[0].split("=", 1)[1]), work / "ledger")
    assert "skip/false/seed2" in {
        e.slot.as_posix() for e in read_ledger(work / "ledger", plan(cfg), cfg).good
    }


def test_an_entry_older_than_a_setting_counts_where_the_study_leaves_that_setting_as_it_was(
    interrupted_study, real_sets, tmp_path
):
    """lpnet gains settings whose defaults do what was done before them (data.jpeg_chance=0): an entry
    written before one existed lacks it in its config.yaml and still counts; one lacking a setting the study
    sets differently from the baseline (an older run of the same slot) does not."""
    ledger = tmp_path / "ledger"
    shutil.copytree(interrupted_study["ledger"], ledger)
    for slot in SLOTS:
        config = yaml.safe_load((ledger / slot / "config.yaml").read_text())
        del config["data"]["jpeg_chance"], config["data"]["jpeg_quality"]
        if slot == "skip/false/seed2":
            del config["model"]["net"]["residual_skip"]  # read as the baseline's true: not this slot's run
        (ledger / slot / "config.yaml").write_text(yaml.safe_dump(config))
    cfg = mini_config(real_sets, ledger)
    found = read_ledger(ledger, plan(cfg), cfg)
    assert [e.slot.as_posix() for e in found.good] == SLOTS[:3]
    (bad,) = found.bad
    assert bad.problem.startswith(
        "trained with another recipe: model.net.residual_skip=true (the study's: false)"
    )


def test_the_committed_page_is_what_the_committed_ledger_gives(tmp_path):
    """docs/ablations.md is generated from results/ablations/ (make ablations-report): regenerated from the
    repository's ledger it is the same page, so no number in it was edited or left stale."""
    from conftest import PROJECT_ROOT, run_cli

    from lpnet.report import main

    ledger, page = PROJECT_ROOT / "results" / "ablations", PROJECT_ROOT / "docs" / "ablations.md"
    assert run_cli(main, f"input={ledger}", f"output={tmp_path}") == 0
    regenerated = (tmp_path / "ablations.md").read_text().replace(str(ledger), "results/ablations")
    assert regenerated == page.read_text()


def test_a_fresh_clone_has_nothing_left_to_run():
    """make ablations on a fresh clone plans exactly what the committed ledger holds: its study.yaml is the
    default study's (make ablations rewrites it, and the page is read from it), every planned run is there
    and counts, and no entry is left out."""
    from conftest import PROJECT_ROOT

    ledger, default = PROJECT_ROOT / "results" / "ablations", StudyCommandConfig(real_rain_dir=".")
    assert read_manifest(ledger) == manifest_settings(default)
    runs = plan(default)
    held = read_ledger(ledger, runs, default)
    assert [f"{e.slot}: {e.problem}" for e in held.bad] == []
    assert [run.slot.as_posix() for run in runs if not held.done(run)] == []


def test_every_planned_command_is_read_by_hydra_as_it_was_meant(tmp_path):
    """Each run's command line is Hydra's grammar word by word, its run folder included: a value's folder
    may hold '=' (width_multiplier=0.5), which unquoted stopped the width axis at its first run (exit 2)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    runs = plan(StudyCommandConfig(real_rain_dir=str(tmp_path)))
    assert any("=" in run.value for run in runs)
    for run in runs:
        run_dir = tmp_path / "runs" / run.slot.parent / f"{run.slot.name}-20261206-000000"
        parsed = parser.parse_overrides(train_command(run, run_dir)[3:])
        assert parsed[-1].key_or_group == "hydra.run.dir" and parsed[-1].value() == str(run_dir)
