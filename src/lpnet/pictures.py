"""Pictures of what LPNet does: labelled before/after sheets, and figures of the Laplacian pyramid.

**Sheets** are rows of image panels, each with a title above and a caption below, drawn with Pillow at
the images' own resolution (a pixel of a derained panel is a pixel of the output, never resampled). Every
command's picture is one: ``lpnet.eval`` and ``lpnet.demo`` write :func:`before_after` as
``before_after.png``; training's validation pictures (``images/val_step*.png``, W&B, TensorBoard) are
:func:`validation_sheet`; the notebooks show both. A row reads::

    rainy · <key>         derained              clean           |derained − clean| ×4
    [image]               [image]               [image]         [image]
    PSNR 27.30 dB · ...   PSNR 34.97 dB · ...   reference       mean 2.1/255

with the PSNR/SSIM of :mod:`lpnet.scoring` (Y channel) of the rainy input (the baseline) and of the
derained image, and an inset in a corner of every panel that enlarges the window with the most rain
(:func:`most_rain_window`), outlined where it comes from. A sheet is a :class:`Picture`: its pixels
(``(H, W, 3)`` uint8, what W&B and TensorBoard are given, what ``images/*.png`` hold) and where each panel
and each label lies, so tests can read back what a picture shows.

**Figures** (:func:`plot_pyramids`, :func:`plot_level_histograms`) are matplotlib ``Figure`` objects made
without pyplot (save them with :func:`lpnet.files.save_figure`; notebooks display them).
"""

from __future__ import annotations

import functools
import io
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from lpnet.io import SAVE_OPTIONS, to_uint8
from lpnet.scoring import INPUT_PREFIX

if TYPE_CHECKING:  # matplotlib is imported by the plots only: training imports this module too
    from matplotlib.figure import Figure

FONT_SIZE = 13  # pixels; DejaVu Sans at 13 px stays legible on a 256-pixel panel
GAP = 6  # white pixels between panels and between rows
PAD = 3  # white pixels around a line of text
ERROR_GAIN = 4  # |error| panels show 4 × the absolute difference (an 8-bit step of 1/255 becomes 4/255)
ZOOM = 2  # the inset enlarges its window this many times (nearest neighbour: pixels stay pixels)
ZOOM_FRACTION = 0.2  # the window's side, as a fraction of the panel's shorter side
MIN_ZOOM_WINDOW = 8  # no inset on panels so small that the window would be under 8 pixels
FRAME = (255, 190, 0)  # amber: the zoom window and the inset's frame
FRAME_WIDTH = 2
SCORES_LEGEND = (
    f"PSNR / SSIM: Y channel (lpnet.scoring); amber box: the window with the most rain, ×{ZOOM} in the corner"
)
LEGEND = f"{SCORES_LEGEND}; |error| ×{ERROR_GAIN}"  # sheets with an error panel


@functools.cache
def font() -> ImageFont.FreeTypeFont:
    """DejaVu Sans at :data:`FONT_SIZE` pixels: the font matplotlib ships (nothing downloaded; it has the
    ×, − and · the labels use)."""
    import matplotlib

    path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    return ImageFont.truetype(str(path), FONT_SIZE)


def _line_height() -> int:
    ascent, descent = font().getmetrics()
    return ascent + descent


def text_size(text: str) -> tuple[int, int]:
    """``(width, height)`` in pixels of ``text`` (lines split on newlines) with :data:`PAD` around it;
    ``(0, 0)`` for no text."""
    if not text:
        return 0, 0
    lines = text.split("\n")
    width = max(math.ceil(font().getlength(line)) for line in lines)
    return width + 2 * PAD, len(lines) * _line_height() + 2 * PAD


# --------------------------------------------------------------------------------------------------
# Layout


@dataclass(frozen=True)
class Box:
    """A rectangle of a picture, in pixels: its top-left corner and its size."""

    top: int
    left: int
    height: int
    width: int

    def of(self, pixels: np.ndarray) -> np.ndarray:
        """The part of ``(H, W, ...)`` ``pixels`` inside the box (a view)."""
        return pixels[self.top : self.top + self.height, self.left : self.left + self.width]


