"""Generated inputs (Hypothesis) for the mechanisms that own each class of input: the output-name plan, the
checkpoint gate, the layout matcher and the settings check. Each property states the invariant the mechanism
promises; a failure shrinks to a minimal example, kept below as an ``@example``.

Profiles (tests/conftest.py): ``fast`` in the default suite, ``deep`` under ``CI=true`` (more examples,
derandomized so a failure reproduces); no example database is written.
"""

from __future__ import annotations

import os
import re
import string
from pathlib import PurePath

import numpy as np
import pytest
import torch
from conftest import run_cli
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageOps

from lpnet import Derainer, LPNet, save_checkpoint
from lpnet.apply.folder import NAME_MAX, output_names, plan_folder
from lpnet.checkpoint import CheckpointError, read_checkpoint
from lpnet.data.layouts import LayoutError, find_pairs

# A file-name segment: letters of any script, digits, punctuation legal in names, up to the 255-byte limit.
_SEGMENT_CHARS = st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/\x00")
segments = st.text(_SEGMENT_CHARS, min_size=1, max_size=60).filter(
    lambda s: s not in (".", "..") and len(os.fsencode(s)) <= NAME_MAX
)
long_segments = st.integers(200, 251).flatmap(
    lambda n: st.sampled_from("dé").map(lambda c: c * (n // len(c.encode())))
)
extensions = st.sampled_from([".png", ".PNG", ".jpg", ".jpeg", ".tif", ".webp", ".png.png", ""])


@st.composite
def relative_inputs(draw) -> list[PurePath]:
    """Distinct relative image paths: nested folders, clashing stems and cases, names at the byte limit."""
    stems = draw(st.lists(st.one_of(segments, long_segments), min_size=1, max_size=8))
    folders = draw(
        st.lists(st.sampled_from(["", "a", "A", "a/b", "x.png"]), min_size=len(stems), max_size=len(stems))
    )
    paths = set()
    for stem, folder in zip(stems, folders):
        for ext in draw(st.lists(extensions, min_size=1, max_size=3, unique=True)):
            name = stem + ext
            if len(os.fsencode(name)) <= NAME_MAX:
                paths.add(PurePath(folder) / name if folder else PurePath(name))
    # an input file and an input folder of one name cannot both exist
    folders_used = {str(parent) for p in paths for parent in p.parents}
    return sorted(p for p in paths if str(p) not in folders_used) or [PurePath("x.png")]


@given(relative_inputs(), st.sampled_from(["png", "tif", "tiff"]))
@example([PurePath("d" * 251 + ".png"), PurePath("d" * 251 + ".jpg")], "png")  # issue 23, by hand: Errno 36
@example([PurePath("x" * 251 + ".png")], "tiff")
def test_the_name_plan_gives_every_input_its_own_name_that_fits(relatives, fmt):
    names = output_names(relatives, fmt)
    assert len(names) == len(relatives)
    keys = [n.as_posix().casefold() for n in names]
    assert len(set(keys)) == len(keys)  # distinct even on a case-blind file system
    folders = {parent.as_posix().casefold() for n in names for parent in n.parents}
    assert not folders & set(keys)  # no output takes a folder's name
    for relative, name in zip(relatives, names):
        assert name.parent == relative.parent and name.name.endswith(f".{fmt}")
        assert len(os.fsencode(name.name)) <= NAME_MAX


# ---- the checkpoint gate --------------------------------------------------------------------------------

_ODD_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5), st.lists(st.integers(-3, 2**40), max_size=7),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)  # fmt: skip
_FIELDS = ["num_levels", "widths", "width_multiplier", "recursions", "share_weights", "residual_skip",
           "final_relu", "negative_slope", "channels", "unknown_setting"]  # fmt: skip


