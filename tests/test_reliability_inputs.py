"""Bad and odd image files through every reading path: each works or fails on one line naming the file.

Paths covered: :func:`lpnet.io.read_image`, ``lpnet.derain.derain`` (the derain command, in process and as
``python -m lpnet.derain``), ``lpnet.eval.run`` (``python -m lpnet.eval``) and
:class:`~lpnet.data.datasets.PairedImageDataset`.

Unreadable-by-permission files cannot be made while running as root (root ignores permission bits), so
that case is skipped under root; a FIFO named like an image stands in for "a file that cannot be read"
(reading it would block forever, so the readers refuse non-regular files).
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import PROJECT_ROOT
from hydra import compose, initialize_config_module
from PIL import Image

from lpnet import LPNet, save_checkpoint
from lpnet.cli import execute
from lpnet.data.datasets import PairedImageDataset
from lpnet.data.layouts import find_pairs
from lpnet.derain import run as derain_run
from lpnet.eval import run as eval_run
from lpnet.io import ImageReadError, read_image

H, W = 20, 30
WIDE = 1500  # pixels; the slow test derains 3 × 100000


def _rgb(seed: int = 0, size: tuple[int, int] = (H, W)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)


def _encoded(array: np.ndarray, fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, fmt)
    return buffer.getvalue()


def make_inputs(root: Path, prefix: str = "", wide: int = WIDE) -> dict[str, tuple[int, int] | str]:
    """Write every odd input into ``root``; returns name → expected ``(H, W)`` or the expected error text."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rgb = _rgb()
    expect: dict[str, tuple[int, int] | str] = {}

    def put(name: str, data: bytes, outcome: tuple[int, int] | str) -> None:
        (root / f"{prefix}{name}").write_bytes(data)
        expect[f"{prefix}{name}"] = outcome

    def save(name: str, image: Image.Image, outcome: tuple[int, int], **kwargs) -> None:
        image.save(root / f"{prefix}{name}", **kwargs)
        expect[f"{prefix}{name}"] = outcome

    put("random-png.png", rng.bytes(500), "not a readable image")
    put("random-jpg.jpg", rng.bytes(500), "not a readable image")
    put("truncated.png", _encoded(rgb, "PNG")[:400], "cannot decode")
    put("truncated-jpeg.jpg", _encoded(rgb, "JPEG")[:400], "cannot decode")
    put("empty.png", b"", "not a readable image")
    save("one-pixel.png", Image.fromarray(rgb[:1, :1]), (1, 1))
    save("wide.png", Image.fromarray(_rgb(1, (3, wide))), (3, wide))
    save("gray16.png", Image.fromarray(rng.integers(0, 65536, (H, W), dtype=np.uint16)), (H, W))
    save("gray.png", Image.fromarray(rgb[..., 0]), (H, W))
    save("rgba.png", Image.fromarray(np.concatenate([rgb, rgb[..., :1]], axis=2)), (H, W))
    save("palette.png", Image.fromarray(rgb).convert("P"), (H, W))
    save("cmyk.jpg", Image.fromarray(rgb).convert("CMYK"), (H, W))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation 6: viewers rotate 90° clockwise
    save("exif-rotated.jpg", Image.fromarray(rgb), (W, H), exif=exif)
    save("naïve ünï 雨 space.png", Image.fromarray(rgb), (H, W))
    (root / f"{prefix}directory.png").mkdir()  # a folder named like an image
    (root / f"{prefix}broken-link.png").symlink_to(root / "nowhere.png")
    expect[f"{prefix}broken-link.png"] = "broken symbolic link"
    os.mkfifo(root / f"{prefix}fifo.png")
    expect[f"{prefix}fifo.png"] = "not a regular file"
    return expect


def one_line_naming(message: str, path: Path) -> bool:
    return "\n" not in message and str(path) in message


def test_read_image_every_input(tmp_path):
    expect = make_inputs(tmp_path)
    for name, outcome in expect.items():
        path = tmp_path / name
        if isinstance(outcome, tuple):
            image = read_image(path)
            assert image.shape == (3, *outcome) and image.dtype == torch.float32, name
            assert image.min() >= 0 and image.max() <= 1, name
        else:
            with pytest.raises(ImageReadError) as info:
                read_image(path)
            assert outcome in str(info.value) and one_line_naming(str(info.value), path), str(info.value)
    with pytest.raises(ImageReadError, match="is a directory"):
        read_image(tmp_path / "directory.png")