@dataclass(frozen=True)
class Panel:
    """One image of a sheet.

    Attributes:
        image: ``(3, h, w)`` in [0, 1] (clipped), shown pixel for pixel.
        title: text above the image (may hold newlines).
        caption: text below the image.
        zoom: a window of the image to outline and show enlarged ×:data:`ZOOM` in the corner farthest
            from it (None: no inset).
    """

    image: Tensor
    title: str = ""
    caption: str = ""
    zoom: Box | None = None


@dataclass(frozen=True)
class Label:
    """A line (or lines) of text on a picture, centred in ``box``."""

    text: str
    box: Box


@dataclass(frozen=True)
class Picture:
    """A rendered sheet and where everything on it is.

    Attributes:
        pixels: ``(H, W, 3)`` uint8, white between panels.
        panels: per row, the box each panel's image was pasted into (a zoom, when drawn, covers part of
            it: its outline and its inset).
        labels: every title, caption, heading and legend, with the band it is drawn in.
        insets: the box of each zoom inset, in the order the panels were drawn.
    """

    pixels: np.ndarray
    panels: tuple[tuple[Box, ...], ...]
    labels: tuple[Label, ...]
    insets: tuple[Box, ...] = ()

    def tensor(self) -> Tensor:
        """The pixels as ``(3, H, W)`` float32 in [0, 1] (``k / 255``: :func:`lpnet.io.write_image` writes
        them back exactly)."""
        return torch.from_numpy(self.pixels).permute(2, 0, 1).float() / 255

    def pil(self) -> Image.Image:
        """The pixels as an RGB Pillow image (what W&B is given: no rescaling guesses)."""
        return Image.fromarray(self.pixels, mode="RGB")

    def texts(self) -> list[str]:
        """Every label's text, top to bottom, left to right."""
        return [label.text for label in self.labels]


def slot_width(panel: Panel) -> int:
    """The width a panel takes in its row: its image's or its longest line of text's, the wider."""
    return max(panel.image.shape[-1], text_size(panel.title)[0], text_size(panel.caption)[0])