@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory) -> dict:
    path = save_checkpoint(
        tmp_path_factory.mktemp("ckpt") / "m.pt", LPNet(width_multiplier=0.25, recursions=1)
    )
    return torch.load(path, weights_only=True)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(_FIELDS), value=_ODD_VALUES, drop=st.booleans())
@example(field="num_levels", value=100_000, drop=False)  # issue 13: a crafted file with 100,000 levels
@example(field="widths", value=[16000] * 5, drop=False)
def test_a_checkpoint_mutated_field_by_field_loads_or_is_one_line_naming_the_file(
    small_checkpoint, tmp_path, field, value, drop
):
    ckpt = {**small_checkpoint, "model_config": dict(small_checkpoint["model_config"])}
    if drop:
        ckpt["model_config"].pop(field, None)
    else:
        ckpt["model_config"][field] = value
    path = tmp_path / "mutated.pt"
    torch.save(ckpt, path)
    try:
        config, state, _ = read_checkpoint(path)
    except CheckpointError as err:
        message = str(err)
        assert message.startswith(f"{path}: ") and "\n" not in message
        return
    # Accepted: then it describes an LPNet whose weights load (or the loader names the misfit).
    assert config.num_levels >= 1 and all(isinstance(k, str) for k in state)


# ---- the layout matcher ------------------------------------------------------------------------------

_PAIR_NAMES = st.sampled_from(
    ["rain/rain-1.png", "rain/rain-2.png", "rain/rain-10.png", "norain/norain-1.png", "norain/norain-2.png",
     "norain/norain-010.png", "rain/x.png", "norain/x.png", "rain/x.jpg", "rain/notes.txt", "input/a.png",
     "label/a.png", "target/a.png", "rain/.hidden.png", "norain/rain-1.png"]
)  # fmt: skip


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(_PAIR_NAMES, min_size=1, max_size=10, unique=True))
def test_a_folder_of_any_contents_pairs_exactly_or_is_refused_naming_it(tmp_path_factory, names):
    root = tmp_path_factory.mktemp("pairs")
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        if name.endswith(".txt"):
            (root / name).write_text("notes")
        else:
            Image.new("RGB", (4, 4)).save(root / name, format="PNG")
    try:
        pairs = find_pairs(root, "auto")
    except LayoutError as err:
        assert str(root) in str(err)
        return
    assert pairs  # never an empty success
    for pair in pairs:
        assert pair.rainy.is_file() and pair.clean.is_file() and pair.rainy.is_relative_to(root)
    assert len({p.key for p in pairs}) == len(pairs)


# ---- settings ----------------------------------------------------------------------------------------

_KEYS = st.sampled_from(
    ["tile", "overlap", "batch_size", "device", "format", "max_pixels", "precision", "shard", "skip_existing",
     "pipeline", "no_such_setting", "data.root", "grid.images", "metrics.round_y"]
)  # fmt: skip
_VALUES = st.one_of(
    st.sampled_from(["", "null", "-1", "0", "1e9", "abc", "[1,2]", "{a:1}", "true", "3/2", "cuda:7", "1.5"]),
    st.text(string.ascii_letters + string.digits + "-_.", max_size=6),
)


@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=_KEYS, value=_VALUES)
@example(key="max_pixels", value="-1")  # found by the deep profile: every image failed, no settings line
def test_a_generated_setting_is_done_or_one_line_naming_it(tmp_path, capsys, key, value):
    from lpnet.derain import main as derain_main

    source = tmp_path / "in.png"
    if not source.exists():
        Image.new("RGB", (12, 12), (80, 90, 100)).save(source)
    out = tmp_path / "out"
    status = run_cli(
        derain_main, f"input={source}", f"output={out}", "ckpt_path=lpnet:light", "progress=false",
        "overwrite=true", f"{key}={value}",
    )  # fmt: skip
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if status == 0:
        return
    lines = [line for line in err.strip().splitlines() if line]
    # A refused setting is an ``error:`` line; a valid one no image meets (max_pixels=1) fails the image by
    # name: either way one line naming the key.
    assert status == 2 and len(lines) == 1 and lines[0].startswith(("error: ", "failed: ")), (status, err)
    assert key.split(".")[-1] in lines[0] or key.split(".")[0] in lines[0] or value in lines[0], lines[0]


