"""Fault classes, each tried in several generated variants, through the commands users run.

Every variant checks the same promises: the exit status; a fault is one line naming the file or setting
(no traceback); the user's inputs are byte-identical afterwards; no partial, temporary or stale output is
left; no output is lost. A fast subset runs by default; ``-m slow`` (CI) runs every variant.

| class | variants |
| --- | --- |
| output names | generated name sets (case, stems, dotted names, folders named like outputs) |
| links | self loop, two-link loop, folder loop, links out of the tree (file, folder), broken, inside |
| checkpoints | NaN, inf, integer weights, no weights, wrong shapes, absurd sizes, junk |
| non-finite data | NaN/inf in a float TIFF; a network whose output overflows |
| disk | a full tmpfs (where mount works) or an injected ENOSPC: derain and training |
| settings | bad tile/overlap/batch/device/format/max_pixels, crop larger than the images, bad lr |
| existing files | an unrelated file where an output goes, skip_existing over a non-image, a reused run dir |
| pictures | animated GIF/WebP/PNG, multi-page TIFF, single-frame GIF, 250-byte names |
"""

from __future__ import annotations

import errno
import os
import random
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path, PurePath

import numpy as np
import pytest
import torch
from conftest import PROJECT_ROOT, write_pair_tree
from hydra import compose, initialize_config_module
from PIL import Image

from lpnet import LPNet, save_checkpoint
from lpnet.apply.folder import output_names
from lpnet.cli import EXIT_ERROR, EXIT_OK, EXIT_PARTIAL, execute
from lpnet.derain import run as derain_run
from lpnet.io import OutputImage

SLOW = pytest.mark.slow


