"""Noise, haze and the degradation catalogue (names, overrides, Hydra configs)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

import lpnet
from lpnet.data.degradations import (
    DEGRADATIONS,
    HazeConfig,
    NoiseConfig,
    add_haze,
    add_noise,
    build_degradation,
    haze_transmission,
)
from lpnet.data.rain import PRESETS, RainConfig

CONF = Path(lpnet.__file__).parent / "conf" / "degradation"


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class TestNoise:
    def test_sigma_is_empirically_right(self):
        clean = torch.full((4, 3, 128, 128), 0.5)  # mid-grey: clipping never reached at σ ≤ 40
        noisy, params = add_noise(clean, NoiseConfig(sigma=(5, 40)), _gen(0))
        for img, p in zip(noisy, params, strict=True):
            assert 5 <= p["sigma"] <= 40
            assert float((img - 0.5).std() * 255) == pytest.approx(p["sigma"], rel=0.02)
            assert abs(float((img - 0.5).mean())) < 0.01

    def test_fixed_sigma_clip_and_determinism(self):
        clean = torch.rand(2, 3, 32, 32, generator=_gen(9))
        a, _ = add_noise(clean, NoiseConfig(sigma=(50, 50)), _gen(1))
        b, _ = add_noise(clean, NoiseConfig(sigma=(50, 50)), _gen(1))
        c, _ = add_noise(clean, NoiseConfig(sigma=(50, 50), clip=False), _gen(1))
        assert torch.equal(a, b)
        assert a.min() >= 0 and a.max() <= 1
        assert c.min() < 0 or c.max() > 1
        torch.testing.assert_close(a, c.clamp(0, 1))

    def test_bad_config(self):
        with pytest.raises(ValueError, match=r"NoiseConfig.sigma must lie within"):
            NoiseConfig(sigma=(-1, 5))
        with pytest.raises(TypeError, match="clip"):
            NoiseConfig(clip="yes")


class TestHaze:
    def test_transmission_in_unit_interval(self):
        t, p = haze_transmission((3, 40, 70), HazeConfig(beta=(0.5, 3.0)), _gen(0), torch.device("cpu"))
        assert t.shape == (3, 1, 40, 70)
        assert t.min() > 0 and t.max() <= 1
        for i in range(3):
            assert float(t[i].min()) >= float(torch.exp(-p["beta"][i])) - 1e-6

    def test_formula_and_contrast(self):
        clean = torch.rand(3, 3, 48, 64, generator=_gen(9))
        config = HazeConfig()
        hazy, params = add_haze(clean, config, _gen(4))
        t, p = haze_transmission((3, 48, 64), config, _gen(4), torch.device("cpu"))
        a = p["atmosphere"][:, None, None, None]
        torch.testing.assert_close(hazy, (clean * t + a * (1 - t)).clamp(0, 1))
        for i in range(3):
            assert hazy[i].std() < clean[i].std()  # haze lowers contrast
            assert 0 < params[i]["t_min"] <= params[i]["t_mean"] <= 1

    def test_more_scattering_less_transmission(self):
        thin, _ = haze_transmission((2, 32, 32), HazeConfig(beta=(0.3, 0.3)), _gen(0), torch.device("cpu"))
        thick, _ = haze_transmission((2, 32, 32), HazeConfig(beta=(3.0, 3.0)), _gen(0), torch.device("cpu"))
        assert (thick <= thin).all() and thick.mean() < 0.5 * thin.mean()

    def test_top_is_farther_with_a_pure_gradient(self):
        t, _ = haze_transmission(
            (1, 32, 16), HazeConfig(gradient=(1, 1), beta=(1, 1)), _gen(0), torch.device("cpu")
        )
        torch.testing.assert_close(t[0, 0, 0], torch.full((16,), float(torch.exp(torch.tensor(-1.0)))))
        torch.testing.assert_close(t[0, 0, -1], torch.ones(16))


class TestCatalogue:
    def test_names(self):
        names = {"rain_light", "rain_heavy", "rain_heavy_veil", "rain_mixed", "rain_any", "noise", "haze"}
        assert frozenset(names) == DEGRADATIONS

    @pytest.mark.parametrize("name", sorted(DEGRADATIONS))
    def test_every_degradation_runs_seeded(self, name):
        degrade = build_degradation(name)
        clean = torch.rand(2, 3, 40, 40, generator=_gen(9))
        a, pa = degrade(clean, _gen(3))
        b, pb = degrade(clean, _gen(3))
        assert torch.equal(a, b) and pa == pb and len(pa) == 2
        assert a.shape == clean.shape and a.min() >= 0 and a.max() <= 1
        assert (a - clean).abs().mean() > 1e-3

    def test_overrides(self):
        degrade = build_degradation("rain_light", length=[60, 70], angle=10, blur=None)
        assert isinstance(degrade.config, RainConfig)
        assert degrade.config.length == (60.0, 70.0) and degrade.config.angle == (10.0, 10.0)
        assert degrade.config.blur == PRESETS["light"].blur
        assert build_degradation("noise", sigma=OmegaConf.create([15, 50])).config.sigma == (15.0, 50.0)

    def test_errors_name_the_choices(self):
        with pytest.raises(ValueError, match="rain_heavy"):
            build_degradation("rain_torrential")
        with pytest.raises(ValueError, match=r"'lenght'.*length"):
            build_degradation("rain_heavy", lenght=[1, 2])

    @pytest.mark.parametrize("name", sorted(DEGRADATIONS))
    def test_hydra_configs_list_every_field(self, name):
        node = OmegaConf.load(CONF / f"{name}.yaml")
        default = build_degradation(name).config
        assert set(node) == {"_target_", "name"} | {f.name for f in dataclasses.fields(default)}
        assert node.name == name
        built = instantiate(node)
        assert built.config == default
        assert built.name == name
