"""lpnet.pictures: what a sheet shows (panels, labels, scores, zoom, levels, read back from its pixels),
band pictures, sparsity per level and the pyramid figures of the notebooks."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from lpnet import pictures
from lpnet.io import read_image, to_uint8, write_image
from lpnet.pictures import (
    FRAME,
    PAD,
    ZOOM,
    Box,
    Example,
    Panel,
    band_image,
    before_after,
    compose,
    error_image,
    most_rain_window,
    near_zero_fraction,
    plot_level_histograms,
    plot_pyramids,
    validation_sheet,
)
from lpnet.scoring import Scoreboard


def smooth_image(seed: int, size=(40, 56)) -> torch.Tensor:
    """A smooth random picture in [0.2, 0.8]: no pixel is white or black, unlike the sheet around it."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, 4, 4, generator=g)
    return 0.2 + 0.6 * torch.nn.functional.interpolate(coarse, size=size, mode="bilinear")[0]


def rendered_text(text: str, box: Box) -> np.ndarray:
    """``text`` drawn on white as the spec says: black, each line centred in ``box``, PAD from its top."""
    canvas = Image.new("RGB", (box.width, box.height), "white")
    draw = ImageDraw.Draw(canvas)
    font = pictures.font()
    line_height = sum(font.getmetrics())
    for index, line in enumerate(text.split("\n")):
        x = round((box.width - font.getlength(line)) / 2)
        draw.text((x, PAD + index * line_height), line, fill="black", font=font)
    return np.asarray(canvas)


def scored(key: str, rainy, derained, clean) -> Example:
    board = Scoreboard()
    board.update(derained[None], clean[None], rainy=rainy[None], keys=[key])
    return Example(key, rainy, derained, clean, board.rows()[0])


def rainy_triplet(seed: int = 0, size=(60, 80), streak=(10, 50, 16)):
    """clean, rainy = clean + a bright square of streaks at (top, left, side), derained = half of it."""
    clean = smooth_image(seed, size)
    rain = torch.zeros_like(clean)
    top, left, side = streak
    rain[:, top : top + side, left : left + side : 2] = 0.5
    rainy = (clean + rain).clamp(0, 1)
    return rainy, (clean + rain / 4).clamp(0, 1), clean


class TestCompose:
    def test_panels_land_where_the_picture_says_pixel_for_pixel(self):
        images = [smooth_image(0), smooth_image(1, (30, 20)), smooth_image(2)]
        picture = compose([[Panel(images[0], "a"), Panel(images[1], "b")], [Panel(images[2], caption="c")]])
        (first, second), (third,) = picture.panels
        for image, box in zip(images, (first, second, third)):
            np.testing.assert_array_equal(box.of(picture.pixels), to_uint8(image))
        assert first.left == 0 and second.left == first.width + pictures.GAP
        assert third.top > first.top + first.height  # the second row is below the first
        # Titles above their panel, the caption below; between them only white.
        title_a, title_b, caption_c = picture.labels
        assert title_b.box.top == title_a.box.top  # one title band per row
        assert title_a.box.top + title_a.box.height == first.top
        assert caption_c.box.top == third.top + third.height
        assert (picture.pixels[:, first.width : second.left] == 255).all()

    def test_labels_are_rendered_in_their_bands_and_differ(self):
        picture = compose([[Panel(smooth_image(0), "rainy", "PSNR 1"), Panel(smooth_image(1), "derained")]])
        regions = []
        for label in picture.labels:
            region = label.box.of(picture.pixels)
            assert region.min() < 100, f"{label.text!r}: its band holds no dark text"
            np.testing.assert_array_equal(region, rendered_text(label.text, label.box))
            regions.append(region)
        assert not np.array_equal(regions[0][:, :40], regions[2][:, :40])  # "rainy" is not "derained"

    def test_a_long_caption_widens_its_slot_instead_of_being_clipped(self):
        caption = "a caption much wider than its tiny image"
        picture = compose([[Panel(smooth_image(0, (12, 12)), caption=caption)]])
        (label,) = picture.labels
        assert label.box.width == picture.pixels.shape[1] >= pictures.font().getlength(caption)
        assert picture.panels[0][0].left == (label.box.width - 12) // 2  # the image is centred

    def test_tensor_round_trips_through_write_image(self, tmp_path):
        picture = compose([[Panel(smooth_image(0), "title")]], heading="heading", legend="legend")
        write_image(tmp_path / "p.png", picture.tensor())
        np.testing.assert_array_equal(to_uint8(read_image(tmp_path / "p.png")), picture.pixels)

    def test_rejects_empty_rows(self):
        with pytest.raises(ValueError, match="at least one row"):
            compose([])
        with pytest.raises(ValueError, match="at least one panel"):
            compose([[Panel(smooth_image(0))], []])


class TestMostRainWindow:
    def test_finds_the_window_where_the_images_differ_most(self):
        rainy, _, clean = rainy_triplet(streak=(10, 50, 16))
        assert most_rain_window(rainy, clean, 16) == Box(10, 49, 16, 16)  # the first best: streak columns
        assert most_rain_window(rainy, clean, 60) == Box(0, 5, 60, 60)  # the first holding every streak

    @pytest.mark.parametrize("side", [0, 61])
    def test_rejects_a_window_that_does_not_fit(self, side):
        rainy, _, clean = rainy_triplet()
        with pytest.raises(ValueError, match="does not fit"):
            most_rain_window(rainy, clean, side)


