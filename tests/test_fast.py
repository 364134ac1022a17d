"""The fast inference path must compute exactly what LPNet.forward computes."""

from __future__ import annotations

import pytest
import torch

from lpnet.models import LPNet
from lpnet.models.fast import (
    MIN_STRIP_ROWS,
    STRIP_PIXELS,
    FastLPNet,
    fast_forward,
    fast_path_available,
    optimize_for_inference,
    strip_rows,
)
from lpnet.models.losses import MultiLevelLoss
from lpnet.models.lpnet import eager_conv
from lpnet.training.module import LitLPNet

needs_onednn = pytest.mark.skipif(not fast_path_available(), reason="PyTorch built without oneDNN")


def _random_net(seed: int = 0, **kwargs) -> LPNet:
    """An LPNet with non-zero biases, so a dropped bias or skip cannot hide behind the default init."""
    torch.manual_seed(seed)
    net = LPNet(**kwargs).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0.0, 0.1)
    return net


def _assert_same(net: LPNet, fast, x: torch.Tensor) -> None:
    with torch.no_grad():
        ref = net(x)
    out = fast(x)
    assert len(out) == len(ref)
    for level, (a, b) in enumerate(zip(out, ref, strict=True)):
        assert a.shape == b.shape, level
        assert a.is_contiguous()
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5, msg=f"level {level}")


@needs_onednn
class TestFastLPNet:
    @pytest.mark.parametrize("size", [(1, 1), (5, 8), (37, 53), (64, 64), (81, 120)])
    def test_equals_eager(self, size):
        net = _random_net()
        _assert_same(net, optimize_for_inference(net), torch.rand(2, 3, *size))

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"share_weights": False},
            {"residual_skip": False},
            {"final_relu": False, "negative_slope": 0.1},
            {"num_levels": 3, "width_multiplier": 0.5, "recursions": 2},
            {"recursions": 0},
        ],
    )
    def test_follows_configuration(self, kwargs):
        net = _random_net(1, **kwargs)
        _assert_same(net, FastLPNet(net), torch.rand(1, 3, 29, 34))

    def test_outputs_are_independent(self):
        net = _random_net()
        fast = optimize_for_inference(net, example_shape=(1, 3, 40, 48))
        out = fast.derain(torch.rand(1, 3, 40, 48))
        kept = out.clone()
        fast(torch.rand(1, 3, 40, 48))
        torch.testing.assert_close(out, kept, rtol=0, atol=0)
        assert out.is_contiguous()

    def test_shares_weights(self):
        net = _random_net()
        fast = optimize_for_inference(net)
        x = torch.rand(1, 3, 24, 24)
        net.load_state_dict(_random_net(seed=7).state_dict())
        _assert_same(net, fast, x)

    def test_no_grad_recorded(self):
        net = _random_net()
        out = FastLPNet(net).derain(torch.rand(1, 3, 16, 16, requires_grad=True))
        assert not out.requires_grad


@needs_onednn
class TestFastTraining:
    @pytest.mark.parametrize(
        "kwargs",
        [{}, {"share_weights": False, "recursions": 2}, {"residual_skip": False, "final_relu": False}],
    )
    def test_gradients_equal_eager(self, kwargs):
        net = _random_net(2, **kwargs).train()
        x, target = torch.rand(2, 3, 37, 30), torch.rand(2, 3, 37, 30)

        def grads(levels):
            loss, _ = MultiLevelLoss()(levels, target)
            return torch.autograd.grad(loss, list(net.parameters()))

        fast_levels = fast_forward(net, x)
        assert fast_levels[-1].requires_grad
        for name, a, b in zip(dict(net.named_parameters()), grads(fast_levels), grads(net(x)), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6, msg=name)

    def test_training_curve_equals_eager(self):
        """The training module's default (fast) steps follow LPNet.forward's loss curve."""
        curves = []
        for fast_cpu in (True, False):
            torch.manual_seed(3)
            module = LitLPNet(fast_cpu=fast_cpu)
            optimizer = torch.optim.Adam(module.parameters(), lr=1e-3)
            torch.manual_seed(4)
            curve = []
            for _ in range(5):
                rainy, clean = torch.rand(4, 3, 32, 32), torch.rand(4, 3, 32, 32)
                optimizer.zero_grad()
                loss, _ = module.criterion(module(rainy), clean)
                loss.backward()
                optimizer.step()
                curve.append(loss.item())
            curves.append(curve)
        fast_curve, eager_curve = curves
        assert fast_curve[0] != fast_curve[-1]
        assert max(abs(a - b) for a, b in zip(fast_curve, eager_curve)) < 1e-5


class TestFallbackAndErrors:
    def test_float64_goes_through_eager(self):
        net = _random_net().double()
        x = torch.rand(1, 3, 21, 22, dtype=torch.float64)
        out = FastLPNet(net)(x)
        torch.testing.assert_close(out[-1], net(x)[-1].detach(), rtol=0, atol=1e-12)

    def test_bad_input(self):
        fast = FastLPNet(_random_net())
        with pytest.raises(ValueError, match="expects"):
            fast(torch.rand(1, 4, 8, 8))
        with pytest.raises(TypeError, match="LPNet"):
            FastLPNet(torch.nn.Conv2d(3, 3, 1))
        with pytest.raises(ValueError, match="example_shape"):
            optimize_for_inference(_random_net(), example_shape=(1, 4, 8))


@pytest.mark.parametrize("max_rows", [7, 16, 33])
def test_subnets_in_row_strips_give_the_same_numbers(max_rows):
    """Strips carry the subnet's receptive radius of context: the result is the whole-image result."""
    torch.manual_seed(5)
    net = LPNet(recursions=2, width_multiplier=0.5).eval()
    x = torch.rand(1, 3, 70, 45)
    with torch.inference_mode():
        whole = net(x)
        for strips in (net.apply_convs(x, eager_conv, max_rows), fast_forward(net, x, max_rows)):
            for a, b in zip(strips, whole, strict=True):
                torch.testing.assert_close(a.contiguous(), b, rtol=0, atol=1e-5)
    assert net.subnets[0].radius == 1 + 2 * 2  # head 3×3, then two recursions of 3×3, 1×1, 3×3


def test_inference_strips_follow_the_width():
    assert strip_rows(1504) == STRIP_PIXELS // 1504 and strip_rows(100_000) == MIN_STRIP_ROWS
