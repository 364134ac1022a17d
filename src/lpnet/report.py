"""Summarise training runs and sweeps: ``python -m lpnet.report input=SWEEP_DIR [output=DIR]``.

A sweep directory is what ``python -m lpnet.train experiment=ablation_* `` (or any ``-m`` run) leaves in
``multirun/<task_name>/<date>/``: one sub-directory per run holding ``.hydra/overrides.yaml``, the composed
``config.yaml``, ``csv/metrics.csv`` while it trains and ``metrics.json`` once it has finished. A single
run directory works too.

``input`` may also be a glob pattern (``input='multirun/ablation_*/*'``) or a list
(``input=[multirun/a,multirun/b]``; then ``output`` is needed). The report, written to ``output``
(default: the sweep directory itself, beside its runs):

- ``report.md``: one row per run: the overrides that differ between runs (the swept values), parameters,
  MACs per pixel (from the run's ``model.net``, at 321×481), val/test PSNR and SSIM on Y and RGB, steps
  and wall time. Runs without ``metrics.json`` (failed, killed or still running) are listed as
  ``incomplete``, never dropped.
- ``report.csv``: the same table, unrounded, with a fixed set of columns.
- ``psnr_by_<key>.png`` (one per swept key): validation and test Y-PSNR in two panels, the key's values
  as categories, every point labelled, the rainy input as a dashed line, the best run a star;
  ``psnr_vs_params.png``: the headline Y-PSNR against parameters and MACs per pixel (log axes, the
  panels where the runs differ); ``loss_curves.png``: every per-level training loss of every run (from
  ``csv/metrics.csv``), as logged and smoothed, on log axes with plain ticks. PSNR axes span at least
  :data:`MIN_PSNR_SPAN` dB, so a tie looks like one. A plot that cannot be drawn (no losses logged, one
  value of a key) is listed under "Plots not drawn" with the reason, and in the command's summary.
"""

from __future__ import annotations

import csv
import dataclasses
import glob
import io
import itertools
import json
import math
import os
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import OverrideParseException
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullLocator
from omegaconf import DictConfig, ListConfig, OmegaConf

from lpnet.cli import Outcome, command
from lpnet.config import LPNetConfig
from lpnet.files import ensure_writable_folder, save_figure, slug, write_text
from lpnet.models.complexity import count_params, macs_per_pixel

METRICS = (
    "val/psnr_y",
    "val/ssim_y",
    "val/psnr_rgb",
    "val/ssim_rgb",
    "val/psnr_y_best",
    "val/input_psnr_y",
    "test/psnr_y",
    "test/ssim_y",
    "test/psnr_rgb",
    "test/ssim_rgb",
    "test/input_psnr_y",
    "test/input_ssim_y",
)
# Further validation sets (``data.real_val``, ``data.clean_val``): each logged as ``<set>/<score>``; the
# report shows these scores of each, at the run's last validation, before the synthetic ones.
REAL_SET, CLEAN_SET = "val_real", "val_clean"
SET_SCORES = ("psnr_y", "ssim_y", "input_psnr_y")
# The PSNR the best run is chosen by: the first real set's (the one data.real_val names first), else the
# first of these that the runs have. Validation first: choosing on the test set would make the reported test
# score optimistic; the best run's test score is reported beside it.
HEADLINE_METRICS = ("val/psnr_y_best", "val/psnr_y", "test/psnr_y")
# Runs that differ only in this override are one configuration, its seeds averaged.
SEED_KEY = "seed"
# What a configuration averages over its seeds: every set's Y-PSNR and SSIM (and the best validation).
AVERAGED = re.compile(r"^(val\w*|test)/(psnr_y|ssim_y|psnr_y_best)$")
MIN_PSNR_SPAN = 1.0  # dB: the smallest y-range of a PSNR plot (0.03 dB apart is a tie, drawn as one)
MIN_SSIM_SPAN = 0.02  # the same for SSIM
LOSS_COLUMN = re.compile(r"^train/level(\d+)/(\w+)$")
LOSS_TERMS = {"l1": "L1", "l2": "MSE", "ssim": "(1 − SSIM) / 2"}  # the loss terms of lpnet.models.losses
LOG_SPAN = 10  # a loss axis is logarithmic when its values span this factor or more, else linear
SMOOTHING_FRACTION = 0.05  # the loss plot's running mean spans this share of the logged points
COMPLETE, INCOMPLETE = "complete", "incomplete"


@dataclass
class Run:
    """What one run directory of a sweep holds.

    Attributes:
        label: name in the report (``<n>``, or ``<sweep>/<n>`` when several sweeps are read).
        path: the run directory.
        status: ``"complete"`` (``metrics.json`` present) or ``"incomplete"``.
        note: why a run is incomplete, or ``""``.
        overrides: Hydra overrides as ``{dotted key: value}`` (dict values flattened into dotted keys).
        config: the composed config (``config.yaml``, else ``.hydra/config.yaml``) or ``None``.
        metrics: the ``metrics`` of ``metrics.json`` (empty when incomplete).
        params: parameter count (``metrics.json``, else counted from ``config.model.net``).
        macs_per_pixel: MACs per input pixel at 321×481 from ``config.model.net``, or ``None``.
        steps: global step (``metrics.json``, else the last step in ``csv/metrics.csv``).
        wall_time_s: training wall time in seconds (complete runs only).
        losses: training-loss series ``{column: (steps, values)}`` from ``csv/metrics.csv``.
    """

    label: str
    path: Path
    status: str = INCOMPLETE
    note: str = ""
    overrides: dict[str, Any] = field(default_factory=dict)
    config: DictConfig | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    params: int | None = None
    macs_per_pixel: float | None = None
    steps: int | None = None
    wall_time_s: float | None = None
    losses: dict[str, tuple[list[int], list[float]]] = field(default_factory=dict)