def some(variants: list, fast: int) -> list:
    """The first ``fast`` variants run by default, the others only in the slow set (tuples: several args)."""
    return [
        v if i < fast else pytest.param(*(v if isinstance(v, tuple) else (v,)), marks=SLOW)
        for i, v in enumerate(variants)
    ]


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every regular file below ``folder`` (links not followed) with its bytes."""
    out = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink():
            out[str(path.relative_to(folder))] = path.read_bytes()
    return out


def no_temporaries(folder: Path) -> bool:
    return not folder.exists() or not any(p.name.startswith(".lpnet-") for p in folder.rglob("*"))


def image(path: Path, seed: int = 0, size: tuple[int, int] = (20, 28)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
    Image.fromarray(arr).save(path)
    return path


def decodes(path: Path) -> bool:
    try:
        with Image.open(path) as img:
            img.load()
        return True
    except Exception:
        return False


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return save_checkpoint(
        tmp_path_factory.mktemp("ckpt") / "small.pt", LPNet(width_multiplier=0.25, recursions=1)
    )


def derain(capsys, **settings) -> tuple[int, list[str], str]:
    """The derain command in this process: (exit status, stderr lines that are not progress, stdout)."""
    settings = {"device": "cpu", "progress": "false", **settings}
    with initialize_config_module(version_base="1.3", config_module="lpnet.conf"):
        cfg = compose("derain", overrides=[f"{k}={v}" for k, v in settings.items()])
    status = execute(derain_run, cfg)[0]
    captured = capsys.readouterr()
    return status, [line for line in captured.err.splitlines() if line.strip()], captured.out


def error_line(lines: list[str]) -> str:
    """The single ``error:`` line of a failed command (and no traceback)."""
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and not any("Traceback" in line for line in lines), lines
    return errors[0]


# --------------------------------------------------------------------------------------------------
# Output names


def random_names(rng: random.Random) -> list[PurePath]:
    stems = ["x", "X", "x.png", "x.jpg", "a", "A.PNG", "x.png.png", "photo", "photo-2"]
    folders = ["", "a", "A", "x.png", "sub/deeper"]
    exts = [".png", ".jpg", ".JPG", ".png.png", ".tif", ".gif"]
    names = {
        PurePath(rng.choice(folders), rng.choice(stems) + rng.choice(exts)) for _ in range(rng.randint(1, 14))
    }
    return sorted(names)


@pytest.mark.parametrize("seed", some(list(range(2000)), fast=300))
def test_output_names_never_collide(seed):
    relatives = random_names(random.Random(seed))
    for fmt in ("png", "tif"):
        names = output_names(relatives, fmt)
        keys = [n.as_posix().casefold() for n in names]
        folders = {p.as_posix().casefold() for r in relatives for p in r.parents if p != PurePath(".")}
        assert len(set(keys)) == len(keys), (relatives, names)
        assert not set(keys) & folders, (relatives, names)  # no file where an output folder must be
        assert all(n.parent == r.parent and n.suffix == f".{fmt}" for r, n in zip(relatives, names))


@pytest.mark.parametrize(
    "names",
    some(
        [
            ["x.jpg", "x.png", "x.png.png"],
            ["a.png", "A.png", "a.jpg"],
            ["x.png", "x.png.png", "x.png.png.png"],
            ["p.gif", "p.png", "p.tif", "sub/p.png"],
            ["dup.jpg", "dup.jpeg", "DUP.png", "dup.png.jpg"],
        ],
        fast=2,
    ),
    ids=str,
)
def test_every_input_gets_its_own_output(names, ckpt, tmp_path, capsys):
    src, out = tmp_path / "in", tmp_path / "out"
    for seed, name in enumerate(names):
        image(src / name, seed)
    before = snapshot(src)
    status, lines, stdout = derain(capsys, ckpt_path=ckpt, input=src, output=out)
    assert status == EXIT_OK, lines
    written = [p for p in out.rglob("*") if p.is_file()]
    assert len(written) == len(names) and all(decodes(p) for p in written)
    assert f"{len(names)} derained" in stdout
    assert snapshot(src) == before and no_temporaries(out)


def test_a_long_name_is_written(ckpt, tmp_path, capsys):
    """A 250-byte name: the temporary name never makes a legal final name fail."""
    src, out = tmp_path / "in", tmp_path / "out"
    name = "r" * 246 + ".jpg"
    image(src / name)
    status, lines, _ = derain(capsys, ckpt_path=ckpt, input=src, output=out)
    assert status == EXIT_OK, lines
    assert (out / ("r" * 246 + ".png")).is_file()


# --------------------------------------------------------------------------------------------------
# Links


def _links(kind: str, src: Path, outside: Path) -> tuple[str, int]:
    """Make one link shape in ``src``; returns (what the run must report, exit status)."""
    if kind == "self-loop":
        (src / "self.png").symlink_to("self.png")
        return "self.png: symbolic link loop", EXIT_OK
    if kind == "two-link-loop":
        (src / "a.png").symlink_to("b.png")
        (src / "b.png").symlink_to("a.png")
        return "a.png: symbolic link loop", EXIT_OK
    if kind == "folder-loop":
        (src / "sub").mkdir()
        (src / "sub" / "up").symlink_to("..")
        return "reached a second time", EXIT_OK
    if kind == "file-outside":
        image(outside / "away.png")
        (src / "away.png").symlink_to(outside / "away.png")
        return "away.png: links outside", EXIT_OK
    if kind == "folder-outside":
        image(outside / "far" / "x.png")
        (src / "far").symlink_to(outside / "far")
        return "far: links outside", EXIT_OK
    if kind == "broken":
        (src / "gone.png").symlink_to(src / "nowhere.png")
        return "gone.png: broken symbolic link", EXIT_PARTIAL
    raise AssertionError(kind)


LINK_SHAPES = ["self-loop", "folder-outside", "two-link-loop", "folder-loop", "file-outside", "broken"]


@pytest.mark.parametrize("kind", some(LINK_SHAPES, fast=2))
def test_link_shapes_are_reported_once_and_the_rest_goes_on(kind, ckpt, tmp_path, capsys):
    src, out, outside = tmp_path / "in", tmp_path / "out", tmp_path / "elsewhere"
    image(src / "real.png")
    report, expected_status = _links(kind, src, outside)
    before, before_outside = snapshot(src), snapshot(outside) if outside.exists() else {}
    status, lines, stdout = derain(capsys, ckpt_path=ckpt, input=src, output=out)
    assert status == expected_status, lines
    assert (out / "real.png").is_file() and decodes(out / "real.png")
    said = [line for line in lines if report in line]
    assert len(said) == 1 and said[0].startswith(("skipped: ", "failed: ")), (report, lines)
    assert report in stdout  # and listed again in the end-of-run summary
    assert snapshot(src) == before and (not outside.exists() or snapshot(outside) == before_outside)
    assert not any(p.name == "x.png" for p in out.rglob("*"))  # nothing from outside the tree


# --------------------------------------------------------------------------------------------------
# Checkpoints


def _bad_checkpoint(kind: str, path: Path) -> str:
    """Write a damaged checkpoint; returns a word its refusal must contain."""
    good = torch.load(save_checkpoint(path, LPNet()), weights_only=True)
    state, config = good["state_dict"], good["model_config"]
    name = "subnets.4.head.weight"
    if kind == "nan":
        state[name][0, 0, 0, 0] = float("nan")
        expect = name
    elif kind == "inf":
        state["subnets.0.tail.bias"][0] = float("inf")
        expect = "subnets.0.tail.bias"
    elif kind == "integer-weights":
        state[name] = state[name].to(torch.int32)
        expect = name
    elif kind == "no-weights":
        del good["state_dict"]
        expect = "no network weights"
    elif kind == "huge-recursions":
        config["recursions"] = 10**6
        expect = "recursions"
    elif kind == "huge-width":
        config["widths"] = [1, 2, 4, 8, 16000]
        expect = "widths"
    elif kind == "huge-levels":
        config["num_levels"], config["widths"] = 10**6, None
        expect = "num_levels"
    elif kind == "wrong-shape":
        state[name] = torch.zeros(3, 3)
        expect = "do not fit"
    elif kind == "unknown-setting":
        config["depth"] = 3
        expect = "depth"
    elif kind == "not-a-dict":
        torch.save([1, 2, 3], path)
        return "expected a checkpoint dict"
    else:
        raise AssertionError(kind)
    torch.save(good, path)
    return expect


CHECKPOINT_FAULTS = [
    "nan", "huge-width", "huge-recursions", "no-weights", "inf", "integer-weights", "huge-levels",
    "wrong-shape", "unknown-setting", "not-a-dict",
]  # fmt: skip


@pytest.mark.parametrize("kind", some(CHECKPOINT_FAULTS, fast=4))
def test_damaged_checkpoints_are_refused_before_anything_is_built(kind, tmp_path, capsys):
    path = tmp_path / "bad.pt"
    expect = _bad_checkpoint(kind, path)
    image(tmp_path / "in" / "a.png")
    started = time.perf_counter()
    status, lines, _ = derain(capsys, ckpt_path=path, input=tmp_path / "in", output=tmp_path / "out")
    assert time.perf_counter() - started < 20  # refused on reading, not after allocating or looping
    line = error_line(lines)
    assert status == EXIT_ERROR and str(path) in line and expect in line, line
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


# --------------------------------------------------------------------------------------------------
# Non-finite numbers


@pytest.mark.parametrize("value", some([float("nan"), float("inf"), -float("inf")], fast=1), ids=str)
def test_a_non_finite_input_pixel_is_refused_by_name(value, ckpt, tmp_path, capsys):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    arr = np.random.default_rng(0).random((16, 20), dtype=np.float32)
    arr[3, 4] = value
    Image.fromarray(arr, mode="F").save(src / "float.tif")
    image(src / "fine.png")
    status, lines, _ = derain(capsys, ckpt_path=ckpt, input=src, output=out)
    assert status == EXIT_PARTIAL
    failed = [line for line in lines if line.startswith("failed:")]
    assert len(failed) == 1 and "float.tif" in failed[0] and "NaN or infinite" in failed[0]
    assert sorted(p.name for p in out.iterdir()) == ["fine.png"]


def test_an_overflowing_network_writes_no_black_image(tmp_path, capsys):
    net = LPNet(width_multiplier=0.25, recursions=1)
    with torch.no_grad():
        for p in net.parameters():
            p.fill_(1e19)  # finite weights whose outputs overflow to inf
    path = save_checkpoint(tmp_path / "overflow.pt", net)
    image(tmp_path / "in" / "a.png")
    status, lines, _ = derain(capsys, ckpt_path=path, input=tmp_path / "in", output=tmp_path / "out")
    assert status == EXIT_ERROR  # its only input failed: nothing done
    assert any("a.png" in line and "NaN or infinite" in line for line in lines), lines
    assert not any((tmp_path / "out").glob("*.png"))


# --------------------------------------------------------------------------------------------------
# Disk faults


@contextmanager
def small_disk(folder: Path, size: str):
    """A tmpfs of ``size`` at ``folder``; skip where this machine does not let us mount one."""
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(
            f"cannot mount a tmpfs here ({done.stderr.decode().strip()}); the injected-ENOSPC variant runs"
        )
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def _photos(src: Path, count: int) -> None:
    for i in range(count):
        image(src / f"p{i:02d}.png", i, size=(96, 128))


@pytest.mark.parametrize("how", some(["injected", "tmpfs"], fast=2))
def test_a_full_disk_stops_derain_keeping_whole_outputs(how, ckpt, tmp_path, capsys, monkeypatch):
    src, out = tmp_path / "in", tmp_path / "disk" / "out"
    _photos(src, 12)
    before = snapshot(src)
    if how == "injected":
        real, written = OutputImage.write, []

        def fill_after_three(img, path):
            if len(written) == 3:
                raise OSError(errno.ENOSPC, "No space left on device", str(path))
            written.append(path)
            return real(img, path)

        monkeypatch.setattr(OutputImage, "write", fill_after_three)
        context = contextmanager(lambda: (yield))()
    else:
        context = small_disk(tmp_path / "disk", "160k")  # room for a few 96×128 PNGs, not twelve
    with context:
        status, lines, _ = derain(capsys, ckpt_path=ckpt, input=src, output=out)
        line = error_line(lines)
        assert status == EXIT_ERROR and "no space left" in line and "skip_existing=true" in line
        outputs = [p for p in out.rglob("*") if p.is_file()]
        assert 0 < len(outputs) < 12 and all(decodes(p) for p in outputs) and no_temporaries(out)
    assert snapshot(src) == before


def _train(tmp_path: Path, run_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    root = write_pair_tree(tmp_path / "bench" / "train", count=4, size=(40, 48))
    write_pair_tree(tmp_path / "bench" / "test", count=1, size=(40, 48))
    cmd = [
        sys.executable, "-m", "lpnet.train", f"data.root={root.parent}", "data.num_workers=0",
        "data.crop_size=24", "data.batch_size=2", "trainer.max_steps=6", "trainer.val_check_interval=2",
        "callbacks.progress_bar.refresh_rate=0", "model.net.width_multiplier=0.25", "model.net.recursions=1",
        f"hydra.run.dir={run_dir}", *extra,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT / "src"), "WANDB_MODE": "disabled"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)


@SLOW
def test_training_on_a_full_disk_says_so_and_keeps_whole_checkpoints(tmp_path):
    # The official width: each checkpoint (weights and Adam's moments) is ~100 kB, so the disk fills while
    # the second one is written.
    with small_disk(tmp_path / "disk", "200k") as disk:
        done = _train(tmp_path, disk / "run", "model.net.width_multiplier=1", "callbacks.image_logger=null")
        lines = done.stderr.strip().splitlines()
        assert done.returncode == EXIT_ERROR and lines[-1].startswith("error: no space left"), done.stderr[
            -3000:
        ]
        assert "Traceback" not in done.stderr
        saved = list((disk / "run" / "checkpoints").glob("*.ckpt"))
        assert saved, "the disk filled before the first checkpoint: make it larger"
        for ckpt in saved:
            torch.load(ckpt, weights_only=True)  # whatever was saved is whole
        assert no_temporaries(disk / "run")


# --------------------------------------------------------------------------------------------------
# Settings


@pytest.mark.parametrize(
    ("setting", "expect"),
    some(
        [
            ("tile=0", "tile"),
            ("device=mps", "mps"),
            ("overlap=-1", "overlap"),
            ("batch_size=0", "batch_size"),
            ("device=tpu", "device must be one of"),
            ("format=jpg", "format must be one of"),
            ("tile=big", "tile"),
        ],
        fast=2,
    ),
    ids=str,
)
def test_bad_derain_settings_are_one_line(setting, expect, ckpt, tmp_path, capsys):
    image(tmp_path / "in" / "a.png")
    key, value = setting.split("=")
    if value == "big":  # a type error: caught when Hydra composes the command line
        from hydra.errors import ConfigCompositionException

        with pytest.raises(ConfigCompositionException, match=key):
            derain(capsys, ckpt_path=ckpt, input=tmp_path / "in", output=tmp_path / "out", **{key: value})
        return
    status, lines, _ = derain(
        capsys, ckpt_path=ckpt, input=tmp_path / "in", output=tmp_path / "out", **{key: value}
    )
    line = error_line(lines)
    assert status == EXIT_ERROR and expect in line, line
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize("limit", some([500, 559], fast=1))
def test_max_pixels_refuses_larger_images_by_name(limit, ckpt, tmp_path, capsys):
    image(tmp_path / "in" / "big.png", size=(20, 28))  # 560 pixels
    image(tmp_path / "in" / "small.png", size=(10, 10))
    status, lines, _ = derain(
        capsys, ckpt_path=ckpt, input=tmp_path / "in", output=tmp_path / "out", max_pixels=limit
    )
    assert status == EXIT_PARTIAL
    failed = [line for line in lines if "big.png" in line]
    assert failed and "max_pixels" in failed[0] and "560" in failed[0]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["small.png"]


@pytest.mark.parametrize(
    ("extra", "expect"),
    some(
        [
            (["data.crop_size=64"], "smaller than crop_size 64"),
            (["optim.lr=-1"], "optim.lr must be > 0"),
            (["model.init_from=junk.pt"], "junk.pt"),
            (["data.crop_size=64", "data.num_workers=1"], "smaller than crop_size 64"),
        ],
        fast=1,
    ),
    ids=str,
)
def test_bad_training_settings_are_one_line(extra, expect, tmp_path):
    if "model.init_from=junk.pt" in extra:
        (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    done = _train(tmp_path, tmp_path / "run", *extra)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == EXIT_ERROR and lines[-1].startswith("error: ") and expect in lines[-1], (
        done.stderr[-2000:]
    )
    assert "Traceback" not in done.stderr


# --------------------------------------------------------------------------------------------------
# Existing files


def test_an_unrelated_file_where_an_output_goes_is_never_replaced(ckpt, tmp_path, capsys):
    src, out = tmp_path / "in", tmp_path / "out"
    image(src / "holiday.jpg")
    image(out / "holiday.png", seed=9, size=(5, 5))  # the user's own picture
    mine = (out / "holiday.png").read_bytes()
    status, lines, _ = derain(capsys, ckpt_path=ckpt, input=src, output=out)
    line = error_line(lines)
    assert status == EXIT_ERROR and "holiday.png" in line and "overwrite=true" in line
    assert (out / "holiday.png").read_bytes() == mine and sorted(os.listdir(out)) == ["holiday.png"]
    status, lines, _ = derain(capsys, ckpt_path=ckpt, input=src, output=out, overwrite=True)
    assert status == EXIT_OK and Image.open(out / "holiday.png").size == (28, 20)


def test_skip_existing_checks_the_existing_file_is_an_image(ckpt, tmp_path, capsys):
    src, out = tmp_path / "in", tmp_path / "out"
    image(src / "a.png")
    image(src / "b.png")
    out.mkdir()
    (out / "a.png").write_text("my notes, not an image")
    status, lines, _ = derain(capsys, ckpt_path=ckpt, input=src, output=out, skip_existing=True)
    assert status == EXIT_PARTIAL
    assert any("a.png" in line and "not a readable image" in line for line in lines)
    assert (out / "a.png").read_text() == "my notes, not an image" and decodes(out / "b.png")


@SLOW
def test_a_second_run_in_the_same_run_directory_is_refused(tmp_path):
    run = tmp_path / "run"
    assert _train(tmp_path, run).returncode == 0
    before = snapshot(run / "checkpoints")
    done = _train(tmp_path, run)
    line = done.stderr.strip().splitlines()[-1]
    assert done.returncode == EXIT_ERROR and "already holds a run" in line and "ckpt_path=" in line
    assert snapshot(run / "checkpoints") == before


# --------------------------------------------------------------------------------------------------
# Pictures in odd containers


def _frames(count: int) -> list[Image.Image]:
    return [Image.fromarray(np.full((12, 16, 3), 40 * i, dtype=np.uint8)) for i in range(count)]


@pytest.mark.parametrize(
    ("name", "save"),
    some(
        [
            ("anim.gif", {"format": "GIF"}),
            ("pages.tif", {"format": "TIFF"}),
            ("anim.webp", {"format": "WEBP", "lossless": True}),
            ("anim.png", {"format": "PNG"}),
        ],
        fast=2,
    ),
    ids=str,
)
def test_several_pictures_in_one_file_are_refused_by_name(name, save, ckpt, tmp_path, capsys):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    first, *rest = _frames(3)
    first.save(src / name, save_all=True, append_images=rest, **save)
    image(src / "single.gif")
    status, lines, _ = derain(capsys, ckpt_path=ckpt, input=src, output=out)
    assert status == EXIT_PARTIAL
    failed = [line for line in lines if name in line]
    assert failed and "holds 3 pictures" in failed[0]
    assert sorted(p.name for p in out.iterdir()) == ["single.png"]  # a single-frame GIF is derained


def test_the_max_pixels_refusal_estimates_the_memory_measured_in_the_readme(tmp_path):
    """12000×12000: the README measures 1.65 GiB of peak memory; the refusal's estimate says so, not 1.1."""
    from lpnet.io import ImageReadError, open_image

    path = tmp_path / "huge.png"
    Image.new("L", (12000, 12000)).save(path)  # a blank 8-bit image compresses to a small file
    with pytest.raises(ImageReadError, match=r"huge.png: 12000×12000 .* about 1\.6\d GiB of memory"):
        open_image(path, max_pixels=10_000_000)
    for side, measured in ((8000, 1.18), (9400, 1.31), (12000, 1.65)):
        from lpnet.io import derain_memory

        assert abs(derain_memory(side * side) / 2**30 - measured) < 0.05