def test_exif_orientation_is_applied(tmp_path):
    make_inputs(tmp_path, wide=8)
    Image.fromarray(_rgb()).save(tmp_path / "plain.jpg")  # the same pixels, the same encoder, no EXIF
    plain, rotated = read_image(tmp_path / "plain.jpg"), read_image(tmp_path / "exif-rotated.jpg")
    torch.testing.assert_close(rotated, torch.rot90(plain, k=-1, dims=(1, 2)), rtol=0, atol=0)


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores permission bits; the FIFO case covers refusal")
def test_unreadable_file(tmp_path):
    path = tmp_path / "secret.png"
    Image.fromarray(_rgb()).save(path)
    path.chmod(0)
    with pytest.raises(ImageReadError, match="permission denied"):
        read_image(path)


def derain(cfg) -> int:
    return execute(derain_run, cfg)[0]


def run_eval(cfg) -> int:
    return execute(eval_run, cfg)[0]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "m.pt", LPNet())


def derain_config(**settings):
    overrides = [f"{k}={v}" for k, v in settings.items()]
    with initialize_config_module(version_base="1.3", config_module="lpnet.conf"):
        return compose("derain", overrides=[*overrides, "device=cpu", "progress=false"])


def test_derain_command_every_input(ckpt, tmp_path, capsys):
    src, out = tmp_path / "in", tmp_path / "out"
    expect = make_inputs(src)
    status = derain(derain_config(ckpt_path=ckpt, input=src, output=out, tile=512))  # the wide one in tiles
    captured = capsys.readouterr()
    assert status == 1 and "Traceback" not in captured.err
    summary = captured.out[captured.out.index("failed:\n") :]
    for name, outcome in expect.items():
        written = out / f"{Path(name).stem}.png"
        if isinstance(outcome, tuple):
            with Image.open(written) as image:
                assert image.size == outcome[::-1], name
        else:
            assert not written.exists(), name
            lines = [line for line in summary.splitlines() if str(src / name) in line]
            assert len(lines) == 1 and outcome in lines[0], (name, summary)
    # a folder named like an image is a folder, not an input; nothing else is written
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{Path(n).stem}.png" for n, o in expect.items() if isinstance(o, tuple)
    )


def test_derain_single_bad_inputs(ckpt, tmp_path, capsys):
    src = tmp_path / "in"
    make_inputs(src, wide=8)
    # nothing done (its only input failed): 2, as for a refused run
    for name, status in (("truncated.png", 2), ("fifo.png", 2), ("broken-link.png", 2), ("one-pixel.png", 0)):
        assert derain(derain_config(ckpt_path=ckpt, input=src / name, output=tmp_path / "out")) == status
        err = capsys.readouterr().err
        assert "Traceback" not in err and (status == 0 or str(src / name) in err), (name, err)


def test_derain_module_exit_status_and_no_traceback(ckpt, tmp_path):
    src = tmp_path / "in"
    make_inputs(src, wide=8)
    cmd = [sys.executable, "-m", "lpnet.derain", f"ckpt_path={ckpt}", f"input={src}",
           f"output={tmp_path / 'out'}", "device=cpu", "progress=false"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT / "src")}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "derained" in proc.stdout and "failed" in proc.stdout


def make_pairs(root: Path) -> dict[str, tuple[int, int] | str]:
    """A rain/norain split whose rainy side holds every odd input; clean images match the readable ones.

    The layout scan lists regular files only, so the broken link and the FIFO are not pairs (dropped here).
    """
    expect = make_inputs(root / "rain", wide=8)
    expect = {n: o for n, o in expect.items() if (root / "rain" / n).is_file()}
    (root / "norain").mkdir()
    for name, outcome in expect.items():
        size = outcome if isinstance(outcome, tuple) else (H, W)
        clean = root / "norain" / f"{Path(name).stem}.png"
        rgb = _rgb(2, size)
        # The clean image is of the rainy one's kind: a grayscale or 16-bit pair scores like any other.
        kind = {"gray.png": rgb[..., 0], "gray16.png": rgb[..., 0].astype(np.uint16) * 257}.get(name, rgb)
        Image.fromarray(kind).save(clean)
    # Pairs of two kinds are refused by name: colour against grayscale, 8-bit against 16-bit grayscale, and
    # 8-bit against 16-bit colour (which Pillow decodes to 8 bits: it would be scored truncated, unsaid).
    gray = _rgb(3)[..., 0]
    for name, rainy, clean in (
        ("colour-vs-gray.png", _rgb(3), gray),
        ("8-vs-16-bit.png", gray, gray.astype(np.uint16) * 257),
    ):
        Image.fromarray(rainy).save(root / "rain" / name)
        Image.fromarray(clean).save(root / "norain" / name)
        expect[name] = "both images of a pair must be of one kind"
    Image.fromarray(_rgb(4)).save(root / "rain" / "8-vs-16-bit-colour.png")
    write_rgb16_png(root / "norain" / "8-vs-16-bit-colour.png", _rgb(4).astype(np.uint16) * 257)
    expect["8-vs-16-bit-colour.png"] = "is 8-bit colour but"
    return expect


