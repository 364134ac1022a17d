"""The ablation study as a resumable ledger: ``python -m lpnet.study`` (``make ablations``).

The study trains one LPNet per (axis, value, seed) with one recipe and keeps each finished run's small
outputs in a **ledger** folder that is committed with the code (``results/ablations/``)::

    results/ablations/<axis>/<value>/seed<k>/
        config.yaml     the run's composed settings (what lpnet.train wrote)
        metrics.json    its scores: every validation set at the last step, the synthetic test
        metrics.csv     the CSV log: training losses and every validation on the way (learning curves)
        overrides.yaml  the lpnet.train overrides it was started with
        study.json      axis, value, seed, the command, the machine, the wall time

- **The plan.** The axes are the sweeps of ``conf/experiment/ablation_<axis>.yaml`` (their one source): each
  sweep value is one configuration, every configuration runs with every seed of ``seeds``. A value that
  composes to the recipe itself (``loss=paper``, ``model.net.recursions=5``, ...) is the **baseline**, run
  once per seed (``baseline/paper/seed<k>``) and shared by every axis. Every run is
  ``python -m lpnet.train <recipe> <the value's override> seed=<k>``, scored on the real sets
  (``data.real_val``/``data.clean_val``) at every validation and on the synthetic test set at the end.
- **Resumable.** A run trains in ``runs_dir`` and is copied into the ledger only once it has finished (into
  a hidden folder, then renamed: a kill leaves no half entry). ``lpnet.study`` skips every planned run the
  ledger already holds, prints what is left and how long it should take (from the ledger's own wall times),
  and can be stopped at any moment: only the run in progress is lost.
- **The ledger is input.** Every entry is checked before it counts (:func:`check_entry`): files missing or
  unreadable, a run cut short, a score that is not a number, a recipe other than the plan's (compared on the
  settings that change what is trained: :func:`recipe_of`), an entry whose scores duplicate another's. A bad
  entry is named in one line; the study moves it aside into ``<ledger>/rejected/`` (never deleted) and runs
  it again, the report leaves it out.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from lpnet.cli import Outcome, command
from lpnet.config import LPNetConfig, plain
from lpnet.files import write_json, write_text

BASELINE = "baseline"
BASELINE_VALUE = "paper"
REJECTED = "rejected"  # <ledger>/rejected/: bad entries moved aside, never read as results
MANIFEST = (
    "study.yaml"  # <ledger>/study.yaml: the settings the study was last run with (what reports plan from)
)
MANIFEST_KEYS = ("axes", "seeds", "recipe", "real_val", "clean_val")
ENTRY_FILES = ("config.yaml", "metrics.json", "metrics.csv", "overrides.yaml", "study.json")
# Settings that do not change what a run learns or scores: where it writes, how it logs and shows
# progress, how many loader processes feed it (the data order does not depend on it), its name on W&B.
IGNORED_SETTINGS = (
    "paths",
    "hydra",
    "logger",
    "callbacks",
    "task_name",
    "tags",
    "ckpt_path",
    "optimized_metric",
    "data.num_workers",
    "trainer.default_root_dir",
    "trainer.log_every_n_steps",
    "trainer.enable_progress_bar",
)
# Folder-valued settings compared by the folder's name: the same real set lies elsewhere on each machine.
FOLDER_SETTINGS = ("data.real_val", "data.clean_val")


@dataclass(frozen=True)
class PlannedRun:
    """One run of the study.

    Attributes:
        axis: ``baseline`` or the axis name (``loss``, ``width``, ``recursion``, ...).
        value: the value's label, a folder name (``l1``, ``3``, ``width_multiplier=0.5``).
        seed: the run's seed.
        overrides: what ``lpnet.train`` is given (recipe, value, seed), without where it writes.
    """

    axis: str
    value: str
    seed: int
    overrides: tuple[str, ...]

    @property
    def slot(self) -> Path:
        """Its place in the ledger: ``<axis>/<value>/seed<k>``."""
        return Path(self.axis) / self.value / f"seed{self.seed}"

    @property
    def configuration(self) -> tuple[str, str]:
        return self.axis, self.value


# --------------------------------------------------------------------------------------------------
# The plan


def value_label(value: Any) -> str:
    """A sweep value as a folder name: ``l1``, ``3``, ``width_multiplier=0.5``, ``widths=16-16-16-16-16``."""
    if isinstance(value, Mapping):
        return ",".join(f"{key}={value_label(item)}" for key, item in value.items())
    if isinstance(value, list | tuple):
        return "-".join(value_label(item) for item in value)
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def axis_values(axis: str) -> list[tuple[str, str]]:
    """``(label, lpnet.train override)`` for each value of ``experiment/ablation_<axis>.yaml``'s sweep.

    Raises:
        ValueError: no such experiment, or it sweeps no single key.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    source = resources.files("lpnet.conf").joinpath("experiment", f"ablation_{axis}.yaml")
    if not source.is_file():
        known = sorted(
            p.name[len("ablation_") : -len(".yaml")]
            for p in resources.files("lpnet.conf").joinpath("experiment").iterdir()
            if p.name.startswith("ablation_")
        )
        raise ValueError(
            f"axes: no ablation axis {axis!r} (conf/experiment/ablation_{axis}.yaml); known: {known}"
        )
    params = OmegaConf.select(OmegaConf.load(str(source)), "hydra.sweeper.params") or {}
    if len(params) != 1:
        raise ValueError(f"conf/experiment/ablation_{axis}.yaml must sweep one key, sweeps {list(params)}")
    key, sweep = next(iter(params.items()))
    override = OverridesParser.create().parse_override(f"{key}={sweep}")
    values = list(override.sweep_iterator()) if override.is_sweep_override() else [override.value()]
    texts = list(override.sweep_string_iterator()) if override.is_sweep_override() else [str(sweep)]
    return [(value_label(value), f"{key}={text}") for value, text in zip(values, texts)]


