"""``docs/ablations.md`` from the study's ledger: ``python -m lpnet.report input=results/ablations
output=docs``.

``make ablations-report`` (and ``make ablations`` after its runs) writes ``<output>/ablations.md`` and its
plots ``<output>/ablations/*.png`` from the ledger alone (:mod:`lpnet.study`), so anyone can recompute every
number from the committed files. The ledger is checked as the study checks it: a bad entry is named in one
line and left out, never averaged in.

What the page holds:

- per axis, a table of mean ± sample std (n seeds) of every set's Y-PSNR and SSIM (real heavy, real light,
  rain-free, synthetic validation and test), parameters and MACs per pixel, each configuration against the
  baseline; plots of Y-PSNR and SSIM with error bars;
- each of the paper's claims (:data:`CLAIMS`) judged on the real heavy set (the rain the study trains for):
  **holds**, **contradicted**, or **within the seed spread**, with the numbers of every set;
- the step budget: the learning curves and the step from which each axis's ranking no longer changes.

A gap counts when it exceeds the seed spread: the difference of two means against the sum of their sample
standard deviations (:func:`lpnet.report.seed_verdict`, the same rule as every report).
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from omegaconf import OmegaConf

from lpnet.config import StudyCommandConfig
from lpnet.files import ensure_writable_folder, save_figure, write_text
from lpnet.report import (
    COMPLETE,
    Run,
    _finite,
    configurations,
    mean_std,
    plot_psnr_by_key,
    set_title,
    table,
)
from lpnet.study import (
    BASELINE,
    Entry,
    Ledger,
    axis_values,
    baseline_values,
    plan,
    read_ledger,
    read_manifest,
)

PAGE = "ablations.md"
FIGURES = "ablations"
# The set every claim is judged on, and the ones shown beside it.
DECIDING_SET = "val_real_heavy"
SHOWN_SETS = ("val_real_heavy", "val_real_light", "val_clean_photos", "val", "test")
BETTER, NO_WORSE = "better", "no worse"


@dataclass(frozen=True)
class Claim:
    """One of the paper's claims as a comparison of two configurations of one axis.

    Attributes:
        letter: its letter in the issue and the page.
        text: the claim.
        axis: the axis whose runs decide it.
        a, b: the two values' labels (``b`` is what ``a`` is claimed to beat, or to lose little against).
        kind: ``better`` (a beats b beyond the seed spread) or ``no worse`` (a does not lose beyond it).
    """

    letter: str
    text: str
    axis: str
    a: str
    b: str
    kind: str


CLAIMS = (
    Claim(
        "a", "L1 + SSIM on the two finest levels beats L2 (L2 over-smooths)", "loss", "paper", "l2", BETTER
    ),
    Claim(
        "b",
        "more kernels give better results, at a cost in parameters (widths ×2 against ×1)",
        "width",
        "width_multiplier=2",
        "width_multiplier=1",
        BETTER,
    ),
    Claim("c", "recursion helps (T = 5 against a single pass, T = 1)", "recursion", "5", "1", BETTER),
    Claim("d", "the skip connection helps training", "skip", "true", "false", BETTER),
    Claim(
        "e",
        "sharing weights across recursions saves parameters without a loss in quality",
        "sharing",
        "true",
        "false",
        NO_WORSE,
    ),
    Claim(
        "f",
        "decreasing widths [16,8,4,2,1] lose little against uniform 16 at a fraction of the parameters",
        "width",
        "width_multiplier=1",
        "widths=16-16-16-16-16",
        NO_WORSE,
    ),
)


def is_ledger(folder: Path) -> bool:
    """Whether ``folder`` is a study's ledger (entries ``<axis>/<value>/seed<k>/study.json``)."""
    return folder.is_dir() and any(folder.glob("*/*/seed*/study.json"))


