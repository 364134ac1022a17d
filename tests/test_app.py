"""The web app's functions without a browser (lpnet.app): the models offered, deraining through the
command line's own path (the same bytes), one line per bad file, tile progress, scores, and its settings."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli
from PIL import Image

import lpnet.derain
from lpnet.app import Models, derain_uploads, model_choices, score
from lpnet.apply import Derainer
from lpnet.checkpoint import bundled_weights
from lpnet.config import AppCommandConfig
from lpnet.io import read_image
from lpnet.metrics import psnr_y, quantize, ssim_y


def _photo(path: Path, size: tuple[int, int] = (72, 96), seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    clean = 0.5 + 0.3 * np.sin(6 * xx[..., None] + 4 * yy[..., None] + rng.uniform(0, 6, 3))
    rainy = np.clip(clean + 0.4 * (rng.random((h, w, 1)) < 0.03), 0, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((rainy * 255).astype(np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def models() -> Models:
    return Models(AppCommandConfig(device="cpu"))


def test_the_default_comes_first_then_the_bundled_models_then_the_named_ones():
    names = model_choices(["mine.pt"])
    assert names[0] == "lpnet:auto"
    assert names[1:-1] == [f"lpnet:{n}" for n in bundled_weights() if n != "auto"]
    assert {"lpnet:light", "lpnet:heavy", "lpnet:mixed"} <= set(names) and names[-1] == "mine.pt"
    assert model_choices(["lpnet:light"]).count("lpnet:light") == 1


def test_a_browser_cannot_name_a_model_of_its_own(models, tmp_path):
    with pytest.raises(ValueError, match="not offered"):
        models.get(str(tmp_path / "elsewhere.pt"))


def test_a_missing_model_named_at_start_stops_the_app(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.pt"):
        Models(AppCommandConfig(models=[str(tmp_path / "nothere.pt")]))


def test_the_page_writes_the_bytes_lpnet_derain_writes(models, tmp_path):
    a = _photo(tmp_path / "up" / "a.png", seed=1)
    b = _photo(
        tmp_path / "up2" / "a.jpg", seed=2
    )  # the same stem: both kept, named as a folder run names them
    assert run_cli(lpnet.derain.main, f"input={a}", f"output={tmp_path / 'cli'}", "progress=false") == 0
    result = derain_uploads(models.get("lpnet:auto"), "lpnet:auto", [a, b], tmp_path / "request")
    assert not result.failed and [r.name for r in result.results] == ["a.png", "a.jpg"]
    expected = (tmp_path / "cli" / "a.png").read_bytes()
    assert result.results[0].output.read_bytes() == expected
    assert result.results[0].seconds > 0 and "lpnet:auto (its" in result.results[0].model
    with zipfile.ZipFile(result.archive) as archive:
        assert archive.namelist() == ["a.png.png", "a.jpg.png"]
        assert archive.read("a.png.png") == expected
    preview = Image.open(result.results[0].preview)
    assert preview.size == Image.open(a).size and preview.format == "PNG"


def test_each_bad_file_is_one_line_naming_it_and_the_rest_are_derained(tmp_path):
    up = tmp_path / "up"
    _photo(up / "good.png")
    (up / "damaged.png").write_bytes(b"\x89PNG\r\n\x1a\nnot the rest of a PNG")
    frames = [Image.new("RGB", (32, 32), c) for c in ("red", "blue")]
    frames[0].save(up / "animated.gif", save_all=True, append_images=frames[1:])
    nan = np.full((32, 32), np.nan, dtype=np.float32)
    Image.fromarray(nan, mode="F").save(up / "nan.tif")
    _photo(up / "big.png", size=(120, 120))
    (up / "notes.txt").write_text("not an image")
    derainer = Derainer("lpnet:light", device="cpu", max_pixels=100 * 100)
    uploads = [up / n for n in ("damaged.png", "animated.gif", "nan.tif", "big.png", "notes.txt", "good.png")]
    result = derain_uploads(derainer, "lpnet:light", uploads, tmp_path / "request")
    assert [r.name for r in result.results] == ["good.png"]
    assert len(result.failed) == 5
    for line, name in zip(result.failed, ("damaged.png", "animated.gif", "nan.tif", "big.png", "notes.txt")):
        assert name in line.split(":")[0] and "\n" not in line, line
        assert str(tmp_path) not in line, line  # the uploaded name, never the server's folders
    assert "max_pixels" in result.failed[3]


def test_tiles_report_their_progress(tmp_path):
    photo = _photo(tmp_path / "up" / "wide.png", size=(48, 400))
    derainer = Derainer("lpnet:light", device="cpu", tile=128, overlap=16)
    seen: list[tuple[int, str, int, int]] = []
    result = derain_uploads(
        derainer, "lpnet:light", [photo], tmp_path / "request", on_tiles=lambda *a: seen.append(a)
    )
    assert result.results and not result.failed
    total = seen[-1][3]
    assert total > 1 and [s[2] for s in seen] == list(range(1, total + 1))
    assert {s[:2] for s in seen} == {(0, "wide.png")}
    # the callback only watches: the same bytes as a run without it
    derainer.derain_files(photo, tmp_path / "plain", progress=False)
    assert (tmp_path / "plain" / "wide.png").read_bytes() == result.results[0].output.read_bytes()


def test_scores_are_lpnet_evals_on_the_written_output(tmp_path):
    rainy = _photo(tmp_path / "rainy.png", seed=3)
    clean = tmp_path / "clean.png"
    Image.open(rainy).filter(__import__("PIL.ImageFilter").ImageFilter.MedianFilter(3)).save(clean)
    derainer = Derainer("lpnet:light", device="cpu")
    result = derain_uploads(derainer, "lpnet:light", [rainy], tmp_path / "request", cleans=[clean])
    scores = result.results[0].scores
    target = read_image(clean)[None]
    pred = quantize(derainer(read_image(rainy)))[None]  # lpnet.eval: the quantized network output
    assert scores["psnr_y"] == pytest.approx(float(psnr_y(pred, target)), abs=1e-9)
    assert scores["ssim_y"] == pytest.approx(float(ssim_y(pred, target)), abs=1e-9)
    assert scores["input_psnr_y"] == pytest.approx(float(psnr_y(read_image(rainy)[None], target)), abs=1e-9)


def test_a_clean_image_of_another_size_is_a_note_not_a_score(tmp_path):
    rainy = _photo(tmp_path / "rainy.png")
    other = _photo(tmp_path / "other.png", size=(40, 40))
    with pytest.raises(ValueError, match="other.png is 40×40"):
        score(rainy, other, rainy)
    derainer = Derainer("lpnet:light", device="cpu")
    result = derain_uploads(derainer, "lpnet:light", [rainy], tmp_path / "request", cleans=[other])
    assert result.results[0].scores is None and "not scored" in result.results[0].note


@pytest.mark.parametrize(
    ("setting", "expect"),
    [
        ("port=0", "port must be a port number"),
        ("max_upload_mb=0", "max_upload_mb must be"),
        ("models=[nothere.pt]", "nothere.pt"),
        ("colour=blue", "colour"),
    ],
)
def test_a_bad_setting_is_one_line(setting, expect, capsys):
    import lpnet.app

    assert run_cli(lpnet.app.main, setting) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and expect in err[0], err