def quoted(text: str) -> str:
    """``text`` as a string of Hydra's override grammar: as it is when plain, else quoted."""
    if re.fullmatch(r"[\w./-]+", text):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def set_overrides(sets: Mapping[str, str] | None, root: str, key: str) -> list[str]:
    """``data.real_val={light:'<root>/rain100l-val',...}`` for set names mapped to folders under root."""
    if not sets:
        return []
    items = ",".join(f"{name}:{quoted(str(Path(root) / folder))}" for name, folder in sets.items())
    return [f"{key}={{{items}}}"]


def plan(cfg: Any) -> list[PlannedRun]:
    """Every run of the study: the baseline's seeds, then each axis's non-baseline values, seed by seed.

    A value is the baseline when its recipe (:func:`recipe_of`) is the baseline's: it is not run again.
    """
    common = [
        *cfg.recipe,
        *set_overrides(cfg.real_val, cfg.real_rain_dir, "data.real_val"),
        *set_overrides(cfg.clean_val, cfg.real_rain_dir, "data.clean_val"),
        f"logger=[{','.join(cfg.loggers)}]",
    ]

    def overrides(axis: str, value: str, override: str | None, seed: int) -> tuple[str, ...]:
        extra = [override] if override else []
        tags = ",".join(
            quoted(t) for t in ("ablation", f"ablation_{axis}", f"{axis}={value}", f"seed={seed}")
        )
        tags = f"tags=[{tags}]"
        return (*common, *extra, f"seed={seed}", f"task_name=ablation_{axis}", tags)

    runs = [
        PlannedRun(BASELINE, BASELINE_VALUE, seed, overrides(BASELINE, BASELINE_VALUE, None, seed))
        for seed in cfg.seeds
    ]
    baseline_recipe = recipe_of(compose_train(runs[0].overrides)) if runs else None
    for axis in cfg.axes:
        for label, override in axis_values(axis):
            candidate = overrides(axis, label, override, cfg.seeds[0]) if cfg.seeds else ()
            if candidate and recipe_of(compose_train(candidate)) == baseline_recipe:
                continue  # the paper's value: the baseline's runs stand for it
            runs += [PlannedRun(axis, label, s, overrides(axis, label, override, s)) for s in cfg.seeds]
    return runs


