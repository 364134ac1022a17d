"""Pairing rules of every benchmark layout: tiny trees built in tmp_path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lpnet.data.layouts import LAYOUTS, LayoutError, Pair, detect_layout, find_pairs, natural_key
from lpnet.io import is_image_file


def make_tree(root: Path, names: list[str]) -> Path:
    """Write a tiny 4×6 image (format by suffix; text for other suffixes) per name; folders end in '/'."""
    for name in names:
        path = root / name
        if name.endswith("/"):
            path.mkdir(parents=True, exist_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if not is_image_file(path):
            path.write_text("not an image")
            continue
        Image.fromarray(np.full((4, 6, 3), len(name), np.uint8)).save(path)
    return root


def rel(pairs: list[Pair], root: Path) -> list[tuple[str, str, str]]:
    return [(str(p.rainy.relative_to(root)), str(p.clean.relative_to(root)), p.key) for p in pairs]


# layout -> (files, expected (rainy, clean, key) in order)
CASES = {
    "official": (
        ["input/1.png", "input/2.png", "input/10.png", "label/2.png", "label/10.png", "label/1.png"],
        [("input/1.png", "label/1.png", "1"), ("input/2.png", "label/2.png", "2"),
         ("input/10.png", "label/10.png", "10")],
    ),
    "prenet_train": (
        ["rain-1.png", "rain-2.png", "rain-10.png", "norain-10.png", "norain-2.png", "norain-1.png"],
        [("rain-1.png", "norain-1.png", "rain-1"), ("rain-2.png", "norain-2.png", "rain-2"),
         ("rain-10.png", "norain-10.png", "rain-10")],
    ),
    "prenet_test": (
        ["rainy/rain-001.png", "rainy/rain-002.png", "norain-001.png", "norain-002.png"],
        [("rainy/rain-001.png", "norain-001.png", "rain-001"),
         ("rainy/rain-002.png", "norain-002.png", "rain-002")],
    ),
    "rain_norain": (
        # listing order would pair rain-10 with norain-002: matching must go by number
        ["rain/rain-1.png", "rain/rain-10.png", "rain/rain-2.png", "rain/x.png",
         "norain/norain-001.png", "norain/norain-002.png", "norain/norain-010.png", "norain/x.png"],
        [("rain/rain-1.png", "norain/norain-001.png", "rain-1"),
         ("rain/rain-2.png", "norain/norain-002.png", "rain-2"),
         ("rain/rain-10.png", "norain/norain-010.png", "rain-10"), ("rain/x.png", "norain/x.png", "x")],
    ),
    "rain1400": (
        ["rainy_image/1_1.jpg", "rainy_image/1_2.jpg", "rainy_image/1_14.jpg", "rainy_image/2_1.jpg",
         "ground_truth/1.jpg", "ground_truth/2.jpg"],
        [("rainy_image/1_1.jpg", "ground_truth/1.jpg", "1_1"),
         ("rainy_image/1_2.jpg", "ground_truth/1.jpg", "1_2"),
         ("rainy_image/1_14.jpg", "ground_truth/1.jpg", "1_14"),
         ("rainy_image/2_1.jpg", "ground_truth/2.jpg", "2_1")],
    ),
    "rain12": (
        ["1_in.png", "1_GT.png", "2_in.png", "2_GT.png", "12_in.png", "12_GT.png"],
        [("1_in.png", "1_GT.png", "1_in"), ("2_in.png", "2_GT.png", "2_in"),
         ("12_in.png", "12_GT.png", "12_in")],
    ),
    "side_by_side": (
        ["2.jpg", "1.jpg", "10.jpg"],
        [("1.jpg", "1.jpg", "1"), ("2.jpg", "2.jpg", "2"), ("10.jpg", "10.jpg", "10")],
    ),
    "rain13k": (
        ["input/a.png", "input/b.jpg", "target/a.png", "target/b.png"],
        [("input/a.png", "target/a.png", "a"), ("input/b.jpg", "target/b.png", "b")],
    ),
    "rain_free": (
        ["b.jpg", "a.png", "10.png", "2.png"],
        [("2.png", "2.png", "2"), ("10.png", "10.png", "10"), ("a.png", "a.png", "a"),
         ("b.jpg", "b.jpg", "b")],
    ),
}  # fmt: skip


def test_every_layout_has_a_case():
    assert set(CASES) == set(LAYOUTS)


@pytest.mark.parametrize("layout", sorted(CASES))
def test_pairs_and_detection(tmp_path, layout):
    files, expected = CASES[layout]
    root = make_tree(tmp_path, [*files, "readme.txt", ".hidden.png"])
    options = {"rainy_side": "left"} if layout == "side_by_side" else {}
    # rain_free is only ever named: to detection the same folder of photos is side by side.
    assert detect_layout(root) == ("side_by_side" if layout == "rain_free" else layout)
    for name in (layout,) if layout == "rain_free" else (layout, "auto"):
        pairs = find_pairs(root, name, **options)
        assert rel(pairs, root) == expected
    if layout == "side_by_side":
        assert {p.rainy_side for p in pairs} == {"left"}
    else:
        assert all(p.rainy_side is None for p in pairs)


@pytest.mark.parametrize(
    ("layout", "files", "listed"),
    [
        (
            "official",
            ["input/1.png", "input/2.png", "label/1.png", "label/3.png"],
            ["input/2.png", "label/3.png"],
        ),
        (
            "prenet_train",
            ["rain-1.png", "norain-1.png", "rain-2.png", "notes.png"],
            ["rain-2.png", "notes.png"],
        ),
        (
            "prenet_test",
            ["rainy/rain-001.png", "rainy/rain-002.png", "norain-001.png"],
            ["rainy/rain-002.png"],
        ),
        (
            "rain_norain",
            ["rain/rain-1.png", "norain/norain-1.png", "norain/norain-2.png"],
            ["norain/norain-2.png"],
        ),
        (
            "rain1400",
            ["rainy_image/1_1.jpg", "ground_truth/1.jpg", "ground_truth/2.jpg"],
            ["ground_truth/2.jpg"],
        ),
        (
            "rain1400",
            ["rainy_image/1_1.jpg", "rainy_image/x.jpg", "ground_truth/1.jpg"],
            ["rainy_image/x.jpg"],
        ),
        ("rain12", ["1_in.png", "1_GT.png", "2_in.png"], ["2_in.png"]),
        ("rain13k", ["input/a.png", "target/a.png", "target/b.png"], ["target/b.png"]),
    ],
)
def test_unmatched_files_are_listed(tmp_path, layout, files, listed):
    root = make_tree(tmp_path, files)
    with pytest.raises(LayoutError) as err:
        find_pairs(root, layout)
    message = str(err.value)
    assert layout in message and str(root) in message
    for name in listed:
        assert name in message
    assert LAYOUTS[layout].structure in message


def test_duplicate_ids_are_refused(tmp_path):
    root = make_tree(tmp_path, ["rain/rain-1.png", "rain/rain-001.png", "norain/norain-1.png"])
    with pytest.raises(LayoutError, match="share one pair id") as err:
        find_pairs(root, "rain_norain")
    assert "rain/rain-1.png" in str(err.value) and "rain/rain-001.png" in str(err.value)


def test_same_stem_two_extensions_is_refused(tmp_path):
    root = make_tree(tmp_path, ["input/a.png", "input/a.jpg", "target/a.png"])
    with pytest.raises(LayoutError, match="share one pair id"):
        find_pairs(root, "rain13k")


def test_side_by_side_needs_its_side(tmp_path):
    root = make_tree(tmp_path, ["1.png"])
    with pytest.raises(LayoutError, match="rainy_side"):
        find_pairs(root, "side_by_side")
    with pytest.raises(LayoutError, match="rainy_side"):
        find_pairs(root, "side_by_side", rainy_side="top")
    assert find_pairs(root, "side_by_side", rainy_side="right")[0].rainy_side == "right"


def test_empty_layout_folders(tmp_path):
    root = make_tree(tmp_path, ["input/", "label/"])
    with pytest.raises(LayoutError, match="no pairs"):
        find_pairs(root, "official")
    with pytest.raises(LayoutError, match="missing"):
        find_pairs(make_tree(tmp_path / "b", ["input/1.png"]), "official")


def test_detection_failure_lists_found_and_expected(tmp_path):
    root = make_tree(tmp_path, ["weights/", "train/input/1.png", "train/label/1.png", "notes.txt"])
    with pytest.raises(LayoutError) as err:
        detect_layout(root)
    message = str(err.value)
    assert "fits no known layout" in message
    assert "notes.txt" in message and "weights/" in message
    assert "train/ (official)" in message  # the hint: the split folder is one level down
    for layout in LAYOUTS.values():
        assert layout.structure in message


def test_ambiguous_tree_is_refused(tmp_path):
    root = make_tree(tmp_path, ["input/1.png", "label/1.png", "target/1.png"])
    with pytest.raises(LayoutError, match=r"several layouts \(official, rain13k\)"):
        detect_layout(root)
    assert len(find_pairs(root, "official")) == 1  # an explicit layout settles it


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="unknown layout 'rain100'"):
        find_pairs(tmp_path, "rain100")
    with pytest.raises(ValueError, match="unknown layout option"):
        find_pairs(tmp_path, "auto", rainy_sid="left")
    with pytest.raises(LayoutError, match="no such folder"):
        find_pairs(tmp_path / "missing")
    with pytest.raises(LayoutError, match="no such folder .* get the benchmark from its authors"):
        detect_layout(tmp_path / "missing")


def test_natural_key():
    names = ["rain-10", "rain-2", "rain-1", "b", "a"]
    assert sorted(names, key=natural_key) == ["a", "b", "rain-1", "rain-2", "rain-10"]


def test_official_sample_data(official_dir):
    assert detect_layout(official_dir / "test") == "rain_norain"
    assert detect_layout(official_dir / "train") == "official"
    test = find_pairs(official_dir / "test")
    assert [(p.rainy.name, p.clean.name) for p in test] == [
        (f"rain-00{i}.png", f"norain-00{i}.png") for i in (1, 2, 3)
    ]
    train = find_pairs(official_dir / "train")
    assert [(p.rainy.parent.name, p.rainy.name, p.clean.parent.name, p.clean.name) for p in train] == [
        ("input", f"{i}.png", "label", f"{i}.png") for i in (1, 2)
    ]