# ---- images of generated size, mode, orientation -------------------------------------------------------

# Pillow modes lpnet reads, and what it writes for each (README "derained as / written as").
_GREY_MODES = {"1", "L", "I;16", "I", "F"}
_IMAGE_MODES = sorted(_GREY_MODES | {"LA", "P", "PA", "RGB", "RGBA", "CMYK"})
_ORIENTATION = 0x0112


def _generated_image(mode: str, height: int, width: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    u8 = lambda *shape: rng.integers(0, 256, (height, width, *shape), dtype=np.uint8)  # noqa: E731
    if mode == "1":
        return Image.fromarray(u8()).convert("1")
    if mode in ("P", "PA"):
        image = Image.fromarray(u8(), "L").convert("P")
        image.putpalette(rng.integers(0, 256, 768, dtype=np.uint8).tobytes())
        return image if mode == "P" else Image.merge("PA", [image.getchannel(0), Image.fromarray(u8())])
    if mode == "I;16":
        return Image.fromarray(rng.integers(0, 65536, (height, width), dtype=np.uint16))
    if mode == "I":
        return Image.fromarray(rng.integers(0, 65536, (height, width)).astype(np.int32), "I")
    if mode == "F":
        return Image.fromarray(rng.random((height, width), dtype=np.float32), "F")
    bands = len(mode)
    return Image.fromarray(u8(bands) if bands > 1 else u8(), mode)


@pytest.fixture(scope="module")
def whole_and_tiled(tmp_path_factory):
    torch.manual_seed(0)
    net = LPNet(width_multiplier=0.25, recursions=1)
    return Derainer(net, device="cpu"), Derainer(net, device="cpu", tile=16)


@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    mode=st.sampled_from(_IMAGE_MODES), height=st.integers(1, 80), width=st.integers(1, 80),
    orientation=st.sampled_from([1, 3, 6, 8]), seed=st.integers(0, 2**16),
)  # fmt: skip
@example(mode="PA", height=1, width=1, orientation=6, seed=0)
@example(mode="I;16", height=33, width=17, orientation=8, seed=1)
def test_an_image_of_any_mode_size_and_orientation_comes_out_as_documented(
    whole_and_tiled, tmp_path_factory, mode, height, width, orientation, seed
):
    folder = tmp_path_factory.mktemp("image")
    image = _generated_image(mode, height, width, seed)
    exif = Image.Exif()
    exif[_ORIENTATION] = orientation
    (folder / "in").mkdir()
    image.save(folder / "in" / "x.tif", exif=exif)
    upright = ImageOps.exif_transpose(Image.open(folder / "in" / "x.tif"))
    outputs = []
    for derainer, name in zip(whole_and_tiled, ("whole", "tiled")):
        summary = derainer.derain_files(folder / "in", folder / name, progress=False, format="tif")
        assert len(summary.written) == 1 and not summary.failed, summary.failed
        outputs.append(Image.open(summary.written[0]))
    out = outputs[0]
    assert out.size == upright.size  # orientation applied, size kept
    has_alpha = mode in ("LA", "PA", "RGBA")
    grey = mode in _GREY_MODES or mode == "LA"
    assert out.mode == {(True, True): "LA", (True, False): "L", (False, True): "RGBA"}.get(
        (grey, has_alpha), "RGB"
    )
    if has_alpha:  # alpha passes through unchanged
        assert np.array_equal(np.asarray(out.getchannel("A")), np.asarray(upright.getchannel("A")))
    # Tiled equals whole-image deraining to float rounding (one 8-bit step after truncation).
    difference = np.abs(np.asarray(out, np.int16) - np.asarray(outputs[1], np.int16))
    assert difference.max(initial=0) <= 1