def is_run_dir(path: Path) -> bool:
    """True for a directory Hydra made for one job (``.hydra/``) or one train() wrote ``metrics.json`` to."""
    return (path / ".hydra").is_dir() or (path / "metrics.json").is_file()


def find_runs(sweep_dir: Path) -> list[Path]:
    """Run directories of a sweep in job order (``0, 1, ..., 10``); a run directory alone is its own sweep.

    Raises:
        FileNotFoundError: ``sweep_dir`` is not a directory.
    """
    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"sweep directory {sweep_dir} does not exist")
    if is_run_dir(sweep_dir):
        return [sweep_dir]
    runs = [p for p in sweep_dir.iterdir() if p.is_dir() and (p.name.isdigit() or is_run_dir(p))]
    return sorted(runs, key=lambda p: (not p.name.isdigit(), int(p.name) if p.name.isdigit() else 0, p.name))


def parse_overrides(lines: Sequence[str]) -> dict[str, Any]:
    """Hydra override strings → ``{dotted key: value}``; ``model.net={a:1}`` becomes ``model.net.a: 1``.

    Values are typed as Hydra parses them (``"true"`` → ``True``, ``"1e-3"`` → ``0.001``); a deleted key
    (``~key``) maps to ``"~"``.

    Raises:
        OverrideParseException: a line is not a Hydra override.
    """
    parsed: dict[str, Any] = {}
    for override in OverridesParser.create().parse_overrides(overrides=list(lines)):
        value = "~" if override.is_delete() else override.value()
        _flatten(override.key_or_group, value, parsed)
    return parsed


def _flatten(key: str, value: Any, into: dict[str, Any]) -> None:
    if isinstance(value, dict) and value:
        for sub_key, sub_value in value.items():
            _flatten(f"{key}.{sub_key}", sub_value, into)
    else:
        into[key] = value


def _read_config(run_dir: Path) -> DictConfig | None:
    for path in (run_dir / "config.yaml", run_dir / ".hydra" / "config.yaml"):
        if path.is_file():
            cfg = OmegaConf.load(path)
            return cfg if isinstance(cfg, DictConfig) else None
    return None


def _net_cost(cfg: DictConfig | None) -> tuple[int | None, float | None, str]:
    """Parameters and MACs/pixel of the LPNet that ``cfg.model.net`` describes (``None`` if it cannot)."""
    net_cfg = OmegaConf.select(cfg, "model.net", default=None) if cfg is not None else None
    if not isinstance(net_cfg, DictConfig):
        return None, None, "no model.net in the config"
    settings = OmegaConf.to_container(net_cfg, resolve=False)
    known = {f.name for f in dataclasses.fields(LPNetConfig)}
    try:
        config = LPNetConfig(**{k: v for k, v in settings.items() if k in known})
    except (TypeError, ValueError) as err:
        return None, None, f"model.net does not build an LPNet: {err}"
    return count_params(config), macs_per_pixel(config), ""


def read_loss_curves(path: Path) -> dict[str, tuple[list[int], list[float]]]:
    """``train/loss`` and every ``train/level<k>/<term>`` column of a Lightning ``metrics.csv``.

    Returns:
        ``{column: (steps, values)}`` with the empty cells (rows logged by other hooks) skipped.
    """
    curves: dict[str, tuple[list[int], list[float]]] = {}
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            step = row.get("step", "")
            for column, cell in row.items():
                if column is None or not cell or not step:
                    continue
                if column == "train/loss" or LOSS_COLUMN.match(column):
                    steps, values = curves.setdefault(column, ([], []))
                    steps.append(int(float(step)))
                    values.append(float(cell))
    return curves


def load_run(run_dir: Path, label: str) -> Run:
    """Read one run directory; problems become the run's ``note`` instead of errors."""
    run = Run(label=label, path=run_dir)
    notes: list[str] = []
    summary: dict[str, Any] = {}
    metrics_file = run_dir / "metrics.json"
    if metrics_file.is_file():
        try:
            summary = json.loads(metrics_file.read_text())
            run.status = COMPLETE
        except (OSError, json.JSONDecodeError) as err:
            notes.append(f"unreadable metrics.json: {err}")
        if not isinstance(summary, dict) or not isinstance(summary.get("metrics", {}), dict):
            notes.append("metrics.json is not a run summary (a dict holding a dict of metrics)")
            summary, run.status = {}, INCOMPLETE
    else:
        notes.append("no metrics.json (failed, killed or still running)")
    try:
        run.config = _read_config(run_dir)
    except (OSError, yaml.YAMLError) as err:
        notes.append(f"unreadable config: {err}")
    overrides_file = run_dir / ".hydra" / "overrides.yaml"
    try:
        lines = OmegaConf.to_container(OmegaConf.load(overrides_file)) if overrides_file.is_file() else None
        run.overrides = parse_overrides(lines if lines is not None else summary.get("overrides", []))
    except (OSError, yaml.YAMLError, OverrideParseException) as err:
        notes.append(f"unreadable .hydra/overrides.yaml: {err}")
    run.metrics, unusable = {}, []
    for key, value in summary.get("metrics", {}).items():
        number = _finite(value)
        if number is not None:
            run.metrics[key] = number
        elif value is not None or not key.rsplit("/", 1)[-1].startswith("input_"):
            # lpnet writes a non-finite score as null; an input's null is a rain-free set's infinite PSNR
            unusable.append(f"{key}={value!r}")
    if unusable:
        listed = ", ".join(unusable)
        notes.append(f"scores that are not finite numbers, left out (so never the best): {listed}")
    run.steps = summary.get("global_step")
    run.wall_time_s = summary.get("wall_time_s")
    params, run.macs_per_pixel, why = _net_cost(run.config)
    run.params = summary.get("params", params)
    if why and run.config is not None:
        notes.append(why)
    curves_file = run_dir / "csv" / "metrics.csv"
    if curves_file.is_file():
        try:
            run.losses = read_loss_curves(curves_file)
        except (OSError, ValueError, csv.Error) as err:
            notes.append(f"unreadable csv/metrics.csv: {err}")
    if run.steps is None and run.losses:
        run.steps = max(max(steps) for steps, _ in run.losses.values())
    if run.status == INCOMPLETE and (run_dir / "checkpoints" / "last.ckpt").is_file():
        notes.append(f"resume with ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}")
    run.note = "; ".join(notes)
    return run


