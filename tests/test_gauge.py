"""The rain gauge: its labels, its file format and gate, its training run, and routers that read it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import assert_recipe_is_seeded, compose_train, write_pair_tree
from PIL import Image

from lpnet import CheckpointError, Derainer, LPNet, read_checkpoint, save_checkpoint
from lpnet.checkpoint import load_gauge, load_network, read_gauge, save_gauge
from lpnet.models.gauge import GaugeReading, RainGauge, rain_left, rain_maps
from lpnet.models.router import RainRouter


def test_rain_maps_are_the_light_rain_adds_per_cell():
    clean = torch.full((1, 3, 32, 48), 0.4)
    rainy = clean.clone()
    rainy[..., :16, :16] += 0.2  # one cell gains 0.2 in every channel
    rainy[..., 16:, 16:32] -= 0.3  # a darker cell: rain never darkens, it counts nothing
    rainy[:, 0, :16, 32:] += 0.3  # red only: a third of it in grey
    maps = rain_maps(rainy, clean, 16)
    assert maps.shape == (1, 2, 3)
    assert torch.allclose(maps[0], torch.tensor([[0.2, 0.0, 0.1], [0.0, 0.0, 0.0]]), atol=1e-6)


def test_a_gauge_reads_any_size_and_reports_strength_and_presence():
    torch.manual_seed(0)
    gauge = RainGauge().eval()
    reading = gauge.read(torch.rand(2, 3, 40, 70))
    assert isinstance(reading, GaugeReading) and reading.strength.shape == reading.presence.shape == (2,)
    assert bool((reading.strength >= 0).all()) and bool(
        ((reading.presence >= 0) & (reading.presence <= 1)).all()
    )
    assert gauge.cell == 16 and gauge(torch.rand(1, 3, 40, 70)).shape == (1, 2, 3, 5)


def test_rain_left_is_the_sets_rain_read_after_over_before():
    """Σ strength(derained) / Σ strength(rainy) over the set, pairs of any size; NaN with no rain before."""
    torch.manual_seed(0)
    gauge = RainGauge().eval()
    pairs = [
        (torch.rand(1, 3, 40, 70), torch.rand(1, 3, 40, 70)),
        (torch.rand(1, 3, 64, 32), torch.rand(1, 3, 64, 32)),
    ]
    strength = [[float(gauge.read(x).strength) for x in pair] for pair in pairs]
    expected = sum(after for _, after in strength) / sum(before for before, _ in strength)
    assert rain_left(gauge, pairs) == pytest.approx(expected)
    assert rain_left(gauge, [(x, x) for x, _ in pairs]) == pytest.approx(1.0)  # nothing removed
    with torch.no_grad():
        gauge.body[-1].bias.fill_(-50.0)  # reads no rain anywhere
    assert np.isnan(rain_left(gauge, pairs))


class TestGaugeFiles:
    def test_a_gauge_file_round_trips_and_is_not_an_lpnet(self, tmp_path):
        torch.manual_seed(1)
        gauge = RainGauge(widths=[8, 8], strides=[2, 2])
        path = save_gauge(tmp_path / "g.pt", gauge, {"note": "test"})
        loaded = load_gauge(path)
        assert loaded.config == gauge.config and read_gauge(path)[2] == {"note": "test"}
        for a, b in zip(gauge.state_dict().values(), loaded.state_dict().values()):
            assert torch.equal(a, b)
        with pytest.raises(CheckpointError, match=rf"{path}: a rain gauge"):
            read_checkpoint(path)

    def test_the_gate_refuses_bad_gauges_by_name(self, tmp_path):
        gauge = RainGauge(widths=[8, 8], strides=[2, 2])
        save_checkpoint(tmp_path / "net.pt", LPNet())
        with pytest.raises(CheckpointError, match=r"net.pt: not a rain gauge"):
            read_gauge(tmp_path / "net.pt")
        gauge.body[0].weight.data[0, 0, 0, 0] = float("nan")
        save_gauge(tmp_path / "nan.pt", gauge)
        with pytest.raises(CheckpointError, match=r"nan.pt: weight 'body.0.weight' holds NaN"):
            load_gauge(tmp_path / "nan.pt")
        huge = {
            "format": "lpnet-gauge",
            "version": 1,
            "gauge_config": {"widths": [512] * 60, "strides": [1] * 60},
        }
        torch.save({**huge, "state_dict": {"w": torch.zeros(1)}}, tmp_path / "huge.pt")
        with pytest.raises(CheckpointError, match=r"huge.pt: a gauge of [\d,]+ parameters"):
            read_gauge(tmp_path / "huge.pt")


class FixedGauge(RainGauge):
    """A gauge whose reading is set by the test: presence and strength per image, by the image's mean."""

    def __init__(self, readings: dict[float, tuple[float, float]]) -> None:
        super().__init__(widths=[4], strides=[2])
        self.readings = readings

    def read(self, x: torch.Tensor) -> GaugeReading:
        values = [self.readings[round(float(image.mean()), 2)] for image in x]
        return GaugeReading(
            strength=torch.tensor([v[0] for v in values]), presence=torch.tensor([v[1] for v in values])
        )