def ledger_plan(root: Path) -> tuple[StudyCommandConfig, StudyCommandConfig, Any]:
    """The settings the study was run with (the ledger's ``study.yaml``, else the defaults), the same over
    every ablation axis and every seed the ledger holds (what the ledger is read against), and the plan of
    the latter."""
    defaults = StudyCommandConfig(real_rain_dir=".", **read_manifest(root))
    every_axis = [*defaults.axes]
    every_axis += sorted(
        p.name.removeprefix("ablation_").removesuffix(".yaml")
        for p in (Path(__file__).parent / "conf" / "experiment").glob("ablation_*.yaml")
        if p.name.removeprefix("ablation_").removesuffix(".yaml") not in every_axis
    )
    seeds = sorted(
        {*defaults.seeds}
        | {int(p.name[4:]) for p in root.glob("*/*/seed*") if p.name[4:].isdigit() and p.is_dir()}
    )
    cfg = dataclasses.replace(defaults, axes=every_axis, seeds=seeds)
    return defaults, cfg, plan(cfg)


def entry_run(entry: Entry, key: str, value: str) -> Run:
    """A ledger entry as a report :class:`~lpnet.report.Run` whose overrides are ``{key: value, seed}``."""
    summary = entry.metrics
    scores = {k: v for k, v in summary["metrics"].items() if _finite(v) is not None}
    return Run(
        label=entry.slot.as_posix(),
        path=entry.path,
        status=COMPLETE,
        overrides={key: value, "seed": entry.seed},
        config=OmegaConf.load(entry.path / "config.yaml"),
        metrics={k: float(v) for k, v in scores.items()},
        params=summary.get("params"),
        macs_per_pixel=summary.get("macs_per_pixel"),
        steps=summary.get("global_step"),
        wall_time_s=summary.get("wall_time_s"),
    )


def axis_runs(ledger: Ledger, axis: str, baseline_label: str | None) -> list[Run]:
    """The good entries of one axis in sweep order, the baseline's seeds under the axis's paper value."""
    runs = []
    for label, _ in axis_values(axis):
        source = (BASELINE, "paper") if label == baseline_label else (axis, label)
        runs += [entry_run(e, axis, label) for e in ledger.good if (e.axis, e.value) == source]
    return runs


def compare(a: dict[str, Any], b: dict[str, Any], metric: str, kind: str) -> tuple[str, str]:
    """The verdict of ``a`` against ``b`` on ``metric`` (two configurations of
    :func:`~lpnet.report.configurations`) and the numbers: ``a mean ± std vs b mean ± std (gap, spread)``."""
    mean_a, mean_b = a.get(f"{metric} mean"), b.get(f"{metric} mean")
    std_a, std_b = a.get(f"{metric} std"), b.get(f"{metric} std")
    if None in (mean_a, mean_b):
        return "not measured", ""
    digits = 4 if "ssim" in metric else 2
    if None in (std_a, std_b):
        return "spread unknown (one seed)", f"{mean_a:.{digits}f} vs {mean_b:.{digits}f}"
    gap, spread = mean_a - mean_b, std_a + std_b
    numbers = (
        f"{mean_std(a, metric)} vs {mean_std(b, metric)} (gap {gap:+.{digits}f}, spread {spread:.{digits}f})"
    )
    if gap < -spread:
        return "contradicted", numbers
    if kind == NO_WORSE or gap > spread:
        return "holds", numbers
    return "within the seed spread", numbers


def overall(verdicts: Sequence[str]) -> str:
    """One verdict from the deciding metrics' (Y-PSNR and SSIM on real heavy rain)."""
    if "contradicted" in verdicts and "holds" in verdicts:
        return "mixed (holds on one score, contradicted on the other)"
    for verdict in ("contradicted", "holds", "within the seed spread"):
        if verdict in verdicts:
            return verdict
    return verdicts[0] if verdicts else "not run"


