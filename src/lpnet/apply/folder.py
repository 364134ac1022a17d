"""Deraining a folder (or one file) into another: the plan, output names, writing, and a summary.

The promises, each kept by one mechanism here:

- **Names**: every image keeps its relative path and stem (``a/b/x.jpg`` → ``output/a/b/x.png``); inputs
  whose stems clash keep their whole name (``x.jpg.png``), and any clash left after that gets a number
  (``x.png-2.png``). :func:`output_names` checks every choice against every name already given (compared
  case-blind, as macOS and Windows do), so no two inputs ever share an output.
- **Nothing lost or replaced**: an output folder that is, or lies inside, the input folder is refused; a
  file already present where an output would go is never replaced unless ``overwrite=true``
  (``skip_existing=true`` keeps it after checking it is an image); all of that is decided before any work.
  Writes are atomic: an output is whole or absent.
- **Links**: the input folder is walked by :func:`lpnet.io.find_images`; loops and links leading out of
  the folder are reported once by name and the rest goes on.
- **Faults**: a file that cannot be read or written is reported by name on one line and the others go on; a
  full disk stops the run at once (every later image would fail the same way).
- **Shards**: ``shard=K/N`` derains the inputs whose relative path hashes to ``K`` modulo ``N``
  (:func:`in_shard`: CRC-32 of the POSIX path, the same in every process and on every rerun), named from
  the plan of the *whole* folder, so the ``N`` shards together write exactly what one run writes, each
  file once, and each shard checks and skips only its own outputs.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import os
import re
import sys
import zlib
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import TYPE_CHECKING

import torch
from PIL import Image
from tqdm import tqdm

from lpnet.config import DerainCommandConfig
from lpnet.files import ensure_writable_folder
from lpnet.io import IMAGE_EXTENSIONS, ImageReadError, SourceImage, find_images, is_image_file, open_image

if TYPE_CHECKING:
    from lpnet.apply.derainer import Derainer

OUTPUT_FORMATS = ("png", "tif", "tiff")  # lossless and able to store L, LA, RGB and RGBA
# How many existing outputs a refusal names before "and N more".
_NAMED = 5
# Images up to this many pixels overlap in the pipeline (one decoded ahead, one being written: ~7 bytes
# per pixel each); a larger photo runs alone, so a folder of big photos needs the memory of one.
PIPELINE_PIXELS = 1 << 24


_SHARD = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"K/N"`` → ``(K, N)`` with ``0 <= K < N``; None for None (the whole folder).

    Raises:
        ValueError: anything else, naming the setting ``shard``.
    """
    if text is None:
        return None
    match = _SHARD.fullmatch(str(text))
    if match is None or not int(match[1]) < int(match[2]):
        raise ValueError(
            f"shard must be K/N with 0 <= K < N (shard=0/4 ... shard=3/4 split a folder in four), "
            f"got {text!r}"
        )
    return int(match[1]), int(match[2])


def in_shard(relative: PurePath, shard: tuple[int, int] | None) -> bool:
    """Whether the input at ``relative`` (its path below the input folder) belongs to ``shard``."""
    if shard is None:
        return True
    index, count = shard
    return zlib.crc32(relative.as_posix().encode("utf-8", "surrogateescape")) % count == index


class OutputFullError(OSError):
    """The output device is full: every later image would fail the same way, so the run stops."""


@dataclass
class DerainSummary:
    """What :func:`derain_folder` did: outputs written, inputs left alone, and failures with reasons.

    Attributes:
        written: the outputs written.
        skipped: ``(path, reason)`` for inputs whose output existed (``skip_existing``) and entries of the
            input folder that were not followed (link loops, links out of the folder).
        failed: ``(input, reason)`` for inputs that could not be derained; each reason names the file.
    """

    written: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{len(self.written)} derained, {len(self.skipped)} skipped, {len(self.failed)} failed"


def _key(path: PurePath) -> str:
    return path.as_posix().casefold()


# The longest file name (bytes) the file systems lpnet runs on accept (Linux, macOS: 255).
NAME_MAX = 255


