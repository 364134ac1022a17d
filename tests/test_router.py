"""The adaptive default's mechanism: RainRouter (models/router.py), router files (checkpoint.py) and the
Derainer that derains each image with the expert its rain strength chooses (apply/derainer.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from lpnet import CheckpointError, Derainer, LPNet, load_model, read_checkpoint, save_checkpoint
from lpnet.checkpoint import load_network
from lpnet.models import gauge
from lpnet.models.router import RainRouter, preview_factor, residual_strength


def _net(seed: int) -> LPNet:
    torch.manual_seed(seed)
    return LPNet().eval()


@pytest.fixture
def experts() -> dict[str, LPNet]:
    return {"light": _net(1), "heavy": _net(2)}


def _streaks(height: int, width: int, amount: float, seed: int = 0) -> torch.Tensor:
    """A smooth image with bright vertical streaks over ``amount`` of its columns: (1, 3, H, W)."""
    g = torch.Generator().manual_seed(seed)
    x = 0.3 + 0.2 * torch.rand(1, 3, 1, 1, generator=g).expand(1, 3, height, width).clone()
    cols = torch.rand(width, generator=g) < amount
    x[..., cols] += 0.5
    return x.clamp(0, 1)


class TestResidualStrength:
    def test_counts_only_light_the_derained_image_took_away(self):
        x = torch.full((2, 3, 4, 4), 0.5)
        brighter, darker = x.clone(), x.clone()
        brighter[0] -= 0.2  # the model removed 0.2 of light from image 0
        darker[1] += 0.2  # and added 0.2 to image 1: not rain, not counted
        out = torch.cat([brighter[:1], darker[1:]])
        assert residual_strength(x, out).tolist() == pytest.approx([0.2, 0.0])


class TestRainRouter:
    @pytest.mark.parametrize(
        ("probe", "thresholds", "match"),
        [("heavy", [], "thresholds must be 1"), ("heavy", [0.2, 0.1], "thresholds must be 1"),
         ("none", [0.1], "probe 'none' is not one of the experts")],
    )  # fmt: skip
    def test_bad_settings_are_refused_by_name(self, experts, probe, thresholds, match):
        with pytest.raises(ValueError, match=match):
            RainRouter(experts, probe, thresholds)

    def test_choose_buckets_strengths_between_thresholds(self, experts):
        router = RainRouter({**experts, "third": _net(3)}, "heavy", [0.1, 0.2])
        assert router.choose(torch.tensor([0.0, 0.0999, 0.1, 0.15, 0.2, 0.9])) == [
            "light", "light", "heavy", "heavy", "third", "third"
        ]  # fmt: skip

    def test_each_image_goes_through_the_expert_its_strength_chooses(self, experts):
        x = torch.cat([_streaks(40, 56, 0.02), _streaks(40, 56, 0.5, seed=1)])
        probe = experts["heavy"]
        with torch.no_grad():
            strengths = residual_strength(x, probe.derain(x).clamp(0, 1))
        assert strengths[0] != strengths[1]
        router = RainRouter(experts, "heavy", [float(strengths.mean())])
        order = ["light", "heavy"] if strengths[0] < strengths[1] else ["heavy", "light"]
        assert router.choose(router.strength(router.preview(x))) == order
        with torch.no_grad():
            expected = torch.cat([experts[name].derain(x[i : i + 1]) for i, name in enumerate(order)])
        assert torch.equal(router.derain(x), expected)

    def test_large_images_are_measured_on_a_box_downscaled_preview(self, experts):
        router = RainRouter(experts, "heavy", [0.1])  # a probe's side: PROBE_PREVIEW_SIDE, 512
        assert preview_factor(321, 481, 512) == 1 and preview_factor(1000, 1100, 512) == 3
        x = torch.rand(1, 3, 30, 1100)
        preview = router.preview(x)
        assert preview.shape == (1, 3, 10, 366)
        assert torch.allclose(preview[0, :, 0, 0], x[0, :, :3, :3].mean((-2, -1)))


def _router_file(tmp_path, experts, thresholds, probe="heavy"):
    for name, net in experts.items():
        save_checkpoint(tmp_path / f"{name}.pt", net)
    spec = {
        "format": "lpnet-router",
        "experts": {name: f"{name}.pt" for name in experts},
        "probe": probe,
        "thresholds": thresholds,
    }
    path = tmp_path / "router.json"
    path.write_text(json.dumps(spec))
    return path


class TestRouterFiles:
    def test_a_router_file_loads_its_experts_from_its_own_folder(self, tmp_path, experts):
        router = load_network(_router_file(tmp_path, experts, [0.05]))
        assert isinstance(router, RainRouter) and router.names == ["light", "heavy"]
        for name, net in experts.items():
            assert torch.equal(router.experts[name].subnets[4].tail.weight, net.subnets[4].tail.weight)

    def test_one_network_loaders_refuse_a_router_by_name(self, tmp_path, experts):
        path = _router_file(tmp_path, experts, [0.05])
        for load in (load_model, read_checkpoint):
            with pytest.raises(CheckpointError, match=rf"{path}: a router .*\(light.pt, heavy.pt\)"):
                load(path)

    @pytest.mark.parametrize(
        ("content", "match"),
        [("{", "not a readable router file"), ('{"format": "x"}', "not an lpnet router"),
         ('{"format": "lpnet-router", "experts": {}, "probe": "a", "thresholds": []}', "'experts' must map"),
         ('{"format": "lpnet-router", "experts": {"a": "a.pt"}, "probe": "a", "thresholds": ["x"]}',
          "'thresholds' must be a list of numbers")],
    )  # fmt: skip
    def test_a_bad_router_file_is_one_line_naming_it(self, tmp_path, content, match):
        path = tmp_path / "bad.json"
        path.write_text(content)
        with pytest.raises(CheckpointError, match=match):
            load_network(path)

    def test_the_bundled_default_is_a_router_of_bundled_models(self):
        router = load_network("lpnet:auto")
        assert isinstance(router, RainRouter) and router.names == ["light", "heavy"]
        assert router.gauge is not None and router.probe is None and router.thresholds == []
        low, high = router.presence
        assert 0 < low < high <= 1
        # the side the gauge was trained to read, from the gauge's module alone (auto.json does not say it)
        assert router.preview_side == gauge.PREVIEW_SIDE == 1024


class TestDerainerWithARouter:
    def test_tensors_pil_images_and_files_take_the_expert_their_strength_chooses(self, tmp_path, experts):
        x = torch.cat([_streaks(40, 56, 0.02), _streaks(40, 56, 0.5, seed=1)])
        with torch.no_grad():
            s = residual_strength(x, experts["heavy"].derain(x).clamp(0, 1))
        derainer = Derainer(_router_file(tmp_path, experts, [float(s.mean())]), device="cpu")
        routes = ["light", "heavy"] if s[0] < s[1] else ["heavy", "light"]
        plain = {name: Derainer(net, device="cpu") for name, net in experts.items()}
        y = derainer.derain_tensor(x)
        for i, name in enumerate(routes):
            assert torch.allclose(y[i], plain[name].derain_tensor(x[i]), atol=1e-6)
            image = Image.fromarray((x[i].permute(1, 2, 0).numpy() * 255).astype(np.uint8))
            out = derainer(image)
            assert derainer.last_expert == name
            assert np.array_equal(np.asarray(out), np.asarray(plain[name](image)))

    def test_a_large_photo_is_routed_by_its_strip_built_preview(self, tmp_path, experts):
        """The preview of a decoded photo is built strip by strip (two here, the last one ragged) from its 8
        bits: it equals the preview of the whole image as a tensor."""
        image = (_streaks(1201, 1100, 0.3)[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        derainer = Derainer(_router_file(tmp_path, experts, [0.5]), device="cpu")
        from lpnet.io import decode_pil

        source = decode_pil(Image.fromarray(image))
        full = torch.from_numpy(image).permute(2, 0, 1).float()[None] / 255
        assert torch.allclose(derainer._source_preview(source), derainer.router.preview(full)[0], atol=1e-6)
