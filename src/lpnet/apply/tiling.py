"""Exact tiling: a photo of any size derained tile by tile gives the whole-image result.

LPNet is fully convolutional, so a large image can run tile by tile and give *the same* output as the
whole image, provided two things hold for every tile:

1. **Enough context.** Each tile is run with ``overlap`` extra pixels on every side that are then cropped
   away. The output at a pixel depends on inputs up to
   :func:`~lpnet.models.complexity.receptive_field_radius` pixels away: 236 px for the official 5-level
   model (the coarsest subnet's eleven 3×3 convolutions at 1/16 resolution reach 11·16 = 176 px, the four
   blur-and-halve steps down and the four upsampling steps back up 30 px each). That bound is tight
   (checked against autograd in the tests), so the default overlap makes tiled and whole-image outputs
   agree to float rounding (~1e-6), not merely to 1/255.
2. **The same pyramid sampling phase.** TF 'SAME' padding, which the official model uses, pads a side of
   ``n`` pixels by 1 before when ``n`` is even and by 2 when it is odd, so where the half-resolution samples
   sit depends on the *parity* of every level's size. A tile therefore starts at a multiple of
   ``2^(levels-1)`` (16) *and* has a size congruent to the image's modulo 16; then each of its pyramid levels
   is an exact sub-grid of the whole image's. (Aligning only the starts is not enough: tiles whose sizes have
   other parities sample their pyramids a pixel off, and even a random-init net then differs by 0.1-0.2.)

Tiles never run the whole image through the network; the full-resolution input and output stay where the
input lives (CPU for large photos) and only tiles travel to the network's device.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from lpnet.allocator import release_free_memory
from lpnet.config import DerainConfig
from lpnet.models.complexity import receptive_field_radius
from lpnet.models.lpnet import LPNet


@dataclass(frozen=True)
class _Span:
    """One tile along one axis: the network sees ``window``, ``keep`` is written to the output."""

    keep_start: int
    keep_end: int
    win_start: int
    win_end: int

    @property
    def window(self) -> slice:
        return slice(self.win_start, self.win_end)

    @property
    def keep(self) -> slice:
        return slice(self.keep_start, self.keep_end)

    @property
    def keep_in_window(self) -> slice:
        return slice(self.keep_start - self.win_start, self.keep_end - self.win_start)


def spans(length: int, tile: int, overlap: int, align: int) -> list[_Span]:
    """Cut one axis of ``length`` pixels into tiles of ``tile`` kept pixels and ``overlap`` context.

    Windows start at multiples of ``align`` and end at positions congruent to ``length`` modulo ``align``,
    so every window's size has the parity of the whole axis at every pyramid level (module doc, point 2).
    """
    if length <= tile + 2 * overlap:
        return [_Span(0, length, 0, length)]
    step = max(align, tile // align * align)
    spans = []
    for keep_start in range(0, length, step):
        keep_end = min(keep_start + step, length)
        win_start = max(0, (keep_start - overlap) // align * align)
        win_end = keep_end + overlap
        win_end = min(length, win_end + (length - win_end) % align)
        spans.append(_Span(keep_start, keep_end, win_start, win_end))
    return spans


def net_device_dtype(net: nn.Module) -> tuple[torch.device, torch.dtype]:
    param = next(net.parameters())
    return param.device, param.dtype


def check_tiling(tile: int, overlap: int | None, batch_size: int) -> None:
    if not isinstance(tile, int) or tile < 1:
        raise ValueError(f"tile must be a positive number of pixels, got {tile!r}")
    if overlap is not None and (not isinstance(overlap, int) or overlap < 0):
        raise ValueError(f"overlap must be None (the receptive field) or an int >= 0, got {overlap!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")


@dataclass(frozen=True)
class Tile:
    """A tile of image ``image``: the network sees ``rows.window × cols.window``; ``rows.keep × cols.keep``
    goes to the output."""

    image: int
    rows: _Span
    cols: _Span


def plan_tiles(
    net: LPNet, height: int, width: int, tile: int, overlap: int | None, images: int = 1
) -> list[list[Tile]]:
    """Every tile of ``images`` images of ``height × width``, grouped by window shape (for batching).

    Args:
        net: the network (its levels fix the alignment, its receptive field the default overlap).
        height, width: the image size.
        tile: output pixels kept per tile side (rounded down to a multiple of ``2^(levels-1)``).
        overlap: context pixels per side; None = :func:`receptive_field_radius` (exact results).
        images: how many images of that size.
    """
    overlap = receptive_field_radius(net) if overlap is None else overlap
    align = 2 ** (net.num_levels - 1)
    groups: dict[tuple[int, int], list[Tile]] = {}
    for r in spans(height, tile, overlap, align):
        for c in spans(width, tile, overlap, align):
            shape = (r.win_end - r.win_start, c.win_end - c.win_start)
            groups.setdefault(shape, []).extend(Tile(b, r, c) for b in range(images))
    return list(groups.values())


def run_tiles(
    net: LPNet,
    plan: list[list[Tile]],
    read: Callable[[Tile], Tensor],
    write: Callable[[Tile, Tensor], None],
    batch_size: int = DerainConfig.batch_size,
    derain_fn: Callable[[Tensor], Tensor] | None = None,
    on_tiles: Callable[[int, int], None] | None = None,
) -> None:
    """Derain every tile of ``plan``: ``read(tile)`` gives its ``(C, h, w)`` window, ``write(tile, y)`` takes
    the kept ``(C, kh, kw)`` part of the output. Windows of one shape go ``batch_size`` at a time through
    ``derain_fn`` (default ``net.derain``) on the network's device and dtype, under inference mode.
    ``on_tiles(done, total)``, when given, is told the tiles done after every network call (a progress bar).
    """
    device, dtype = net_device_dtype(net)
    derain_fn = derain_fn or net.derain
    total = sum(map(len, plan))
    several_tiles = total > 1
    done = 0
    with torch.inference_mode():
        for tiles in plan:
            for first in range(0, len(tiles), batch_size):
                chunk = tiles[first : first + batch_size]
                windows = torch.stack([read(t) for t in chunk]).to(device=device, dtype=dtype)
                result = derain_fn(windows)
                for t, y in zip(chunk, result, strict=True):
                    write(t, y[:, t.rows.keep_in_window, t.cols.keep_in_window])
                done += len(chunk)
                if on_tiles is not None:
                    on_tiles(done, total)
                if several_tiles:  # a tuned allocator keeps freed maps: bound the peak (lpnet.allocator)
                    del windows, result
                    release_free_memory()


def derain_tiled(
    net: LPNet,
    x: Tensor,
    tile: int = DerainConfig.tile,
    overlap: int | None = DerainConfig.overlap,
    batch_size: int = DerainConfig.batch_size,
    derain_fn: Callable[[Tensor], Tensor] | None = None,
) -> Tensor:
    """Derain images tile by tile, equal to ``net.derain(x)`` on the whole image.

    Each tile keeps ``tile × tile`` output pixels (rounded down to a multiple of ``2^(levels-1)``) and runs
    with ``overlap`` pixels of context on each side, so the network never sees more than
    ``(tile + 2 overlap + 2^levels)`` pixels per side. An image that fits in one such window runs whole.
    Tiles of one shape are stacked ``batch_size`` at a time (useful on a GPU). Runs under
    ``torch.inference_mode``; ``x`` may stay on the CPU while ``net`` is on a GPU.

    Args:
        net: an :class:`~lpnet.models.lpnet.LPNet` (any device and dtype).
        x: rainy images of shape ``(B, 3, H, W)`` in [0, 1].
        tile: output pixels kept per tile side.
        overlap: context pixels per side; None takes :func:`receptive_field_radius` (236 for the official
            model), which makes the result exact. Smaller values trade accuracy for speed.
        batch_size: tiles per network call.
        derain_fn: what runs a window; default ``net.derain`` (e.g. a :class:`~lpnet.models.fast.FastLPNet`'s
            ``derain``, which computes the same numbers faster on the CPU).

    Returns:
        The finest output, ``(B, 3, H, W)`` on ``x``'s device and dtype, *not* clipped (like
        :meth:`LPNet.derain`); clip to [0, 1] before saving.

    Raises:
        TypeError: ``x`` is not a floating tensor.
        ValueError: bad shape, ``tile``, ``overlap`` or ``batch_size``.
    """
    if not isinstance(x, Tensor) or not x.is_floating_point():
        raise TypeError(f"derain_tiled expects a floating torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4 or x.shape[1] != net.channels:
        raise ValueError(f"derain_tiled expects (B, {net.channels}, H, W) images, got {tuple(x.shape)}")
    check_tiling(tile, overlap, batch_size)
    # Allocated outside inference mode so callers get an ordinary tensor they may modify in place.
    out = torch.empty_like(x)

    def read(t: Tile) -> Tensor:
        return x[t.image, :, t.rows.window, t.cols.window]

    def write(t: Tile, y: Tensor) -> None:
        out[t.image, :, t.rows.keep, t.cols.keep].copy_(y)

    plan = plan_tiles(net, x.shape[-2], x.shape[-1], tile, overlap, images=x.shape[0])
    run_tiles(net, plan, read, write, batch_size, derain_fn)
    return out