def _fitted(relative: PurePath, base: str, fmt: str) -> PurePath:
    """``base.fmt`` beside ``relative``; a name over :data:`NAME_MAX` bytes is cut and tagged with a hash of
    the whole of ``base`` (``<cut>~<8 hex>.fmt``), so two long names stay two names."""
    name = f"{base}.{fmt}"
    if len(os.fsencode(name)) <= NAME_MAX:
        return relative.with_name(name)
    tag = "~" + hashlib.md5(os.fsencode(base)).hexdigest()[:8]
    room = NAME_MAX - len(os.fsencode(f"{tag}.{fmt}"))
    # Cut in bytes: a split character decodes to surrogate escapes, which encode back to the same bytes.
    return relative.with_name(f"{os.fsdecode(os.fsencode(base)[:room])}{tag}.{fmt}")


def output_names(relatives: list[PurePath], fmt: str) -> list[PurePath]:
    """Output names for inputs at ``relatives`` (paths relative to the input folder): never two alike.

    Each input takes the first free name of: its stem (``x.png``) unless another input's stem clashes with
    it, its whole name (``x.jpg.png``), then its whole name numbered (``x.jpg-2.png``, ``-3``, ...). A name
    is free when no output given so far, and no output folder, has it (case-blind); so the names are
    distinct by construction, whatever the inputs are called. A name longer than the file system allows
    is cut to fit, with a hash of the whole name (:func:`_fitted`).

    Args:
        relatives: the inputs' paths relative to the input folder (distinct).
        fmt: the output extension, without the dot.

    Returns:
        One relative output path per input, in the same order.
    """
    shorts = [_fitted(r, r.stem, fmt) for r in relatives]
    clashes = Counter(_key(s) for s in shorts)
    taken = {_key(parent) for r in relatives for parent in r.parents if parent != PurePath(".")}
    names: list[PurePath] = []
    for relative, short in zip(relatives, shorts):
        candidates = [short] if clashes[_key(short)] == 1 else []
        candidates.append(_fitted(relative, relative.name, fmt))
        name = next((c for c in candidates if _key(c) not in taken), None)
        number = 2
        while name is None:
            numbered = _fitted(relative, f"{relative.name}-{number}", fmt)
            name = numbered if _key(numbered) not in taken else None
            number += 1
        taken.add(_key(name))
        names.append(name)
    return names


@dataclass
class FolderPlan:
    """Inputs and their outputs, and what the walk did not follow."""

    jobs: list[tuple[Path, Path]]
    not_followed: list[tuple[Path, str]]


def plan_folder(source: Path, output_dir: Path, fmt: str, shard: tuple[int, int] | None = None) -> FolderPlan:
    """``(input, output)`` pairs for ``source`` (a file or a folder), after refusing an output folder that
    is or lies inside the input folder; with ``shard``, only that shard's (:func:`in_shard`), named as in
    the whole folder's plan.

    Raises:
        FileNotFoundError: ``source`` does not exist.
        ValueError: ``source`` is a file without an image extension, or ``output_dir`` lies inside it.
    """
    if not source.exists():
        link = " (a broken symbolic link)" if source.is_symlink() else ""
        raise FileNotFoundError(f"input not found: {source}{link}")
    if source.is_dir():
        src_root, out_root = Path(os.path.realpath(source)), Path(os.path.realpath(output_dir))
        if out_root == src_root or src_root in out_root.parents:
            raise ValueError(
                f"output folder {output_dir} is the input folder {source} or inside it; choose a folder "
                "outside the input (a second run would otherwise derain the outputs too)"
            )
        listing = find_images(source)
        root, images, not_followed = source, listing.images, listing.problems
    elif is_image_file(source):
        root, images, not_followed = source.parent, [source], []
    else:
        raise ValueError(
            f"input {source} has no image extension (lpnet reads {', '.join(sorted(IMAGE_EXTENSIONS))}); "
            "give an image file or a folder"
        )
    relatives = [PurePath(path.relative_to(root)) for path in images]
    outputs = [output_dir / name for name in output_names(relatives, fmt)]
    jobs = [job for job, relative in zip(zip(images, outputs), relatives) if in_shard(relative, shard)]
    not_followed = [
        (path, why) for path, why in not_followed if in_shard(PurePath(os.path.relpath(path, root)), shard)
    ]
    return FolderPlan(jobs, not_followed)