def settling_step(
    curves: dict[str, list[tuple[int, float]]],
) -> tuple[list[int], list[list[str]], int | None]:
    """The validation steps, each step's ranking of the configurations (best first), and the first step
    from which the ranking is the final one (None when it changes at the last step)."""
    steps = sorted(set.intersection(*(set(dict(c)) for c in curves.values()))) if curves else []
    rankings = [sorted(curves, key=lambda name, s=s: -dict(curves[name])[s]) for s in steps]
    settled = None
    for index in range(len(steps) - 1, -1, -1):
        if rankings[index] != rankings[-1]:
            break
        settled = steps[index]
    return steps, rankings, settled


def mean_curves(
    runs: Sequence[Run], ledger: Ledger, key: str, metric: str
) -> dict[str, list[tuple[int, float]]]:
    """``{value: [(step, mean over seeds), ...]}`` of one validation score's learning curve."""
    by_slot = {e.slot.as_posix(): e for e in ledger.good}
    per_value: dict[str, dict[int, list[float]]] = {}
    for run in runs:
        for step, score in by_slot[run.label].curves.get(metric, []):
            per_value.setdefault(run.overrides[key], {}).setdefault(step, []).append(score)
    return {
        value: [(step + 1, statistics.fmean(scores)) for step, scores in sorted(points.items())]
        for value, points in per_value.items()
    }


def plot_learning_curves(
    panels: Sequence[tuple[str, dict[str, list[tuple[int, float]]]]], metric: str
) -> Figure:
    """One panel per axis: each configuration's mean learning curve of ``metric`` over its seeds."""
    fig = Figure(figsize=(4.4 * len(panels) + 0.4, 4.0), layout="constrained")
    for ax, (axis, curves) in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels):
        for value, points in curves.items():
            ax.plot([s for s, _ in points], [v for _, v in points], "o-", label=value, linewidth=1.4)
        ax.set_title(axis)
        ax.set_xlabel("step")
        ax.set_ylabel(f"{metric} (dB), mean over seeds")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"learning curves: {set_title(metric.split('/')[0])} Y-PSNR at every validation")
    return fig


def _cell(config: dict[str, Any], metric: str) -> str:
    return mean_std(config, metric) if config.get(f"{metric} mean") is not None else ""


