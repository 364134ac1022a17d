"""Pyramids against a direct re-statement of the official TF graph (dense eye kernel, TF 'SAME' padding)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lpnet.models.pyramid import (
    GaussianPyramid,
    LaplacianPyramid,
    collapse_laplacian,
    gaussian_pyramid,
    laplacian_pyramid,
    pyr_down,
    pyr_up,
)

SIZES = [(1, 1), (1, 2), (2, 1), (2, 2), (3, 3), (4, 7), (5, 8), (8, 5), (16, 16), (17, 31), (33, 20)]


def tf_kernel(channels: int) -> torch.Tensor:
    """The official `k[:, :, None, None] / k.sum() * np.eye(3)`, as a dense OIHW kernel (float64)."""
    k = np.float64([0.0625, 0.25, 0.375, 0.25, 0.0625])
    k = np.outer(k, k)
    dense = k[:, :, None, None] / k.sum() * np.eye(channels)  # HWIO
    return torch.from_numpy(dense).permute(3, 2, 0, 1).contiguous()


def tf_same_padding(size: int) -> tuple[int, int]:
    out = math.ceil(size / 2)
    total = max((out - 1) * 2 + 5 - size, 0)
    return total // 2, total - total // 2


def tf_conv_stride2(x: torch.Tensor) -> torch.Tensor:
    (top, bottom), (left, right) = tf_same_padding(x.shape[2]), tf_same_padding(x.shape[3])
    return F.conv2d(F.pad(x, (left, right, top, bottom)), tf_kernel(x.shape[1]), stride=2)


def tf_conv_transpose_stride2(y: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Adjoint of tf_conv_stride2 (times 4) by explicit scatter: what TF's conv2d_transpose computes."""
    b, c, h, w = y.shape
    out_h, out_w = size
    top, left = tf_same_padding(out_h)[0], tf_same_padding(out_w)[0]
    kernel = tf_kernel(c)[0, 0] * 4
    out = torch.zeros(b, c, out_h + 8, out_w + 8, dtype=y.dtype)
    for i in range(h):
        for j in range(w):
            r, s = 2 * i - top + 4, 2 * j - left + 4  # +4: a margin so every tap has a slot
            out[:, :, r : r + 5, s : s + 5] += y[:, :, i : i + 1, j : j + 1] * kernel
    return out[:, :, 4 : 4 + out_h, 4 : 4 + out_w]


class TestPyrDown:
    @pytest.mark.parametrize("size", SIZES)
    def test_matches_tf_same(self, size):
        x = torch.rand(2, 3, *size, dtype=torch.float64)
        torch.testing.assert_close(pyr_down(x), tf_conv_stride2(x), rtol=0, atol=1e-12)

    def test_shape_is_ceil_half(self):
        assert pyr_down(torch.rand(1, 3, 481, 321)).shape == (1, 3, 241, 161)

    def test_rejects_non_4d(self):
        with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
            pyr_down(torch.rand(3, 8, 8))

    def test_gradcheck(self):
        x = torch.rand(1, 2, 5, 6, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(pyr_down, (x,))


class TestPyrUp:
    @pytest.mark.parametrize("size", SIZES)
    def test_matches_tf_conv_transpose(self, size):
        coarse = torch.rand(2, 3, (size[0] + 1) // 2, (size[1] + 1) // 2, dtype=torch.float64)
        torch.testing.assert_close(
            pyr_up(coarse, size), tf_conv_transpose_stride2(coarse, size), rtol=0, atol=1e-12
        )

    def test_is_adjoint_of_down_times_four(self):
        x = torch.rand(1, 3, 9, 14, dtype=torch.float64)
        y = torch.rand(1, 3, 5, 7, dtype=torch.float64)
        lhs = (pyr_down(x) * y).sum() * 4
        rhs = (x * pyr_up(y, (9, 14))).sum()
        torch.testing.assert_close(lhs, rhs)

    def test_rejects_wrong_target_size(self):
        with pytest.raises(ValueError, match="ceil"):
            pyr_up(torch.rand(1, 3, 4, 4), (10, 8))


class TestPyramids:
    @pytest.mark.parametrize("size", [(1, 1), (5, 8), (31, 17), (64, 48)])
    def test_laplacian_collapses_to_input(self, size):
        x = torch.rand(2, 3, *size)
        torch.testing.assert_close(collapse_laplacian(laplacian_pyramid(x, 5)), x, rtol=0, atol=1e-6)

    def test_levels_coarsest_first(self):
        levels = gaussian_pyramid(torch.rand(1, 3, 481, 321), 5)
        assert [tuple(t.shape[-2:]) for t in levels] == [
            (31, 21),
            (61, 41),
            (121, 81),
            (241, 161),
            (481, 321),
        ]

    def test_laplacian_matches_official_lap_split(self):
        x = torch.rand(1, 3, 23, 18, dtype=torch.float64)
        expected, img = [], x
        for _ in range(4):  # the official LaplacianPyramid(img, kernel, n - 1)
            low = tf_conv_stride2(img)
            expected.append(img - tf_conv_transpose_stride2(low, img.shape[-2:]))
            img = low
        expected = [img, *expected[::-1]]
        for got, want in zip(laplacian_pyramid(x, 5), expected):
            torch.testing.assert_close(got, want, rtol=0, atol=1e-12)

    def test_modules_equal_functions(self):
        x = torch.rand(1, 3, 20, 13)
        for a, b in zip(LaplacianPyramid(4)(x), laplacian_pyramid(x, 4)):
            assert torch.equal(a, b)
        for a, b in zip(GaussianPyramid(3)(x), gaussian_pyramid(x, 3)):
            assert torch.equal(a, b)

    @pytest.mark.parametrize("bad", [0, -1, 2.5])
    def test_rejects_bad_level_count(self, bad):
        with pytest.raises(ValueError, match="num_levels"):
            LaplacianPyramid(bad)