def _finite(value: Any) -> float | None:
    """``value`` as a finite float (a number, or a string of one), else None: NaN, ±inf, null, text."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def collect_runs(sweep_dirs: Sequence[Path]) -> list[Run]:
    """Every run of every sweep, labelled by job number (prefixed by the sweep's path when several)."""
    sweep_dirs = [Path(d) for d in sweep_dirs]
    base = Path(os.path.commonpath([d.resolve() for d in sweep_dirs])) if len(sweep_dirs) > 1 else None
    runs = []
    for sweep_dir in sweep_dirs:
        for run_dir in find_runs(sweep_dir):
            relative = run_dir.resolve().relative_to(base) if base is not None else Path(".")
            runs.append(load_run(run_dir, relative.as_posix() if relative.parts else run_dir.name))
    return runs


def swept_keys(runs: Sequence[Run]) -> list[str]:
    """Override keys whose value is not the same in every run, in the order they first appear."""
    keys: dict[str, None] = {}
    for run in runs:
        keys.update(dict.fromkeys(run.overrides))
    return [k for k in keys if len({repr(r.overrides[k]) if k in r.overrides else None for r in runs}) > 1]


def swept_value(run: Run, key: str) -> Any:
    """The run's value for a swept key: its override, else its config's value (``None`` for neither or a
    whole config group)."""
    if key in run.overrides:
        return run.overrides[key]
    value = OmegaConf.select(run.config, key, default=None) if run.config is not None else None
    if isinstance(value, DictConfig):
        return None
    return OmegaConf.to_container(value) if isinstance(value, ListConfig) else value


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return f"{value:.4g}"
    return json.dumps(value)


def further_sets(runs: Sequence[Run]) -> list[str]:
    """The validation sets beyond the synthetic one that the runs were scored on (``val_real_<name>``,
    ``val_clean_<name>``): real rain first, then rain-free, each in the order the runs' ``data.real_val`` /
    ``data.clean_val`` name them (the first real set is the one the runs are judged by)."""
    found = {
        key.split("/", 1)[0] for run in runs for key in run.metrics if key.startswith((REAL_SET, CLEAN_SET))
    }
    named: list[str] = [REAL_SET]
    for run in runs:
        for section, prefix in (("real_val", REAL_SET), ("clean_val", CLEAN_SET)):
            folders = OmegaConf.select(run.config, f"data.{section}", default=None) if run.config else None
            named += [f"{prefix}_{name}" for name in (folders or {})]
    ordered = [name for name in dict.fromkeys(named) if name in found] + sorted(found - set(named))
    return sorted(ordered, key=lambda name: not name.startswith(REAL_SET))


def set_title(prefix: str) -> str:
    """A set's name in tables and plots: ``val_real_heavy`` → ``real heavy``, ``val`` → ``validation``."""
    if prefix.startswith(CLEAN_SET):
        return "rain-free " + prefix[len(CLEAN_SET) + 1 :]
    if prefix.startswith(REAL_SET):
        return ("real " + prefix[len(REAL_SET) + 1 :]).strip()
    return {"val": "validation", "test": "test"}.get(prefix, prefix)


def table(runs: Sequence[Run]) -> tuple[list[str], list[dict[str, Any]]]:
    """The report's rows (unrounded values; ``None`` where unknown) and their column names: the swept
    values, cost, every further validation set's scores (:func:`further_sets`), then the synthetic ones."""
    keys = swept_keys(runs)
    scores = [f"{prefix}/{score}" for prefix in further_sets(runs) for score in SET_SCORES] + list(METRICS)
    columns = ["run", "status", *keys, "params", "macs_per_pixel", *scores, "steps", "wall_time_s", "note"]
    rows = []
    for run in runs:
        row = {"run": run.label, "status": run.status, "note": run.note}
        row |= {key: swept_value(run, key) for key in keys}
        row |= {"params": run.params, "macs_per_pixel": run.macs_per_pixel}
        row |= {name: run.metrics.get(name) for name in scores}
        row |= {"steps": run.steps, "wall_time_s": run.wall_time_s}
        rows.append(row)
    return columns, rows


def _markdown_cell(column: str, value: Any) -> str:
    if value is None:
        return ""
    if column == "params":
        return f"{value:,}"
    if column == "macs_per_pixel":
        return f"{value / 1000:.1f}k"
    if column == "wall_time_s":
        seconds = round(value)
        return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    if "psnr" in column:
        return f"{value:.2f}"
    if "ssim" in column:
        return f"{value:.4f}"
    return _text(value).replace("|", "\\|")


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return str(value)
    return json.dumps(value)


def write_csv(path: Path, columns: list[str], rows: list[dict[str, Any]]) -> None:
    """The table with every column and full precision."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    writer.writerows([_csv_cell(row[c]) for c in columns] for row in rows)
    write_text(path, buffer.getvalue())


def write_markdown(
    path: Path,
    sweep_dirs: Sequence[Path],
    columns: list[str],
    rows: list[dict[str, Any]],
    plots: list[Path],
    skipped: Sequence[Plot] = (),
    configs: Sequence[dict[str, Any]] = (),
) -> None:
    """``report.md``: the table (columns empty in every row left out), incomplete runs, best run, the
    configurations with their seeds averaged (when the runs sweep ``seed``), plots, and the plots not
    drawn with the reason."""
    shown = [c for c in columns if c in ("run", "status") or any(row[c] is not None for row in rows)]
    shown = [c for c in shown if c != "note"]
    headers = {"macs_per_pixel": "MACs/px", "wall_time_s": "time"}
    complete = [row for row in rows if row["status"] == COMPLETE]
    lines = [
        "# Sweep report",
        "",
        *(f"- `{d}`" for d in sweep_dirs),
        "",
        f"{len(rows)} runs: {len(complete)} complete, {len(rows) - len(complete)} incomplete. "
        "MACs per input pixel at 321×481 (1 MAC = 2 FLOPs); time is training wall time (h:mm:ss).",
        "",
        "| " + " | ".join(headers.get(c, c) for c in shown) + " |",
        "|" + "|".join("---" for _ in shown) + "|",
        *("| " + " | ".join(_markdown_cell(c, row[c]) for c in shown) + " |" for row in rows),
    ]
    best = best_row(rows)
    if best is not None:
        headline = headline_metric(rows)
        lines += [
            "",
            f"Best {headline}: run `{best['run']}` with {best[headline]:.2f} dB" + _test_score(best),
        ]
    if configs:
        lines += ["", *_configuration_lines(configs)]
    notes = [row for row in rows if row["note"]]
    if notes:
        lines += [
            "",
            "## Notes",
            "",
            *(f"- run `{row['run']}` ({row['status']}): {row['note']}" for row in notes),
        ]
    if plots:
        lines += ["", "## Plots", "", *(f"![{p.stem}]({p.name})" for p in plots)]
    if skipped:
        lines += ["", "## Plots not drawn", "", *(f"- `{plot.name}`: {plot.reason}" for plot in skipped)]
    write_text(path, "\n".join(lines) + "\n")


def _test_score(row: dict[str, Any]) -> str:
    test = row.get("test/psnr_y")
    return f" (test/psnr_y {test:.2f} dB)." if test is not None else "."


def configurations(rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> list[dict[str, Any]]:
    """The complete runs grouped into configurations: runs whose swept values differ only in
    :data:`SEED_KEY`. Each configuration holds its swept values, ``n`` (seeds), ``runs`` and, for the
    validation and test Y-PSNR, ``<metric> mean`` and ``<metric> std`` (sample standard deviation over
    the seeds; None with one seed), ordered as the runs first appear. Empty when ``seed`` is not swept."""
    if SEED_KEY not in keys:
        return []
    config_keys = [k for k in keys if k != SEED_KEY]
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        if row["status"] == COMPLETE:
            groups.setdefault(tuple(_text(row[k]) for k in config_keys), []).append(row)
    configs = []
    for members in groups.values():
        config = {k: members[0][k] for k in config_keys}
        config |= {"n": len(members), "runs": [m["run"] for m in members]}
        for metric in averaged_metrics(rows):
            values = [m[metric] for m in members if m[metric] is not None]
            config[f"{metric} mean"] = statistics.fmean(values) if values else None
            config[f"{metric} std"] = statistics.stdev(values) if len(values) > 1 else None
        configs.append(config)
    return configs


def judged_metrics(rows: Sequence[dict[str, Any]]) -> list[str]:
    """What runs are judged by, first to last: each real set's Y-PSNR, then :data:`HEADLINE_METRICS`."""
    columns = list(rows[0]) if rows else []
    real = [c for c in columns if c.startswith(REAL_SET) and c.endswith("/psnr_y")]
    return real + [m for m in HEADLINE_METRICS if m in columns]


def averaged_metrics(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The scores a configuration averages over its seeds: :func:`judged_metrics` first, then every other
    set's Y-PSNR and SSIM in column order."""
    columns = list(rows[0]) if rows else []
    judged = judged_metrics(rows)
    return judged + [c for c in columns if AVERAGED.match(c) and c not in judged]


def seed_verdict(config: dict[str, Any], best: dict[str, Any], metric: str) -> str:
    """Whether ``config`` differs from ``best`` on ``metric`` by more than the seeds' spread: the gap
    between the means against the sum of the two standard deviations."""
    if config is best:
        return "best"
    spreads = (config[f"{metric} std"], best[f"{metric} std"])
    if None in spreads:
        return "spread unknown (one seed)"
    gap = best[f"{metric} mean"] - config[f"{metric} mean"]
    return "beyond the seed spread" if gap > sum(spreads) else "within the seed spread"


def best_configuration(configs: Sequence[dict[str, Any]]) -> tuple[dict[str, Any] | None, str | None]:
    """The configuration with the highest mean of the first :func:`judged_metrics` they have, and that
    metric."""
    averaged = [k.removesuffix(" mean") for k in (configs[0] if configs else {}) if k.endswith(" mean")]
    for metric in [m for m in averaged if m.endswith(("/psnr_y", "/psnr_y_best"))]:
        scored = [c for c in configs if c[f"{metric} mean"] is not None]
        if scored:
            return max(scored, key=lambda c: c[f"{metric} mean"]), metric
    return None, None


def mean_std(config: dict[str, Any], metric: str) -> str:
    """``30.20 ± 0.28`` (PSNR, dB) or ``0.8123 ± 0.0040`` (SSIM): a configuration's mean and spread."""
    mean, std = config.get(f"{metric} mean"), config.get(f"{metric} std")
    if mean is None:
        return ""
    digits = 4 if "ssim" in metric else 2
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if std is not None else f"{mean:.{digits}f}"


def _configuration_lines(configs: Sequence[dict[str, Any]]) -> list[str]:
    best, metric = best_configuration(configs)
    keys = [k for k in configs[0] if k not in ("n", "runs") and not k.endswith((" mean", " std"))]
    stages = [k.removesuffix(" mean") for k in configs[0] if k.endswith(" mean")]
    lines = [
        "## Configurations (seeds averaged)",
        "",
        "Runs that differ only in `seed` are one configuration: mean ± sample standard deviation over its "
        f"n seeds. The best is chosen on `{metric}`; a configuration differs from it *beyond the seed "
        "spread* when the gap between the means exceeds the sum of the two standard deviations.",
        "",
        "| " + " | ".join([*keys, "n", *(f"{m} (mean ± std)" for m in stages), f"vs best ({metric})"]) + " |",
        "|" + "|".join("---" for _ in range(len(keys) + len(stages) + 2)) + "|",
    ]
    for config in configs:
        cells = [_text(config[k]).replace("|", "\\|") for k in keys] + [str(config["n"])]
        cells += [mean_std(config, m) for m in stages]
        cells.append(seed_verdict(config, best, metric) if best is not None and metric else "")
        lines.append("| " + " | ".join(cells) + " |")
    if best is not None:
        chosen = ", ".join(f"{k}={_text(best[k])}" for k in keys) or "the only configuration"
        test = mean_std(best, "test/psnr_y")
        lines += [
            "",
            f"Best configuration (on {metric}): {chosen}" + (f"; test/psnr_y {test} dB." if test else "."),
        ]
    return lines


def headline_metric(rows: Sequence[dict[str, Any]]) -> str | None:
    """The first of :func:`judged_metrics` that a complete run has: what the runs are judged by."""
    for name in judged_metrics(rows):
        if any(row[name] is not None and row["status"] == COMPLETE for row in rows):
            return name
    return None


def best_row(rows: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The complete run with the highest headline PSNR (:data:`HEADLINE_METRICS`), or None.

    A NaN or infinite score (a diverged run) is never the best."""
    metric = headline_metric(rows)
    complete = [
        row
        for row in rows
        if row["status"] == COMPLETE and metric and row[metric] is not None and math.isfinite(row[metric])
    ]
    return max(complete, key=lambda row: row[metric]) if complete else None


def _short(row: dict[str, Any], keys: Sequence[str]) -> str:
    if not keys:
        return f"run {row['run']}"
    return ", ".join(f"{k.rsplit('.', 1)[-1]}={_text(row[k])}" for k in keys)


# --------------------------------------------------------------------------------------------------
# Plots


@dataclass
class Plot:
    """One plot of the report: its file name and figure, or the reason it was not drawn."""

    name: str
    figure: Figure | None = None
    reason: str = ""


def _baseline(rows: Sequence[dict[str, Any]], stage: str) -> float | None:
    """The rainy input's Y-PSNR on set ``stage`` (``val``, ``test``, ``val_real_heavy``): the mean over the
    runs that have it (all runs score the same images, so the values agree unless the data changed)."""
    values = [row[f"{stage}/input_psnr_y"] for row in rows if row.get(f"{stage}/input_psnr_y") is not None]
    return sum(values) / len(values) if values else None


def _psnr_limits(
    values: Sequence[float], baseline: float | None, min_span: float = MIN_PSNR_SPAN, legend_band: float = 0.0
) -> tuple[float, float]:
    """y-limits that hold every value and the baseline, at least ``min_span`` tall (a 0.03 dB spread is
    shown as the near-tie it is), with room above for the value labels and, below, an empty band of
    ``legend_band`` (a share of the height, in [0, 1)) where a legend covers no point or label."""
    shown = [*values, *([baseline] if baseline is not None else [])]
    low, high = min(shown), max(shown)
    pad = (max(high - low, min_span) - (high - low)) / 2
    low, high = low - pad, high + pad
    top, bottom = high + 0.2 * (high - low), low - 0.08 * (high - low)
    return top - (top - bottom) / (1 - legend_band), top


def _legend_below_the_points(fig: Figure, limits: dict[Any, tuple[list[float], float | None, float]]) -> None:
    """Each axes' legend at its lower centre, in a band of its own: the y-limits (:func:`_psnr_limits` of
    ``limits[ax]``: values, baseline, minimum span) leave room for the legend's height as drawn, so it
    covers no point and no value label (where ``loc="best"`` put it over the labels of the top points)."""
    for ax in limits:
        ax.legend(fontsize=8, loc="lower center")
    fig.draw_without_rendering()
    for ax, (values, baseline, min_span) in limits.items():
        share = ax.get_legend().get_window_extent().height / ax.get_window_extent().height
        ax.set_ylim(*_psnr_limits(values, baseline, min_span, legend_band=min(0.6, share + 0.04)))


def _draw_baseline(ax: Any, baseline: float | None) -> None:
    if baseline is not None:
        ax.axhline(
            baseline, color="0.45", linestyle="--", linewidth=1, label=f"rainy input {baseline:.2f} dB"
        )


def _mark_best(ax: Any, x: float, y: float, metric: str) -> None:
    label = f"best run (by {metric})"
    ax.scatter([x], [y], marker="*", s=200, color="gold", edgecolor="black", zorder=5, label=label)


def score_panels(rows: Sequence[dict[str, Any]], score: str = "psnr_y") -> list[tuple[str, str]]:
    """``(set, metric)`` of each panel of a by-key plot: every further validation set (real rain first),
    then the synthetic validation (its best Y-PSNR) and test sets."""
    columns = list(rows[0]) if rows else []
    further = list(dict.fromkeys(c.split("/")[0] for c in columns if c.startswith((REAL_SET, CLEAN_SET))))
    synthetic = [
        ("val", "val/psnr_y_best" if score == "psnr_y" else f"val/{score}"),
        ("test", f"test/{score}"),
    ]
    return [(prefix, f"{prefix}/{score}") for prefix in further] + synthetic


def plot_psnr_by_key(
    runs: Sequence[Run], rows: Sequence[dict[str, Any]], key: str, best: str | None, score: str = "psnr_y"
) -> Plot:
    """Each set's Y-PSNR (or ``score="ssim_y"``: SSIM) against one swept key: a panel per set
    (:func:`score_panels`), the values as categories.

    The key's values are categories in sweep order (numbers sorted: recursions 1, 3, 5, 7 are four
    ticks, not a continuous axis), each point labelled with its value; the rainy input is the dashed
    line and the run labelled ``best`` a star. Only runs that set ``key`` themselves are drawn
    (the uniform-width run says nothing about the width multiplier its config still holds).
    """
    psnr = score == "psnr_y"
    name = f"{'psnr' if psnr else score.split('_')[0]}_by_{slug(key)}.png"
    points = [r for run, r in zip(runs, rows) if r["status"] == COMPLETE and key in run.overrides]
    if len({_text(r[key]) for r in points}) < 2:
        return Plot(name, reason=f"fewer than two values of {key} among the complete runs that set it")
    values = [r[key] for r in points]
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        points = sorted(points, key=lambda r: r[key])
    categories = list(dict.fromkeys(_text(r[key]) for r in points))
    stages = [
        (stage, metric)
        for stage, metric in score_panels(rows, score)
        if any(r.get(metric) is not None for r in points)
    ]
    if not stages:
        return Plot(name, reason=f"no complete run has a validation or test {score}")
    headline = headline_metric(rows)
    columns = min(len(stages), 5)
    grid = math.ceil(len(stages) / columns)
    fig = Figure(figsize=(4.2 * columns + 0.6, 4.4 * grid), layout="constrained")
    axes = fig.subplots(grid, columns, squeeze=False).ravel()
    for ax in axes[len(stages) :]:
        ax.set_visible(False)
    limits = {}
    for ax, (stage, metric) in zip(axes, stages):
        drawn = [(categories.index(_text(r[key])), r) for r in points if r[metric] is not None]
        # Several runs per value (seeds): their mean, with the sample standard deviation as an error bar.
        per_value: dict[int, list[float]] = {}
        for x, r in drawn:
            per_value.setdefault(x, []).append(r[metric])
        xs = sorted(per_value)
        ys = [statistics.fmean(per_value[x]) for x in xs]
        spreads = [statistics.stdev(per_value[x]) if len(per_value[x]) > 1 else 0.0 for x in xs]
        if any(len(v) > 1 for v in per_value.values()):
            seeds = max(len(v) for v in per_value.values())
            ax.errorbar(
                xs, ys, yerr=spreads, fmt="o-", color="tab:blue", capsize=5,
                label=f"{metric}, mean ± std over ≤{seeds} seeds",
            )  # fmt: skip
        else:
            ax.plot(xs, ys, "o-", color="tab:blue", label=metric)
        for x, y, spread in zip(xs, ys, spreads):
            ax.annotate(
                f"{y:.2f}" if psnr else f"{y:.3f}",
                (x, y + spread),
                xytext=(0, 7),
                textcoords="offset points",
                ha="center",
                fontsize=9,
            )
        baseline = _baseline(points, stage) if psnr else None
        _draw_baseline(ax, baseline)
        for x, r in drawn:
            if r["run"] == best:
                _mark_best(ax, x, r[metric], headline)
        tilted = max(map(len, categories)) > 10  # width_multiplier=0.5: level, neighbours overlap
        ax.set_xticks(range(len(categories)), categories)
        if tilted:
            ax.set_xticklabels(categories, rotation=20, ha="right")
        ax.set_xlim(-0.5, len(categories) - 0.5)
        limits[ax] = (
            [y + d for y, d in zip(ys, spreads)] + [y - d for y, d in zip(ys, spreads)],
            baseline,
            MIN_PSNR_SPAN if psnr else MIN_SSIM_SPAN,
        )
        ax.set_xlabel(key)
        ax.set_ylabel(f"{metric} (dB)" if psnr else metric)
        ax.set_title(set_title(stage))
        ax.grid(True, axis="y", alpha=0.3)
    fig.suptitle(f"{'Y-PSNR' if psnr else 'SSIM (Y)'} by {key}")
    _legend_below_the_points(fig, limits)
    return Plot(name, fig)


def plot_psnr_vs_params(rows: Sequence[dict[str, Any]], keys: Sequence[str], best: str | None) -> Plot:
    """Headline Y-PSNR against parameters and against MACs per pixel (log x), points named by their swept
    values and scores, the rainy input as a dashed line, the run labelled ``best`` a star.

    A panel is drawn only when the runs differ in it (weight sharing changes only the parameters,
    recursions only the MACs). The y-range is at least :data:`MIN_PSNR_SPAN` dB.
    """
    name = "psnr_vs_params.png"
    metric = headline_metric(rows)
    points = [r for r in rows if r["status"] == COMPLETE and metric and r[metric] is not None and r["params"]]
    if not points:
        return Plot(name, reason="no complete run has both a Y-PSNR and a parameter count")
    columns = [
        (column, label)
        for column, label in (("params", "parameters"), ("macs_per_pixel", "MACs per pixel"))
        if len({r[column] for r in points if r[column]}) > 1
    ]
    if not columns:
        return Plot(name, reason="every run has the same parameters and MACs per pixel")
    baseline = _baseline(points, metric.split("/")[0])
    fig = Figure(figsize=(5.6 * len(columns), 4.6), layout="constrained")
    axes = fig.subplots(1, len(columns), squeeze=False)[0]
    for ax, (column, label) in zip(axes, columns):
        known = sorted((r for r in points if r[column]), key=lambda r: r[column])
        xs = [r[column] for r in known]
        ax.scatter(xs, [r[metric] for r in known], color="tab:blue", zorder=3)
        for index, r in enumerate(known):
            # neighbours' labels alternate above and below; the outermost point inwards (never clipped)
            align = "left" if index == 0 else "right" if index == len(known) - 1 else "center"
            above = index % 2 == 0
            ax.annotate(
                f"{_short(r, keys)}\n{r[metric]:.2f} dB", (r[column], r[metric]), fontsize=8, ha=align,
                va="bottom" if above else "top", xytext=(0, 8 if above else -8), textcoords="offset points",
            )  # fmt: skip
            if r["run"] == best:
                _mark_best(ax, r[column], r[metric], metric)
        _draw_baseline(ax, baseline)
        ax.set_xscale("log")
        ax.set_xlim(min(xs) / 1.6, max(xs) * 1.6)
        _plain_log_ticks(ax.xaxis, _count_text)
        ax.set_ylim(*_psnr_limits([r[metric] for r in known], baseline))
        ax.set_xlabel(f"{label} (log scale)")
        ax.set_ylabel(f"{metric} (dB)")
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=8, loc="lower right")
    fig.suptitle(f"{metric} against model size and compute")
    return Plot(name, fig)


def _count_text(value: float, _position: Any = None) -> str:
    """``2000`` → ``2k``, ``1.5e6`` → ``1.5M``: plain tick labels for counts."""
    for factor, suffix in ((1e6, "M"), (1e3, "k")):
        if value >= factor:
            return f"{value / factor:g}{suffix}"
    return f"{value:g}"


def _plain_log_ticks(axis: Any, text: Any = lambda value, _: f"{value:g}") -> None:
    """Ticks of a log-scale ``axis`` at 1, 2, 5 × 10^k, written by ``text`` as plain numbers (0.02 or 20k,
    not 2 × 10⁻²), and no minor ticks."""
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(text))
    axis.set_minor_locator(NullLocator())


def smooth(values: Sequence[float], window: int) -> list[float]:
    """The centred mean over ``window`` points (fewer at the ends), what the loss plot draws solid: it
    does not lag behind the values as a trailing mean (or TensorBoard's exponential one) does."""
    cumulative = [0.0, *itertools.accumulate(values)]  # cumulative[k] = sum(values[:k])
    means = []
    for i in range(len(values)):
        low, high = max(0, i - window // 2), min(len(values), i + window // 2 + 1)
        means.append((cumulative[high] - cumulative[low]) / (high - low))
    return means


def _loss_label(column: str) -> tuple[str, str]:
    """A panel's title and y-label: ``train/level4/l1`` → ``("level 4: L1", "L1")``."""
    match = LOSS_COLUMN.match(column)
    if not match:
        return "total training loss", "loss (sum of the terms)"
    term = LOSS_TERMS.get(match.group(2), match.group(2))
    return f"level {match.group(1)}: {term}", term


def plot_loss_curves(runs: Sequence[Run], keys: Sequence[str], best: str | None) -> Plot:
    """One panel per loss term (``train/loss``, then ``level<k>/<term>`` coarse → fine), a line per run
    (the run labelled ``best`` says so in the legend).

    The logged values are drawn faint and their centred mean over :data:`SMOOTHING_FRACTION` of the
    points solid; losses spanning :data:`LOG_SPAN` × or more get a log axis with plain tick labels (0.01,
    0.02, 0.05, ...), others a linear one.
    """
    name = "loss_curves.png"
    columns = sorted({c for run in runs for c in run.losses}, key=_loss_order)
    if not columns:
        return Plot(name, reason="no run logged a training loss (csv/metrics.csv: none, or no train/ column)")
    ncols = min(3, len(columns))
    nrows = math.ceil(len(columns) / ncols)
    fig = Figure(figsize=(4.6 * ncols, 3.3 * nrows + 0.6), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    colours = {run.label: f"C{index % 10}" for index, run in enumerate(runs)}
    for ax, column in zip(axes, columns):
        for run in runs:
            if column not in run.losses:
                continue
            steps, values = run.losses[column]
            window = max(1, round(len(values) * SMOOTHING_FRACTION))
            label = _short({"run": run.label, **{k: swept_value(run, k) for k in keys}}, keys)
            if run.label == best:
                label += " (best)"
            ax.plot(steps, values, color=colours[run.label], linewidth=0.6, alpha=0.25)
            ax.plot(steps, smooth(values, window), color=colours[run.label], linewidth=1.4, label=label)
        title, ylabel = _loss_label(column)
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(ylabel, fontsize=9)
        ax.set_xlabel("step", fontsize=9)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.xaxis.set_major_formatter(FuncFormatter(_count_text))
        values = [v for run in runs for v in run.losses.get(column, ([], []))[1]]
        if min(values) > 0 and max(values) >= LOG_SPAN * min(values):
            ax.set_yscale("log")
            _plain_log_ticks(ax.yaxis)
        ax.grid(True, alpha=0.3)
    for ax in axes[len(columns) :]:
        ax.set_visible(False)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(4, len(labels)), fontsize=9)
    fig.suptitle(
        "training loss per pyramid level (level 0 = coarsest); faint: as logged, solid: mean over "
        f"{SMOOTHING_FRACTION:.0%} of the points"
    )
    return Plot(name, fig)


def _loss_order(column: str) -> tuple[int, str]:
    match = LOSS_COLUMN.match(column)
    return (int(match.group(1)), match.group(2)) if match else (-1, column)


def write_report(sweep_dirs: Sequence[Path], output: Path) -> tuple[list[Path], list[Plot]]:
    """Read the sweeps and write ``report.md``, ``report.csv`` and the plots into ``output``.

    Returns:
        The files written (``report.md`` first) and the plots that were not drawn, with the reason (also
        listed in ``report.md``).

    Raises:
        FileNotFoundError: a sweep directory does not exist.
        ValueError: the sweep directories hold no run.
        PermissionError: ``output`` cannot be written.
    """
    runs = collect_runs(sweep_dirs)
    if not runs:
        raise ValueError(
            f"no run directories (with .hydra/ or metrics.json) in {', '.join(map(str, sweep_dirs))}"
        )
    ensure_writable_folder(output)
    columns, rows = table(runs)
    keys = swept_keys(runs)
    best = best_row(rows)
    label = best["run"] if best else None
    plots = [
        plot_psnr_vs_params(rows, keys, label),
        *(plot_psnr_by_key(runs, rows, key, label) for key in keys),
        plot_loss_curves(runs, keys, label),
    ]
    drawn = [
        save_figure(plot.figure, output / plot.name, dpi=110) for plot in plots if plot.figure is not None
    ]
    skipped = [plot for plot in plots if plot.figure is None]
    write_csv(output / "report.csv", columns, rows)
    configs = configurations(rows, keys)
    written = [output / "report.md", output / "report.csv"]
    if configs:
        config_columns = [c for c in configs[0] if c != "runs"] + ["runs"]
        write_csv(output / "configurations.csv", config_columns, configs)
        written.append(output / "configurations.csv")
    write_markdown(output / "report.md", sweep_dirs, columns, rows, drawn, skipped, configs)
    return [*written, *drawn], skipped


def input_dirs(value: Any) -> list[Path]:
    """The ``input`` setting as folders: one path, a glob pattern (``multirun/ablation_*/*``), or a list.

    Raises:
        FileNotFoundError: a path or pattern matches no folder.
    """
    items = list(value) if isinstance(value, list | tuple | ListConfig) else [value]
    folders: list[Path] = []
    for item in map(str, items):
        matches = sorted(Path(p) for p in glob.glob(item)) if glob.has_magic(item) else [Path(item)]
        found = [p for p in matches if p.is_dir()]
        if not found:
            raise FileNotFoundError(f"input={item}: no such sweep or run directory")
        folders += found
    return folders


def run(cfg: Any) -> Outcome:
    """The command: ``python -m lpnet.report input=SWEEP_DIR [output=DIR]``; a study's ledger
    (:mod:`lpnet.study_report`) gives ``<output>/ablations.md``."""
    from lpnet.study_report import is_ledger, write_study_report

    sweeps = input_dirs(cfg.input)
    if len(sweeps) == 1 and is_ledger(sweeps[0]):  # the ablation study's ledger: docs/ablations.md
        output = Path(cfg.output) if cfg.output is not None else sweeps[0]
        written, left_out = write_study_report(sweeps[0], output)
        facts = [("wrote", path) for path in written] + [("left out", line) for line in left_out]
        return Outcome(f"lpnet report: {written[0]}", facts)
    if cfg.output is None and len(sweeps) > 1:
        raise ValueError(f"input names {len(sweeps)} folders: set output=DIR for their report")
    output = Path(cfg.output) if cfg.output is not None else sweeps[0]
    facts = []
    for sweep_dir in sweeps:
        runs = find_runs(sweep_dir)
        complete = sum((r / "metrics.json").is_file() for r in runs)
        facts.append((str(sweep_dir), f"{len(runs)} runs, {complete} complete"))
    written, skipped = write_report(sweeps, output)
    facts += [("wrote", path) for path in written]
    facts += [("not drawn", f"{plot.name}: {plot.reason}") for plot in skipped]
    return Outcome(f"lpnet report: {output / 'report.md'}", facts)


main = command("report", run)

if __name__ == "__main__":
    main()