# ---- folder runs over generated trees ------------------------------------------------------------------

_ENTRY_KINDS = st.sampled_from(["image", "image", "image", "garbage", "text", "link", "loop"])
_TREE_NAMES = st.text(st.sampled_from("aAbé-_ .x"), min_size=1, max_size=6).filter(
    lambda s: s.strip(" .") == s and s not in (".", "..")
)


@st.composite
def trees(draw) -> list[tuple[str, str]]:
    """``(relative path, kind)`` entries: images, undecodable files named as images, other files, links."""
    entries: dict[str, str] = {}
    for _ in range(draw(st.integers(1, 7))):
        folder = draw(st.sampled_from(["", "sub/", "Sub/", "sub/deep/"]))
        stem = draw(_TREE_NAMES)
        ext = draw(st.sampled_from([".png", ".PNG", ".jpg", ".tif"]))
        kind = draw(_ENTRY_KINDS)
        ext = ".txt" if kind == "text" else ext
        entries.setdefault(f"{folder}{stem}{ext}" if kind != "loop" else f"{folder}{stem}-loop", kind)
    folders = {str(PurePath(p).parent) for p in entries}
    return sorted((p, k) for p, k in entries.items() if p not in folders)


@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entries=trees(), foreign=st.booleans())
@example(entries=[("a.png", "image"), ("A.png", "image"), ("a.jpg", "image")], foreign=False)
def test_a_folder_run_gives_each_readable_image_one_output_and_touches_nothing_else(
    whole_and_tiled, tmp_path_factory, entries, foreign
):
    root = tmp_path_factory.mktemp("tree")
    source, output = root / "in", root / "out"
    source.mkdir()
    rng = np.random.default_rng(len(entries))
    for relative, kind in entries:
        path = source / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if kind == "image":
            Image.fromarray(rng.integers(0, 256, (9, 13, 3), dtype=np.uint8)).save(
                path, format="PNG" if path.suffix.lower() != ".jpg" else "JPEG"
            )
        elif kind in ("garbage", "text"):
            path.write_bytes(b"not an image")
        elif kind == "link":
            path.symlink_to(root)  # out of the folder: not followed
        else:
            path.symlink_to(path.parent)  # a loop
    before = {p: p.read_bytes() for p in source.rglob("*") if p.is_file() and not p.is_symlink()}
    derainer = whole_and_tiled[0]
    readable = sum(kind == "image" for _, kind in entries)
    damaged = sum(kind == "garbage" for _, kind in entries)
    stranger = output / "not-lpnet.png"
    if foreign and readable:
        # A file lpnet did not write where an output goes: refused before any work, left as it was.
        first = next(source / p for p, kind in entries if kind == "image")
        stranger = dict(plan_folder(source, output, "png", None).jobs)[first]
        stranger.parent.mkdir(parents=True)
        stranger.write_bytes(b"someone's file")
        with pytest.raises(FileExistsError, match=re.escape(str(output))) as refusal:
            derainer.derain_files(source, output, progress=False)
        assert stranger.name in str(refusal.value)
        assert stranger.read_bytes() == b"someone's file" and sum(1 for _ in output.rglob("*.png")) == 1
        return
    if not readable and not damaged:
        return  # nothing named as an image: the folder's refusal is the CLI's (tests/test_derain_cli.py)
    summary = derainer.derain_files(source, output, progress=False)
    assert len(summary.written) == readable and len(summary.failed) == damaged
    assert len({p.as_posix().casefold() for p in summary.written}) == readable  # one output each
    for written in summary.written:
        assert written.is_relative_to(output) and Image.open(written).size == (13, 9)
    assert {p: p.read_bytes() for p in before} == before  # no input touched
    rerun = derainer.derain_files(source, output, progress=False, skip_existing=True)
    assert not rerun.written and len(rerun.failed) == damaged  # nothing redone
