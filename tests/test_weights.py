"""The bundled weights (lpnet:light, lpnet:heavy, lpnet:mixed) and the adaptive default lpnet:auto: loaded by
name, scored on the shared 51-pair real sets and on rain-free photos, and what ``python -m lpnet.derain``
uses when no checkpoint is given (lpnet:auto)."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import assert_recipe_is_seeded, compose_train, run_cli, shared_dir_or_skip
from hydra import compose, initialize_config_module

from lpnet import Derainer, LPNet, load_model
from lpnet.checkpoint import bundled_weights, load_gauge, load_network, read_checkpoint, read_gauge
from lpnet.derain import main as derain_main
from lpnet.eval import evaluate
from lpnet.io import list_images, read_image
from lpnet.metrics import psnr_y

# The shared real sets (never trained on): half of Rain100L and of Rain100H by background, 51 pairs each,
# and Rain100L's clean images as rain-free photos, each scored against itself.
SETS = {
    "light": ("real-rain/rain100l-val", "auto"),
    "heavy": ("real-rain/rain100h-val", "auto"),
    "rain_free": ("real-rain/rain100l-val/norain", "rain_free"),
}
# Y-PSNR floors in dB: 0.1 dB under what the shipped weights scored (docs/results.md), so a retrained or
# damaged model that transfers worse fails; the rainy inputs score 27.13 (light) and 13.46 (heavy).
FLOORS = {
    ("auto", "light"): 29.90,
    ("auto", "heavy"): 22.33,
    ("auto", "rain_free"): 38.8,
    ("light", "light"): 30.09,
    ("light", "rain_free"): 38.8,
    ("heavy", "heavy"): 22.21,
    ("mixed", "heavy"): 22.39,
}
DEFAULT_SET_SCORES = [key for key in FLOORS if key[0] == "auto"]


def test_the_package_ships_each_model_small_and_from_its_documented_recipe(tmp_path):
    assert set(bundled_weights()) == {"auto", "light", "heavy", "mixed", "gauge"}
    gauge_path = bundled_weights()["gauge"]
    assert gauge_path.stat().st_size < 1_000_000  # 144k parameters
    _, _, gauge_meta = read_gauge(gauge_path)
    gauge_recipe = compose_train(tmp_path / "gauge", ["experiment=weights_gauge"])
    assert gauge_meta["source"] == "last.ckpt" and gauge_meta["global_step"] == gauge_recipe.trainer.max_steps
    for name, path in bundled_weights().items():
        if name in ("auto", "gauge"):
            continue
        assert path.stat().st_size < 100_000  # kilobytes: the network alone
        net = load_model(f"lpnet:{name}")
        assert net.config == LPNet().config  # the paper's network
        _, _, meta = read_checkpoint(f"lpnet:{name}")
        recipe = compose_train(tmp_path / name, [f"experiment=weights_{name}"])
        assert meta["source"] == "last.ckpt" and meta["global_step"] == recipe.trainer.max_steps
    router = load_network("lpnet:auto")
    assert router.names == ["light", "heavy"]  # drizzle and rain-free photos, then the rain expert
    spec = json.loads(bundled_weights()["auto"].read_text())
    sources = spec["experts"]
    assert sources == {"light": "lpnet:light", "heavy": "lpnet:mixed"} and spec["gauge"] == "lpnet:gauge"
    shipped_gauge = load_gauge("lpnet:gauge")
    assert all(
        torch.equal(a, b)
        for a, b in zip(router.gauge.state_dict().values(), shipped_gauge.state_dict().values(), strict=True)
    )
    for name, expert in router.experts.items():
        shipped = load_model(sources[name])
        assert all(
            torch.equal(a, b) for a, b in zip(expert.state_dict().values(), shipped.state_dict().values())
        )


def _score(name: str, data: str, tmp_path) -> dict:
    folder, layout = SETS[data]
    root = shared_dir_or_skip(folder, ".")
    overrides = [f"ckpt_path=lpnet:{name}", f"data.root={root}", f"data.layout={layout}", "device=cpu"]
    with initialize_config_module(version_base="1.3", config_module="lpnet.conf"):
        summary = evaluate(compose("eval", overrides=overrides), tmp_path)
    assert summary["images"] >= 50 and not summary["failed"]
    return summary


def _check(name: str, data: str, tmp_path) -> None:
    summary = _score(name, data, tmp_path)
    score, rainy = summary["metrics"]["test/psnr_y"], summary["rainy_input"]["test/psnr_y"]
    assert score >= FLOORS[name, data]
    if data != "rain_free":  # rain-free photos: the input is the target itself (infinite PSNR)
        assert score > rainy
    else:
        assert rainy == float("inf")


@pytest.mark.parametrize(("name", "data"), DEFAULT_SET_SCORES)
def test_the_default_helps_light_and_heavy_rain_and_leaves_rain_free_photos_alone(name, data, tmp_path):
    _check(name, data, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize(("name", "data"), [key for key in FLOORS if key not in DEFAULT_SET_SCORES])
def test_bundled_model_scores_on_the_shared_real_sets(name, data, tmp_path):
    _check(name, data, tmp_path)


# lpnet:auto's decisions on the shared sets (docs/results.md, 2026-12-06): how many images of each get some
# of the rain expert's output. The issue asks for every real rainy photo and no rain-free photo; the gauge
# reaches 23 of 30 and 1 of 51 (at a share of 0.1), so these hold that line and fail if it slips back.
DECISIONS = {  # set: (images at least, least with rain treated, most with rain treated)
    "real-photos": (30, 23, 30),
    "rain100l-val/norain": (51, 0, 1),
    "rain100h-val/rain": (51, 49, 51),
    "heavy-val-2/rain": (20, 20, 20),
}


@pytest.mark.parametrize("folder", DECISIONS)
def test_the_default_reads_rain_in_real_photos_and_none_in_rain_free_ones(folder, real_rain_dir):
    router = load_network("lpnet:auto")
    light = router.names[0]
    paths = list_images(real_rain_dir / folder)
    treated = [router.mixture(router.preview(read_image(p)[None]))[0] != {light: 1.0} for p in paths]
    count, least, most = DECISIONS[folder]
    assert len(paths) >= count
    assert least <= sum(treated) <= most, f"{folder}: {sum(treated)} of {len(paths)} treated as rain"


def test_derain_uses_the_adaptive_default_when_no_checkpoint_is_named(tmp_path, real_rain_dir):
    """No checkpoint named: lpnet:auto derains a downpour with its heavy expert (lpnet:mixed) and a rain-free
    photo with lpnet:light, and the outputs are those of the Derainer (truncated to 8 bits)."""
    heavy = real_rain_dir / "rain100h-val" / "rain" / "rain-001.png"
    rain_free = real_rain_dir / "rain100l-val" / "norain" / "norain-001.png"
    derainer = Derainer("lpnet:auto", device="cpu")
    for file, expert in ((heavy, "heavy"), (rain_free, "light")):
        out = tmp_path / expert
        assert run_cli(derain_main, f"input={file}", f"output={out}", "progress=false") == 0
        derained = read_image(out / f"{file.stem}.png")
        expected = derainer.derain_tensor(read_image(file))
        assert derainer.last_expert == expert
        assert torch.equal(derained, (expected * 255).floor() / 255)
    clean = read_image(real_rain_dir / "rain100h-val" / "norain" / "norain-001.png")[None]
    assert (
        psnr_y(read_image(tmp_path / "heavy" / "rain-001.png")[None], clean)
        > psnr_y(read_image(heavy)[None], clean) + 3
    )
    assert psnr_y(read_image(tmp_path / "light" / "norain-001.png")[None], read_image(rain_free)[None]) > 35


def test_the_weights_recipe_is_seeded(tmp_path):
    """`make weights` reproduces its weights: the same seed gives the same weights, another seed others
    (a few steps of the heavy recipe, synthetic rain, photometric jitter and all)."""
    quick = [
        "experiment=weights_heavy", "trainer.max_steps=3", "trainer.val_check_interval=3", "test=false",
        "data.crop_size=32", "data.num_workers=0", "data.val_length=1", "data.eval_crop_size=64",
        "callbacks.progress_bar.refresh_rate=0",
    ]  # fmt: skip
    assert_recipe_is_seeded(tmp_path, quick)
