"""The multi-level loss and its documented variants."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from kornia.losses import ssim_loss
from kornia.metrics import ssim

from lpnet.models.losses import MultiLevelLoss, level_ssim_loss
from lpnet.models.pyramid import gaussian_pyramid


@pytest.fixture
def pair():
    torch.manual_seed(0)
    clean = torch.rand(2, 3, 48, 40)
    outputs = [(g + 0.05 * torch.randn_like(g)).clamp(0, 1) for g in gaussian_pyramid(clean, 5)]
    return outputs, clean


def test_paper_loss_is_l1_everywhere_plus_ssim_on_two_finest(pair):
    outputs, clean = pair
    targets = gaussian_pyramid(clean, 5)
    l1 = sum(F.l1_loss(o, t) for o, t in zip(outputs, targets))
    ssim_terms = sum(
        ((1 - ssim(o, t, 11, padding="valid")) / 2).mean() for o, t in zip(outputs[3:], targets[3:])
    )
    total, terms = MultiLevelLoss()(outputs, clean)
    torch.testing.assert_close(total, l1 + ssim_terms)
    assert sorted(k for k in terms if k.endswith("ssim")) == ["level3/ssim", "level4/ssim"]
    assert len([k for k in terms if k.endswith("l1")]) == 5


def test_variants_differ_as_documented(pair):
    outputs, clean = pair
    targets = gaussian_pyramid(clean, 5)
    l2, terms = MultiLevelLoss(pixel="l2", ssim_levels=0)(outputs, clean)
    torch.testing.assert_close(l2, sum(F.mse_loss(o, t) for o, t in zip(outputs, targets)))
    assert all(k.endswith("l2") for k in terms)
    l1, _ = MultiLevelLoss(ssim_levels=0)(outputs, clean)
    paper, _ = MultiLevelLoss()(outputs, clean)
    every, terms = MultiLevelLoss(ssim_levels=1000)(outputs, clean)
    assert l1 < paper < every
    assert len([k for k in terms if k.endswith("ssim")]) == 5


def test_level_weights_scale_each_level(pair):
    outputs, clean = pair
    base, terms = MultiLevelLoss(ssim_levels=0)(outputs, clean)
    weighted, _ = MultiLevelLoss(ssim_levels=0, level_weights=[0, 0, 0, 0, 2])(outputs, clean)
    torch.testing.assert_close(weighted, 2 * terms["level4/l1"])
    assert weighted != base


def test_perfect_output_has_zero_loss():
    clean = torch.rand(1, 3, 32, 32)
    total, _ = MultiLevelLoss()(gaussian_pyramid(clean, 5), clean)
    assert total.abs() < 1e-6


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"pixel": "huber"}, "loss.pixel"),
        ({"ssim_levels": -1}, "ssim_levels"),
        ({"pixel": None, "ssim_levels": 0}, "no terms"),
    ],
)
def test_bad_settings_name_the_key(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MultiLevelLoss(**kwargs)


def test_level_weights_length_checked(pair):
    outputs, clean = pair
    with pytest.raises(ValueError, match="level_weights"):
        MultiLevelLoss(level_weights=[1, 1])(outputs, clean)


@pytest.mark.parametrize(("height", "width", "window"), [(80, 80, 11), (40, 53, 11), (11, 30, 11), (8, 9, 7)])
def test_ssim_loss_equals_kornia_with_gradients(height, width, window):
    torch.manual_seed(1)
    pred = torch.rand(3, 3, height, width, dtype=torch.float64, requires_grad=True)
    target = (pred.detach() + 0.1 * torch.randn_like(pred)).clamp(0, 1)
    ours = level_ssim_loss(pred, target)
    reference = ssim_loss(pred, target, window, max_val=1.0, padding="valid")
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-12)
    (grad_ours,) = torch.autograd.grad(ours, pred)
    (grad_reference,) = torch.autograd.grad(reference, pred)
    torch.testing.assert_close(grad_ours, grad_reference, rtol=0, atol=1e-12)


def test_ssim_loss_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match="one shape"):
        level_ssim_loss(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 15))
