"""Write a synthetic benchmark: ``python -m lpnet.synthesize preset=heavy output=DIR count=N seed=S``.

The folder gets the Rain100L/H layout, ``DIR/rain/rain-001.png`` and ``DIR/norain/norain-001.png`` ..., and
``DIR/params.json`` with every sample's drawn parameters, so the set can be regenerated and studied. It is
written first with ``"complete": false`` and rewritten whole at the end: a set cut short is refused by every
reader (:func:`lpnet.data.layouts.find_pairs`) and removed by ``overwrite=true``.
``synthesize(cfg)`` is a plain function (tests call it); the command only wraps it.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from lpnet.cli import Outcome, command
from lpnet.data.clean import SyntheticPairs
from lpnet.data.degradations import ConfiguredDegradation, build_degradation
from lpnet.data.rain import PRESETS
from lpnet.files import ensure_writable_folder, write_json
from lpnet.io import write_image


def _degradation(cfg: DictConfig) -> ConfiguredDegradation:
    """The configured degradation; ``preset`` (light | heavy | mixed) picks a rain preset."""
    node = OmegaConf.to_container(cfg.degradation, resolve=True)
    if cfg.get("preset") is not None:
        if cfg.preset not in PRESETS:
            raise ValueError(f"preset must be one of {sorted(PRESETS)} (or null), got {cfg.preset!r}")
        if not str(node["name"]).startswith("rain_"):
            raise ValueError(
                f"preset={cfg.preset} picks rain; it cannot combine with degradation={node['name']}"
            )
        node["name"] = f"rain_{cfg.preset}"
    node.pop("_target_", None)  # always build_degradation; called directly so its errors stay ValueErrors
    return build_degradation(**node)


def remove_previous_set(out: Path) -> None:
    """Delete the pairs and ``params.json`` an earlier run wrote into ``out`` (the files its params.json
    lists, nothing else), so a smaller set never leaves stale pairs beside the new ones.

    Raises:
        ValueError: ``rain/`` or ``norain/`` holds images lpnet did not write there (they would mix into the
            new set); ``out`` is then left as it was.
    """
    params = out / "params.json"
    owned: set[Path] = set()
    if params.is_file():
        try:
            record = json.loads(params.read_text())
            owned = {out / entry[side] for entry in record["samples"] for side in ("rain", "norain")}
        except (ValueError, KeyError, TypeError):
            raise ValueError(f"{params} is not one lpnet wrote; choose an empty output folder") from None
    foreign = sorted(
        p for side in ("rain", "norain") for p in (out / side).glob("*") if p.is_file() and p not in owned
    )
    if foreign:
        names = ", ".join(str(p.relative_to(out)) for p in foreign[:5])
        raise ValueError(
            f"output {out} holds images lpnet did not write ({names}{', ...' if len(foreign) > 5 else ''}); "
            "they would mix into the new set: choose an empty output folder"
        )
    for path in (*owned, params):
        path.unlink(missing_ok=True)


def synthesize(cfg: DictConfig) -> Path:
    """Render ``cfg.count`` pairs into ``cfg.output`` (see the module doc); returns the folder.

    Raises:
        ValueError: bad count, or ``output`` exists and is not empty while ``overwrite`` is false.
        PermissionError: ``output`` cannot be written (checked before rendering).
    """
    out = Path(cfg.output)
    count = cfg.count
    if not isinstance(count, int) or count < 1:
        raise ValueError(f"count must be a positive integer, got {count!r}")
    if out.exists() and not out.is_dir():
        raise ValueError(f"output {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not cfg.overwrite:
        raise ValueError(f"output {out} is not empty; choose another folder or pass overwrite=true")
    degrade = _degradation(cfg)
    if out.is_dir():
        remove_previous_set(out)
    ensure_writable_folder(out)
    pairs = SyntheticPairs(
        split=cfg.split,
        degradation=degrade,
        length=count,
        crop_size=cfg.crop_size,
        seed=cfg.seed,
        clean_dir=cfg.clean_dir,
    )
    digits = max(3, len(str(count)))
    names = [
        {"rain": f"rain/rain-{i + 1:0{digits}d}.png", "norain": f"norain/norain-{i + 1:0{digits}d}.png"}
        for i in range(count)
    ]
    # Written first, marked incomplete: a run cut short (a full disk, Ctrl-C) leaves a set that is still
    # lpnet's own (overwrite=true removes it) and that no reader takes for a whole one (find_pairs refuses).
    write_json(out / "params.json", {"complete": False, "samples": names}, sort_keys=False)
    records = []
    for index in tqdm(range(count), desc=f"{degrade.name} → {out}", unit="pair"):
        sample, params = pairs.sample_with_params(index)
        write_image(out / names[index]["rain"], sample["rainy"])
        write_image(out / names[index]["norain"], sample["clean"])
        records.append({**names[index], **params})
    meta = {
        "complete": True,
        "degradation": degrade.name,
        "config": dataclasses.asdict(degrade.config),
        "split": pairs.split,
        "seed": pairs.seed,
        "clean_dir": None if cfg.clean_dir is None else str(cfg.clean_dir),
        "crop_size": cfg.crop_size,
        "samples": records,
    }
    write_json(out / "params.json", meta, sort_keys=False)
    return out


def run(cfg: DictConfig) -> Outcome:
    out = synthesize(cfg)
    return Outcome(
        f"lpnet synthesize: wrote {cfg.count} pairs", [("folder", out), ("parameters", out / "params.json")]
    )


main = command("synthesize", run)

if __name__ == "__main__":
    main()
