"""Deraining a folder (or one file) into another: plan, output names, writing, and a summary.

Every image below the input keeps its relative path and stem in the output folder (``a/b/x.jpg`` →
``output/a/b/x.png``); inputs that share a stem keep their whole name (``x.jpg.png``). Nothing is written
onto an input, an output folder inside the input folder is refused, the output folder is checked
writable before any work, and every write is atomic. A file that cannot be read or written is reported on
one line and the others go on; a full disk stops the run.
"""

from __future__ import annotations

import errno
import os
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from tqdm import tqdm

from lpnet.config import DerainCommandConfig
from lpnet.files import ensure_writable_folder
from lpnet.io import ImageReadError, is_image_file, list_images, read_image_decoded, write_image

if TYPE_CHECKING:
    from lpnet.apply.derainer import Derainer

OUTPUT_FORMATS = ("png", "tif", "tiff")  # lossless and able to store L, LA, RGB and RGBA


class OutputFullError(OSError):
    """The output device is full: every later image would fail the same way, so the run stops."""


@dataclass
class DerainSummary:
    """What :meth:`Derainer.derain_files` did: outputs written, inputs skipped, and failures with reasons."""

    written: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{len(self.written)} derained, {len(self.skipped)} skipped, {len(self.failed)} failed"


def derain_folder(
    derainer: Derainer,
    source: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    format: str = DerainCommandConfig.format,
    skip_existing: bool = DerainCommandConfig.skip_existing,
    progress: bool = DerainCommandConfig.progress,
) -> DerainSummary:
    """Derain an image file, or every image below a folder, into ``output_dir`` with ``derainer``.

    Outputs keep each input's path relative to ``source`` and its stem: ``a/b/x.jpg`` →
    ``output_dir/a/b/x.png`` (inputs that share a stem keep their whole name: ``x.jpg.png``).
    Grayscale inputs are written as grayscale and alpha is re-attached unchanged (see
    :func:`lpnet.io.decode_pil`); every output is 8 bits per channel (16-bit inputs are read at full
    precision and saved at 8 bits, as the official test saves). Writes are atomic.
    A file that cannot be read or written is reported by name (one line) and the others go on.

    Args:
        source: an image file or a folder (searched recursively for image extensions).
        output_dir: where outputs go; created if needed; must not be ``source`` or inside it.
        format: output format, one of :data:`OUTPUT_FORMATS`.
        skip_existing: leave inputs whose output already exists alone.
        progress: show a tqdm progress bar.

    Returns:
        A :class:`DerainSummary`.

    Raises:
        FileNotFoundError: ``source`` does not exist.
        ValueError: bad ``format``, or ``output_dir`` is or lies inside the input folder.
        PermissionError: ``output_dir`` cannot be created or written.
    """
    fmt = format.lower().lstrip(".")
    if fmt not in OUTPUT_FORMATS:
        raise ValueError(f"format must be one of {OUTPUT_FORMATS}, got {format!r}")
    source, output_dir = Path(source), Path(output_dir)
    jobs = _plan(source, output_dir, fmt)
    ensure_writable_folder(output_dir)

    summary = DerainSummary()
    inputs = {src.resolve() for src, _ in jobs}
    bar = tqdm(jobs, unit="img", desc="derain", disable=not progress, file=sys.stderr)
    for src, dst in bar:
        error = None
        if dst.resolve() in inputs:
            error = f"{src}: its output {dst} would overwrite an input"
        elif skip_existing and dst.exists():
            summary.skipped.append(src)
        else:
            try:
                decoded = read_image_decoded(src)
                write_image(dst, derainer.derain_decoded(decoded), decoded.alpha, decoded.grayscale)
                summary.written.append(dst)
            except ImageReadError as err:  # its message already names the file
                error = str(err)
            except (OSError, ValueError, torch.cuda.OutOfMemoryError) as err:  # write error, GPU OOM
                if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
                    raise OutputFullError(
                        f"{output_dir}: no space left (or quota reached) at {dst.name} after "
                        f"{len(summary.written)} images; free space and rerun with skip_existing=true",
                    ) from None
                error = f"{src}: {type(err).__name__}: {err}"
        if error is not None:
            summary.failed.append((src, error))
            tqdm.write(f"failed: {error}", file=sys.stderr)
    bar.close()
    return summary


def _plan(source: Path, output_dir: Path, fmt: str) -> list[tuple[Path, Path]]:
    """``(input, output)`` pairs, after refusing an output folder that is or lies inside the input folder."""
    if not source.exists():
        raise FileNotFoundError(f"input not found: {source}")
    if source.is_dir():
        src_root, out_root = source.resolve(), output_dir.resolve()
        if out_root == src_root or src_root in out_root.parents:
            raise ValueError(
                f"output folder {output_dir} is the input folder {source} or inside it; choose a folder "
                "outside the input (a second run would otherwise derain the outputs too)"
            )
        return _output_names(source, list_images(source), output_dir, fmt)
    if not is_image_file(source):
        raise ValueError(
            f"input {source} has no image extension; expected one of the image types or a folder"
        )
    return _output_names(source.parent, [source], output_dir, fmt)


def _output_names(source: Path, images: list[Path], output_dir: Path, fmt: str) -> list[tuple[Path, Path]]:
    """``a/x.jpg`` → ``output_dir/a/x.png``; inputs sharing a stem (``x.jpg``, ``x.png``) keep their whole
    name instead (``x.jpg.png``, ``x.png.png``), so no output is lost or claimed twice. Names are compared
    case-blind, as macOS and Windows file systems do."""
    relatives = [path.relative_to(source) for path in images]
    stems = [str(relative.with_suffix("")).casefold() for relative in relatives]
    shared = Counter(stems)
    return [
        (path, output_dir / relative.parent / f"{relative.name if shared[stem] > 1 else relative.stem}.{fmt}")
        for path, relative, stem in zip(images, relatives, stems)
    ]