def _existing(path: Path) -> bool:
    return os.path.lexists(path)


def _refuse_existing(plan: FolderPlan, output_dir: Path) -> None:
    """Before any work: refuse to replace files already where outputs would go (overwrite=false)."""
    present = [dst for _, dst in plan.jobs if _existing(dst)]
    if present:
        named = ", ".join(str(p.relative_to(output_dir)) for p in present[:_NAMED])
        more = f" and {len(present) - _NAMED} more" if len(present) > _NAMED else ""
        raise FileExistsError(
            f"output folder {output_dir} already holds {len(present)} file(s) where outputs would go "
            f"({named}{more}); overwrite=true replaces them, skip_existing=true keeps them, or choose "
            "another output folder"
        )


def _is_image(path: Path) -> bool:
    try:
        with Image.open(path) as img:
            img.verify()
        return True
    except Exception:  # any decoder complaint means: not an image lpnet would have written
        return False


def derain_folder(
    derainer: Derainer,
    source: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    format: str = DerainCommandConfig.format,
    skip_existing: bool = DerainCommandConfig.skip_existing,
    overwrite: bool = DerainCommandConfig.overwrite,
    progress: bool = DerainCommandConfig.progress,
    pipeline: bool = DerainCommandConfig.pipeline,
    shard: str | None = DerainCommandConfig.shard,
    on_tiles: Callable[[Path, int, int], None] | None = None,
) -> DerainSummary:
    """Derain an image file, or every image below a folder, into ``output_dir`` with ``derainer``.

    See the module doc for the names and the promises. Grayscale inputs are written as grayscale and alpha
    is re-attached unchanged; every output is 8 bits per channel (16-bit inputs are read at full precision
    and saved at 8 bits, as the official test saves).

    Args:
        derainer: the model and its tiling settings.
        source: an image file or a folder (searched recursively for image extensions).
        output_dir: where outputs go; created if needed; must not be ``source`` or inside it.
        format: output format, one of :data:`OUTPUT_FORMATS`.
        skip_existing: leave inputs whose output already exists (and is an image) alone.
        overwrite: replace files already where outputs go (otherwise such files stop the run before any
            work).
        progress: show a tqdm progress bar.
        pipeline: decode the next image and write the previous one while deraining (same outputs).
        shard: ``"K/N"``: derain only the K-th of N stable parts of the folder (see the module doc).
        on_tiles: ``on_tiles(input, done, total)`` after every network call: the tiles of ``input`` done
            so far (a progress bar for large photos; the web app's).

    Returns:
        A :class:`DerainSummary`.

    Raises:
        FileNotFoundError: ``source`` does not exist.
        FileExistsError: files are where outputs would go and neither ``overwrite`` nor ``skip_existing``.
        ValueError: bad ``format`` or ``shard``, or ``output_dir`` is or lies inside the input folder.
        PermissionError: ``output_dir`` cannot be created or written.
        OutputFullError: the disk filled up (the outputs written so far are whole).
    """
    fmt = format.lower().lstrip(".")
    if fmt not in OUTPUT_FORMATS:
        raise ValueError(f"format must be one of {OUTPUT_FORMATS}, got {format!r}")
    source, output_dir = Path(source), Path(output_dir)
    plan = plan_folder(source, output_dir, fmt, parse_shard(shard))
    if not (overwrite or skip_existing):
        _refuse_existing(plan, output_dir)
    ensure_writable_folder(output_dir)

    summary = DerainSummary(skipped=[(path, f"{path}: {why}") for path, why in plan.not_followed])
    for _, line in summary.skipped:
        tqdm.write(f"skipped: {line}", file=sys.stderr)
    inputs = {os.path.realpath(src) for src, _ in plan.jobs}
    work: list[tuple[Path, Path]] = []
    for src, dst in plan.jobs:
        if os.path.realpath(dst) in inputs:
            _fail(summary, src, f"{src}: its output {dst} would overwrite an input")
        elif skip_existing and _existing(dst):
            if _is_image(dst):
                summary.skipped.append((src, f"{src}: output {dst} exists (skip_existing=true)"))
            else:
                _fail(
                    summary,
                    src,
                    f"{src}: {dst} exists but is not a readable image; overwrite=true replaces it",
                )
        else:
            work.append((src, dst))
    with tqdm(total=len(work), unit="img", desc="derain", disable=not progress, file=sys.stderr) as bar:
        _run_pipeline(derainer, work, summary, output_dir, bar, pipeline, on_tiles)
    return summary