def baseline_values(cfg: Any) -> dict[str, str]:
    """``{axis: label}`` of the value each axis shares with the baseline (shown as that axis's row)."""
    if not cfg.seeds:
        return {}
    common = plan(dataclasses.replace(_as_study(cfg), axes=[]))
    baseline_recipe = recipe_of(compose_train(common[0].overrides))
    found = {}
    for axis in cfg.axes:
        for label, override in axis_values(axis):
            overrides = [*common[0].overrides, override]
            if recipe_of(compose_train(overrides)) == baseline_recipe:
                found[axis] = label
    return found


def _as_study(cfg: Any) -> Any:
    from lpnet.config import StudyCommandConfig

    if isinstance(cfg, StudyCommandConfig):
        return cfg
    from omegaconf import OmegaConf

    values = OmegaConf.to_container(cfg, resolve=True) if not isinstance(cfg, Mapping) else dict(cfg)
    names = {f.name for f in dataclasses.fields(StudyCommandConfig)}
    return StudyCommandConfig(**{k: v for k, v in values.items() if k in names})


@contextlib.contextmanager
def _hydra_context() -> Iterator[None]:
    """Compose inside a running lpnet command (its Hydra is initialised) or on its own (tests, scripts)."""
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():
        yield
        return
    with initialize_config_module(config_module="lpnet.conf", version_base="1.3"):
        yield


def compose_train(overrides: Sequence[str]) -> Any:
    """``lpnet.train``'s settings for ``overrides``, composed as the command would (without Hydra's own)."""
    from hydra import compose

    with _hydra_context():
        return compose("train", overrides=list(overrides))


# --------------------------------------------------------------------------------------------------
# Recipes


def _drop(tree: dict[str, Any], dotted: str) -> None:
    *parents, leaf = dotted.split(".")
    for parent in parents:
        tree = tree.get(parent)
        if not isinstance(tree, dict):
            return
    tree.pop(leaf, None)


def recipe_of(cfg: Any) -> dict[str, Any]:
    """The settings of a training config that decide what the run learns and scores, as plain data.

    Everything but :data:`IGNORED_SETTINGS`; the folders of :data:`FOLDER_SETTINGS` by their names only,
    and ``model.net`` in its canonical form (``width_multiplier=0.5`` and ``widths=[1,1,2,4,8]`` are one
    network).
    """
    from omegaconf import DictConfig, OmegaConf

    tree = (
        OmegaConf.to_container(cfg, resolve=False, enum_to_str=True)
        if isinstance(cfg, DictConfig)
        else plain(cfg)
    )
    for dotted in IGNORED_SETTINGS:  # before resolving: where a run writes is Hydra's, unknown here
        _drop(tree, dotted)
    tree = OmegaConf.to_container(OmegaConf.create(tree), resolve=True, enum_to_str=True)
    for dotted in FOLDER_SETTINGS:
        section, name = dotted.split(".")
        folders = (tree.get(section) or {}).get(name)
        if isinstance(folders, dict):
            tree[section][name] = {k: Path(str(v)).name for k, v in sorted(folders.items())}
    net = (tree.get("model") or {}).get("net")
    if isinstance(net, dict):
        known = {f.name for f in dataclasses.fields(LPNetConfig)}
        with contextlib.suppress(TypeError, ValueError):  # else left as it is: it differs, and is named
            tree["model"]["net"] = plain(
                LPNetConfig(**{k: v for k, v in net.items() if k in known}).resolved()
            )
    return json.loads(json.dumps(tree, sort_keys=True))


