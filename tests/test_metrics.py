"""lpnet.metrics: MATLAB-compatible Y-channel PSNR/SSIM against hand-computed values and a loop reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lpnet.io import to_uint8
from lpnet.metrics import psnr_y, quantize, rgb_to_y, ssim_y
from lpnet.scoring import Scoreboard


def _gray(level: float, h: int = 16, w: int = 16, batch: int = 1) -> torch.Tensor:
    return torch.full((batch, 3, h, w), level, dtype=torch.float64)


# ------------------------------------------------------------------ Y and quantisation


def test_rgb_to_y_matches_matlab_constants():
    x = torch.tensor([[0, 0, 0], [1, 1, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=torch.float32)
    y = rgb_to_y(x.T.reshape(1, 3, 5, 1)).flatten()
    assert y.dtype == torch.float64
    torch.testing.assert_close(
        y, torch.tensor([16, 235, 16 + 65.481, 16 + 128.553, 16 + 24.966], dtype=torch.float64)
    )


def test_quantize_truncates_like_the_official_test():
    x = torch.tensor([-0.2, 0.0, 0.5, 254.9 / 255, 0.99999, 1.0, 1.7])
    expected = torch.tensor([0, 0, 127, 254, 254, 255, 255]) / 255
    torch.testing.assert_close(quantize(x), expected)
    img = torch.rand(3, 9, 7) * 1.4 - 0.2
    assert np.array_equal(
        (quantize(img) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy(), to_uint8(img)
    )


# ------------------------------------------------------------------ PSNR


def test_psnr_y_known_values():
    black, white = _gray(0.0), _gray(1.0)
    # Y: 235 vs 16 everywhere → rmse 219
    torch.testing.assert_close(
        psnr_y(white, black), torch.tensor([20 * math.log10(255 / 219)], dtype=torch.float64)
    )
    half = black.clone()
    half[..., :8] = 1.0  # half the pixels differ by 219 → rmse 219 / sqrt(2)
    expected = 20 * math.log10(255 / (219 / math.sqrt(2)))
    torch.testing.assert_close(
        psnr_y(half, black, round_y=False), torch.tensor([expected], dtype=torch.float64)
    )
    assert psnr_y(black, black).item() == math.inf


def test_psnr_y_rounds_luma_like_matlab_uint8():
    one, black = _gray(1 / 255), _gray(0.0)
    # uint8 rgb2ycbcr: round(16 + 219/255) = 17 vs 16 → rmse 1; float Y: rmse 219/255
    assert psnr_y(one, black).item() == pytest.approx(20 * math.log10(255))
    assert psnr_y(one, black, round_y=False).item() == pytest.approx(20 * math.log10(255 / (219 / 255)))


def test_psnr_y_is_per_image():
    target = _gray(0.0, batch=2)
    pred = torch.cat([_gray(1.0), _gray(0.5)])
    scores = psnr_y(pred, target)
    assert scores.shape == (2,)
    assert scores[1].item() == pytest.approx(20 * math.log10(255 / (round(16 + 219 * 0.5) - 16)))


def test_bad_inputs():
    with pytest.raises(ValueError, match="shapes differ"):
        psnr_y(_gray(0.0, 16, 16), _gray(0.0, 16, 15))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        psnr_y(torch.zeros(1, 1, 16, 16), torch.zeros(1, 1, 16, 16))
    with pytest.raises(ValueError, match="at least 11×11"):
        ssim_y(_gray(0.0, 10, 30), _gray(0.0, 10, 30))
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        psnr_y(np.zeros((1, 3, 16, 16)), _gray(0.0))


# ------------------------------------------------------------------ SSIM


def _ssim_reference(a: np.ndarray, b: np.ndarray) -> float:
    """ssim_index.m with explicit loops: 11×11 fspecial('gaussian', 11, 1.5), 'valid', L = 255."""
    r = np.arange(-5, 6)
    xx, yy = np.meshgrid(r, r)
    window = np.exp(-(xx**2 + yy**2) / (2 * 1.5**2))
    window /= window.sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    h, w = a.shape
    values = []
    for i in range(h - 10):
        for j in range(w - 10):
            pa, pb = a[i : i + 11, j : j + 11], b[i : i + 11, j : j + 11]
            ma, mb = (window * pa).sum(), (window * pb).sum()
            va = (window * pa * pa).sum() - ma**2
            vb = (window * pb * pb).sum() - mb**2
            cov = (window * pa * pb).sum() - ma * mb
            values.append(((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma**2 + mb**2 + c1) * (va + vb + c2)))
    return float(np.mean(values))


def _luma_uint8(x: torch.Tensor) -> np.ndarray:
    """MATLAB rgb2ycbcr on a uint8 image, written with numpy: Y = round(16 + (65.481 R + ...) / 255)."""
    rgb = np.round(x[0].numpy().astype(np.float64) * 255)
    y = 16 + (65.481 * rgb[0] + 128.553 * rgb[1] + 24.966 * rgb[2]) / 255
    return np.floor(y + 0.5)


def test_ssim_y_matches_loop_reference():
    gen = torch.Generator().manual_seed(0)
    target = torch.randint(0, 256, (1, 3, 19, 23), generator=gen) / 255
    pred = quantize(target + 0.1 * torch.randn(target.shape, generator=gen))
    expected = _ssim_reference(_luma_uint8(pred), _luma_uint8(target))
    assert 0.2 < expected < 0.99  # a non-trivial case
    assert ssim_y(pred, target).item() == pytest.approx(expected, abs=1e-12)


def test_ssim_y_known_values():
    x = torch.rand(2, 3, 20, 20)
    torch.testing.assert_close(ssim_y(x, x), torch.ones(2, dtype=torch.float64))
    # constant images: no variance, only the luminance term (2ab + C1) / (a² + b² + C1)
    a, b, c1 = 16.0 + 219 * 0.2, 16.0 + 219 * 0.6, (0.01 * 255) ** 2
    got = ssim_y(_gray(0.2), _gray(0.6), round_y=False).item()
    assert got == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), rel=1e-12)


# ------------------------------------------------------------------ the scoring path (lpnet.scoring)


def test_scoreboard_averages_per_image_scores():
    gen = torch.Generator().manual_seed(1)
    targets = torch.rand(5, 3, 16, 16, generator=gen)
    preds = targets + 0.05 * torch.randn(targets.shape, generator=gen)
    rainy = targets + 0.2 * torch.rand(targets.shape, generator=gen)
    board = Scoreboard()
    for sl in (slice(0, 2), slice(2, 5)):  # batches of unequal size: a mean of batch means would differ
        board.update(
            preds[sl], targets[sl], rainy=rainy[sl], keys=[f"k{i}" for i in range(sl.start, sl.stop)]
        )
    means = board.compute()
    q = quantize(preds)
    assert means["psnr_y"].item() == pytest.approx(psnr_y(q, targets).mean().item(), abs=1e-12)
    assert means["ssim_y"].item() == pytest.approx(ssim_y(q, targets).mean().item(), abs=1e-12)
    assert means["input_psnr_y"].item() == pytest.approx(
        psnr_y(quantize(rainy), targets).mean().item(), abs=1e-12
    )
    mse = (q - targets).square().mean(dim=(1, 2, 3))
    assert means["psnr_rgb"].item() == pytest.approx((10 * torch.log10(1 / mse)).mean().item(), rel=1e-5)
    assert 0 < means["ssim_rgb"].item() < 1
    rows = board.rows()
    assert [r["key"] for r in rows] == ["k0", "k1", "k2", "k3", "k4"]
    assert rows[3]["psnr_y"] == pytest.approx(psnr_y(q[3:4], targets[3:4]).item(), abs=1e-12)
    board.reset()
    assert board.rows() == [] and board.compute() == {}


def test_scoreboard_quantisation_is_a_setting():
    gen = torch.Generator().manual_seed(2)
    targets = torch.rand(2, 3, 24, 24, generator=gen)
    preds = targets + 0.03 * torch.randn(targets.shape, generator=gen)
    raw, saved = Scoreboard(quantize_pred=False), Scoreboard()
    raw.update(preds, targets)
    saved.update(preds, targets)
    assert raw.compute()["psnr_y"].item() == pytest.approx(psnr_y(preds.clamp(0, 1), targets).mean().item())
    assert raw.compute()["psnr_y"].item() != pytest.approx(saved.compute()["psnr_y"].item(), abs=1e-6)
    assert "input_psnr_y" not in raw.compute()  # no rainy inputs given: no baseline
