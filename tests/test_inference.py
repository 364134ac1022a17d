"""lpnet.apply: receptive field, exact tiling, and the Derainer on every input kind."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from lpnet import LPNet, save_checkpoint
from lpnet.apply import Derainer, derain_tiled, resolve_device, tiling
from lpnet.apply.tiling import spans
from lpnet.io import to_uint8
from lpnet.models.complexity import receptive_field_radius

TOL = 1 / 255


def small_net(num_levels: int = 5, seed: int = 0, **kwargs) -> LPNet:
    """The official structure at a quarter of the width: same receptive field, ~16× less work."""
    torch.manual_seed(seed)
    return LPNet(num_levels=num_levels, width_multiplier=0.25, **kwargs).eval()


def visible_net(num_levels: int = 5) -> LPNet:
    """Larger weights and random biases: outputs move by ~0.2 on average and coarse levels matter."""
    net = small_net(num_levels, seed=3)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.normal_(0, 0.8 / math.sqrt(m.weight[0].numel()))
                m.bias.normal_(0, 0.1)
    return net


def whole(net: LPNet, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return net.derain(x)


class TestReceptiveField:
    def test_official_value(self):
        assert receptive_field_radius(LPNet()) == 236
        assert receptive_field_radius(LPNet(num_levels=3)) == 56
        assert receptive_field_radius(LPNet(num_levels=1)) == 11

    @pytest.mark.parametrize("num_levels", [3, 5])
    def test_matches_autograd_support(self, num_levels):
        # float64 and no final ReLU so that no gradient is zero by accident; every phase modulo 2^(L-1).
        net = small_net(num_levels, final_relu=False).double()
        radius = receptive_field_radius(net)
        width = 2 * radius + 3 * 2**num_levels
        reach = 0
        for phase in range(2 ** (num_levels - 1)):
            x = torch.rand(1, 3, 12, width, dtype=torch.float64, requires_grad=True)
            col = width // 2 - 8 + phase
            net.derain(x)[0, :, 6, col].sum().backward()
            cols = torch.nonzero(x.grad[0].abs().sum((0, 1)))[:, 0]
            reach = max(reach, col - cols.min().item(), cols.max().item() - col)
        assert reach == radius


class TestSpans:
    @pytest.mark.parametrize("length", [1, 15, 16, 17, 300, 517, 1000, 1023])
    @pytest.mark.parametrize(("tile", "overlap"), [(16, 0), (96, 56), (64, 236), (100, 7)])
    def test_cover_align_and_context(self, length, tile, overlap):
        align = 16
        cut = spans(length, tile, overlap, align)
        covered = [i for s in cut for i in range(s.keep_start, s.keep_end)]
        assert covered == list(range(length))
        for s in cut:
            assert s.win_start % align == 0
            assert (s.win_end - s.win_start) % align == length % align  # same pyramid parities
            assert s.win_start == 0 or s.keep_start - s.win_start >= overlap
            assert s.win_end == length or s.win_end - s.keep_end >= overlap
            assert s.win_end - s.win_start <= tile + 2 * overlap + 2 * (align - 1)


class TestDerainTiled:
    @pytest.mark.parametrize(
        ("num_levels", "size", "tile"),
        [
            (3, (300, 517), 96),  # tiled along both axes
            (3, (190, 177), 64),
            (3, (97, 300), 32),
            (5, (70, 601), 64),  # tiled along the width
            (5, (61, 777), 160),
        ],
    )
    def test_equals_whole_image(self, num_levels, size, tile):
        torch.manual_seed(1)
        x = torch.rand(1, 3, *size)
        for net in (small_net(num_levels), visible_net(num_levels)):
            ref = whole(net, x)
            out = derain_tiled(net, x, tile=tile)
            assert out.shape == x.shape
            assert (out - ref).abs().max() <= 1e-4  # exact up to float rounding, far inside 1/255

    def test_official_architecture_random_init(self):
        torch.manual_seed(2)
        net, x = LPNet().eval(), torch.rand(1, 3, 67, 563)
        assert (derain_tiled(net, x, tile=64) - whole(net, x)).abs().max() <= 1e-4

    def test_visible_net_is_visible_and_needs_the_overlap(self):
        # Guards the test above: this net changes the image, and too little context breaks equality.
        torch.manual_seed(1)
        net, x = visible_net(), torch.rand(1, 3, 70, 601)
        ref = whole(net, x)
        assert (ref - x).abs().mean() > 0.1
        assert (derain_tiled(net, x, tile=64, overlap=32) - ref).abs().max() > 5 * TOL

    def test_official_depth_tiled_in_both_axes(self):
        torch.manual_seed(4)
        net, x = visible_net(), torch.rand(1, 3, 713, 730)
        assert (derain_tiled(net, x, tile=240) - whole(net, x)).abs().max() <= 1e-4

    def test_batches_and_tile_batches(self):
        torch.manual_seed(5)
        net, x = small_net(3), torch.rand(2, 3, 100, 200)
        ref = whole(net, x)
        for batch_size in (1, 3, 100):
            assert (derain_tiled(net, x, tile=48, batch_size=batch_size) - ref).abs().max() <= 1e-4

    def test_small_image_runs_whole(self):
        net, x = small_net(), torch.rand(1, 3, 33, 47)
        torch.testing.assert_close(derain_tiled(net, x, tile=1024), whole(net, x), rtol=0, atol=0)

    def test_freed_memory_handed_back_between_tiles(self, monkeypatch):
        calls = []
        monkeypatch.setattr(tiling, "release_free_memory", lambda: calls.append(1))
        net = small_net(3)
        derain_tiled(net, torch.rand(1, 3, 40, 47), tile=1024)
        assert calls == []  # one window: nothing to bound
        derain_tiled(net, torch.rand(1, 3, 100, 200), tile=48)
        radius = receptive_field_radius(net)
        windows = len(spans(100, 48, radius, 4)) * len(spans(200, 48, radius, 4))
        assert len(calls) == windows > 1  # after every network call

    def test_dtype_kept_and_result_is_an_ordinary_tensor(self):
        net, x = small_net(3), torch.rand(1, 3, 40, 200, dtype=torch.float64)
        out = derain_tiled(net, x, tile=32)
        assert out.dtype == torch.float64 and not out.is_inference()
        out.mul_(2)  # in-place on an inference tensor would raise

    def test_bad_arguments(self):
        net = small_net(3)
        with pytest.raises(TypeError, match="floating"):
            derain_tiled(net, torch.zeros(1, 3, 8, 8, dtype=torch.uint8))
        with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
            derain_tiled(net, torch.zeros(3, 8, 8))
        with pytest.raises(ValueError, match="tile"):
            derain_tiled(net, torch.zeros(1, 3, 8, 8), tile=0)
        with pytest.raises(ValueError, match="overlap"):
            derain_tiled(net, torch.zeros(1, 3, 8, 8), overlap=-1)
        with pytest.raises(ValueError, match="batch_size"):
            derain_tiled(net, torch.zeros(1, 3, 8, 8), batch_size=0)


@pytest.fixture(scope="module")
def net() -> LPNet:
    return visible_net(3)


@pytest.fixture(scope="module")
def derainer(net) -> Derainer:
    return Derainer(net, device="cpu", tile=32)


def reference(net: LPNet, chw: torch.Tensor) -> torch.Tensor:
    """``(3, H, W)`` → clipped whole-image output, computed without the Derainer."""
    return whole(net, chw[None])[0].clamp(0, 1)


def luma(chw: torch.Tensor) -> torch.Tensor:
    return 0.299 * chw[0] + 0.587 * chw[1] + 0.114 * chw[2]


class TestDerainer:
    def test_loads_a_checkpoint(self, tmp_path, net):
        path = save_checkpoint(tmp_path / "m.pt", net)
        loaded = Derainer(path, device="cpu", tile=32)
        x = torch.rand(3, 90, 110)
        torch.testing.assert_close(loaded(x), reference(net, x), rtol=0, atol=1e-4)
        assert loaded.overlap == 56

    def test_tensor(self, derainer, net):
        x = torch.rand(3, 90, 110)
        out = derainer(x)
        assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
        torch.testing.assert_close(out, reference(net, x), rtol=0, atol=1e-4)
        batch = torch.rand(2, 3, 50, 70, dtype=torch.float64)
        out = derainer(batch)
        assert out.shape == batch.shape and out.dtype == torch.float64
        torch.testing.assert_close(out[1], reference(net, batch[1].float()).double(), rtol=0, atol=1e-4)

    def test_path(self, derainer, net, tmp_path):
        arr = np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)
        Image.fromarray(arr).save(tmp_path / "x.png")
        x = torch.from_numpy(arr).permute(2, 0, 1).float() / 255
        torch.testing.assert_close(derainer(tmp_path / "x.png"), reference(net, x), rtol=0, atol=1e-4)
        torch.testing.assert_close(derainer(str(tmp_path / "x.png")), reference(net, x), rtol=0, atol=1e-4)

    def test_uint8_array_matches_official_saving(self, derainer, net):
        arr = np.random.default_rng(1).integers(0, 256, (45, 70, 3), dtype=np.uint8)
        out = derainer(arr)
        assert out.dtype == np.uint8 and out.shape == arr.shape
        expected = to_uint8(reference(net, torch.from_numpy(arr).permute(2, 0, 1).float() / 255))
        assert np.abs(out.astype(int) - expected.astype(int)).max() <= 1  # float rounding at truncation

    def test_uint16_float_gray_and_alpha_arrays(self, derainer, net):
        rng = np.random.default_rng(2)
        a16 = rng.integers(0, 65536, (30, 40, 3), dtype=np.uint16)
        out = derainer(a16)
        assert out.dtype == np.uint16 and out.shape == a16.shape
        ref = reference(net, torch.from_numpy(a16.astype(np.float32)).permute(2, 0, 1) / 65535)
        assert np.abs(out / 65535 - ref.permute(1, 2, 0).numpy()).max() <= 1e-3

        f = rng.random((30, 40, 3), dtype=np.float32)
        out = derainer(f)
        assert out.dtype == np.float32
        np.testing.assert_allclose(
            out, reference(net, torch.from_numpy(f).permute(2, 0, 1)).permute(1, 2, 0), atol=1e-4
        )

        gray = rng.random((30, 40))
        out = derainer(gray)
        assert out.shape == gray.shape and out.dtype == np.float64
        expected = luma(reference(net, torch.from_numpy(gray).float().expand(3, -1, -1)))
        np.testing.assert_allclose(out, expected.numpy(), atol=1e-4)
        assert derainer(gray[..., None]).shape == (30, 40, 1)

        rgba = rng.integers(0, 256, (30, 40, 4), dtype=np.uint8)
        out = derainer(rgba)
        assert out.shape == rgba.shape
        np.testing.assert_array_equal(out[..., 3], rgba[..., 3])
        np.testing.assert_array_equal(out[..., :3], derainer(np.ascontiguousarray(rgba[..., :3])))

    def test_pil_modes(self, derainer, net):
        rng = np.random.default_rng(3)
        rgb = Image.fromarray(rng.integers(0, 256, (33, 47, 3), dtype=np.uint8))
        out = derainer(rgb)
        assert isinstance(out, Image.Image) and out.mode == "RGB" and out.size == rgb.size
        np.testing.assert_array_equal(np.asarray(out), derainer(np.asarray(rgb)))

        gray = rgb.convert("L")
        out = derainer(gray)
        assert out.mode == "L" and out.size == gray.size
        x = torch.from_numpy(np.array(gray)).float().div(255).expand(3, -1, -1)
        assert (
            np.abs(np.asarray(out).astype(int) - to_uint8(luma(reference(net, x))[None])[..., 0]).max() <= 1
        )

        rgba = rgb.copy()
        rgba.putalpha(Image.fromarray(rng.integers(0, 256, (33, 47), dtype=np.uint8)))
        out = derainer(rgba)
        assert out.mode == "RGBA"
        np.testing.assert_array_equal(np.asarray(out)[..., 3], np.asarray(rgba)[..., 3])
        np.testing.assert_array_equal(np.asarray(out)[..., :3], np.asarray(derainer(rgb)))

        assert derainer(rgb.convert("P")).mode == "RGB"
        g16 = Image.fromarray(rng.integers(0, 65536, (20, 30), dtype=np.uint16))
        assert g16.mode == "I;16" and derainer(g16).mode == "L"
        assert derainer(rgba.convert("LA")).mode == "LA"

    def test_rejects_other_inputs(self, derainer):
        with pytest.raises(TypeError, match=r"Tensor, PIL\.Image, numpy array or path"):
            derainer([[0.0]])
        with pytest.raises(TypeError, match="uint8, uint16 or float"):
            derainer(np.zeros((8, 8, 3), dtype=np.int32))
        with pytest.raises(ValueError, match=r"\(H, W, 1\|3\|4\)"):
            derainer(np.zeros((8, 8, 2), dtype=np.uint8))
        with pytest.raises(ValueError, match=r"\(3, H, W\)"):
            derainer(torch.zeros(1, 8, 8))
        with pytest.raises(TypeError, match="checkpoint path, an LPNet or a RainRouter"):
            Derainer(42, device="cpu")


class TestResolveDevice:
    def test_auto(self, monkeypatch):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
        assert resolve_device("auto") == torch.device("cpu")
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        assert resolve_device("auto") == torch.device("cuda")

    def test_checked(self, monkeypatch):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
        with pytest.raises(ValueError, match="is not available"):
            resolve_device("cuda")
        with pytest.raises(ValueError, match="device must be one of"):
            resolve_device("banana")
        assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_net_cpu_image():
    net, x = small_net(3), torch.rand(1, 3, 200, 260)
    out = derain_tiled(net.cuda(), x, tile=64)
    assert out.device == x.device
    assert (out - whole(net.cpu(), x)).abs().max() <= 1e-3