def _net(seed: int) -> LPNet:
    torch.manual_seed(seed)
    return LPNet().eval()


def _flat(level: float, size: tuple[int, int] = (40, 56)) -> torch.Tensor:
    return torch.full((1, 3, *size), level)


class TestARouterThatReadsAGauge:
    @pytest.fixture
    def router(self) -> RainRouter:
        experts = {"light": _net(1), "mixed": _net(2), "heavy": _net(3)}
        # mean 0.2: rain-free; 0.3: some rain, weak; 0.5: much rain, strong
        gauge = FixedGauge({0.2: (0.001, 0.1), 0.3: (0.02, 0.5), 0.5: (0.3, 0.95)})
        return RainRouter(experts, thresholds=[0.1], gauge=gauge, presence=[0.2, 0.8])

    def test_presence_sets_the_rain_experts_share_and_strength_which_one(self, router):
        x = torch.cat([_flat(0.2), _flat(0.3), _flat(0.5)])
        assert router.mixture(x) == [
            {"light": 1.0},
            pytest.approx({"light": 0.5, "mixed": 0.5}),
            {"heavy": 1.0},
        ]
        with torch.no_grad():
            experts = {name: net.derain(x) for name, net in router.experts.items()}
        expected = torch.cat(
            [
                experts["light"][:1],
                0.5 * experts["light"][1:2] + 0.5 * experts["mixed"][1:2],
                experts["heavy"][2:],
            ]
        )
        assert torch.allclose(router.derain(x), expected, atol=1e-6)

    @pytest.mark.parametrize(
        ("settings", "match"),
        [({"probe": "light"}, "with a probe .* or with a gauge"),
         ({"presence": [0.8, 0.2]}, "presence \\[low, high\\]"),
         ({"thresholds": []}, "thresholds must be 1 increasing")],
    )  # fmt: skip
    def test_bad_settings_are_refused_by_name(self, router, settings, match):
        arguments = {"thresholds": [0.1], "gauge": router.gauge, "presence": [0.2, 0.8], **settings}
        with pytest.raises(ValueError, match=match):
            RainRouter(dict(router.experts), **arguments)

    def test_the_derainer_blends_tile_by_tile_and_says_what_it_chose(self, router, tmp_path):
        derainer = Derainer(router, device="cpu", tile=24)  # several tiles per image
        plain = {name: Derainer(net, device="cpu", tile=24) for name, net in router.experts.items()}
        x = _flat(0.3, (50, 70))[0]
        y = derainer.derain_tensor(x)
        assert derainer.last_expert == "light 50% + mixed 50%"
        expected = 0.5 * plain["light"].derain_tensor(x) + 0.5 * plain["mixed"].derain_tensor(x)
        assert torch.allclose(y, expected.clamp(0, 1), atol=1e-5)
        pixels = (x.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        out = np.asarray(derainer(Image.fromarray(pixels))).astype(int)  # the file path: tile by tile, 8-bit
        assert derainer.last_expert == "light 50% + mixed 50%"
        decoded = derainer.derain_tensor(torch.from_numpy(pixels).permute(2, 0, 1).float() / 255)
        assert np.abs(out - decoded.permute(1, 2, 0).numpy() * 255).max() <= 1.0
        derainer(Image.fromarray(np.full((40, 56, 3), round(0.5 * 255), np.uint8)))
        assert derainer.last_expert == "heavy"

    def test_a_router_file_names_its_gauge(self, tmp_path):
        for name, seed in (("light", 1), ("rain", 2)):
            save_checkpoint(tmp_path / f"{name}.pt", _net(seed))
        save_gauge(tmp_path / "gauge.pt", RainGauge(widths=[8, 8], strides=[2, 2]))
        spec = {
            "format": "lpnet-router",
            "experts": {"light": "light.pt", "rain": "rain.pt"},
            "gauge": "gauge.pt",
            "presence": [0.3, 0.7],
            "options": {"preview_side": 1024},
        }
        (tmp_path / "auto.json").write_text(json.dumps(spec))
        router = load_network(tmp_path / "auto.json")
        assert isinstance(router.gauge, RainGauge) and router.presence == [0.3, 0.7]
        assert router.names == ["light", "rain"] and router.preview_side == 1024
        spec["gauge"] = 3
        (tmp_path / "bad.json").write_text(json.dumps(spec))
        with pytest.raises(CheckpointError, match="'gauge' must be the path of a gauge file"):
            load_network(tmp_path / "bad.json")


def test_a_gauge_trains_logs_every_set_and_converts(tmp_path):
    from lpnet.convert import convert
    from lpnet.train import train

    real = write_pair_tree(tmp_path / "real", count=2, size=(48, 64), seed=5)
    clean_photos = tmp_path / "photos"
    write_pair_tree(clean_photos, count=6, size=(96, 96), seed=6)
    out = tmp_path / "run"
    cfg = compose_train(out, [
        "experiment=weights_gauge", f"data.clean_dir={clean_photos / 'norain'}", "data.crop_size=48",
        "data.batch_size=2", "model.sides=[48,32]", "trainer.max_steps=4", "trainer.val_check_interval=2",
        "trainer.log_every_n_steps=1", "callbacks.progress_bar.refresh_rate=0", "data.num_workers=0",
        f"data.real_val={{wet:{real}}}", f"data.clean_val={{dry:{real / 'norain'}}}", "data.val_length=2",
        "data.test_length=2",
    ])  # fmt: skip
    summary = train(cfg)
    metrics = summary["metrics"]
    for stage in ("val", "val_real_wet", "val_clean_dry", "test"):
        for name in ("strength", "strength_true", "presence", "strength_log_error"):
            assert np.isfinite(metrics[f"{stage}/{name}"]), (stage, name)
    assert metrics["val_clean_dry/strength_true"] == 0  # rain-free photos hold no rain
    assert summary["macs_per_pixel"] is None and summary["params"] > 0
    gauge = convert(out / "checkpoints" / "last.ckpt", tmp_path / "gauge.pt")
    assert isinstance(gauge, RainGauge) and load_gauge(tmp_path / "gauge.pt").config == gauge.config


def test_the_gauge_recipe_is_seeded(tmp_path):
    """`make weights` reproduces lpnet:gauge: the same seed gives the same weights (rain, JPEG, jitter and
    the side drawn per step included), another seed others."""
    photos = write_pair_tree(tmp_path / "photos", count=4, size=(96, 96), seed=6) / "norain"
    quick = [
        "experiment=weights_gauge", f"data.clean_dir={photos}", "data.crop_size=48", "data.batch_size=2",
        "model.sides=[48,32]", "trainer.max_steps=3", "trainer.val_check_interval=3", "test=false",
        "data.num_workers=0", "data.val_length=1", "callbacks.progress_bar.refresh_rate=0",
    ]  # fmt: skip
    assert_recipe_is_seeded(tmp_path, quick)
