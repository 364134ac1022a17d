"""lpnet.visualize: band pictures, sparsity per level and the pyramid figures of the notebooks."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from lpnet.visualize import band_image, near_zero_fraction, plot_level_histograms, plot_pyramids


class TestBandImage:
    def test_maps_zero_to_grey_and_scale_to_black_and_white(self):
        band = torch.tensor([0.0, 0.1, -0.1, 0.05, 0.5, -0.5]).view(1, 1, 6).expand(3, 1, 6)
        out = band_image(band, 0.1)
        expected = torch.tensor([0.5, 1.0, 0.0, 0.75, 1.0, 0.0]).view(1, 1, 6).expand(3, 1, 6)
        torch.testing.assert_close(out, expected)

    @pytest.mark.parametrize("scale", [0.0, -1.0])
    def test_rejects_a_scale_that_is_not_positive(self, scale):
        with pytest.raises(ValueError, match="positive scale"):
            band_image(torch.zeros(3, 2, 2), scale)


class TestNearZeroFraction:
    def test_counts_strictly_below_the_threshold(self):
        levels = [torch.tensor([0.0, 0.01, -0.019, 0.02, -0.5]), torch.full((2, 3), 0.3), torch.zeros(4)]
        assert near_zero_fraction(levels) == pytest.approx([3 / 5, 0.0, 1.0])
        assert near_zero_fraction(levels[:1], threshold=0.6) == [1.0]


def random_pyramid(seed: int, sizes=((4, 6), (8, 12), (16, 24))) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    bands = [0.1 * torch.randn(3, *size, generator=g) for size in sizes[1:]]
    return [torch.rand(3, *sizes[0], generator=g), *bands]


class TestPlotPyramids:
    def test_one_panel_per_level_and_row_with_a_shared_scale_per_column(self):
        rainy = random_pyramid(0)
        doubled = [rainy[0], *(2 * band for band in rainy[1:])]
        fig = plot_pyramids({"rainy": rainy, "doubled": doubled})
        axes = np.array(fig.axes).reshape(2, 3)
        assert [ax.get_ylabel() for ax in axes[:, 0]] == ["rainy", "doubled"]
        assert axes[0, 1].get_title() == "level 1 (band) 8×12"
        # The low-pass level is drawn as it is.
        np.testing.assert_allclose(axes[1, 0].images[0].get_array(), rainy[0].permute(1, 2, 0).numpy())
        # One scale per column: the doubled band sits twice as far from grey wherever neither saturates.
        for col in (1, 2):
            a = np.asarray(axes[0, col].images[0].get_array()) - 0.5
            b = np.asarray(axes[1, col].images[0].get_array()) - 0.5
            inside = np.abs(b) < 0.49
            assert inside.mean() > 0.5
            np.testing.assert_allclose(b[inside], 2 * a[inside], atol=1e-6)
        fig.savefig(io.BytesIO(), format="png")

    def test_signed_rows_draw_their_first_level_as_a_band(self):
        removed = [-0.05 * torch.ones(3, 4, 6), *random_pyramid(1)[1:]]
        fig = plot_pyramids({"removed": removed}, signed_rows=["removed"])
        assert np.asarray(fig.axes[0].images[0].get_array()).max() < 0.5  # negative: darker than grey

    def test_rejects_empty_input_and_uneven_pyramids(self):
        with pytest.raises(ValueError, match="at least one"):
            plot_pyramids({})
        with pytest.raises(ValueError, match="same number of levels"):
            plot_pyramids({"a": random_pyramid(0), "b": random_pyramid(1)[:2]})
        with pytest.raises(ValueError, match=r"\(C, H, W\)"):
            plot_pyramids({"a": [level[None] for level in random_pyramid(0)]})


class TestPlotLevelHistograms:
    def test_one_panel_per_level_and_the_fractions_in_the_legends(self):
        pyramids = {"rainy": random_pyramid(0), "clean": random_pyramid(1)}
        fig = plot_level_histograms(pyramids, threshold=0.05)
        assert len(fig.axes) == 3
        for level, ax in enumerate(fig.axes):
            labels = [text.get_text() for text in ax.get_legend().get_texts()]
            expected = [
                f"{name}: {float((levels[level].abs() < 0.05).float().mean()):.2f}"
                for name, levels in pyramids.items()
            ]
            assert labels == expected
            assert ax.get_yscale() == "log"
        assert fig.axes[0].get_xlim() == (0.0, 1.0) and fig.axes[1].get_xlim() == (-0.3, 0.3)
        fig.savefig(io.BytesIO(), format="png")

    def test_rejects_uneven_pyramids(self):
        with pytest.raises(ValueError, match="same number of levels"):
            plot_level_histograms({"a": random_pyramid(0), "b": random_pyramid(1)[:2]})