def _fail(summary: DerainSummary, src: Path, reason: str) -> None:
    summary.failed.append((src, reason))
    tqdm.write(f"failed: {reason}", file=sys.stderr)


def _reason(src: Path, err: BaseException) -> str:
    """One line naming the input for an error that may not name it."""
    reason = str(err) if str(src) in str(err) else f"{src}: {type(err).__name__}: {err}"
    return reason.strip().splitlines()[0]


def _pixels(source: SourceImage | None) -> int:
    return 0 if source is None else source.height * source.width


def _run_pipeline(
    derainer: Derainer,
    work: list[tuple[Path, Path]],
    summary: DerainSummary,
    output_dir: Path,
    bar: tqdm,
    pipeline: bool,
    on_tiles: Callable[[Path, int, int], None] | None = None,
) -> None:
    """Decode the next image and encode/write the previous one while the current one is derained.

    One reader and one writer thread (Pillow releases the GIL while it decodes and encodes); the network
    runs in this thread. At most one decoded image waits and one derained image is being written, and
    only while both are small (:data:`PIPELINE_PIXELS`): a large photo runs alone, so memory stays that of
    one image (:mod:`lpnet.io`). Results are collected in input order; ``pipeline=False`` runs the same
    steps one after the other (the outputs are the same bytes).
    """
    if not work:
        return
    decode = functools.partial(_decode, max_pixels=derainer.max_pixels)
    with ThreadPoolExecutor(1, "lpnet-read") as reader, ThreadPoolExecutor(1, "lpnet-write") as writer:
        pending: deque[tuple[Path, Path, Future]] = deque()
        upcoming: Future | None = reader.submit(decode, work[0][0])
        for index, (src, dst) in enumerate(work):
            source, error = upcoming.result()
            upcoming = None
            following = work[index + 1][0] if index + 1 < len(work) else None
            small = _pixels(source) <= PIPELINE_PIXELS
            if following is not None and pipeline and small:
                upcoming = reader.submit(decode, following)
            if error is not None:
                _fail(summary, src, error)
                bar.update()
            else:
                try:
                    tiles = None if on_tiles is None else functools.partial(on_tiles, src)
                    derained = derainer.derain_image(source, tiles)
                except (ValueError, MemoryError, torch.cuda.OutOfMemoryError) as err:
                    _fail(summary, src, _reason(src, err))
                    bar.update()
                else:
                    del source
                    pending.append((src, dst, writer.submit(derained.write, dst)))
                    del derained
            while pending and (len(pending) > 1 or not (pipeline and small)):
                _collect(pending.popleft(), summary, output_dir, bar)
            if following is not None and upcoming is None:
                upcoming = reader.submit(decode, following)
        while pending:
            _collect(pending.popleft(), summary, output_dir, bar)


def _decode(path: Path, max_pixels: int | None) -> tuple[SourceImage | None, str | None]:
    """``(image, None)`` or ``(None, the reason it cannot be read)`` (the reason names the file)."""
    try:
        return open_image(path, max_pixels), None
    except ImageReadError as err:
        return None, str(err)
    except MemoryError as err:
        return None, _reason(path, err)


def _collect(job: tuple[Path, Path, Future], summary: DerainSummary, output_dir: Path, bar: tqdm) -> None:
    """Wait for one write; a full disk stops the run (every later image would fail the same way)."""
    src, dst, future = job
    try:
        future.result()
        summary.written.append(dst)
    except OSError as err:
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            raise OutputFullError(
                f"{output_dir}: no space left (or quota reached) at {dst.name} after "
                f"{len(summary.written)} images; free space and rerun with skip_existing=true",
            ) from None
        _fail(summary, src, _reason(src, err))
    except ValueError as err:
        _fail(summary, src, _reason(src, err))
    bar.update()