def recipe_differences(
    found: Mapping[str, Any],
    planned: Mapping[str, Any],
    prefix: str = "",
    before: Mapping[str, Any] | None = None,
) -> list[str]:
    """``key=found (the study's: planned)`` for every setting that differs, dotted, sorted.

    A setting ``found`` lacks (lpnet gained it after the run) counts as the value it has in ``before``
    (the baseline's recipe): lpnet's new settings default to what was done before them, so a run that
    predates one differs only where the study sets it to something else.
    """
    lines = []
    for key in sorted(set(found) | set(planned)):
        earlier = (before or {}).get(key, "<unset>")
        a, b = found.get(key, earlier), planned.get(key, "<unset>")
        if isinstance(a, dict) and isinstance(b, dict):
            nested = earlier if isinstance(earlier, dict) else None
            lines += recipe_differences(a, b, f"{prefix}{key}.", nested)
        elif a != b:
            lines.append(f"{prefix}{key}={json.dumps(a)} (the study's: {json.dumps(b)})")
    return lines


# --------------------------------------------------------------------------------------------------
# The ledger


@dataclass
class Entry:
    """One folder of the ledger, checked.

    Attributes:
        path: the entry's folder.
        slot: ``<axis>/<value>/seed<k>`` relative to the ledger.
        problem: why it does not count (one line), or ``""``.
        metrics: its ``metrics.json`` summary (``metrics``, ``params``, ``global_step``, ...).
        study: its ``study.json``.
        curves: ``{column: [(step, value), ...]}`` of every validation score in ``metrics.csv``.
    """

    path: Path
    slot: Path
    problem: str = ""
    metrics: dict[str, Any] = dataclasses.field(default_factory=dict)
    study: dict[str, Any] = dataclasses.field(default_factory=dict)
    curves: dict[str, list[tuple[int, float]]] = dataclasses.field(default_factory=dict)

    @property
    def axis(self) -> str:
        return self.slot.parts[0]

    @property
    def value(self) -> str:
        return self.slot.parts[1]

    @property
    def seed(self) -> int:
        return int(self.slot.parts[2].removeprefix("seed"))


def required_scores(cfg: Any) -> list[str]:
    """The scores every finished run of the study must have: each set's Y-PSNR and SSIM."""
    sets = [
        "val",
        *(f"val_real_{n}" for n in cfg.real_val or {}),
        *(f"val_clean_{n}" for n in cfg.clean_val or {}),
    ]
    return [f"{s}/{m}" for s in [*sets, "test"] for m in ("psnr_y", "ssim_y")]


def read_curves(path: Path) -> dict[str, list[tuple[int, float]]]:
    """``{column: [(step, value), ...]}`` of every ``val*/psnr_y`` and ``val*/ssim_y`` in a CSV log."""
    import csv

    curves: dict[str, list[tuple[int, float]]] = {}
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            for column, cell in row.items():
                if column and column.startswith("val") and column.endswith(("/psnr_y", "/ssim_y")) and cell:
                    curves.setdefault(column, []).append((int(float(row["step"])), float(cell)))
    return curves


