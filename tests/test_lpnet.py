"""LPNet: the official architecture, its options, any input size."""

from __future__ import annotations

import pytest
import torch

from lpnet.config import LPNetConfig
from lpnet.models.lpnet import LPNet
from lpnet.models.pyramid import laplacian_pyramid, pyr_up


def count(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def test_official_parameter_count():
    assert count(LPNet()) == 7548


def test_official_widths_coarse_to_fine():
    assert LPNet().widths == [1, 2, 4, 8, 16]
    assert LPNetConfig(width_multiplier=2.0).level_widths() == [2, 4, 8, 16, 32]
    assert LPNetConfig(num_levels=3).level_widths() == [4, 8, 16]


@pytest.mark.parametrize("size", [(1, 1), (5, 8), (17, 30), (33, 33)])
def test_any_size_gives_pyramid_of_outputs(size):
    out = LPNet()(torch.rand(2, 3, *size))
    assert len(out) == 5
    assert out[-1].shape == (2, 3, *size)
    assert all((level >= 0).all() for level in out)  # final ReLU


def test_forward_follows_official_graph():
    """Re-state the official inference graph with the same weights and compare level by level."""
    torch.manual_seed(0)
    net = LPNet()
    for p in net.parameters():  # non-zero biases so every term matters
        torch.nn.init.normal_(p, std=0.3)
    x = torch.rand(1, 3, 37, 29)
    lrelu = torch.nn.functional.leaky_relu

    def subnet(s, band):
        f0 = lrelu(s.head(band), 0.2)
        out = f0
        for _ in range(5):
            b = s.blocks[0]
            out = lrelu(b.conv3(lrelu(b.conv2(lrelu(b.conv1(out), 0.2)), 0.2)), 0.2) + f0
        return s.tail(out) + band

    bands = laplacian_pyramid(x, 5)
    expected = [torch.relu(subnet(net.subnets[0], bands[0]))]
    for s, band in zip(net.subnets[1:], bands[1:]):
        expected.append(torch.relu(subnet(s, band) + pyr_up(expected[-1], band.shape[-2:])))
    for got, want in zip(net(x), expected):
        torch.testing.assert_close(got, want)


def test_ablation_options_change_the_network():
    assert count(LPNet(share_weights=False)) > count(LPNet())
    assert count(LPNet(recursions=5, share_weights=False)) == 7548 + 4 * sum(
        19 * w * w + 3 * w for w in [1, 2, 4, 8, 16]
    )
    assert count(LPNet(width_multiplier=2.0)) > 4 * 7548 * 0.9
    assert len(LPNet(num_levels=3)(torch.rand(1, 3, 16, 16))) == 3
    x = torch.rand(1, 3, 24, 24)
    base = LPNet()
    no_skip = LPNet(residual_skip=False)
    no_skip.load_state_dict(base.state_dict())
    assert not torch.allclose(base(x)[-1], no_skip(x)[-1])
    no_relu = LPNet(final_relu=False)
    no_relu.load_state_dict(base.state_dict())
    assert not torch.equal(no_relu(x)[-1], base(x)[-1])


def test_config_rebuilds_identical_network():
    net = LPNet(num_levels=4, width_multiplier=0.5, recursions=3, share_weights=False, residual_skip=False)
    twin = LPNet(net.config)
    twin.load_state_dict(net.state_dict())
    x = torch.rand(1, 3, 20, 20)
    assert torch.equal(net(x)[-1], twin(x)[-1])


def test_xavier_init_zero_bias():
    net = LPNet()
    assert all((m.bias == 0).all() for m in net.modules() if isinstance(m, torch.nn.Conv2d))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_levels": 0}, "num_levels"),
        ({"widths": [1, 2]}, "widths"),
        ({"width_multiplier": 0}, "multiplier"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LPNet(**kwargs)


def test_rejects_wrong_channels():
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        LPNet()(torch.rand(1, 1, 8, 8))


def test_gradients_reach_every_parameter():
    net = LPNet()
    sum(level.mean() for level in net(torch.rand(2, 3, 32, 32))).backward()
    assert all(p.grad is not None for p in net.parameters())