def write_study_report(root: Path, output: Path) -> tuple[list[Path], list[str]]:
    """Write ``<output>/ablations.md`` and ``<output>/ablations/*.png`` from the ledger at ``root``.

    Returns:
        The files written and one line per ledger entry left out.

    Raises:
        ValueError: the ledger holds no good entry.
    """
    study, cfg, runs_planned = ledger_plan(root)
    ledger = read_ledger(root, runs_planned, cfg)
    if not ledger.good:
        raise ValueError(f"the ledger {root} holds no finished run of the study")
    left_out = [f"`{e.slot.as_posix()}`: {e.problem}" for e in ledger.bad]
    baselines = baseline_values(cfg)
    figures = ensure_writable_folder(output / FIGURES)
    written: list[Path] = []
    sections: list[str] = []
    claims_by_axis: dict[str, tuple[list[dict[str, Any]], dict[str, Any]]] = {}
    budget_panels = []
    budget_lines = []
    for axis in cfg.axes:
        runs = axis_runs(ledger, axis, baselines.get(axis))
        values = {r.overrides[axis] for r in runs}
        if len(values) < 2:
            continue
        _, rows = table(runs)
        configs = configurations(rows, [axis, "seed"])
        claims_by_axis[axis] = (configs, {r.overrides[axis]: r.params for r in runs})
        sections += axis_section(axis, baselines.get(axis), runs, configs)
        for score in ("psnr_y", "ssim_y"):
            plot = plot_psnr_by_key(runs, rows, axis, None, score)
            if plot.figure is not None:
                path = save_figure(plot.figure, figures / f"{axis}_{score.split('_')[0]}.png", dpi=100)
                written.append(path)
                sections.append(f"![{axis}: {score}]({FIGURES}/{path.name})")
                sections.append("")
        curves = mean_curves(runs, ledger, axis, f"{DECIDING_SET}/psnr_y")
        budget_panels.append((axis, curves))
        steps, rankings, settled = settling_step(curves)
        if steps:
            order = " · ".join(f"{s}: {' > '.join(r)}" for s, r in zip(steps, rankings))
            when = f"final from step {settled}" if settled is not None else "still changing at the last step"
            budget_lines.append(f"| {axis} | {when} | {order} |")
    if budget_panels:
        path = save_figure(
            plot_learning_curves(budget_panels, f"{DECIDING_SET}/psnr_y"), figures / "learning_curves.png"
        )
        written.append(path)
    page = [
        "# LPNet ablations",
        "",
        "Generated by `make ablations-report` "
        f"(`python -m lpnet.report input={root.as_posix()} output=...`) from "
        f"the study's ledger `{root.as_posix()}/`: every number below is recomputed from the committed runs. "
        "Do not edit by hand.",
        "",
        *header_lines(study, ledger, runs_planned),
        "## The paper's claims",
        "",
        *claim_lines(claims_by_axis, study.real_val.get(DECIDING_SET.removeprefix("val_real_"), "")),
        "",
        *sections,
        "## The step budget: where the rankings stop changing",
        "",
        "Each axis's configurations ranked by their mean real heavy Y-PSNR at every validation (steps "
        "counted from 1); with the cosine schedule every run ends settled at its last step.",
        "",
        "| axis | ranking | at each validation (best first) |",
        "|---|---|---|",
        *budget_lines,
        "",
        f"![learning curves]({FIGURES}/learning_curves.png)",
        "",
    ]
    if left_out:
        page += ["## Ledger entries left out", "", *(f"- {line}" for line in left_out), ""]
    written.insert(0, write_text(output / PAGE, "\n".join(page)))
    return written, left_out


def header_lines(cfg: StudyCommandConfig, ledger: Ledger, runs_planned: Sequence[Any]) -> list[str]:
    """The recipe, the sets, the machine and how much of the study's plan (``cfg``) the ledger holds."""
    sets = ", ".join(
        [f"real {name} = `{folder}`" for name, folder in cfg.real_val.items()]
        + [
            f"rain-free {name} = `{folder}` (each photo against itself)"
            for name, folder in cfg.clean_val.items()
        ]
    )
    machines = sorted({e.study.get("machine", "?") for e in ledger.good})
    hours = sum(e.study.get("wall_time_s", 0) for e in ledger.good) / 3600
    planned = {r.slot for r in runs_planned if r.axis in (BASELINE, *cfg.axes) and r.seed in cfg.seeds}
    held = sum(e.slot in planned for e in ledger.good)
    recipe = " ".join(cfg.recipe)
    return [
        f"- **Recipe** of every run: `python -m lpnet.train {recipe} seed=<k>` with the axis's value (the "
        "baseline: the recipe alone, the paper's LPNet and loss), scored at every validation on "
        f"{sets} (`data.real_val`, `data.clean_val`, folders under `REAL_RAIN_DIR`).",
        "- **Scores** at each run's last step (the cosine schedule ends there); the synthetic test on the "
        "checkpoint with the best synthetic validation. Y-PSNR / SSIM on MATLAB's Y of the 8-bit outputs; "
        "mean ± sample standard deviation over the n seeds.",
        f"- **Ledger**: {len(ledger.good)} finished runs ({held} of the {len(planned)} planned for axes "
        f"{', '.join(cfg.axes)} and the baseline with seeds {', '.join(map(str, cfg.seeds))}), "
        f"{hours:.1f} h of "
        f"training on {'; '.join(machines)}.",
        "",
    ]