def check_entry(
    path: Path,
    slot: Path,
    planned: PlannedRun | None,
    planned_recipe: dict | None,
    required: Sequence[str],
    baseline_recipe: dict | None = None,
) -> Entry:
    """Read one ledger entry and say what is wrong with it, if anything (:class:`Entry`.problem)."""
    entry = Entry(path=path, slot=slot)
    missing = [name for name in ENTRY_FILES if not (path / name).is_file()]
    if missing:
        entry.problem = f"incomplete: no {', '.join(missing)}"
        return entry
    try:
        from omegaconf import OmegaConf

        summary = json.loads((path / "metrics.json").read_text())
        entry.study = json.loads((path / "study.json").read_text())
        config = OmegaConf.load(path / "config.yaml")
        entry.curves = read_curves(path / "metrics.csv")
    except (OSError, ValueError, KeyError, UnicodeDecodeError) as err:
        entry.problem = (
            f"damaged: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}".rstrip(": ")
        )
        return entry
    except Exception as err:  # YAML errors of any kind: a damaged config.yaml
        entry.problem = f"damaged config.yaml: {str(err).splitlines()[0]}"
        return entry
    if not isinstance(summary, dict) or not isinstance(summary.get("metrics"), dict):
        entry.problem = "damaged: metrics.json is not a run summary"
        return entry
    entry.metrics = summary
    if planned is None:
        entry.problem = "not in the study's plan (no such axis, value or seed)"
        return entry
    scores = summary["metrics"]
    bad = [k for k in required if not isinstance(scores.get(k), int | float) or not math.isfinite(scores[k])]
    if bad:
        entry.problem = f"incomplete: no finite {', '.join(bad[:3])}" + (" ..." if len(bad) > 3 else "")
        return entry
    steps = OmegaConf.select(config, "trainer.max_steps")
    if summary.get("global_step") != steps:
        entry.problem = f"cut short: stopped at step {summary.get('global_step')} of {steps}"
        return entry
    differences = recipe_differences(recipe_of(config), planned_recipe or {}, before=baseline_recipe)
    if differences:
        more = f" and {len(differences) - 2} more" if len(differences) > 2 else ""
        entry.problem = f"trained with another recipe: {'; '.join(differences[:2])}{more}"
    return entry


@dataclass
class Ledger:
    """What a ledger folder holds against a plan.

    Attributes:
        root: the ledger folder.
        entries: every entry found, checked (good and bad), in plan order then the rest.
    """

    root: Path
    entries: list[Entry]

    @property
    def good(self) -> list[Entry]:
        return [e for e in self.entries if not e.problem]

    @property
    def bad(self) -> list[Entry]:
        return [e for e in self.entries if e.problem]

    def done(self, run: PlannedRun) -> bool:
        return any(e.slot == run.slot for e in self.good)


def _entry_folders(root: Path) -> Iterator[Path]:
    """``<axis>/<value>/<seed folder>`` under the ledger (``rejected/`` and hidden folders left alone)."""
    if not root.is_dir():
        return
    for axis in sorted(
        p for p in root.iterdir() if p.is_dir() and p.name != REJECTED and not p.name.startswith(".")
    ):
        for value in sorted(p for p in axis.iterdir() if p.is_dir() and not p.name.startswith(".")):
            yield from sorted(p for p in value.iterdir() if p.is_dir() and not p.name.startswith("."))


def read_ledger(root: Path, runs: Sequence[PlannedRun], cfg: Any) -> Ledger:
    """Check every entry of the ledger at ``root`` against the planned ``runs``.

    An entry counts when it is a planned slot, whole, finished, scored on every set, trained with its
    planned recipe, and its scores are not a copy of another entry's.
    """
    planned = {run.slot: run for run in runs}
    recipes: dict[Path, dict] = {}
    required = required_scores(cfg)
    baseline = recipe_of(compose_train(runs[0].overrides)) if runs else None
    entries = []
    for folder in _entry_folders(root):
        slot = folder.relative_to(root)
        run = planned.get(slot)
        if run is not None and slot not in recipes:
            recipes[slot] = recipe_of(compose_train(run.overrides))
        entries.append(check_entry(folder, slot, run, recipes.get(slot), required, baseline))
    # A run's scores are a fingerprint: two entries with the same ones are one run copied.
    seen: dict[str, Entry] = {}
    for entry in entries:
        if entry.problem:
            continue
        fingerprint = hashlib.sha256(
            json.dumps(entry.metrics.get("metrics"), sort_keys=True).encode()
        ).hexdigest()
        if fingerprint in seen:
            entry.problem = f"duplicate: the same scores as {seen[fingerprint].slot.as_posix()}"
        else:
            seen[fingerprint] = entry
    order = {run.slot: i for i, run in enumerate(runs)}
    entries.sort(key=lambda e: (order.get(e.slot, len(order)), e.slot.as_posix()))
    return Ledger(root, entries)


