"""lpnet.models.complexity against brute-force counts on real forward passes."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from lpnet.models.complexity import count_macs, count_params, level_sizes, macs_per_pixel
from lpnet.models.lpnet import LPNet

VARIANTS = [
    {},
    {"width_multiplier": 0.5},
    {"widths": [16, 16, 16, 16, 16]},
    {"recursions": 0},
    {"recursions": 3, "share_weights": False},
    {"residual_skip": False, "num_levels": 3},
    {"num_levels": 6, "width_multiplier": 2.0},
]
SIZES = [(37, 50), (8, 8), (1, 1), (21, 4)]


def hooked_conv_macs(net: nn.Module, x: torch.Tensor) -> int:
    """MACs of every nn.Conv2d call seen by forward hooks (the subnets; the pyramid is functional)."""
    total = 0

    def hook(module: nn.Conv2d, _inputs, output: torch.Tensor) -> None:
        nonlocal total
        kh, kw = module.kernel_size
        total += output[0].numel() * (module.in_channels // module.groups) * kh * kw

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        net(x)
    for handle in handles:
        handle.remove()
    return total


@pytest.mark.parametrize("kwargs", VARIANTS, ids=str)
@pytest.mark.parametrize("size", SIZES, ids=str)
def test_subnet_macs_match_forward_hooks(kwargs, size):
    net = LPNet(**kwargs)
    assert count_macs(net, *size, pyramid=False) == hooked_conv_macs(net, torch.rand(1, 3, *size))


@pytest.mark.parametrize("kwargs", VARIANTS, ids=str)
@pytest.mark.parametrize("size", SIZES, ids=str)
def test_total_macs_match_torch_flop_counter(kwargs, size):
    # FlopCounterMode sees every aten convolution, the functional pyramid included; it reports 2 FLOPs/MAC.
    net = LPNet(**kwargs)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(torch.rand(1, 3, *size))
    assert 2 * count_macs(net, *size) == counter.get_total_flops()


def test_official_model_figures():
    net = LPNet()
    # 53 kFLOP per pixel is the figure quoted for LPNet: FLOP = 2 MAC.
    assert 2 * macs_per_pixel(net) == pytest.approx(53_000, rel=0.01)
    # The finest subnet (f = 16, T = 5) dominates: 27·16 + 5·19·16² + 3·16 MACs per pixel.
    assert count_macs(LPNet(num_levels=1, widths=[16]), 100, 100) == (432 + 24_320 + 48) * 100 * 100
    assert count_params(net) == 7548


def test_weight_sharing_changes_params_not_macs():
    shared, unshared = LPNet(recursions=3), LPNet(recursions=3, share_weights=False)
    assert count_macs(shared, 64, 64) == count_macs(unshared, 64, 64)
    assert count_params(unshared) > count_params(shared)
    # Per-pixel cost barely depends on size once levels divide evenly.
    assert macs_per_pixel(shared, 256, 256) == pytest.approx(macs_per_pixel(shared, 512, 512), rel=1e-9)


def test_count_params_trainable_only():
    net = LPNet()
    for p in net.subnets[0].parameters():
        p.requires_grad_(False)
    frozen = sum(p.numel() for p in net.subnets[0].parameters())
    assert count_params(net, trainable_only=True) == 7548 - frozen


def test_level_sizes_follow_the_pyramid():
    from lpnet.models.pyramid import gaussian_pyramid

    levels = gaussian_pyramid(torch.zeros(1, 3, 21, 4), 5)
    assert level_sizes(21, 4, 5) == [tuple(lv.shape[-2:]) for lv in levels]


def test_bad_input():
    with pytest.raises(TypeError, match="LPNet"):
        count_macs(nn.Conv2d(3, 3, 3), 10, 10)
    with pytest.raises(ValueError, match="0×10"):
        count_macs(LPNet(), 0, 10)