def axis_section(
    axis: str, baseline_label: str | None, runs: Sequence[Run], configs: Sequence[dict[str, Any]]
) -> list[str]:
    """One axis's table: every configuration's scores and cost, and its gap to the baseline."""
    by_value = {c[axis]: c for c in configs}
    base = by_value.get(baseline_label)
    cost = {r.overrides[axis]: (r.params, r.macs_per_pixel) for r in runs}
    inputs = {
        m: next((r.metrics.get(m) for r in runs if r.metrics.get(m) is not None), None)
        for m in (f"{s}/input_psnr_y" for s in SHOWN_SETS)
    }
    header = ["value", "n", "params", "MACs/px"]
    header += [f"{set_title(s)} {name}" for s in SHOWN_SETS for name in ("PSNR", "SSIM")]
    header.append("real heavy PSNR vs baseline")
    lines = [f"## Axis: {axis}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for value, config in by_value.items():
        params, macs = cost[value]
        name = f"**{value}** (baseline)" if value == baseline_label else value
        cells = [name, str(config["n"]), f"{params:,}", f"{macs / 1000:.1f}k"]
        for s in SHOWN_SETS:
            cells += [_cell(config, f"{s}/psnr_y"), _cell(config, f"{s}/ssim_y")]
        if base is None or value == baseline_label:
            cells.append("")
        else:
            verdict, _ = compare(config, base, f"{DECIDING_SET}/psnr_y", BETTER)
            gap = config[f"{DECIDING_SET}/psnr_y mean"] - base[f"{DECIDING_SET}/psnr_y mean"]
            beyond = (
                "within the seed spread" if verdict == "within the seed spread" else "beyond the seed spread"
            )
            cells.append(f"{gap:+.2f} dB ({beyond})")
        lines.append("| " + " | ".join(cells) + " |")
    rainy = ["rainy input", "", "", ""]
    for s in SHOWN_SETS:
        value = inputs[f"{s}/input_psnr_y"]
        rainy += [f"{value:.2f}" if value is not None else "", ""]
    lines += ["| " + " | ".join([*rainy, ""]) + " |", ""]
    return lines


def claim_lines(
    configs_by_axis: dict[str, tuple[Sequence[dict[str, Any]], dict[str, Any]]], deciding_folder: str
) -> list[str]:
    """The claims table: each claim's verdict on real heavy rain and the numbers beside it."""
    lines = [
        f"Judged on real heavy rain (`{deciding_folder}`), Y-PSNR and SSIM: **holds** when the claimed "
        "winner leads by more than the seed spread (the sum of the two standard deviations) on one score and "
        "loses on none, **contradicted** when it trails by more than the spread, **within the seed spread** "
        "otherwise. For a claim of *no loss*, holds means it does not trail by more than the spread.",
        "",
        "| claim | verdict | real heavy Y-PSNR (dB) | real heavy SSIM | real light Y-PSNR "
        "| synthetic test Y-PSNR | parameters |",
        "|---|---|---|---|---|---|---|",
    ]
    for claim in CLAIMS:
        axis_configs, params = configs_by_axis.get(claim.axis, ([], {}))
        configs = {c[claim.axis]: c for c in axis_configs}
        a, b = configs.get(claim.a), configs.get(claim.b)
        title = f"({claim.letter}) {claim.text}: `{claim.axis}={claim.a}` vs `{claim.b}`"
        if a is None or b is None:
            lines.append(f"| {title} | not run (axis `{claim.axis}` is not in the ledger) | | | | | |")
            continue
        deciding = [compare(a, b, f"{DECIDING_SET}/{m}", claim.kind) for m in ("psnr_y", "ssim_y")]
        shown = [compare(a, b, m, claim.kind)[1] for m in ("val_real_light/psnr_y", "test/psnr_y")]
        cost = f"{params[claim.a]:,} vs {params[claim.b]:,}"
        verdict = overall([v for v, _ in deciding])
        lines.append(
            f"| {title} | **{verdict}** | {deciding[0][1]} | {deciding[1][1]} | {shown[0]} | {shown[1]} "
            f"| {cost} |"
        )
    return lines