def manifest_settings(study: Any) -> dict[str, Any]:
    """The settings of ``study`` that ``<ledger>/study.yaml`` keeps (:data:`MANIFEST_KEYS`), as plain data."""
    return {key: plain(getattr(study, key)) for key in MANIFEST_KEYS}


def write_manifest(root: Path, study: Any) -> Path:
    """``<ledger>/study.yaml``: the plan's settings (:func:`manifest_settings`), which reports plan from."""
    import yaml

    root.mkdir(parents=True, exist_ok=True)
    header = "# Written by python -m lpnet.study: the settings of the study this ledger holds.\n"
    return write_text(root / MANIFEST, header + yaml.safe_dump(manifest_settings(study), sort_keys=False))


def read_manifest(root: Path) -> dict[str, Any]:
    """The settings of ``<ledger>/study.yaml`` ({} when there is none or it is not a mapping)."""
    import yaml

    try:
        settings = yaml.safe_load((root / MANIFEST).read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return {k: v for k, v in settings.items() if k in MANIFEST_KEYS} if isinstance(settings, dict) else {}


def move_aside(entry: Entry, root: Path) -> Path:
    """Move a bad entry to ``<ledger>/rejected/<slot>-<UTC time>`` (kept, never read as a result)."""
    target = root / REJECTED / f"{entry.slot.as_posix()}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(entry.path, target)
    return target


# --------------------------------------------------------------------------------------------------
# Running


def estimate_seconds(run: PlannedRun, done: Sequence[Entry]) -> float | None:
    """How long ``run`` should take, from the ledger's finished runs: the mean of its own configuration's,
    else the others' scaled by MACs per pixel (training and validation both grow with them); None when
    nothing has finished yet."""
    same = [e.study["wall_time_s"] for e in done if (e.axis, e.value) == run.configuration]
    if same:
        return sum(same) / len(same)
    timed = [e for e in done if e.metrics.get("macs_per_pixel")]
    if not timed:
        return None
    macs = _macs(run)
    return sum(e.study["wall_time_s"] * macs / e.metrics["macs_per_pixel"] for e in timed) / len(timed)


def _macs(run: PlannedRun) -> float:
    from lpnet.models.complexity import macs_per_pixel

    cfg = compose_train(run.overrides)
    return macs_per_pixel(LPNetConfig(**recipe_of(cfg)["model"]["net"]))


def duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


def train_command(run: PlannedRun, run_dir: Path) -> list[str]:
    # quoted: a value's folder may hold what Hydra's grammar reads (width_multiplier=0.5)
    return [sys.executable, "-m", "lpnet.train", *run.overrides, f"hydra.run.dir={quoted(str(run_dir))}"]


def machine() -> str:
    """The CPU's name (and the GPU's, when CUDA is there): where a wall time was measured."""
    name = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    return f"{name}, {os.cpu_count()} CPUs"


def record(run: PlannedRun, run_dir: Path, root: Path, command_line: Sequence[str], seconds: float) -> Path:
    """Copy a finished run's small outputs into its ledger slot: into a hidden folder, then one rename."""
    target = root / run.slot
    hidden = target.parent / f".{target.name}.partial"
    shutil.rmtree(hidden, ignore_errors=True)
    hidden.mkdir(parents=True)
    shutil.copy2(run_dir / "config.yaml", hidden / "config.yaml")
    shutil.copy2(run_dir / "metrics.json", hidden / "metrics.json")
    shutil.copy2(run_dir / "csv" / "metrics.csv", hidden / "metrics.csv")
    shutil.copy2(run_dir / ".hydra" / "overrides.yaml", hidden / "overrides.yaml")
    write_json(
        hidden / "study.json",
        {
            "axis": run.axis,
            "value": run.value,
            "seed": run.seed,
            "command": shlex.join(["python", "-m", "lpnet.train", *run.overrides]),
            "machine": machine(),
            "wall_time_s": round(seconds, 1),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
    )
    os.replace(hidden, target)
    return target


def run(cfg: Any) -> Outcome:
    """The command: check the ledger, run what is left (or ``max_runs`` of it), say what remains."""
    study = _as_study(cfg)
    if not study.seeds:
        raise ValueError("seeds is empty: give the seeds every configuration runs with, e.g. seeds=[1,2,3]")
    for folder in [*(study.real_val or {}).values(), *(study.clean_val or {}).values()]:
        if not (Path(study.real_rain_dir) / folder).is_dir():
            raise FileNotFoundError(
                f"the study scores every run on {Path(study.real_rain_dir) / folder}, which is not there: "
                "set real_rain_dir= (make ablations REAL_RAIN_DIR=...) to the folder of the real sets"
            )
    root = Path(study.ledger)
    runs = plan(study)
    write_manifest(root, study)
    ledger = read_ledger(root, runs, study)
    for entry in ledger.bad:
        action = (
            "moved to " + str(move_aside(entry, root)) + ", runs again"
            if entry.slot in {r.slot for r in runs}
            else "left out"
        )
        print(f"ledger {entry.slot.as_posix()}: {entry.problem} ({action})", flush=True)
    left = [r for r in runs if not ledger.done(r)]
    todo = left[: study.max_runs] if study.max_runs is not None else left
    estimates = [estimate_seconds(r, ledger.good) for r in left]
    known = [s for s in estimates if s is not None]
    total = f", about {duration(sum(known) * len(left) / len(known))}" if known else ""
    print(
        f"study: {len(runs)} runs planned, {len(runs) - len(left)} in the ledger {root}, "
        f"{len(left)} left{total}" + ("" if left else ": nothing left to run"),
        flush=True,
    )
    if study.dry_run:
        for r, seconds in zip(left, estimates):
            when = f" (~{duration(seconds)})" if seconds is not None else ""
            print(f"  to run: {r.slot.as_posix()}{when}", flush=True)
        todo = []
    finished = []
    for index, planned in enumerate(todo, 1):
        run_dir = (
            Path(study.runs_dir)
            / planned.slot.parent
            / f"{planned.slot.name}-{time.strftime('%Y%m%d-%H%M%S')}"
        )
        command_line = train_command(planned, run_dir)
        print(f"[{index}/{len(todo)}] {planned.slot.as_posix()}: {shlex.join(command_line[1:])}", flush=True)
        started = time.perf_counter()
        output = {"stdout": subprocess.DEVNULL, "stderr": subprocess.STDOUT} if study.quiet else {}
        status = subprocess.run(command_line, **output).returncode
        seconds = time.perf_counter() - started
        if status != 0:
            raise RuntimeError(
                f"run {planned.slot.as_posix()} failed (exit {status}); its log is in {run_dir}; "
                "the ledger keeps every run finished before it"
            )
        finished.append(record(planned, run_dir, root, command_line, seconds))
        print(f"  recorded {finished[-1]} ({duration(seconds)})", flush=True)
    remaining = len(left) - len(finished)
    facts: list[tuple[str, Any]] = [
        ("ledger", root),
        ("planned", len(runs)),
        ("ran now", len(finished)),
        ("left", remaining if remaining else "nothing left to run"),
    ]
    if ledger.bad:
        facts.append(("bad entries", len(ledger.bad)))
    return Outcome(f"lpnet study: {len(runs) - remaining} of {len(runs)} runs in the ledger", facts)


main = command("study", run)

if __name__ == "__main__":
    main()
