"""Writing files safely: every write is atomic, every output folder is checked before the work starts.

- :func:`atomic_write` writes to a hidden temporary file beside the target and renames it onto the target
  in one step, so a kill, a full disk or an error leaves the old file or none, never half a file. The
  temporary name is short (``.lpnet-<8 hex>.tmp``), so any legal final name stays writable.
- :func:`write_json` writes strict JSON: NaN and ±infinity (a PSNR of identical images, a diverged run)
  become ``null``, which every JSON reader accepts.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# Below this much free space, a failed write counts as a full disk (C++ writers such as torch.save report
# a full disk as a RuntimeError about stream positions, not as ENOSPC).
NEARLY_FULL_BYTES = 1 << 16


class DiskFullError(OSError):
    """No space left where a file was being written; the message names the folder and the file."""

    def __init__(self, path: Path) -> None:
        free = _free_bytes(path.parent)
        super().__init__(
            errno.ENOSPC,
            f"no space left on the device of {path.parent} ({free:,} bytes free) while writing {path.name}; "
            f"the previous {path.name}, if there was one, is intact",
            str(path.parent),
        )

    def __str__(self) -> str:
        return self.strerror


def _free_bytes(folder: Path) -> int:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return 0


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path`` in one step.

    A kill or an error leaves either the old file or none, never a half-written one.

    Raises:
        DiskFullError: the device filled up (whatever error the writer raised for it).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _new_file_in(path.parent)
    try:
        yield tmp
        os.replace(tmp, path)
    except Exception as err:
        full = isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT)
        if full or _free_bytes(path.parent) < NEARLY_FULL_BYTES:
            tmp.unlink(missing_ok=True)
            raise DiskFullError(path) from err
        raise
    finally:
        tmp.unlink(missing_ok=True)


def ensure_writable_folder(folder: str | os.PathLike) -> Path:
    """Create ``folder`` and prove a file can be written there, so a bad output fails before any work.

    Raises:
        PermissionError: naming the folder and the reason (not writable, a file in the way, ...).
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _new_file_in(folder).unlink()
    except OSError as err:
        raise PermissionError(f"output folder {folder} is not writable: {err.strerror or err}") from None
    return folder


def _new_file_in(folder: Path) -> Path:
    """A new empty hidden file in ``folder``, with the permissions a plain write would give it.

    (``tempfile.mkstemp`` makes files 0600, which the rename would hand on to every output.)
    """
    while True:
        tmp = folder / f".lpnet-{secrets.token_hex(4)}.tmp"
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # the umask applies
            return tmp
        except FileExistsError:
            continue


def write_bytes(path: str | os.PathLike, data: bytes | memoryview) -> Path:
    """Write ``data`` to ``path`` atomically."""
    with atomic_write(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_write(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def save_figure(fig: Any, path: str | os.PathLike, dpi: int = 100) -> Path:
    """Save a matplotlib ``Figure`` atomically; the format follows the suffix of ``path``."""
    path = Path(path)
    with atomic_write(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".").lower() or None, dpi=dpi)
    return path


def json_safe(value: Any) -> Any:
    """``value`` with every NaN or infinite float replaced by None (strict JSON has neither)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def write_json(path: str | os.PathLike, payload: Any, *, sort_keys: bool = True) -> Path:
    """Write ``payload`` as indented strict JSON (non-JSON values as ``str``, NaN/inf as null), atomically."""
    text = json.dumps(json_safe(payload), indent=2, sort_keys=sort_keys, default=str, allow_nan=False)
    return write_text(path, text + "\n")


def slug(text: str) -> str:
    """``text`` as a safe file-name part: every run of characters other than letters, digits and ``-``
    becomes one ``_`` (``"model.net.recursions"`` → ``"model_net_recursions"``, ``"rain-001"`` stays)."""
    return re.sub(r"[^A-Za-z0-9-]+", "_", text).strip("_")