def compose(rows: Sequence[Sequence[Panel]], heading: str = "", legend: str = "") -> Picture:
    """Lay panels out in rows, titles above and captions below, and render them.

    Each panel gets a slot as wide as its image or its longest line of text, whichever is wider (text is
    never clipped; the image is centred in the slot). Rows are left-aligned; within a row every title band
    and every caption band has the same height, so the images of a row line up.

    Args:
        rows: the panels, row by row (a row may be empty of text).
        heading: text above everything (left-aligned), e.g. the step and the image's name.
        legend: text below everything (left-aligned), e.g. what the scores and boxes mean.

    Returns:
        The :class:`Picture`.
    """
    if not rows or not all(rows):
        raise ValueError("compose needs at least one row, and at least one panel in every row")
    placed: list[tuple[Panel, Box]] = []
    labels: list[Label] = []
    panel_boxes: list[tuple[Box, ...]] = []
    top = text_size(heading)[1]
    width = text_size(heading)[0]
    for row in rows:
        title_height = max(text_size(p.title)[1] for p in row)
        caption_height = max(text_size(p.caption)[1] for p in row)
        image_height = max(p.image.shape[-2] for p in row)
        left, boxes = 0, []
        for panel in row:
            h, w = panel.image.shape[-2:]
            slot = slot_width(panel)
            box = Box(top + title_height, left + (slot - w) // 2, h, w)
            placed.append((panel, box))
            boxes.append(box)
            if panel.title:
                labels.append(Label(panel.title, Box(top, left, title_height, slot)))
            if panel.caption:
                labels.append(
                    Label(panel.caption, Box(top + title_height + image_height, left, caption_height, slot))
                )
            left += slot + GAP
        panel_boxes.append(tuple(boxes))
        width = max(width, left - GAP)
        top += title_height + image_height + caption_height + GAP
    top -= GAP
    legend_width, legend_height = text_size(legend)
    width = max(width, legend_width)
    height = top + legend_height
    if heading:
        labels.insert(0, Label(heading, Box(0, 0, text_size(heading)[1], text_size(heading)[0])))
    if legend:
        labels.append(Label(legend, Box(top, 0, legend_height, legend_width)))

    pixels = np.full((height, width, 3), 255, dtype=np.uint8)
    insets = []
    for panel, box in placed:
        box.of(pixels)[:] = to_uint8(panel.image)
        if panel.zoom is not None:
            insets.append(_draw_zoom(pixels, box, panel.zoom))
    image = Image.fromarray(pixels)
    draw = ImageDraw.Draw(image)
    for label in labels:
        _draw_label(draw, label)
    return Picture(np.asarray(image).copy(), tuple(panel_boxes), tuple(labels), tuple(insets))


def _draw_label(draw: ImageDraw.ImageDraw, label: Label) -> None:
    """Black text, each line centred in the label's box (left-aligned when the box is the text's own)."""
    line_height = _line_height()
    for index, line in enumerate(label.text.split("\n")):
        x = label.box.left + (label.box.width - font().getlength(line)) / 2
        draw.text((round(x), label.box.top + PAD + index * line_height), line, fill=(0, 0, 0), font=font())


def _draw_zoom(pixels: np.ndarray, panel: Box, window: Box) -> Box:
    """Outline ``window`` (relative to ``panel``) and paste it enlarged in the panel's farthest corner.

    Returns the inset's box (in picture coordinates).
    """
    image = panel.of(pixels)
    enlarged = window.of(image).repeat(ZOOM, axis=0).repeat(ZOOM, axis=1)
    h, w = enlarged.shape[:2]
    below = window.top + window.height / 2 < panel.height / 2  # the window is in the upper half
    right = window.left + window.width / 2 < panel.width / 2
    inset = Box(panel.height - h if below else 0, panel.width - w if right else 0, h, w)
    _frame(window.of(image))
    inset.of(image)[:] = enlarged
    _frame(inset.of(image))
    return Box(panel.top + inset.top, panel.left + inset.left, h, w)


def _frame(region: np.ndarray) -> None:
    """Paint a :data:`FRAME` border of :data:`FRAME_WIDTH` pixels just inside ``region`` (in place)."""
    for edge in (
        region[:FRAME_WIDTH],
        region[-FRAME_WIDTH:],
        region[:, :FRAME_WIDTH],
        region[:, -FRAME_WIDTH:],
    ):
        edge[:] = FRAME


# --------------------------------------------------------------------------------------------------
# What the panels show


def centre_crop(x: Tensor, side: int) -> Tensor:
    """The central ``side × side`` window of a ``(C, H, W)`` image (the whole side where it is smaller;
    ``side`` 0: the whole image)."""
    if side <= 0:
        return x
    h, w = x.shape[-2:]
    top, left = max(0, (h - side) // 2), max(0, (w - side) // 2)
    return x[..., top : top + side, left : left + side]


def most_rain_window(rainy: Tensor, reference: Tensor, side: int) -> Box:
    """The ``side × side`` window where ``|rainy − reference|`` (mean over channels) is largest in total.

    Args:
        rainy: ``(3, H, W)`` in [0, 1].
        reference: ``(3, H, W)``: the clean image, or the derained one when there is no clean image.
        side: window side in pixels, at most ``min(H, W)``.

    Returns:
        The window's :class:`Box`, relative to the image (the first of equal windows, row by row).
    """
    if rainy.shape != reference.shape:
        raise ValueError(f"rainy {tuple(rainy.shape)} and reference {tuple(reference.shape)} differ in shape")
    h, w = rainy.shape[-2:]
    if not 1 <= side <= min(h, w):
        raise ValueError(f"zoom window side {side} does not fit a {h}×{w} image")
    difference = (rainy.double() - reference.double()).abs().mean(0)
    integral = F.pad(difference.cumsum(0).cumsum(1), (1, 0, 1, 0))  # integral[i, j] = sum of [:i, :j]
    sums = (
        integral[side:, side:] - integral[:-side, side:] - integral[side:, :-side] + integral[:-side, :-side]
    )
    top, left = divmod(int(sums.argmax()), sums.shape[1])
    return Box(top, left, side, side)


def _zoom_window(rainy: Tensor, reference: Tensor) -> Box | None:
    side = round(min(rainy.shape[-2:]) * ZOOM_FRACTION)
    return most_rain_window(rainy, reference, side) if side >= MIN_ZOOM_WINDOW else None


def error_image(a: Tensor, b: Tensor) -> Tensor:
    """``|a − b| ×`` :data:`ERROR_GAIN` per channel, clipped to [0, 1]: black where they agree."""
    return ((a - b).abs() * ERROR_GAIN).clamp(0, 1)


def score_caption(scores: Mapping[str, float], prefix: str = "") -> str:
    """``"PSNR 34.97 dB · SSIM 0.9637"`` from a :class:`lpnet.scoring.Scoreboard` row (``prefix``
    ``"input_"``: the rainy input's scores); ``""`` when the row has no Y scores."""
    psnr, ssim = scores.get(f"{prefix}psnr_y"), scores.get(f"{prefix}ssim_y")
    if psnr is None or ssim is None:
        return ""
    return f"PSNR {psnr:.2f} dB · SSIM {ssim:.4f}"


@dataclass(frozen=True)
class Example:
    """One image through the network: a row of a before/after sheet.

    Attributes:
        key: the image's name (shown in the rainy panel's title).
        rainy, derained: ``(3, H, W)`` in [0, 1].
        clean: ``(3, H, W)`` in [0, 1], or None (real rain: no scores, no error against it).
        scores: a :class:`lpnet.scoring.Scoreboard` row for this image (``psnr_y``, ``ssim_y``,
            ``input_psnr_y``, ``input_ssim_y``, ...); captions under the rainy and derained panels.
    """

    key: str
    rainy: Tensor
    derained: Tensor
    clean: Tensor | None = None
    scores: Mapping[str, float] = field(default_factory=dict)

    def cropped(self, side: int) -> Example:
        """The same example with every image cut to its central ``side × side`` window (scores kept)."""
        images = {name: centre_crop(getattr(self, name), side) for name in ("rainy", "derained")}
        clean = centre_crop(self.clean, side) if self.clean is not None else None
        return Example(self.key, images["rainy"], images["derained"], clean, self.scores)


def _model_row(
    key: str,
    rainy: Tensor,
    outputs: Mapping[str, tuple[Tensor, Mapping[str, float]]],
    clean: Tensor | None,
    zoom: bool,
) -> tuple[list[Panel], Box | None]:
    """``rainy | each output | clean`` (no clean panel without a clean image) and the zoom window they
    share: where rainy and clean (or, without a clean image, the first output) differ most. Captions: the
    first output's row's ``input_*`` scores under rainy, each output's scores under it."""
    outputs = {name: (x.clamp(0, 1), scores) for name, (x, scores) in outputs.items()}
    first, first_scores = next(iter(outputs.values()))
    window = _zoom_window(rainy, clean if clean is not None else first) if zoom else None
    panels = [Panel(rainy, f"rainy · {key}", score_caption(first_scores, INPUT_PREFIX), window)]
    panels += [Panel(x, name, score_caption(scores), window) for name, (x, scores) in outputs.items()]
    if clean is not None:
        panels.append(Panel(clean, "clean", "reference", window))
    return panels, window


def example_panels(example: Example, zoom: bool = True) -> list[Panel]:
    """``rainy | derained | clean | |derained − clean| ×4`` for ``example`` (without a clean image:
    ``rainy | derained | |rainy − derained| ×4``, what the network removed).

    Captions hold the scores; every panel zooms into the same window, where rainy and clean (or, without
    a clean image, rainy and derained) differ most.
    """
    rainy, derained, clean = example.rainy, example.derained.clamp(0, 1), example.clean
    outputs = {"derained": (derained, example.scores)}
    panels, window = _model_row(example.key, rainy, outputs, clean, zoom)
    if clean is None:
        removed = error_image(rainy, derained)
        return [*panels, Panel(removed, f"|rainy − derained| ×{ERROR_GAIN} (removed)", "", window)]
    error = error_image(derained, clean)
    mean_error = float((derained - clean).abs().mean()) * 255
    return [*panels, Panel(error, f"|derained − clean| ×{ERROR_GAIN}", f"mean {mean_error:.1f}/255", window)]


def before_after(examples: Sequence[Example], heading: str = "", zoom: bool = True) -> Picture:
    """One row of :func:`example_panels` per example, the heading on top and the legend below.

    Args:
        examples: the rows (their images may differ in size between rows).
        heading: e.g. which checkpoint on which data, and what the crops are.
        zoom: draw the most-rain insets.
    """
    if not examples:
        raise ValueError("before_after needs at least one example")
    return compose([example_panels(e, zoom) for e in examples], heading=heading, legend=LEGEND)


@dataclass(frozen=True)
class Comparison:
    """One image derained by several models: a row ``rainy | model 1 | model 2 | … | clean``.

    Attributes:
        key: the image's name (shown in the rainy panel's title).
        rainy: ``(3, H, W)`` in [0, 1].
        outputs: ``{model name: (derained (3, H, W), its Scoreboard row)}``, in display order; the
            rainy panel's caption comes from the first row's ``input_*`` scores.
        clean: ``(3, H, W)`` in [0, 1], or None (real rain: no scores).
    """

    key: str
    rainy: Tensor
    outputs: Mapping[str, tuple[Tensor, Mapping[str, float]]]
    clean: Tensor | None = None

    def cropped(self, side: int) -> Comparison:
        """The same comparison with every image cut to its central ``side × side`` window (scores kept)."""
        outputs = {name: (centre_crop(x, side), row) for name, (x, row) in self.outputs.items()}
        clean = centre_crop(self.clean, side) if self.clean is not None else None
        return Comparison(self.key, centre_crop(self.rainy, side), outputs, clean)


def comparison(rows: Sequence[Comparison], heading: str = "", zoom: bool = True) -> Picture:
    """One row per image: rainy, each model's output with its scores, and the clean image.

    Every panel of a row zooms into the same window, where rainy and clean (or the first output) differ
    most, so the models are compared on the same streaks.
    """
    if not rows:
        raise ValueError("comparison needs at least one row")
    sheet = [_model_row(row.key, row.rainy, row.outputs, row.clean, zoom)[0] for row in rows]
    return compose(sheet, heading=heading, legend=SCORES_LEGEND)


def level_panels(levels: Sequence[Tensor], width: int) -> list[Panel]:
    """LPNet's output at every pyramid level (coarsest first), enlarged (nearest) to one size so that the
    row is about ``width`` pixels wide, each titled with its level and its own size."""
    if not levels:
        raise ValueError("level_panels needs at least one level")
    h, w = levels[-1].shape[-2:]
    shown_width = max(1, (width - GAP * (len(levels) - 1)) // len(levels))
    shown = (max(1, round(h * shown_width / w)), shown_width)
    panels = []
    for index, level in enumerate(levels):
        enlarged = F.interpolate(level[None].clamp(0, 1).float(), size=shown, mode="nearest-exact")[0]
        role = " (coarsest)" if index == 0 else " (output)" if index == len(levels) - 1 else ""
        panels.append(Panel(enlarged, f"level {index} · {level.shape[-2]}×{level.shape[-1]}{role}"))
    return panels


def validation_sheet(example: Example, levels: Sequence[Tensor], step: int) -> Picture:
    """Training's validation picture: :func:`example_panels`, then the network's output at every level.

    Args:
        example: the validation image, its derained output and its scores.
        levels: LPNet's outputs for it, coarsest first, each ``(3, h, w)``.
        step: the training step (in the heading).
    """
    top = example_panels(example)
    width = sum(slot_width(p) for p in top) + GAP * (len(top) - 1)
    heading = f"validation at step {step}: {example.key}"
    return compose([top, level_panels(levels, width)], heading=heading, legend=LEGEND)


def jpeg(path: str | Path, quality: int = SAVE_OPTIONS["JPEG"]["quality"]) -> bytes:
    """An image file re-encoded as JPEG: what the notebooks display, so that a notebook stored with its
    outputs stays small (the PNG on disk is the exact picture)."""
    buffer = io.BytesIO()
    with Image.open(path) as image:
        image.convert("RGB").save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


# --------------------------------------------------------------------------------------------------
# Figures of the pyramid (matplotlib)


def band_image(band: Tensor, scale: float) -> Tensor:
    """A signed Laplacian band as a picture: 0 is mid-grey, ``-scale`` black and ``+scale`` white.

    Args:
        band: ``(C, H, W)`` band-pass values (about ``[-1, 1]``; most near 0).
        scale: the magnitude shown at full contrast (larger values saturate); > 0.

    Returns:
        ``(C, H, W)`` in [0, 1].
    """
    if not scale > 0:
        raise ValueError(f"band_image needs a positive scale, got {scale}")
    return (0.5 + 0.5 * band / scale).clamp(0, 1)


def near_zero_fraction(levels: Sequence[Tensor], threshold: float = 0.02) -> list[float]:
    """Per pyramid level, the fraction of values with ``|v| < threshold``: how sparse each band is.

    Args:
        levels: tensors of any shape (e.g. :func:`lpnet.laplacian_pyramid`'s, coarsest first).
        threshold: "near zero", in image units ([0, 1] images: 0.02 ≈ 5/255).

    Returns:
        One fraction in [0, 1] per level, in the order given.
    """
    return [float((level.abs() < threshold).double().mean()) for level in levels]


def _robust_max(tensors: Sequence[Tensor], quantile: float = 99.5) -> float:
    """The ``quantile``-th percentile of ``|values|`` over all tensors (outliers saturate, not dim)."""
    values = np.concatenate([t.detach().abs().float().cpu().numpy().ravel() for t in tensors])
    return max(float(np.percentile(values, quantile)), 1e-6)


def _hwc(x: Tensor) -> np.ndarray:
    if x.dim() != 3 or x.shape[0] not in (1, 3):
        raise ValueError(f"expected a (C, H, W) level with 1 or 3 channels, got {tuple(x.shape)}")
    return x.detach().float().cpu().permute(1, 2, 0).numpy()


def plot_pyramids(
    pyramids: Mapping[str, Sequence[Tensor]], signed_rows: Collection[str] = (), panel: float = 2.6
) -> Figure:
    """One row per pyramid, one column per level (coarsest left), as in the paper's Fig. 5.

    The first level of a Laplacian pyramid is a small image and is drawn as one; every other level is a
    signed band drawn by :func:`band_image` with one scale per column (the 99.5th percentile of ``|v|``
    over the rows), so the rows of a column compare directly. Rows named in ``signed_rows`` (e.g. the
    pyramid of ``rainy - derained``) draw their first level as a band too.

    Args:
        pyramids: ``{row title: levels}``; every row has the same number of ``(C, H, W)`` levels (``C`` 1
            or 3), the first in [0, 1] unless the row is signed.
        signed_rows: titles of rows whose every level is signed.
        panel: width of one panel in inches.

    Returns:
        A matplotlib ``Figure`` (not registered with pyplot; save it or display it).
    """
    if not pyramids:
        raise ValueError("plot_pyramids needs at least one pyramid")
    counts = {len(levels) for levels in pyramids.values()}
    if len(counts) != 1:
        raise ValueError(f"every pyramid needs the same number of levels, got {sorted(counts)}")
    from matplotlib.figure import Figure

    n = counts.pop()
    names = list(pyramids)
    finest = next(iter(pyramids.values()))[-1]
    aspect = finest.shape[-2] / finest.shape[-1]  # panels take the images' shape: no blank bands
    fig = Figure(figsize=(panel * n, (panel * aspect + 0.3) * len(names) + 0.1), layout="constrained")
    axes = fig.subplots(len(names), n, squeeze=False)
    for col in range(n):
        bands = [pyramids[name][col] for name in names if col > 0 or name in signed_rows]
        scale = _robust_max(bands) if bands else 1.0
        for row, name in enumerate(names):
            level = pyramids[name][col]
            signed = col > 0 or name in signed_rows
            ax = axes[row, col]
            shown = band_image(level, scale) if signed else level.clamp(0, 1)
            ax.imshow(_hwc(shown))  # matplotlib's default: nearest when enlarging, antialiased when shrinking
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                kind = "low-pass" if col == 0 else "band"
                ax.set_title(f"level {col} ({kind}) {level.shape[-2]}×{level.shape[-1]}", fontsize=9)
            if col == 0:
                ax.set_ylabel(name, fontsize=10)
            if signed:
                box = {"facecolor": "black", "alpha": 0.6, "pad": 1.5, "linewidth": 0}
                ax.text(0.02, 0.03, f"±{scale:.3f}", transform=ax.transAxes, fontsize=7, color="w", bbox=box)
    return fig


def plot_level_histograms(
    pyramids: Mapping[str, Sequence[Tensor]],
    threshold: float = 0.02,
    band_range: float = 0.3,
    bins: int = 121,
    panel: float = 3.0,
) -> Figure:
    """Histograms of every level's values (log counts), one panel per level, a line per pyramid.

    The legend gives each pyramid's :func:`near_zero_fraction` for that level; the shaded strip is
    ``|v| < threshold``. The first level (the low-pass image) spans [0, 1], the bands
    ``[-band_range, band_range]``; values beyond the range count in the end bins.

    Args:
        pyramids: ``{name: levels}``, each a Laplacian pyramid coarsest first (the same number of levels).
        threshold: the "near zero" bound of :func:`near_zero_fraction`.
        band_range: the x-range of the band panels.
        bins: histogram bins per panel.
        panel: panel width in inches.

    Returns:
        A matplotlib ``Figure``.
    """
    if not pyramids:
        raise ValueError("plot_level_histograms needs at least one pyramid")
    n = len(next(iter(pyramids.values())))
    if any(len(levels) != n for levels in pyramids.values()):
        raise ValueError("every pyramid needs the same number of levels")
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullLocator

    fractions = {name: near_zero_fraction(levels, threshold) for name, levels in pyramids.items()}
    fig = Figure(figsize=(panel * n, panel * 0.9), layout="constrained")
    axes = fig.subplots(1, n, squeeze=False)[0]
    for col, ax in enumerate(axes):
        lo, hi = (0.0, 1.0) if col == 0 else (-band_range, band_range)
        edges = np.linspace(lo, hi, bins + 1)
        for name, levels in pyramids.items():
            values = levels[col].detach().float().cpu().numpy().ravel()
            counts, _ = np.histogram(np.clip(values, lo, hi), bins=edges)
            density = counts / max(values.size, 1)
            label = f"{name}: {fractions[name][col]:.2f}"
            ax.stairs(np.where(density > 0, density, np.nan), edges, label=label)
        ax.axvspan(-threshold, threshold, color="grey", alpha=0.2, linewidth=0)
        ax.set_yscale("log")
        ax.yaxis.set_minor_locator(NullLocator())  # decades suffice; minor log ticks are slow to lay out
        ax.set_xlim(lo, hi)
        ax.set_title(f"level {col} ({'low-pass' if col == 0 else 'band'})", fontsize=9)
        ax.set_xlabel("value", fontsize=8)
        ax.legend(fontsize=7, title=f"|v| < {threshold}", title_fontsize=7)
    axes[0].set_ylabel("fraction of values")
    fig.suptitle("values per Laplacian level (coarsest left): the finer bands concentrate at 0")
    return fig