def write_rgb16_png(path: Path, rgb: np.ndarray) -> None:
    """A 16-bit RGB PNG (Pillow cannot write one): signature, IHDR (depth 16, colour type 2), IDAT, IEND."""
    import struct
    import zlib

    height, width, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].astype(">u2").tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def test_paired_dataset_every_input(tmp_path):
    expect = make_pairs(tmp_path)
    dataset = PairedImageDataset(find_pairs(tmp_path, "rain_norain"))
    seen = set()
    for index, pair in enumerate(dataset.pairs):
        outcome = expect[pair.rainy.name]
        seen.add(pair.rainy.name)
        if isinstance(outcome, tuple):
            assert dataset[index]["rainy"].shape == (3, *outcome)
        else:
            with pytest.raises((ImageReadError, ValueError)) as info:
                dataset[index]
            assert outcome in str(info.value) and one_line_naming(str(info.value), pair.rainy)
    readable = {n for n, o in expect.items() if isinstance(o, tuple)}
    assert readable <= seen


def eval_config(ckpt: Path, root: Path, out: Path):
    overrides = [f"ckpt_path={ckpt}", f"data.root={root}", f"output={out}", "device=cpu"]
    with initialize_config_module(version_base="1.3", config_module="lpnet.conf"):
        return compose("eval", overrides=overrides)


def test_eval_every_input(ckpt, tmp_path, capsys):
    import json

    root = tmp_path / "pairs"
    expect = make_pairs(root)
    status = run_eval(eval_config(ckpt, root, tmp_path / "eval"))
    captured = capsys.readouterr()
    assert status == 1 and "Traceback" not in captured.err
    summary = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    # readable pairs are scored, except those smaller than the SSIM window (failures naming the file)
    expect["one-pixel.png"] = expect["wide.png"] = "smaller than the 11×11 SSIM window"
    readable = sorted(Path(n).stem for n, o in expect.items() if isinstance(o, tuple))
    assert summary["images"] == len(readable)
    for line in summary["failed"]:
        assert "\n" not in line and str(root / "rain") in line and line in captured.err
    failing = {n for n, o in expect.items() if isinstance(o, str)}
    reported = {n for n in failing if any(str(root / "rain" / n) in line for line in summary["failed"])}
    assert reported == failing
    assert captured.out.count("\n") >= len(readable)  # the table


def test_eval_nothing_readable_and_bad_root(ckpt, tmp_path, capsys):
    root = tmp_path / "pairs"
    (root / "rain").mkdir(parents=True)
    (root / "norain").mkdir()
    (root / "rain" / "rain-1.png").write_bytes(b"junk")
    Image.fromarray(_rgb()).save(root / "norain" / "norain-1.png")
    assert run_eval(eval_config(ckpt, root, tmp_path / "eval")) == 2
    assert run_eval(eval_config(ckpt, tmp_path / "absent", tmp_path / "eval")) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "rain-1.png" in err and "absent" in err
    (tmp_path / "file").write_text("in the way")
    assert run_eval(eval_config(ckpt, root, tmp_path / "file" / "eval")) == 2
    err = capsys.readouterr().err
    assert "is not writable" in err and "rain-1.png" not in err  # refused before reading anything


@pytest.mark.slow
def test_derain_very_wide_image(ckpt, tmp_path, capsys):
    """3 × 100000 pixels through the derain command (about a minute on 2 busy cores)."""
    Image.fromarray(_rgb(1, (3, 100_000))).save(tmp_path / "wide.png")
    assert derain(derain_config(ckpt_path=ckpt, input=tmp_path / "wide.png", output=tmp_path / "out")) == 0
    with Image.open(tmp_path / "out" / "wide.png") as image:
        assert image.size == (100_000, 3)
