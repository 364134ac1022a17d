"""Deraining real photos of any size: exact tiling and a :class:`Derainer` for tensors, images and folders.

LPNet is fully convolutional, so a large image can run tile by tile and give *the same* output as the
whole image, provided two things hold for every tile:

1. **Enough context.** Each tile is run with ``overlap`` extra pixels on every side that are then cropped
   away. The output at a pixel depends on inputs up to :func:`receptive_field_radius` pixels away: 236 px
   for the official 5-level model (the coarsest subnet's eleven 3×3 convolutions at 1/16 resolution reach
   11·16 = 176 px, the four blur-and-halve steps down and the four upsampling steps back up 30 px each).
   That bound is tight (checked against autograd in the tests), so the default overlap makes tiled and
   whole-image outputs agree to float rounding (~1e-6), not merely to 1/255.
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

import errno
import os
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn
from tqdm import tqdm

from lpnet.allocator import release_free_memory
from lpnet.checkpoint import load_model
from lpnet.io import (
    DecodedImage,
    ImageReadError,
    decode_pil,
    encode_pil,
    ensure_writable_folder,
    is_image_file,
    list_images,
    read_image,
    read_image_decoded,
    rgb_to_luma,
    write_image,
)
from lpnet.models.fast import optimize_for_inference
from lpnet.models.lpnet import LPNet, Subnet

DEVICES = ("auto", "cpu", "cuda", "cuda:N", "mps")
OUTPUT_FORMATS = ("png", "tif", "tiff")  # lossless and able to store L, LA, RGB and RGBA


def _subnet_radius(subnet: Subnet) -> int:
    """How far (in the subnet's own pixels) one output pixel of ``subnet`` sees: head, recursions, tail."""
    blocks = [subnet.blocks[step % len(subnet.blocks)] for step in range(subnet.recursions)]
    convs = [subnet.head, *(m for b in blocks for m in b.modules() if isinstance(m, nn.Conv2d)), subnet.tail]
    return sum((c.kernel_size[0] - 1) // 2 * c.dilation[0] for c in convs)


def receptive_field_radius(net: LPNet) -> int:
    """The largest distance, in input pixels, at which an input pixel can change an output pixel.

    Level ``k`` (0 = finest, scale ``s = 2^k``) sees ``r_k * s`` through its subnet, plus the 5-tap blurs:
    ``2 (s - 1)`` px to build the Gaussian level and the same back up through the reconstruction; a
    band-pass level also subtracts the upsampled next level, which costs ``2 s + 2 s`` more. The official
    model: ``max(16·11 + 30 + 30, 8·11 + 46 + 14, ...) = 236``.

    Args:
        net: an :class:`~lpnet.models.lpnet.LPNet`.

    Returns:
        The radius ``R``: output pixel ``(i, j)`` depends only on inputs within ``|di|, |dj| <= R``.
    """
    top = net.num_levels - 1
    radius = 0
    for index, subnet in enumerate(net.subnets):
        k = top - index
        scale = 2**k
        down = 2 * (scale - 1) if k == top else 2 * (2 * scale - 1) + 2 * scale
        radius = max(radius, down + _subnet_radius(subnet) * scale + 2 * (scale - 1))
    return radius


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


def _spans(length: int, tile: int, overlap: int, align: int) -> list[_Span]:
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


def _net_device_dtype(net: nn.Module) -> tuple[torch.device, torch.dtype]:
    param = next(net.parameters())
    return param.device, param.dtype


def _check_tiling(tile: int, overlap: int | None, batch_size: int) -> None:
    if not isinstance(tile, int) or tile < 1:
        raise ValueError(f"tile must be a positive number of pixels, got {tile!r}")
    if overlap is not None and (not isinstance(overlap, int) or overlap < 0):
        raise ValueError(f"overlap must be None (the receptive field) or an int >= 0, got {overlap!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")


def derain_tiled(
    net: LPNet,
    x: Tensor,
    tile: int = 512,
    overlap: int | None = None,
    batch_size: int = 1,
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
    _check_tiling(tile, overlap, batch_size)
    if overlap is None:
        overlap = receptive_field_radius(net)
    align = 2 ** (net.num_levels - 1)
    device, dtype = _net_device_dtype(net)
    derain_fn = derain_fn or net.derain
    rows = _spans(x.shape[-2], tile, overlap, align)
    cols = _spans(x.shape[-1], tile, overlap, align)
    several_tiles = len(rows) * len(cols) > 1

    # Allocated outside inference mode so callers get an ordinary tensor they may modify in place.
    out = torch.empty_like(x)
    groups: dict[tuple[int, int], list[tuple[_Span, _Span]]] = {}
    for r in rows:
        for c in cols:
            groups.setdefault((r.win_end - r.win_start, c.win_end - c.win_start), []).append((r, c))
    with torch.inference_mode():
        for tiles in groups.values():
            # Every image of the batch with every tile of this shape, batch_size tiles per call.
            jobs = [(b, r, c) for r, c in tiles for b in range(x.shape[0])]
            for first in range(0, len(jobs), batch_size):
                chunk = jobs[first : first + batch_size]
                windows = torch.stack([x[b, :, r.window, c.window] for b, r, c in chunk])
                result = derain_fn(windows.to(device=device, dtype=dtype))
                for (b, r, c), y in zip(chunk, result, strict=True):
                    out[b, :, r.keep, c.keep].copy_(y[:, r.keep_in_window, c.keep_in_window])
                if several_tiles:  # a tuned allocator keeps freed maps: bound the peak (lpnet.allocator)
                    del windows, result
                    release_free_memory()
    return out


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` → CUDA when available, else CPU; other names are checked against what this machine has."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but CUDA is not available here; use device=cpu or auto")
    return resolved


class OutputFullError(OSError):
    """The output device is full: every later image would fail the same way, so the run stops."""


@dataclass
class DerainSummary:
    """What :meth:`Derainer.derain_files` did: outputs written, inputs skipped, and failures with reasons."""

    written: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{len(self.written)} derained, {len(self.skipped)} skipped, {len(self.failed)} failed"


class Derainer:
    """Derain tensors, Pillow images, numpy arrays, image files and folders with one LPNet.

    Args:
        checkpoint_or_net: a checkpoint path (read with :func:`lpnet.load_model`, ``weights_only``) or an
            :class:`~lpnet.models.lpnet.LPNet` (moved to ``device`` and put in eval mode).
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or a torch.device.
        tile: output pixels kept per tile side (see :func:`derain_tiled`); images up to about
            ``tile + 2 overlap`` per side run whole.
        overlap: context per tile side; None = the network's receptive field (exact results).
        batch_size: tiles per network call.

    Inputs and what comes back (outputs are clipped to [0, 1]):

    - ``Tensor (3, H, W)`` or ``(B, 3, H, W)``, float in [0, 1] → the same shape, device and dtype.
    - ``PIL.Image`` → ``PIL.Image``, 8 bits: L/LA for grayscale sources (1, L, LA, I;16, I, F), RGB/RGBA
      otherwise; alpha (RGBA, LA, PA, palette transparency) passes through unchanged. Palette images come
      back as RGB(A).
    - ``np.ndarray`` ``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` or ``(H, W, 4)`` of uint8, uint16 or float
      (float taken as [0, 1]) → the same shape and dtype; a fourth channel is alpha and passes through.
      Integers are written back by truncation, as the official test saves its outputs.
    - a path → ``(3, H, W)`` float tensor (alpha dropped; use :meth:`derain_files` to keep it).

    Grayscale inputs are derained as three equal channels and returned as their ITU-R 601 luma.

    Example:
        >>> derainer = Derainer(LPNet(), device="cpu")
        >>> derainer(torch.rand(3, 40, 60)).shape
        torch.Size([3, 40, 60])
    """

    def __init__(
        self,
        checkpoint_or_net: str | os.PathLike | LPNet,
        device: str | torch.device = "auto",
        tile: int = 1024,
        overlap: int | None = None,
        batch_size: int = 1,
    ) -> None:
        _check_tiling(tile, overlap, batch_size)
        self.device = resolve_device(device)
        if isinstance(checkpoint_or_net, LPNet):
            self.net = checkpoint_or_net.to(self.device).eval()
        elif isinstance(checkpoint_or_net, (str, os.PathLike)):
            self.net = load_model(checkpoint_or_net, map_location=self.device)
        else:
            raise TypeError(
                f"Derainer needs a checkpoint path or an LPNet, got {type(checkpoint_or_net).__name__}"
            )
        self.tile = tile
        self.overlap = receptive_field_radius(self.net) if overlap is None else overlap
        self.batch_size = batch_size
        # The fast path computes the same numbers (within 1e-5) 3-5x faster on the CPU (it also tunes the
        # process's allocator: lpnet.allocator) and hands other devices and dtypes to LPNet.forward itself
        # (lpnet.models.fast; `python -m lpnet.bench`).
        self.fast = optimize_for_inference(self.net)

    def __repr__(self) -> str:
        return (
            f"Derainer(device={self.device}, tile={self.tile}, overlap={self.overlap}, "
            f"batch_size={self.batch_size}, net={self.net.extra_repr()})"
        )

    def derain_tensor(self, x: Tensor) -> Tensor:
        """``(3, H, W)`` or ``(B, 3, H, W)`` float in [0, 1] → derained, same shape, clipped to [0, 1]."""
        if not isinstance(x, Tensor) or not x.is_floating_point():
            raise TypeError(
                f"expected a floating tensor in [0, 1], got {type(x).__name__} {getattr(x, 'dtype', '')}"
            )
        if x.dim() not in (3, 4) or x.shape[-3] != 3:
            raise ValueError(f"expected a (3, H, W) or (B, 3, H, W) tensor, got {tuple(x.shape)}")
        batch = x if x.dim() == 4 else x[None]
        y = derain_tiled(self.net, batch, self.tile, self.overlap, self.batch_size, self.fast.derain)
        y = y.clamp_(0, 1)
        return y if x.dim() == 4 else y[0]

    def derain_decoded(self, image: DecodedImage) -> Tensor:
        """Derain a :class:`~lpnet.io.DecodedImage`'s colour; returns ``(3, H, W)`` in [0, 1]."""
        return self.derain_tensor(image.rgb)

    def __call__(self, image: Tensor | Image.Image | np.ndarray | str | os.PathLike):
        """Derain one image of any supported kind (see the class doc) and return the same kind."""
        if isinstance(image, Tensor):
            return self.derain_tensor(image)
        if isinstance(image, Image.Image):
            decoded = decode_pil(image)
            return encode_pil(self.derain_decoded(decoded), decoded.alpha, decoded.grayscale)
        if isinstance(image, np.ndarray):
            return self._derain_array(image)
        if isinstance(image, (str, os.PathLike)):
            return self.derain_tensor(read_image(image))
        raise TypeError(
            f"Derainer accepts a torch.Tensor, PIL.Image, numpy array or path, got {type(image).__name__}"
        )

    def _derain_array(self, arr: np.ndarray) -> np.ndarray:
        if arr.dtype == np.uint8:
            scale = 255.0
        elif arr.dtype == np.uint16:
            scale = 65535.0
        elif np.issubdtype(arr.dtype, np.floating):
            scale = 1.0
        else:
            raise TypeError(f"numpy images must be uint8, uint16 or float in [0, 1], got dtype {arr.dtype}")
        if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (1, 3, 4))):
            raise ValueError(f"numpy images must be (H, W) or (H, W, 1|3|4), got shape {arr.shape}")
        chw = torch.from_numpy(np.ascontiguousarray(arr.reshape(*arr.shape[:2], -1).transpose(2, 0, 1)))
        chw = chw.to(torch.float32) / scale
        out = self.derain_tensor(chw[:3] if chw.shape[0] >= 3 else chw[:1].expand(3, -1, -1))
        if chw.shape[0] < 3:
            out = rgb_to_luma(out)
        # Integers by truncation, like lpnet.io.to_uint8; alpha copied bit for bit.
        result = (out if scale == 1.0 else out * scale).permute(1, 2, 0).numpy().astype(arr.dtype)
        if chw.shape[0] == 4:
            result = np.concatenate([result, arr[..., 3:]], axis=2)
        return result.reshape(arr.shape)

    def derain_files(
        self,
        source: str | os.PathLike,
        output_dir: str | os.PathLike,
        *,
        format: str = "png",
        skip_existing: bool = False,
        progress: bool = True,
    ) -> DerainSummary:
        """Derain an image file, or every image below a folder, into ``output_dir``.

        Outputs keep each input's path relative to ``source`` and its stem: ``a/b/x.jpg`` →
        ``output_dir/a/b/x.png`` (inputs that share a stem keep their whole name: ``x.jpg.png``).
        Grayscale inputs are written as grayscale and alpha is re-attached unchanged (see
        :func:`lpnet.io.decode_pil`); every output is 8 bits per channel (16-bit inputs are read at full
        precision and saved at 8 bits, as the official test saves). Writes are atomic.
        A file that cannot be read or written is reported by name (one line) and the others go on.

        Args:
            source: an image file or a folder (searched recursively for image extensions).
            output_dir: where outputs go; created if needed; must not be ``source`` or inside it.
            format: output format, one of :data:`OUTPUT_FORMATS`.
            skip_existing: leave inputs whose output already exists alone.
            progress: show a tqdm progress bar.

        Returns:
            A :class:`DerainSummary`.

        Raises:
            FileNotFoundError: ``source`` does not exist.
            ValueError: bad ``format``, or ``output_dir`` is or lies inside the input folder.
            PermissionError: ``output_dir`` cannot be created or written.
        """
        fmt = format.lower().lstrip(".")
        if fmt not in OUTPUT_FORMATS:
            raise ValueError(f"format must be one of {OUTPUT_FORMATS}, got {format!r}")
        source, output_dir = Path(source), Path(output_dir)
        jobs = _plan(source, output_dir, fmt)
        ensure_writable_folder(output_dir)

        summary = DerainSummary()
        inputs = {src.resolve() for src, _ in jobs}
        bar = tqdm(jobs, unit="img", desc="derain", disable=not progress, file=sys.stderr)
        for src, dst in bar:
            error = None
            if dst.resolve() in inputs:
                error = f"{src}: its output {dst} would overwrite an input"
            elif skip_existing and dst.exists():
                summary.skipped.append(src)
            else:
                try:
                    decoded = read_image_decoded(src)
                    write_image(dst, self.derain_decoded(decoded), decoded.alpha, decoded.grayscale)
                    summary.written.append(dst)
                except ImageReadError as err:  # its message already names the file
                    error = str(err)
                except (OSError, ValueError, torch.cuda.OutOfMemoryError) as err:  # write error, GPU OOM
                    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
                        raise OutputFullError(
                            f"{output_dir}: no space left (or quota reached) at {dst.name} after "
                            f"{len(summary.written)} images; free space and rerun with skip_existing=true",
                        ) from None
                    error = f"{src}: {type(err).__name__}: {err}"
            if error is not None:
                summary.failed.append((src, error))
                tqdm.write(f"failed: {error}", file=sys.stderr)
        bar.close()
        return summary


def _plan(source: Path, output_dir: Path, fmt: str) -> list[tuple[Path, Path]]:
    """``(input, output)`` pairs, after refusing an output folder that is or lies inside the input folder."""
    if not source.exists():
        raise FileNotFoundError(f"input not found: {source}")
    if source.is_dir():
        src_root, out_root = source.resolve(), output_dir.resolve()
        if out_root == src_root or src_root in out_root.parents:
            raise ValueError(
                f"output folder {output_dir} is the input folder {source} or inside it; choose a folder "
                "outside the input (a second run would otherwise derain the outputs too)"
            )
        return _output_names(source, list_images(source), output_dir, fmt)
    if not is_image_file(source):
        raise ValueError(
            f"input {source} has no image extension; expected one of the image types or a folder"
        )
    return _output_names(source.parent, [source], output_dir, fmt)


def _output_names(source: Path, images: list[Path], output_dir: Path, fmt: str) -> list[tuple[Path, Path]]:
    """``a/x.jpg`` → ``output_dir/a/x.png``; inputs sharing a stem (``x.jpg``, ``x.png``) keep their whole
    name instead (``x.jpg.png``, ``x.png.png``), so no output is lost or claimed twice. Names are compared
    case-blind, as macOS and Windows file systems do."""
    relatives = [path.relative_to(source) for path in images]
    stems = [str(relative.with_suffix("")).casefold() for relative in relatives]
    shared = Counter(stems)
    return [
        (path, output_dir / relative.parent / f"{relative.name if shared[stem] > 1 else relative.stem}.{fmt}")
        for path, relative, stem in zip(images, relatives, stems)
    ]
