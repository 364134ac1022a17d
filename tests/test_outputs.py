"""Every file lpnet writes goes to a temporary name beside it and is renamed into place.

So a kill, a full disk or an error half-way leaves the previous file (or none), never a truncated one
that looks complete. Checked twice: each writer keeps the old file when the final rename fails, and no
module of the package writes a file any other way.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import torch
from matplotlib.figure import Figure

from lpnet import LPNet, save_checkpoint
from lpnet.files import save_figure, write_json, write_text
from lpnet.io import write_image

SOURCE = Path(__file__).resolve().parents[1] / "src" / "lpnet"


def _figure() -> Figure:
    fig = Figure(figsize=(1, 1))
    fig.add_subplot().plot([0, 1])
    return fig


WRITERS = {
    "text": ("report.md", lambda p: write_text(p, "new")),
    "json": ("metrics.json", lambda p: write_json(p, {"new": 1})),
    "image": ("out.png", lambda p: write_image(p, torch.zeros(3, 4, 4))),
    "figure": ("plot.png", lambda p: save_figure(_figure(), p)),
    "checkpoint": ("model.pt", lambda p: save_checkpoint(p, LPNet())),
}


@pytest.mark.parametrize("name", WRITERS)
def test_a_failed_write_keeps_the_previous_file(tmp_path, monkeypatch, name):
    filename, write = WRITERS[name]
    path = tmp_path / filename
    path.write_bytes(b"previous")

    def no_rename(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", no_rename)
    with pytest.raises(
        OSError, match=rf"no space left on the device of {tmp_path} .* while writing {filename}"
    ):
        write(path)
    assert path.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == [filename]  # no temporary file left behind
    monkeypatch.undo()
    write(path)
    assert path.read_bytes() != b"previous"


@pytest.mark.parametrize("name", WRITERS)
def test_outputs_get_the_usual_permissions(tmp_path, name):
    """Like a plain open(): 0666 minus the umask (the temporary file must not hand on 0600)."""
    filename, write = WRITERS[name]
    previous = os.umask(0o022)
    try:
        write(tmp_path / filename)
    finally:
        os.umask(previous)
    assert (tmp_path / filename).stat().st_mode & 0o777 == 0o644


# Calls that write a file, and the one form each may take: onto the temporary path of atomic_write.
WRITE_CALL = re.compile(r"\.(write_text|write_bytes|savefig|save)\(|torch\.save\(|OmegaConf\.save\(|open\(")
THROUGH_TMP = re.compile(r"\btmp\b")
ALLOWED = {
    ("bench.py", 'Path("/proc/self/clear_refs").write_text("5")'),  # a kernel knob, not a file
    ("checkpoint.py", "torch.save(obj, buffer)"),  # into memory; the bytes then go through write_bytes
    # the benchmark's stand-in for a user's plain script (a string it runs), written as users write it
    ("bench.py", 'Image.fromarray((y.numpy() * 255).astype(np.uint8)).save(out / (path.stem + ".png"))'),
    # into memory
    ("pictures.py", 'image.convert("RGB").save(buffer, format="JPEG", quality=quality)'),
    ("degradations.py", 'Image.fromarray(pixels).save(buffer, format="JPEG", quality=int(quality))'),
}


def test_no_module_writes_a_file_directly():
    offenders = []
    for module in sorted(SOURCE.rglob("*.py")):
        for number, line in enumerate(module.read_text().splitlines(), 1):
            code = line.split("#")[0]
            if not WRITE_CALL.search(code) or THROUGH_TMP.search(code):
                continue
            if (module.name, code.strip()) in ALLOWED or _reads(code):
                continue
            offenders.append(f"{module.relative_to(SOURCE)}:{number}: {line.strip()}")
    assert not offenders, "write through lpnet.io (atomic_write and its helpers):\n" + "\n".join(offenders)


def _reads(code: str) -> bool:
    """``open(...)`` calls that only read (a mode without w, a or x, or none)."""
    if "open(" not in code or re.search(r"\.(write_text|write_bytes|savefig|save)\(|torch\.save\(", code):
        return False
    mode = re.search(r"""open\([^)]*["']([rwabx+t]+)["']""", code)
    return mode is None or not set(mode.group(1)) & set("wax")
