"""lpnet.report on fake Hydra multirun trees built in tmp_path."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import run_cli
from PIL import Image

from lpnet.files import save_figure
from lpnet.models.complexity import count_params, macs_per_pixel
from lpnet.models.lpnet import LPNet
from lpnet.report import (
    MIN_PSNR_SPAN,
    best_row,
    collect_runs,
    configurations,
    main,
    parse_overrides,
    plot_loss_curves,
    plot_psnr_by_key,
    plot_psnr_vs_params,
    read_loss_curves,
    smooth,
    swept_keys,
    table,
    write_report,
)

NET_DEFAULTS = {
    "num_levels": 5,
    "widths": None,
    "width_multiplier": 1.0,
    "recursions": 5,
    "share_weights": True,
    "residual_skip": True,
    "final_relu": True,
    "negative_slope": 0.2,
}
CSV_HEADER = [
    "epoch",
    "lr-Adam",
    "step",
    "train/level0/l1",
    "train/level4/l1",
    "train/level4/ssim",
    "train/loss",
]
CSV_HEADER += ["val/loss", "val/psnr_y"]


def make_run(
    sweep: Path,
    num: int,
    overrides: list[str],
    net: dict | None = None,
    psnr: float | None = None,
    steps: int = 200,
) -> Path:
    """One Hydra job directory; ``psnr=None`` leaves it without metrics.json (a failed or running job)."""
    run = sweep / str(num)
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    net_cfg = {**NET_DEFAULTS, **(net or {})}
    (run / "config.yaml").write_text(yaml.safe_dump({"task_name": "ablation_x", "model": {"net": net_cfg}}))
    (run / "csv").mkdir()
    with (run / "csv" / "metrics.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_HEADER)
        for step in range(49, steps, 50):
            loss = 1.0 / (step + 1)
            writer.writerow([0, 1e-3, step, 2 * loss, loss, loss / 2, 3.5 * loss, "", ""])
            if step % 100 == 99:  # a validation row: train columns empty
                writer.writerow([0, "", step, "", "", "", "", 0.1, 20.0])
    if psnr is not None:
        lp = LPNet(**net_cfg)
        metrics = {
            "val/psnr_y": psnr - 0.5,
            "val/ssim_y": 0.8,
            "val/psnr_rgb": psnr - 2,
            "val/ssim_rgb": 0.75,
        }
        metrics |= {"val/psnr_y_best": psnr, "test/psnr_y": psnr + 0.25, "test/ssim_y": 0.81}
        metrics |= {"val/input_psnr_y": 22.0, "test/input_psnr_y": 20.0}
        summary = {"metrics": metrics, "params": count_params(lp), "global_step": steps}
        summary |= {"wall_time_s": 3725.4, "overrides": overrides}
        (run / "metrics.json").write_text(json.dumps(summary))
    return run


@pytest.fixture
def recursion_sweep(tmp_path: Path) -> Path:
    sweep = tmp_path / "multirun" / "ablation_recursion" / "2026-01-01_00-00-00"
    for num, (recursions, psnr) in enumerate([(1, 30.0), (3, 31.0), (5, None), (7, 32.0)]):
        overrides = [f"model.net.recursions={recursions}", "experiment=ablation_recursion", "data=synthetic"]
        make_run(
            sweep,
            num,
            overrides,
            net={"recursions": recursions},
            psnr=psnr,
            steps=150 if psnr is None else 200,
        )
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    return sweep


def assert_png(path: Path) -> None:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert min(image.size) > 100


def test_report_rows_columns_and_plots(recursion_sweep: Path, tmp_path: Path, capsys):
    out = tmp_path / "rep"
    assert run_cli(main, f"input={recursion_sweep}", f"output={out}") == 0
    printed = capsys.readouterr().out
    assert "4 runs, 3 complete" in printed and str(out / "report.md") in printed

    with (out / "report.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["run"] for r in rows] == ["0", "1", "2", "3"]
    assert [r["status"] for r in rows] == ["complete", "complete", "incomplete", "complete"]
    # Only the key that differs becomes a column; experiment= and data= are the same everywhere.
    assert "model.net.recursions" in rows[0] and "experiment" not in rows[0] and "data" not in rows[0]
    assert [r["model.net.recursions"] for r in rows] == ["1", "3", "5", "7"]
    for row, recursions in zip(rows, [1, 3, 5, 7]):
        net = LPNet(recursions=recursions)
        # The failed run still gets params and MACs, from its config.
        assert int(row["params"]) == count_params(net)
        assert float(row["macs_per_pixel"]) == pytest.approx(macs_per_pixel(net))
    assert rows[3]["test/psnr_y"] == "32.25" and rows[2]["test/psnr_y"] == ""
    assert rows[2]["steps"] == "149" and "no metrics.json" in rows[2]["note"]
    assert rows[0]["wall_time_s"] == "3725.4"

    md = (out / "report.md").read_text()
    table_lines = [line for line in md.splitlines() if line.startswith("| ")]
    assert len(table_lines) == 1 + 4
    assert "model.net.recursions" in table_lines[0] and "test/psnr_y" in table_lines[0]
    assert "test/psnr_rgb" not in table_lines[0]  # empty in every run: left out of the markdown
    assert "| 2 | incomplete | 5 | 7,548 |" in md
    assert "| 1:02:05 |" in md and "26.6k" in md
    assert "Best val/psnr_y_best: run `3` with 32.00 dB (test/psnr_y 32.25 dB)." in md
    for name in ("psnr_vs_params.png", "psnr_by_model_net_recursions.png", "loss_curves.png"):
        assert_png(out / name)
        assert f"]({name})" in md


def test_default_output_is_inside_the_sweep(recursion_sweep: Path):
    assert run_cli(main, f"input={recursion_sweep}") == 0
    assert (recursion_sweep / "report.md").is_file()
    # A second pass does not take the report directory for a run.
    assert run_cli(main, f"input={recursion_sweep}") == 0
    with (recursion_sweep / "report.csv").open(newline="") as handle:
        assert [row["run"] for row in csv.DictReader(handle)] == ["0", "1", "2", "3"]


def test_unwritable_output_is_one_line(recursion_sweep: Path, tmp_path: Path, capsys):
    (tmp_path / "file").write_text("in the way")
    assert run_cli(main, f"input={recursion_sweep}", f"output={tmp_path / 'file' / 'report'}") == 2
    assert "is not writable" in capsys.readouterr().err


def test_dict_sweep_values_become_dotted_columns(tmp_path: Path):
    sweep = tmp_path / "width"
    values = ["{width_multiplier:0.5}", "{width_multiplier:2}", "{widths:[16,16,16,16,16]}"]
    nets = [{"width_multiplier": 0.5}, {"width_multiplier": 2}, {"widths": [16] * 5}]
    for num, (value, net) in enumerate(zip(values, nets)):
        make_run(sweep, num, [f"model.net={value}", "experiment=ablation_width"], net=net, psnr=30.0 + num)
    written, skipped = write_report([sweep], tmp_path / "out")
    columns, rows = table_from(sweep)
    assert {"model.net.width_multiplier", "model.net.widths"} <= set(columns)
    # The uniform run did not set the multiplier: its config's value is shown.
    assert [r["model.net.width_multiplier"] for r in rows] == [0.5, 2, 1.0]
    assert [r["model.net.widths"] for r in rows] == [None, None, [16] * 5]
    assert rows[2]["params"] == count_params(LPNet(widths=[16] * 5))
    # Only the runs that set a key are plotted against it, and one value makes no plot.
    assert tmp_path / "out" / "psnr_by_model_net_width_multiplier.png" in written
    assert not (tmp_path / "out" / "psnr_by_model_net_widths.png").exists()
    assert [plot.name for plot in skipped] == ["psnr_by_model_net_widths.png"]
    assert (
        "psnr_by_model_net_widths.png`: fewer than two values" in (tmp_path / "out" / "report.md").read_text()
    )
    for path in written[2:]:
        assert_png(path)


def table_from(sweep: Path):
    return table(collect_runs([sweep]))


def test_several_sweeps_need_output_and_get_prefixed_labels(recursion_sweep: Path, tmp_path: Path, capsys):
    other = tmp_path / "multirun" / "ablation_loss" / "2026-01-02_00-00-00"
    for num, loss in enumerate(["paper", "l2"]):
        make_run(other, num, [f"loss={loss}", "experiment=ablation_loss"], psnr=29.0 + num)
    assert run_cli(main, f"input=[{recursion_sweep},{other}]") == 2
    assert "set output=DIR" in capsys.readouterr().err
    out = tmp_path / "both"
    assert run_cli(main, f"input=[{recursion_sweep},{other}]", f"output={out}") == 0
    with (out / "report.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 6
    assert rows[0]["run"] == "ablation_recursion/2026-01-01_00-00-00/0"
    assert rows[5]["run"] == "ablation_loss/2026-01-02_00-00-00/1"
    assert rows[5]["loss"] == "l2" and rows[5]["model.net.recursions"] == "5"  # from its config
    assert {"experiment", "loss", "model.net.recursions"} <= set(rows[0])
    assert_png(out / "psnr_by_loss.png")


def test_a_single_run_directory_and_bad_input(tmp_path: Path, capsys):
    run = make_run(tmp_path / "one", 0, ["loss=l1"], psnr=28.0)
    assert run_cli(main, f"input={run}", f"output={tmp_path / 'r1'}") == 0
    assert "| 0 | complete |" in (tmp_path / "r1" / "report.md").read_text()
    assert run_cli(main, f"input={tmp_path / 'missing'}") == 2
    assert f"input={tmp_path / 'missing'}: no such sweep or run directory" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert run_cli(main, f"input={tmp_path / 'empty'}") == 2
    assert "no run directories" in capsys.readouterr().err


def test_unreadable_files_become_notes(tmp_path: Path):
    run = make_run(tmp_path / "s", 0, ["loss=l1"], psnr=28.0)
    make_run(tmp_path / "s", 1, ["loss=l2"], psnr=27.0)
    (run / "metrics.json").write_text("{not json")
    broken = make_run(tmp_path / "s", 2, ["loss=l1"], psnr=26.0)
    (broken / ".hydra" / "overrides.yaml").write_text("- 'loss=[unclosed'\n")
    (broken / "config.yaml").write_text("model: [unclosed\n")
    _, rows = table_from(tmp_path / "s")
    assert rows[0]["status"] == "incomplete" and "unreadable metrics.json" in rows[0]["note"]
    assert rows[1]["status"] == "complete" and rows[1]["note"] == ""
    assert rows[2]["status"] == "complete" and rows[2]["params"] == 7548  # from metrics.json
    assert "unreadable config" in rows[2]["note"] and "unreadable .hydra/overrides.yaml" in rows[2]["note"]


def test_parse_overrides():
    parsed = parse_overrides(["model.net={widths:[2,2],recursions:3}", "loss=l1", "optim.lr=1e-3", "~debug"])
    assert parsed == {
        "model.net.widths": [2, 2],
        "model.net.recursions": 3,
        "loss": "l1",
        "optim.lr": 0.001,
        "debug": "~",
    }


def test_swept_keys_keep_keys_missing_from_some_runs(tmp_path: Path):
    make_run(tmp_path / "s", 0, ["a=1", "b=2"], psnr=1.0)
    make_run(tmp_path / "s", 1, ["a=1"], psnr=1.0)
    assert swept_keys(collect_runs([tmp_path / "s"])) == ["b"]


def test_read_loss_curves_skips_blank_cells(tmp_path: Path):
    run = make_run(tmp_path / "s", 0, [], steps=200)
    curves = read_loss_curves(run / "csv" / "metrics.csv")
    assert set(curves) == {"train/loss", "train/level0/l1", "train/level4/l1", "train/level4/ssim"}
    steps, values = curves["train/level4/l1"]
    assert steps == [49, 99, 149, 199]
    assert values == pytest.approx([1 / 50, 1 / 100, 1 / 150, 1 / 200])


# --------------------------------------------------------------------------------------------------
# What the plots show (the figures before saving, and the saved PNGs decoded)


def texts(ax) -> list[str]:
    return [text.get_text() for text in ax.texts]


def test_psnr_by_key_puts_validation_and_test_apart_on_categories(recursion_sweep: Path):
    runs = collect_runs([recursion_sweep])
    _, rows = table(runs)
    best = best_row(rows)
    assert best["run"] == "3"  # the highest val/psnr_y_best
    plot = plot_psnr_by_key(runs, rows, "model.net.recursions", best["run"])
    validation, test = plot.figure.axes
    assert (validation.get_title(), test.get_title()) == ("validation", "test")
    for ax, metric, baseline in ((validation, "val/psnr_y_best", 22.0), (test, "test/psnr_y", 20.0)):
        # The complete runs' values as three categories (the incomplete run 2 has no score), not 1.25 ticks.
        assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "3", "7"]
        values = [row[metric] for row in rows if row[metric] is not None]
        assert texts(ax) == [f"{v:.2f}" for v in values]  # every point says its value
        line = next(line for line in ax.lines if line.get_label().startswith("rainy input"))
        assert line.get_ydata()[0] == baseline and line.get_label() == f"rainy input {baseline:.2f} dB"
        low, high = ax.get_ylim()
        assert low < baseline and high > max(values)
        (star,) = [c for c in ax.collections if c.get_label().startswith("best run")]
        assert tuple(star.get_offsets()[0]) == (2, rows[3][metric])  # the third category: recursions=7


def test_psnr_vs_params_keeps_a_tie_flat_and_every_label_inside(tmp_path: Path):
    sweep = tmp_path / "width"
    for num, mult in enumerate([0.5, 1, 2, 4]):
        make_run(
            sweep,
            num,
            [f"model.net.width_multiplier={mult}"],
            net={"width_multiplier": mult},
            psnr=30 + 0.01 * num,
        )
    runs = collect_runs([sweep])
    _, rows = table(runs)
    plot = plot_psnr_vs_params(rows, swept_keys(runs), best_row(rows)["run"])
    fig = plot.figure
    fig.canvas.draw()  # lay out, so that every text has its final place
    bounds = fig.bbox
    for ax in fig.axes:
        low, high = ax.get_ylim()
        assert high - low >= MIN_PSNR_SPAN  # 0.03 dB apart is not stretched over the whole axis
        assert ax.get_xscale() == "log" and ax.get_xlabel().endswith("(log scale)")
        assert len(ax.texts) == 4 and texts(ax)[0] == "width_multiplier=0.5\n30.00 dB"
        for text in ax.texts:
            box = text.get_window_extent()
            assert bounds.x0 <= box.x0 and box.x1 <= bounds.x1 and bounds.y0 <= box.y0 and box.y1 <= bounds.y1
    ticks = [t.get_text() for t in fig.axes[0].get_xticklabels() if t.get_text()]
    assert "10k" in ticks and not any("^" in t for t in ticks)


def test_psnr_vs_params_draws_only_what_the_runs_differ_in(recursion_sweep: Path):
    runs = collect_runs([recursion_sweep])
    _, rows = table(runs)
    (ax,) = plot_psnr_vs_params(rows, swept_keys(runs), "3").figure.axes  # recursions share their weights
    assert ax.get_xlabel() == "MACs per pixel (log scale)"


def test_loss_curves_are_smoothed_labelled_and_readable(tmp_path: Path):
    sweep = tmp_path / "long"
    for num, recursions in enumerate([1, 3, 5, 7]):  # losses 1/(step + 1) from step 49: a 40-fold fall
        make_run(sweep, num, [f"model.net.recursions={recursions}"], {"recursions": recursions}, 30.0, 2000)
    runs = collect_runs([sweep])
    plot = plot_loss_curves(runs, swept_keys(runs), "3")
    fig = plot.figure
    fig.canvas.draw()
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in panels] == [
        "total training loss", "level 0: L1", "level 4: L1", "level 4: (1 − SSIM) / 2",
    ]  # fmt: skip
    assert [ax.get_ylabel() for ax in panels] == ["loss (sum of the terms)", "L1", "L1", "(1 − SSIM) / 2"]
    for ax in panels:
        assert ax.get_yscale() == "log"
        labels = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
        assert labels and all("10^" not in t and "$" not in t for t in labels), labels  # 0.01, not 10⁻²
        assert len(ax.lines) == 2 * len(runs)  # as logged (faint) and smoothed, per run
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["recursions=1", "recursions=3", "recursions=5", "recursions=7 (best)"]
    assert "1k" in [t.get_text() for t in panels[0].get_xticklabels()]  # steps in thousands
    assert all(float(step).is_integer() for step in panels[0].get_xticks())  # whole steps


def test_a_narrow_loss_range_gets_a_linear_axis(recursion_sweep: Path):
    runs = collect_runs([recursion_sweep])  # losses within a factor of 4: a log axis would show one tick
    for ax in plot_loss_curves(runs, swept_keys(runs), None).figure.axes:
        if ax.get_visible():
            assert ax.get_yscale() == "linear"


def test_smooth_is_a_centred_mean():
    assert smooth([0, 3, 6, 9], 3) == [1.5, 3.0, 6.0, 7.5]
    assert smooth([1, 2], 1) == [1, 2]


def test_a_plot_without_data_is_named_with_its_reason(tmp_path: Path, capsys):
    run = make_run(tmp_path / "s", 0, ["loss=l1"], psnr=28.0)
    (run / "csv" / "metrics.csv").write_text("epoch,step,val/psnr_y\n0,9,20.0\n")  # no training loss logged
    assert run_cli(main, f"input={tmp_path / 's'}", f"output={tmp_path / 'r'}") == 0
    assert "not drawn" in capsys.readouterr().out
    report = (tmp_path / "r" / "report.md").read_text()
    assert "## Plots not drawn" in report and "`loss_curves.png`: no run logged a training loss" in report


def test_the_saved_plots_show_the_best_run(recursion_sweep: Path, tmp_path: Path):
    """Decoded: the star of the best run is there in gold, and the two panels hold blue data lines."""
    write_report([recursion_sweep], tmp_path / "r")
    with Image.open(tmp_path / "r" / "psnr_by_model_net_recursions.png") as image:
        pixels = np.asarray(image.convert("RGB")).astype(int)
    gold = (abs(pixels - (255, 215, 0)).sum(axis=2) < 30).sum()
    blue = abs(pixels - (31, 119, 180)).sum(axis=2) < 30  # tab:blue
    assert gold > 50
    left, right = blue[:, : pixels.shape[1] // 2].sum(), blue[:, pixels.shape[1] // 2 :].sum()
    assert left > 100 and right > 100  # a line in each panel


def test_non_finite_scores_are_left_out_with_a_note_and_never_best(tmp_path: Path, capsys):
    """Issue 23: NaN/Infinity (or the string "NaN") in metrics.json stopped the report at the plots
    (`Axis limits cannot be NaN or Inf`) or made another run best silently."""
    sweep = tmp_path / "s"
    for num, bad in enumerate([{"test/psnr_y": float("nan"), "val/psnr_y_best": float("inf")},
                               {"test/psnr_y": "NaN", "val/psnr_y_best": "Infinity"}]):  # fmt: skip
        run = make_run(
            sweep, num, [f"model.net.recursions={num + 1}"], net={"recursions": num + 1}, psnr=40.0
        )
        summary = json.loads((run / "metrics.json").read_text())
        summary["metrics"] |= bad
        (run / "metrics.json").write_text(json.dumps(summary))  # json writes NaN and Infinity bare
    make_run(sweep, 2, ["model.net.recursions=3"], net={"recursions": 3}, psnr=25.0)
    assert run_cli(main, f"input={sweep}", f"output={tmp_path / 'r'}") == 0, capsys.readouterr().err
    _, rows = table_from(sweep)
    for row in rows[:2]:
        assert "not finite numbers, left out" in row["note"] and "test/psnr_y" in row["note"]
    assert best_row(rows)["run"] == rows[2]["run"]  # the one run with finite scores
    report = (tmp_path / "r" / "report.md").read_text()
    assert "not finite numbers" in report
    assert_png(tmp_path / "r" / "psnr_by_model_net_recursions.png")


def test_the_best_run_is_chosen_on_validation_not_on_the_test_set(tmp_path: Path):
    sweep = tmp_path / "s"
    make_run(sweep, 0, ["loss=l1"], psnr=30.0)  # val 30.0, test 30.25
    high_test = make_run(sweep, 1, ["loss=l2"], psnr=29.0)
    summary = json.loads((high_test / "metrics.json").read_text())
    summary["metrics"]["test/psnr_y"] = 35.0  # best on test, worse on validation
    (high_test / "metrics.json").write_text(json.dumps(summary))
    _, rows = table_from(sweep)
    assert best_row(rows)["run"] == "0"


def seed_sweep(tmp_path: Path) -> Path:
    """Two recursion depths × two seeds (and a third seed of depth 3 that is still running)."""
    sweep = tmp_path / "multirun" / "seeds"
    scores = {(1, 1): 30.0, (1, 2): 30.4, (3, 1): 31.0, (3, 2): 32.0}
    for num, ((recursions, seed), psnr) in enumerate(scores.items()):
        overrides = [f"model.net.recursions={recursions}", f"seed={seed}"]
        make_run(sweep, num, overrides, net={"recursions": recursions}, psnr=psnr)
    make_run(sweep, 4, ["model.net.recursions=3", "seed=3"], net={"recursions": 3}, psnr=None)
    return sweep


def test_seeds_are_averaged_per_configuration_with_their_spread(tmp_path: Path):
    sweep = seed_sweep(tmp_path)
    files, _ = write_report([sweep], tmp_path / "r")
    assert tmp_path / "r" / "configurations.csv" in files
    with (tmp_path / "r" / "report.csv").open(newline="") as handle:
        runs = [r for r in csv.DictReader(handle) if r["status"] == "complete"]
    with (tmp_path / "r" / "configurations.csv").open(newline="") as handle:
        configs = list(csv.DictReader(handle))
    assert [c["model.net.recursions"] for c in configs] == ["1", "3"] and [c["n"] for c in configs] == [
        "2",
        "2",
    ]
    for config in configs:  # recomputed from the per-run rows of report.csv
        members = [r for r in runs if r["model.net.recursions"] == config["model.net.recursions"]]
        for metric in ("val/psnr_y_best", "test/psnr_y"):
            values = [float(r[metric]) for r in members]
            assert float(config[f"{metric} mean"]) == pytest.approx(np.mean(values))
            assert float(config[f"{metric} std"]) == pytest.approx(np.std(values, ddof=1))
    md = (tmp_path / "r" / "report.md").read_text()
    section = md.split("## Configurations (seeds averaged)")[1]
    # depth 1: 30.20 ± 0.28; depth 3: 31.50 ± 0.71 (best); gap 1.30 > 0.99: beyond the seed spread
    assert "| 1 | 2 | 30.20 ± 0.28 |" in section and "beyond the seed spread" in section
    assert "| 3 | 2 | 31.50 ± 0.71 |" in section and "| best |" in section
    assert (
        "Best configuration (on val/psnr_y_best): model.net.recursions=3; test/psnr_y 31.75 ± 0.71 dB." in md
    )


def test_a_narrow_gap_is_within_the_seed_spread():
    rows = [
        {"run": str(i), "status": "complete", "k": k, "seed": s, "val/psnr_y_best": v, "test/psnr_y": v}
        for i, (k, s, v) in enumerate([(1, 1, 30.0), (1, 2, 31.0), (2, 1, 30.2), (2, 2, 31.2)])
    ]
    from lpnet.report import best_configuration, seed_verdict

    configs = configurations(rows, ["k", "seed"])
    best, metric = best_configuration(configs)
    assert best["k"] == 2 and seed_verdict(configs[0], best, metric) == "within the seed spread"
    assert configurations(rows, ["k"]) == []  # no seed swept: no configurations table


def test_the_saved_plot_draws_each_configurations_spread_as_an_error_bar(tmp_path: Path):
    sweep = seed_sweep(tmp_path)
    runs = collect_runs([sweep])
    _, rows = table(runs)
    plot = plot_psnr_by_key(runs, rows, "model.net.recursions", best_row(rows)["run"])
    plot.figure.set_dpi(110)
    save_figure(plot.figure, tmp_path / "p.png", dpi=110)
    validation = plot.figure.axes[0]
    with Image.open(tmp_path / "p.png") as image:
        pixels = np.asarray(image.convert("RGB")).astype(int)
    blue = abs(pixels - (31, 119, 180)).sum(axis=2) < 60
    for x, values in ((0, [30.0, 30.4]), (1, [31.0, 32.0])):
        mean, std = np.mean(values), np.std(values, ddof=1)
        (col, top), (_, bottom) = validation.transData.transform([(x, mean + std), (x, mean - std)])
        top, bottom = pixels.shape[0] - top, pixels.shape[0] - bottom  # image rows run downwards
        col = round(col)
        bar = blue[round(top) + 2 : round(bottom) - 2, col - 1 : col + 2].any(axis=1)
        if x == 0:
            assert bar.all()  # a blue bar from mean − std to mean + std
            assert not blue[round(top) - 12 : round(top) - 6, col].any()  # and it ends there (the cap)
        else:  # the best run's star covers the top of this one
            assert bar[len(bar) // 2 :].all()
        assert not blue[round(bottom) + 3 : round(bottom) + 9, col].any()  # the bar ends at mean − std


@pytest.mark.parametrize("score", ["psnr_y", "ssim_y"])
def test_each_legend_lies_below_every_point_and_value_label(tmp_path: Path, score: str):
    """The legend gets a band of its own at the bottom of each panel: with loc="best" it covered the value
    labels of the top points (docs/ablations/width_ssim.png, 2026-12-06). Every label stays inside its
    panel."""
    sweep = seed_sweep(tmp_path)
    runs = collect_runs([sweep])
    _, rows = table(runs)
    plot = plot_psnr_by_key(runs, rows, "model.net.recursions", best_row(rows)["run"], score=score)
    plot.figure.draw_without_rendering()  # the layout as saved
    for ax in plot.figure.axes:
        legend, frame = ax.get_legend().get_window_extent(), ax.get_window_extent()
        labels = [text.get_window_extent() for text in ax.texts]
        assert len(labels) == 2 and all(frame.y0 <= b.y0 and b.y1 <= frame.y1 for b in labels)
        (bars,) = ax.containers  # the error bars: mean ± std of each value
        lowest = min(
            ax.transData.transform(point)[1] for seg in bars.lines[2][0].get_segments() for point in seg
        )
        assert frame.y0 <= legend.y0 and legend.y1 < lowest and legend.y1 < min(b.y0 for b in labels)
