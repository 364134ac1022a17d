"""How each deraining benchmark names its (rainy, clean) pairs — every pairing rule in one place.

Each layout turns one split folder (``root``) into a sorted list of :class:`Pair`. Pairs are matched by
name, never by listing order, and ANY rainy or clean file without a partner, any name that fits neither
side and any duplicate id is an error that lists what was found and what was expected.

| layout       | structure under ``root`` ({i}: a number, {x}: any name) | benchmark                     |
|--------------|---------------------------------------------------------|-------------------------------|
| official     | input/{x} ↔ label/{x} (same stem)                       | official LPNet release        |
| prenet_train | rain-{i} ↔ norain-{i} in one folder                     | PReNet's RainTrainH/L         |
| prenet_test  | rainy/rain-{i} ↔ norain-{i} beside rainy/               | PReNet's Rain100H/L           |
| rain_norain  | rain/ ↔ norain/, by number or by identical stem         | generic; what lpnet writes    |
| rain1400     | rainy_image/{i}_{j} ↔ ground_truth/{i} (14 rainy : 1)   | DDN's Rain1400 (Rain12600)    |
| rain12       | {x}_in ↔ {x}_GT in one folder                           | Rain12 (Li et al., CVPR 2016) |
| side_by_side | {x}: one image, rainy half beside clean half            | Rain800, DID-MDN Rain1200     |
| rain13k      | input/{x} ↔ target/{x} (same stem)                      | MPRNet / Restormer Rain13K    |

Conventions shared by every layout:

- Any image extension :mod:`lpnet.io` reads is accepted, case-insensitively; hidden files (``.x``) and
  non-images (``readme.txt``, ``Thumbs.db``) are ignored; only the named folders are listed (no recursion).
- Numbers match as integers (``rain-1`` ↔ ``norain-001``); ``rain_norain`` matches ``rain-{i}``/
  ``norain-{i}``/``{i}`` by number and any other name by identical stem (``rain/x.png`` ↔ ``norain/x.png``).
- ``Pair.key`` is the stem of the rainy file (``rain-001``, ``3_7``, ``1_in``): outputs keep that name.
  Keys are unique within a split; pairs are sorted by key with numbers compared as numbers.
- ``rain1400`` is many-to-one: every clean image must be used by at least one rainy image.
- ``side_by_side`` pairs an image with itself and records which half is rainy in ``Pair.rainy_side``;
  :class:`lpnet.data.datasets.PairedImageDataset` splits it (even widths required). The side is an option
  with no default, because guessing wrong trains the network backwards: ``rainy_side="left"`` for DID-MDN's
  Rain1200 (its loader crops the input from the left half), ``rainy_side="right"`` for Rain800 (ID-CGAN
  stores the clean image on the left and trains ``BtoA``, right → left).
- ``rain12`` assumes the common distribution of the 12 images of Li et al. (CVPR 2016) as ``{i}_in.png``
  (rainy) and ``{i}_GT.png`` (clean) in one folder; copies renamed to ``rain/``/``norain/`` fit
  ``rain_norain`` instead.

:func:`detect_layout` recognises each layout from the names at ``root`` (``layout="auto"``);
``side_by_side`` is the fallback for a flat folder of images that fits no named layout.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from pathlib import Path

from lpnet.config import BenchmarkDataConfig
from lpnet.io import is_image_file

RAINY_SIDES = ("left", "right")
LAYOUT_OPTIONS = frozenset({"rainy_side"})
_LIST_LIMIT = 8  # names shown per category in an error message


class LayoutError(ValueError):
    """A split folder that does not fit its layout; the message lists what was found and expected."""


@dataclass(frozen=True)
class Pair:
    """One training/evaluation pair.

    Attributes:
        rainy: the rainy image file.
        clean: the clean (ground-truth) image file; the same file as ``rainy`` for ``side_by_side``.
        key: the name outputs keep (the rainy file's stem).
        rainy_side: ``"left"``/``"right"`` when one image holds both halves, else None.
    """

    rainy: Path
    clean: Path
    key: str
    rainy_side: str | None = None


def natural_key(text: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key that compares digit runs as numbers: ``rain-2`` < ``rain-10``."""
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", text) if part)


def _images(folder: Path) -> list[Path]:
    """Image files directly in ``folder`` (no recursion, no hidden files), sorted by name."""
    return sorted(
        p for p in folder.iterdir() if is_image_file(p) and not p.name.startswith(".") and p.is_file()
    )


def _names(paths: Iterable[Path], root: Path) -> str:
    paths = sorted(paths, key=lambda p: natural_key(str(p)))
    shown = ", ".join(
        str(p.relative_to(root)) if p.is_relative_to(root) else str(p) for p in paths[:_LIST_LIMIT]
    )
    return shown + (f", ... ({len(paths) - _LIST_LIMIT} more)" if len(paths) > _LIST_LIMIT else "")


def _regex_id(pattern: str, as_int: bool = True) -> Callable[[str], Hashable | None]:
    """``stem -> id`` from the first group of ``pattern`` (case-insensitive full match); None if no match."""
    regex = re.compile(pattern, re.IGNORECASE)

    def extract(stem: str) -> Hashable | None:
        match = regex.fullmatch(stem)
        if match is None:
            return None
        return int(match.group(1)) if as_int else match.group(1)

    return extract


_NUMBERED = re.compile(r"(?:no)?rain[-_]?(\d+)|(\d+)", re.IGNORECASE)


def _number_or_stem(stem: str) -> Hashable:
    """``rain-001``/``norain-1``/``rain_7``/``42`` → the number; any other stem → itself."""
    match = _NUMBERED.fullmatch(stem)
    return int(match.group(1) or match.group(2)) if match else stem


def _stem(stem: str) -> Hashable:
    return stem


class Layout:
    """A pairing rule: ``detect(root)`` says whether ``root`` looks like it, ``pairs(root)`` pairs it."""

    name: str
    structure: str  # one line for error messages, e.g. "input/{x} ↔ label/{x}"

    def detect(self, root: Path) -> bool:
        raise NotImplementedError

    def pairs(self, root: Path, rainy_side: str | None = None) -> list[Pair]:
        raise NotImplementedError


@dataclass(frozen=True)
class MatchedLayout(Layout):
    """Rainy and clean files in two folders (``"."`` = ``root`` itself), matched by an id from the stem.

    ``rainy_id`` / ``clean_id`` map a file stem to its pair id, or None for a name that does not belong to
    that side. ``many_to_one`` lets several rainy files share one clean file (Rain1400).
    """

    name: str
    structure: str
    rainy_dir: str
    clean_dir: str
    rainy_id: Callable[[str], Hashable | None]
    clean_id: Callable[[str], Hashable | None]
    many_to_one: bool = False

    def detect(self, root: Path) -> bool:
        if self.rainy_dir == self.clean_dir == ".":
            # rainy names only: PReNet's test folder has norain-{i} beside rainy/, and is not prenet_train
            return any(self.rainy_id(p.stem) is not None for p in _images(root))
        return all((root / d).is_dir() for d in (self.rainy_dir, self.clean_dir) if d != ".")

    def pairs(self, root: Path, rainy_side: str | None = None) -> list[Pair]:
        root = Path(root)
        for folder in {self.rainy_dir, self.clean_dir}:
            if not (root / folder).is_dir():
                raise LayoutError(
                    f"{root}: layout {self.name!r} expects {self.structure}; {folder}/ is missing"
                )
        rainy: dict[Hashable, list[Path]] = {}
        clean: dict[Hashable, list[Path]] = {}
        unfit: list[Path] = []
        same_folder = self.rainy_dir == self.clean_dir
        for side, folder, id_of, table in (
            ("rainy", self.rainy_dir, self.rainy_id, rainy),
            ("clean", self.clean_dir, self.clean_id, clean),
        ):
            for path in _images(root / folder):
                pair_id = id_of(path.stem)
                if pair_id is not None:
                    table.setdefault(pair_id, []).append(path)
                elif not same_folder or (side == "clean" and self.rainy_id(path.stem) is None):
                    unfit.append(path)  # in a shared folder, a name fits if either side claims it

        problems = []
        if unfit:
            problems.append(f"names that fit neither side ({len(unfit)}): {_names(unfit, root)}")
        lone_rainy = [p for i in rainy.keys() - clean.keys() for p in rainy[i]]
        if lone_rainy:
            problems.append(
                f"rainy files without a clean one ({len(lone_rainy)}): {_names(lone_rainy, root)}"
            )
        lone_clean = [p for i in clean.keys() - rainy.keys() for p in clean[i]]
        if lone_clean:
            problems.append(
                f"clean files without a rainy one ({len(lone_clean)}): {_names(lone_clean, root)}"
            )
        dup = [
            p
            for t in ((clean,) if self.many_to_one else (rainy, clean))
            for ps in t.values()
            if len(ps) > 1
            for p in ps
        ]
        if dup:
            problems.append(f"files that share one pair id ({len(dup)}): {_names(dup, root)}")
        pairs = [
            Pair(rainy=r, clean=clean[i][0], key=r.stem)
            for i in rainy.keys() & clean.keys()
            for r in rainy[i]
        ]
        problems += _duplicate_keys(pairs, root)
        if not problems and not pairs:
            problems.append("no pairs at all")
        if problems:
            counts = (
                f"found {sum(map(len, rainy.values()))} rainy and {sum(map(len, clean.values()))} clean files"
            )
            raise LayoutError(
                f"{root}: does not fit layout {self.name!r}, which expects {self.structure}.\n  "
                + "\n  ".join([*problems, counts])
            )
        return sorted(pairs, key=lambda p: natural_key(p.key))


def _duplicate_keys(pairs: list[Pair], root: Path) -> list[str]:
    seen: dict[str, list[Path]] = {}
    for pair in pairs:
        seen.setdefault(pair.key, []).append(pair.rainy)
    dup = [p for ps in seen.values() if len(ps) > 1 for p in ps]
    return [f"rainy files with the same stem ({len(dup)}): {_names(dup, root)}"] if dup else []


@dataclass(frozen=True)
class SideBySideLayout(Layout):
    """Every image in ``root`` holds a pair: one half rainy, the other clean (``rainy_side`` says which)."""

    name: str = "side_by_side"
    structure: str = "{x}: one image per pair, rainy and clean halves side by side (option rainy_side)"

    def detect(self, root: Path) -> bool:
        return bool(_images(root))

    def pairs(self, root: Path, rainy_side: str | None = None) -> list[Pair]:
        root = Path(root)
        if rainy_side not in RAINY_SIDES:
            raise LayoutError(
                f"{root}: layout 'side_by_side' needs rainy_side in {RAINY_SIDES} (got {rainy_side!r}): "
                "'left' for DID-MDN Rain1200, 'right' for Rain800 (clean on the left)"
            )
        images = _images(root) if root.is_dir() else []
        pairs = [Pair(rainy=p, clean=p, key=p.stem, rainy_side=rainy_side) for p in images]
        problems = _duplicate_keys(pairs, root) or ([] if pairs else ["no images at all"])
        if problems:
            raise LayoutError(
                f"{root}: does not fit layout 'side_by_side' ({self.structure}).\n  " + problems[0]
            )
        return sorted(pairs, key=lambda p: natural_key(p.key))


@dataclass(frozen=True)
class RainFreeLayout(Layout):
    """Rain-free photos, each its own target: how much a model changes a photo with no rain (no harm).

    Never detected (a folder of photos fits ``side_by_side`` too): name it, ``layout=rain_free``.
    """

    name: str = "rain_free"
    structure: str = "{x}: rain-free photos, each scored against itself (named explicitly, never detected)"

    def detect(self, root: Path) -> bool:
        return False

    def pairs(self, root: Path) -> list[Pair]:
        root = Path(root)
        pairs = [Pair(rainy=p, clean=p, key=p.stem) for p in (_images(root) if root.is_dir() else [])]
        problems = _duplicate_keys(pairs, root) or ([] if pairs else ["no images at all"])
        if problems:
            raise LayoutError(
                f"{root}: does not fit layout 'rain_free' ({self.structure}).\n  " + problems[0]
            )
        return sorted(pairs, key=lambda p: natural_key(p.key))


LAYOUTS: dict[str, Layout] = {
    layout.name: layout
    for layout in (
        MatchedLayout("official", "input/{x} ↔ label/{x} (same stem)", "input", "label", _stem, _stem),
        MatchedLayout(
            "prenet_train",
            "rain-{i}.png ↔ norain-{i}.png in one folder",
            ".",
            ".",
            _regex_id(r"rain-(\d+)"),
            _regex_id(r"norain-(\d+)"),
        ),
        MatchedLayout(
            "prenet_test",
            "rainy/rain-{i}.png ↔ norain-{i}.png beside rainy/",
            "rainy",
            ".",
            _regex_id(r"rain-(\d+)"),
            _regex_id(r"norain-(\d+)"),
        ),
        MatchedLayout(
            "rain_norain",
            "rain/{x} ↔ norain/{x}, by number (rain-{i} ↔ norain-{i}, {i}) or by identical stem",
            "rain",
            "norain",
            _number_or_stem,
            _number_or_stem,
        ),
        MatchedLayout(
            "rain1400",
            "rainy_image/{i}_{j}.jpg ↔ ground_truth/{i}.jpg (many rainy per clean)",
            "rainy_image",
            "ground_truth",
            _regex_id(r"(\d+)_\d+"),
            _regex_id(r"(\d+)"),
            many_to_one=True,
        ),
        MatchedLayout(
            "rain12",
            "{x}_in.png ↔ {x}_GT.png in one folder",
            ".",
            ".",
            _regex_id(r"(.+)_in", as_int=False),
            _regex_id(r"(.+)_gt", as_int=False),
        ),
        SideBySideLayout(),
        MatchedLayout("rain13k", "input/{x} ↔ target/{x} (same stem)", "input", "target", _stem, _stem),
        RainFreeLayout(),
    )
}
_FALLBACK = "side_by_side"


def _expected_structures() -> str:
    return "\n".join(f"  {name:13s} {layout.structure}" for name, layout in LAYOUTS.items())


def _candidates(root: Path) -> list[str]:
    """Layouts whose names fit ``root``; the fallback only when no named layout does."""
    found = [name for name, layout in LAYOUTS.items() if name != _FALLBACK and layout.detect(root)]
    return found or ([_FALLBACK] if LAYOUTS[_FALLBACK].detect(root) else [])


def detect_layout(root: str | Path) -> str:
    """Name of the layout ``root`` fits, from the names of its folders and files (contents are not read).

    Raises:
        LayoutError: ``root`` is missing, fits no layout, or fits several; the message lists what is at
            ``root``, its subfolders that fit a layout, and each layout's expected structure.
    """
    root = Path(root)
    if not root.is_dir():
        raise LayoutError(
            f"{root}: no such folder (expected a split folder of one of the layouts; nothing is downloaded: "
            "get the benchmark from its authors' release and unpack it there, see the README's Datasets)"
        )
    found = _candidates(root)
    if len(found) == 1:
        return found[0]
    entries = sorted(root.iterdir(), key=lambda p: natural_key(p.name))
    listing = ", ".join(p.name + ("/" if p.is_dir() else "") for p in entries[:20])
    listing += f", ... ({len(entries) - 20} more)" if len(entries) > 20 else ""
    lines = [f"found: {listing or '(empty)'}"]
    if found:
        what = f"fits several layouts ({', '.join(found)}); set the layout explicitly"
    else:
        what = "fits no known layout"
        splits = [f"{p.name}/ ({'|'.join(c)})" for p in entries if p.is_dir() and (c := _candidates(p))]
        if splits:
            lines.append(f"subfolders that fit a layout (use one as the split folder): {', '.join(splits)}")
    lines.append("expected one of:\n" + _expected_structures())
    raise LayoutError(f"{root}: {what}.\n  " + "\n  ".join(lines))


def _refuse_a_set_cut_short(root: Path) -> None:
    """A folder that ``lpnet.synthesize`` began but did not finish (its ``params.json`` says
    ``"complete": false``) is not a set: refuse it rather than score or train on part of it."""
    record = root / "params.json"
    if not record.is_file():
        return
    try:
        complete = json.loads(record.read_text()).get("complete", True)
    except (OSError, ValueError, AttributeError):
        return  # not lpnet's record: the folder is judged by its images alone
    if complete is False:
        raise LayoutError(
            f"{root}: an lpnet.synthesize set that was cut short ({record} says it is incomplete); "
            "write it again with lpnet.synthesize overwrite=true"
        )


def find_pairs(
    root: str | Path, layout: str = BenchmarkDataConfig.layout, **options: str | None
) -> list[Pair]:
    """Pair the images of one split folder by the rules of ``layout`` (``"auto"``: :func:`detect_layout`).

    Args:
        root: the split folder (e.g. ``Rain100H/test`` or ``RainTrainH``).
        layout: a key of :data:`LAYOUTS`, or ``"auto"``.
        **options: layout options (:data:`LAYOUT_OPTIONS`); None values are ignored. ``rainy_side``:
            ``"left"``/``"right"`` for ``side_by_side``.

    Returns:
        The pairs sorted by key (numbers compared as numbers).

    Raises:
        ValueError: unknown layout or option.
        LayoutError: see :class:`MatchedLayout` / :func:`detect_layout`.
    """
    unknown = set(options) - LAYOUT_OPTIONS
    if unknown:
        raise ValueError(f"unknown layout option(s) {sorted(unknown)}; known: {sorted(LAYOUT_OPTIONS)}")
    _refuse_a_set_cut_short(Path(root))
    if layout != "auto" and layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; expected 'auto' or one of {sorted(LAYOUTS)}")
    root = Path(root)
    if not root.is_dir():
        raise LayoutError(f"{root}: no such folder (layout {layout!r})")
    name = detect_layout(root) if layout == "auto" else layout
    return LAYOUTS[name].pairs(root, **{k: v for k, v in options.items() if v is not None})
