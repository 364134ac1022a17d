"""python -m lpnet.derain: folders, odd inputs, refusals, skip_existing, and no litter in the cwd."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_module
from PIL import Image

from lpnet import LPNet, load_model, save_checkpoint
from lpnet.cli import execute
from lpnet.derain import run
from lpnet.io import OutputImage, to_uint8

SRC = Path(__file__).resolve().parents[1] / "src"


def derain(cfg) -> int:
    """The derain command in this process: its exit status (messages on stdout/stderr as the CLI)."""
    return execute(run, cfg)[0]


def config(**settings):
    overrides = [f"{k}={v}" for k, v in settings.items()]
    with initialize_config_module(version_base="1.3", config_module="lpnet.conf"):
        return compose("derain", overrides=[*overrides, "device=cpu", "progress=false"])


@pytest.fixture
def ckpt(tmp_path) -> Path:
    torch.manual_seed(0)
    return save_checkpoint(tmp_path / "m.pt", LPNet())


@pytest.fixture
def inputs(tmp_path) -> Path:
    """A folder of small, awkward inputs (sizes chosen so a swapped H/W would show)."""
    rng = np.random.default_rng(0)
    root = tmp_path / "in"
    (root / "sub" / "deeper").mkdir(parents=True)
    Image.fromarray(rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)).save(root / "rgb.png")
    Image.fromarray(rng.integers(0, 256, (29, 41, 3), dtype=np.uint8)).save(
        root / "sub" / "deeper" / "photo.jpg"
    )
    Image.fromarray(rng.integers(0, 256, (31, 22), dtype=np.uint8)).save(root / "sub" / "gray.png")
    Image.fromarray(rng.integers(0, 256, (26, 35, 4), dtype=np.uint8)).save(root / "rgba.png")
    Image.fromarray(rng.integers(0, 65536, (24, 33), dtype=np.uint16)).save(root / "gray16.png")
    Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)).convert("P").save(root / "palette.png")
    (root / "corrupt.png").write_bytes(rng.bytes(300))
    (root / "notes.txt").write_text("not an image")
    return root


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_folder(ckpt, inputs, tmp_path, capsys):
    before = snapshot(inputs)
    out = tmp_path / "out"
    assert derain(config(ckpt_path=ckpt, input=inputs, output=out)) == 1  # one corrupt file

    expected = {
        "rgb.png": ("RGB", (53, 37)),
        "sub/deeper/photo.png": ("RGB", (41, 29)),
        "sub/gray.png": ("L", (22, 31)),
        "rgba.png": ("RGBA", (35, 26)),
        "gray16.png": ("L", (33, 24)),
        "palette.png": ("RGB", (30, 20)),
    }
    written = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert written == set(expected)
    for name, (mode, size) in expected.items():
        with Image.open(out / name) as img:
            assert (img.mode, img.size) == (mode, size), name

    # The RGB output is the network's whole-image result, saved as the official code saves it.
    x = torch.from_numpy(np.array(Image.open(inputs / "rgb.png"))).permute(2, 0, 1).float() / 255
    with torch.no_grad():
        ref = to_uint8(load_model(ckpt).derain(x[None])[0])
    got = np.asarray(Image.open(out / "rgb.png"))
    assert np.abs(got.astype(int) - ref.astype(int)).max() <= 1
    assert np.abs(got.astype(int) - np.asarray(Image.open(inputs / "rgb.png")).astype(int)).mean() > 1
    # Alpha comes back unchanged.
    np.testing.assert_array_equal(
        np.asarray(Image.open(out / "rgba.png"))[..., 3], np.asarray(Image.open(inputs / "rgba.png"))[..., 3]
    )

    captured = capsys.readouterr()
    failure_lines = [line for line in captured.err.splitlines() if "corrupt.png" in line]
    assert len(failure_lines) == 1 and "not a readable image" in failure_lines[0]
    assert "6 derained, 0 skipped, 1 failed" in captured.out
    assert snapshot(inputs) == before  # inputs untouched


@pytest.mark.parametrize("where", [".", "sub", "sub/new"])
def test_refuses_output_in_input(ckpt, inputs, where, capsys):
    before = snapshot(inputs)
    assert derain(config(ckpt_path=ckpt, input=inputs, output=inputs / where)) == 2
    assert "inside it" in capsys.readouterr().err
    assert snapshot(inputs) == before and not (inputs / "sub" / "new").exists()


def test_skip_existing(ckpt, inputs, tmp_path, capsys):
    (inputs / "corrupt.png").unlink()
    out = tmp_path / "out"
    assert derain(config(ckpt_path=ckpt, input=inputs, output=out)) == 0
    marker = np.zeros((5, 5, 3), dtype=np.uint8)
    Image.fromarray(marker).save(out / "rgb.png")

    assert derain(config(ckpt_path=ckpt, input=inputs, output=out, skip_existing=True)) == 0
    assert "0 derained, 6 skipped, 0 failed" in capsys.readouterr().out
    assert Image.open(out / "rgb.png").size == (5, 5)

    (out / "sub" / "gray.png").unlink()
    assert derain(config(ckpt_path=ckpt, input=inputs, output=out, skip_existing=True)) == 0
    assert "1 derained, 5 skipped" in capsys.readouterr().out
    assert (out / "sub" / "gray.png").is_file()

    # Without a flag, files already where outputs go stop the run before any work, named.
    assert derain(config(ckpt_path=ckpt, input=inputs, output=out)) == 2
    assert "already holds 6 file(s)" in capsys.readouterr().err
    assert Image.open(out / "rgb.png").size == (5, 5)
    assert derain(config(ckpt_path=ckpt, input=inputs, output=out, overwrite=True)) == 0
    assert Image.open(out / "rgb.png").size == (53, 37)


def test_single_file_and_tiff(ckpt, inputs, tmp_path):
    out = tmp_path / "single"
    assert (
        derain(config(ckpt_path=ckpt, input=inputs / "sub/deeper/photo.jpg", output=out, format="tiff")) == 0
    )
    assert [p.name for p in out.iterdir()] == ["photo.tiff"]


def test_inputs_sharing_a_stem_keep_their_whole_names(ckpt, tmp_path, capsys):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    for name in ("a.jpg", "A.png", "b.png", "sub/a.png"):
        Image.new("RGB", (20, 20), (90, 120, 200)).save(src / name)
    (src / "c.jpg").write_bytes(b"not a jpeg")  # unreadable, beside a good c.png
    Image.new("RGB", (20, 20), (90, 120, 200)).save(src / "c.png")
    assert derain(config(ckpt_path=ckpt, input=src, output=tmp_path / "out")) == 1  # c.jpg failed
    written = sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*.png"))
    assert written == ["A.png.png", "a.jpg.png", "b.png", "c.png.png", "sub/a.png"]
    err = capsys.readouterr().err
    assert "c.jpg" in err and "c.png" not in err.replace("c.png.png", "")


def test_a_file_named_only_by_its_extension_is_derained_not_passed_over(ckpt, tmp_path, capsys):
    """`.png` (Path.suffix sees a hidden file without an extension) is an image like any other."""
    src = tmp_path / "in"
    src.mkdir()
    for name in (".png", "a.png", ".JPG"):
        Image.new("RGB", (20, 20), (90, 120, 200)).save(src / name, format="PNG")
    assert derain(config(ckpt_path=ckpt, input=src, output=tmp_path / "out")) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [".JPG.png", ".png.png", "a.png"]
    assert "3 derained, 0 skipped, 0 failed" in capsys.readouterr().out


def test_setup_errors(ckpt, inputs, tmp_path, capsys):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    assert derain(config(ckpt_path=ckpt, input=inputs, output=not_a_folder)) == 2
    assert "not writable" in capsys.readouterr().err
    assert derain(config(ckpt_path=tmp_path / "missing.pt", input=inputs, output=tmp_path / "o")) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    assert derain(config(ckpt_path=ckpt, input=tmp_path / "nothing", output=tmp_path / "o")) == 2
    assert "input not found" in capsys.readouterr().err
    assert derain(config(ckpt_path=ckpt, input=inputs, output=tmp_path / "o", format="jpg")) == 2
    assert "format must be one of" in capsys.readouterr().err
    with initialize_config_module(version_base="1.3", config_module="lpnet.conf"):
        cfg = compose("derain", overrides=[f"ckpt_path={ckpt}", f"input={inputs}"])
    assert derain(cfg) == 2
    assert "missing setting output" in capsys.readouterr().err


def test_a_full_disk_stops_the_run_at_the_first_failed_write(ckpt, inputs, tmp_path, capsys, monkeypatch):
    """Every later image would fail the same way: stop, say where and how to resume, keep what was written."""
    real_write, written = OutputImage.write, []

    def write_until_full(image, path):
        if written:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        written.append(path)
        return real_write(image, path)

    monkeypatch.setattr(OutputImage, "write", write_until_full)
    out = tmp_path / "out"
    assert derain(config(ckpt_path=ckpt, input=inputs, output=out)) == 2
    err = capsys.readouterr().err
    assert f"error: {out}: no space left" in err and "after 1 images" in err and "skip_existing=true" in err
    assert [p for p in out.rglob("*") if p.is_file()] == written


def test_module_entry_point(ckpt, inputs, tmp_path):
    """``python -m lpnet.derain`` finds its packaged config and leaves nothing in the working directory."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    args = [f"ckpt_path={ckpt}", f"input={inputs / 'rgb.png'}", f"output={tmp_path / 'out'}", "device=cpu"]
    proc = subprocess.run(
        [sys.executable, "-m", "lpnet.derain", *args], cwd=cwd, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out" / "rgb.png").is_file()
    assert list(cwd.iterdir()) == []  # no outputs/, .hydra/ or log files


@pytest.mark.parametrize(
    ("names", "fmt"),
    [(["d" * 251 + ".png", "d" * 251 + ".jpg"], "png"), (["x" * 251 + ".png"], "tiff"),
     (["é" * 125 + "a.png", "é" * 125 + "a.jpg"], "png")],
)  # fmt: skip
def test_names_at_the_file_system_limit_that_grow_are_cut_to_fit_and_stay_distinct(
    ckpt, tmp_path, names, fmt
):
    """A clash (or a longer extension) would make a 256+ byte name: each input still gets its own output,
    cut to 255 bytes with a hash of its whole name, no `File name too long`."""
    src = tmp_path / "in"
    src.mkdir()
    for name in names:
        Image.new("RGB", (20, 20), (90, 120, 200)).save(src / name, format="PNG")
    assert derain(config(ckpt_path=ckpt, input=src, output=tmp_path / "out", format=fmt)) == 0
    written = sorted(os.listdir(tmp_path / "out"))
    assert len(written) == len(names) and all(len(os.fsencode(n)) <= 255 for n in written)
    assert all(n.endswith(f".{fmt}") for n in written)