class TestBeforeAfter:
    def test_a_row_shows_rainy_derained_clean_and_error_with_the_scoreboard_figures(self):
        rainy, derained, clean = rainy_triplet()
        example = scored("rain-007", rainy, derained, clean)
        picture = before_after([example], zoom=False)
        (boxes,) = picture.panels
        for box, image in zip(boxes, (rainy, derained, clean, error_image(derained, clean))):
            np.testing.assert_array_equal(box.of(picture.pixels), to_uint8(image))
        row = example.scores
        texts = picture.texts()
        assert texts[:2] == [
            "rainy · rain-007",
            f"PSNR {row['input_psnr_y']:.2f} dB · SSIM {row['input_ssim_y']:.4f}",
        ]
        assert texts[2:4] == ["derained", f"PSNR {row['psnr_y']:.2f} dB · SSIM {row['ssim_y']:.4f}"]
        assert texts[4:6] == ["clean", "reference"] and texts[6] == "|derained − clean| ×4"
        # Each caption sits under its own panel.
        captions = [label for label in picture.labels if label.text.startswith("PSNR ")]
        for caption, box in zip(captions, boxes[:2]):
            assert caption.box.left <= box.left < box.left + box.width <= caption.box.left + caption.box.width
            assert caption.box.top == box.top + box.height

    def test_the_zoom_inset_enlarges_the_most_rain_window_in_the_farthest_corner(self):
        rainy, derained, clean = rainy_triplet(size=(60, 80), streak=(4, 6, 12))  # top-left rain
        picture = before_after([scored("k", rainy, derained, clean)])
        panel = picture.panels[0][0]
        window = most_rain_window(rainy, clean, round(60 * pictures.ZOOM_FRACTION))
        inset = picture.insets[0]
        side = window.height * ZOOM
        assert inset == Box(panel.top + 60 - side, panel.left + 80 - side, side, side)  # bottom right
        enlarged = to_uint8(rainy)[
            window.top : window.top + window.height, window.left : window.left + window.width
        ]
        enlarged = enlarged.repeat(ZOOM, 0).repeat(ZOOM, 1)
        inner = slice(pictures.FRAME_WIDTH, -pictures.FRAME_WIDTH)
        np.testing.assert_array_equal(inset.of(picture.pixels)[inner, inner], enlarged[inner, inner])
        assert (inset.of(picture.pixels)[0] == FRAME).all()
        # The window is outlined where it is, in every panel of the row.
        for box in picture.panels[0]:
            outline = Box(box.top + window.top, box.left + window.left, window.height, window.width)
            assert (outline.of(picture.pixels)[0] == FRAME).all()

    def test_without_a_clean_image_it_shows_what_was_removed_and_no_scores(self):
        rainy, derained, _ = rainy_triplet()
        picture = before_after([Example("photo", rainy, derained)], zoom=False)
        assert len(picture.panels[0]) == 3
        assert picture.texts()[:3] == ["rainy · photo", "derained", "|rainy − derained| ×4 (removed)"]
        np.testing.assert_array_equal(
            picture.panels[0][2].of(picture.pixels), to_uint8(error_image(rainy, derained))
        )

    def test_cropped_examples_keep_their_scores(self):
        rainy, derained, clean = rainy_triplet()
        example = scored("k", rainy, derained, clean)
        cropped = example.cropped(32)
        assert cropped.rainy.shape[-2:] == (32, 32) and cropped.scores == example.scores
        assert example.cropped(0) == example


class TestValidationSheet:
    def test_every_level_is_a_titled_panel_enlarged_from_its_pixels(self):
        rainy, derained, clean = rainy_triplet(size=(64, 96))
        levels = [smooth_image(k, (64 // 2**k, 96 // 2**k)) for k in reversed(range(4))]
        picture = validation_sheet(scored("val-1", rainy, derained, clean), levels, step=1200)
        assert picture.texts()[0] == "validation at step 1200: val-1"
        top, level_boxes = picture.panels
        assert len(top) == 4 and len(level_boxes) == len(levels)
        titles = [t for t in picture.texts() if t.startswith("level ")]
        assert titles == [
            "level 0 · 8×12 (coarsest)",
            "level 1 · 16×24",
            "level 2 · 32×48",
            "level 3 · 64×96 (output)",
        ]
        for level, box in zip(levels, level_boxes):
            shown = box.of(picture.pixels)
            assert shown.shape[0] * 96 == pytest.approx(shown.shape[1] * 64, abs=96)  # the image's shape
            # Enlarged by nearest neighbour: the corners are the level's corner pixels.
            expected = to_uint8(level)
            np.testing.assert_array_equal(shown[0, 0], expected[0, 0])
            np.testing.assert_array_equal(shown[-1, -1], expected[-1, -1])
        # The level row spans about the width of the row above it (no empty cell).
        right = level_boxes[-1].left + level_boxes[-1].width
        assert 0.8 * picture.pixels.shape[1] < right <= picture.pixels.shape[1]


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


def test_jpeg_reencodes_a_picture_file_closely(tmp_path):
    picture = compose([[Panel(smooth_image(0), "title")]])
    write_image(tmp_path / "p.png", picture.tensor())
    data = pictures.jpeg(tmp_path / "p.png")
    assert data[:2] == b"\xff\xd8"  # JPEG
    with Image.open(io.BytesIO(data)) as decoded:
        shown = np.asarray(decoded).astype(int)
    assert shown.shape == picture.pixels.shape
    assert np.abs(shown - picture.pixels).mean() < 3
