"""Image files in and out (the codec): every error names the file; every write is atomic (:mod:`lpnet.files`).

Conventions of every reader: RGB float32 tensors ``(3, H, W)`` in [0, 1].

- 8-bit and 16-bit images are scaled by 255 and 65535; float images (mode F) are clipped to [0, 1], and
  one with a NaN or infinite pixel is refused (there is no right value to guess).
- Grayscale (1, L, I;16, I, F) is repeated to three channels; palette (P) is expanded to RGB; CMYK and
  other colour spaces are converted to RGB.
- Alpha (RGBA, LA, PA, palette transparency) is kept aside, so the derain tool can put it back unchanged.
- Pillow itself reduces 16-bit *colour* PNGs to 8 bits on reading; 16-bit grayscale keeps its 16 bits.
- EXIF orientation is applied, so outputs look the way viewers show the input.
- One picture per file: an animated GIF/WebP/PNG or a multi-page TIFF is refused by name (MPO, a JPEG with
  extra preview pictures, reads as its main picture).

Large photos stay small in memory: :func:`open_image` keeps the decoded image at its own bit depth (a
Pillow image, 1 to 4 bytes per pixel) and :meth:`SourceImage.window` converts one region to float at a time;
:class:`OutputImage` assembles the 8-bit result in place (3 bytes per pixel for colour). The derain tool
never holds a float copy of a whole photo.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import stat
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

from lpnet.files import atomic_write

IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
)
# Pillow modes with a single colour channel (with or without alpha): written back as grayscale.
GRAYSCALE_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
# Encoder settings. PNG at zlib level 1 encodes a 480×320 photo 3× faster than Pillow's default 6 for files
# ~4 % larger (measured: 28 vs 89 ms, 288 vs 278 kB); lossless either way. JPEG (figures only) at quality
# 90: Pillow's default, 75, smears the text of lpnet.pictures.
SAVE_OPTIONS = {"PNG": {"compress_level": 1}, "JPEG": {"quality": 90}}
# ITU-R BT.601 luma, the weights of Pillow's convert("L") and kornia's rgb_to_grayscale.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


class ImageReadError(OSError):
    """An image file that cannot be read; the message names the file and the reason."""


def is_image_file(path: str | os.PathLike) -> bool:
    """True for a name with an image extension (case-insensitive); says nothing of its content.

    The extension is what follows the name's last dot, so a file named only ``.png`` is an image too
    (``Path.suffix`` takes it for a hidden file without one, and a folder run would pass it over unsaid).
    """
    name = Path(path).name
    return "." in name and name[name.rindex(".") :].lower() in IMAGE_EXTENSIONS


# --------------------------------------------------------------------------------------------------
# Finding images


@dataclass
class ImageListing:
    """What :func:`find_images` found: image paths, and ``(path, reason)`` for entries it did not follow."""

    images: list[Path] = field(default_factory=list)
    problems: list[tuple[Path, str]] = field(default_factory=list)


def find_images(root: str | os.PathLike) -> ImageListing:
    """Every file named like an image below ``root``, recursively, sorted; safe with any link shape.

    Symbolic links are followed while they stay inside ``root``: a link that leads out of it, a link loop,
    and a folder reached a second time are not followed and reported once by name in ``problems`` (the
    rest of the tree is still searched). A broken link named like an image is listed, so its reader
    reports it by name.

    Raises:
        FileNotFoundError: ``root`` does not exist.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"folder not found: {root}")
    top = os.path.realpath(root)
    listing = ImageListing()
    visited: set[tuple[int, int]] = set()

    def inside(real: str) -> bool:
        return real == top or real.startswith(top.rstrip(os.sep) + os.sep)

    def walk(folder: Path) -> None:
        try:
            info = folder.stat()
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as err:
            listing.problems.append((folder, f"cannot be listed ({err.strerror or err})"))
            return
        if (info.st_dev, info.st_ino) in visited:
            listing.problems.append((folder, "reached a second time through a link; not searched again"))
            return
        visited.add((info.st_dev, info.st_ino))
        for entry in entries:
            path = Path(entry.path)
            if entry.is_symlink():
                try:
                    target = os.stat(path)
                except OSError as err:
                    if err.errno == 40:  # ELOOP
                        listing.problems.append((path, "symbolic link loop; skipped"))
                    elif is_image_file(path):
                        listing.images.append(path)  # broken: its reader says so by name
                    continue
                if not inside(os.path.realpath(path)):
                    listing.problems.append(
                        (path, f"links outside {root} (to {os.path.realpath(path)}); not followed")
                    )
                    continue
                if stat.S_ISDIR(target.st_mode):
                    walk(path)
                elif is_image_file(path):
                    listing.images.append(path)
            elif entry.is_dir():
                walk(path)
            elif is_image_file(path):
                listing.images.append(path)

    walk(root)
    listing.images.sort()
    return listing


def list_images(root: str | os.PathLike) -> list[Path]:
    """Every file named like an image below ``root`` (see :func:`find_images`; problems left out)."""
    return find_images(root).images


# --------------------------------------------------------------------------------------------------
# Decoding


@dataclass(frozen=True)
class SourceImage:
    """A decoded image kept at its own bit depth; float regions are made on demand.

    Attributes:
        pixels: the colour planes: ``(H, W, 3)`` uint8 for colour; ``(H, W)`` uint8, uint16 or int32
            (16-bit values) or float32 for grayscale.
        scale: what maps ``pixels`` to [0, 1] (255, 65535 or 1).
        alpha: the transparency as ``(H, W)`` uint8, or None.
        grayscale: the source had a single colour channel (written back as grayscale).
        mode: the source's Pillow mode.
        name: where it came from, for messages.
        stored_bits: bits per value in the file where Pillow decodes fewer (16-bit colour arrives as 8-bit);
            None: as decoded.
    """

    pixels: np.ndarray
    scale: float
    alpha: np.ndarray | None
    grayscale: bool
    mode: str
    name: str
    stored_bits: int | None = None

    @property
    def height(self) -> int:
        return self.pixels.shape[0]

    @property
    def width(self) -> int:
        return self.pixels.shape[1]

    @property
    def bits(self) -> int:
        """Bits per colour value in the file: 8, 16 or 32 (float)."""
        if self.stored_bits is not None:
            return self.stored_bits
        return {1: 8, 2: 16, 4: 16}[self.pixels.itemsize] if self.scale != 1.0 else 32

    def window(self, top: int, left: int, height: int, width: int) -> Tensor:
        """Rows ``[top, top + height)`` and columns ``[left, left + width)``: RGB float32 ``(3, h, w)``."""
        region = self.pixels[top : top + height, left : left + width].astype(np.float32) / self.scale
        chw = torch.from_numpy(np.ascontiguousarray(np.atleast_3d(region).transpose(2, 0, 1)))
        return chw.clamp_(0, 1).expand(3, -1, -1) if chw.shape[0] == 1 else chw.clamp_(0, 1)

    def rgb(self) -> Tensor:
        """The whole image as RGB float32 ``(3, H, W)`` in [0, 1] (the caller owns the copy)."""
        return self.window(0, 0, self.height, self.width).contiguous()


def _scale(mode: str) -> float | None:
    """The number mapping a kept mode's values to [0, 1]; None for modes converted to RGB on decoding."""
    if mode in ("RGB", "L"):
        return 255.0
    if mode == "I" or mode.startswith("I;16"):
        return 65535.0
    return 1.0 if mode == "F" else None


def decode_pil(img: Image.Image, name: str = "image") -> SourceImage:
    """Keep a Pillow image's colour planes and alpha the way :class:`SourceImage` does (see module doc).

    The planes move into a numpy array of 3 bytes per pixel for colour (Pillow keeps 4).

    Raises:
        ImageReadError: a float image with a NaN or infinite pixel.
    """
    mode = img.mode
    grayscale = mode in GRAYSCALE_MODES
    alpha = None
    if mode in ALPHA_MODES or (mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        alpha = np.asarray(rgba.getchannel("A"))
        img = rgba.convert("L" if grayscale else "RGB")
    elif mode == "1":
        img = img.convert("L")
    elif _scale(mode) is None:  # palette, CMYK, YCbCr, LAB, ...
        img = img.convert("RGB")
    pixels = np.asarray(img)
    if img.mode == "F" and not np.isfinite(pixels).all():
        bad = int(pixels.size - np.count_nonzero(np.isfinite(pixels)))
        raise ImageReadError(
            f"{name}: {bad} pixel(s) are NaN or infinite; lpnet does not guess values for them "
            "(fix or mask them in the file)"
        )
    return SourceImage(pixels, _scale(img.mode), alpha, grayscale, mode, name)


# Peak memory of `python -m lpnet.derain` on one photo, fitted to its measurements (README, Any size):
# 1.18 GiB at 8000², 1.31 GiB at 9400², 1.65 GiB at 12000² (the 8-bit planes, Pillow's decoded copy, the
# output and one tile's work on top of the process itself).
DERAIN_BYTES_PER_PIXEL = 6.3
DERAIN_FIXED_BYTES = 0.8 * 2**30


def derain_memory(pixels: int) -> float:
    """Bytes a derain run needs for one photo of ``pixels`` pixels (the fit above)."""
    return DERAIN_FIXED_BYTES + DERAIN_BYTES_PER_PIXEL * pixels


@contextlib.contextmanager
def _pixel_limit(max_pixels: int | None) -> Iterator[None]:
    """Let Pillow open images up to ``max_pixels`` (its own guard refuses at twice its limit)."""
    previous = Image.MAX_IMAGE_PIXELS
    if max_pixels is not None and previous is not None and max_pixels > previous:
        Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # lpnet checks the size itself
            yield
    finally:
        Image.MAX_IMAGE_PIXELS = previous


def open_image(path: str | os.PathLike, max_pixels: int | None = None) -> SourceImage:
    """Decode an image file (EXIF orientation applied) into a :class:`SourceImage`.

    Args:
        path: the file.
        max_pixels: refuse images with more pixels than this before decoding them; None = Pillow's own
            limit (``PIL.Image.MAX_IMAGE_PIXELS``, 89,478,485).

    Raises:
        ImageReadError: missing, a broken link, a directory, a FIFO or device, unreadable, truncated, too
            large, several pictures in one file, or not an image; the message names ``path``.
    """
    path = Path(path)
    limit = Image.MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    # A FIFO, socket or device named like an image would block Image.open or stream forever.
    if path.exists() and not (path.is_file() or path.is_dir()):
        raise ImageReadError(f"{path}: not a regular file (a FIFO, socket or device)")
    try:
        with _pixel_limit(limit), Image.open(path) as img:
            frames = getattr(img, "n_frames", 1)
            if frames > 1 and img.format != "MPO":
                raise ImageReadError(
                    f"{path}: holds {frames} pictures ({img.format} animation or pages); lpnet derains one "
                    "picture per file: save the frames as separate images first"
                )
            if limit is not None and img.width * img.height > limit:
                raise ImageReadError(
                    f"{path}: {img.width}×{img.height} is {img.width * img.height:,} pixels, more than "
                    f"max_pixels={limit:,}; raise max_pixels to derain it (it needs about "
                    f"{derain_memory(img.width * img.height) / 2**30:.2f} GiB of memory)"
                )
            # Pillow decodes 16-bit colour to 8 bits: its raw mode (known before loading) still says so.
            reduced = img.mode in ("RGB", "RGBA") and any(";16" in str(tile.args) for tile in img.tile)
            stored_bits = 16 if reduced else None
            img.load()
            # in_place: without it Pillow copies every image that needs no turning (4 more bytes per pixel)
            ImageOps.exif_transpose(img, in_place=True)
            decoded = dataclasses.replace(decode_pil(img, str(path)), stored_bits=stored_bits)
    except ImageReadError:
        raise
    except FileNotFoundError:
        what = "broken symbolic link" if path.is_symlink() else "no such file"
        raise ImageReadError(f"{path}: {what}") from None
    except IsADirectoryError:
        raise ImageReadError(f"{path}: is a directory, not an image") from None
    except PermissionError:
        raise ImageReadError(f"{path}: permission denied") from None
    except UnidentifiedImageError:
        raise ImageReadError(f"{path}: not a readable image (unknown or corrupt format)") from None
    except Image.DecompressionBombError as err:
        raise ImageReadError(f"{path}: {err} (raise max_pixels to read it)") from None
    except (OSError, ValueError, SyntaxError) as err:  # truncated data, decoder errors
        raise ImageReadError(f"{path}: cannot decode image ({err})") from None
    if decoded.height < 1 or decoded.width < 1:
        raise ImageReadError(f"{path}: empty image")
    return decoded


def read_image(path: str | os.PathLike) -> Tensor:
    """Read an image file as RGB float32 ``(3, H, W)`` in [0, 1] (alpha dropped; see module doc)."""
    return open_image(path).rgb()


# --------------------------------------------------------------------------------------------------
# Encoding


def to_uint8(x: Tensor) -> np.ndarray:
    """``(C, H, W)`` float → ``(H, W, C)`` uint8 the way the official test saves outputs.

    ``uint8(clip(x, 0, 1) * 255)``: truncation, not rounding, so our scores match the published ones.

    Raises:
        ValueError: ``x`` holds NaN or infinite values (they would become black or white pixels silently).
    """
    x = x.detach()
    if not torch.isfinite(x).all():
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(f"{bad} value(s) to write are NaN or infinite; refusing to save them as pixels")
    return (x.clamp(0, 1) * 255).to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def rgb_to_luma(image: Tensor) -> Tensor:
    """``(*, 3, H, W)`` RGB → ``(*, 1, H, W)`` ITU-R 601 luma (here, not kornia: io stays light to import)."""
    weights = torch.tensor(LUMA_WEIGHTS, dtype=image.dtype, device=image.device).view(3, 1, 1)
    return (image * weights).sum(dim=-3, keepdim=True)


class OutputImage:
    """An 8-bit image assembled region by region: 3 bytes per pixel for colour, 1 for grayscale.

    Args:
        height, width: its size.
        grayscale: store the ITU-R 601 luma of what is put (Pillow's ``convert("L")`` weights).
        alpha: ``(H, W)`` uint8 transparency to attach unchanged, or None.

    Values are written like :func:`to_uint8` (clipped, truncated; NaN/inf refused).
    """

    def __init__(self, height: int, width: int, grayscale: bool = False, alpha: np.ndarray | None = None):
        if alpha is not None and alpha.shape != (height, width):
            raise ValueError(f"alpha must be ({height}, {width}), got {alpha.shape}")
        self.grayscale = grayscale
        self.alpha = alpha
        self.array = np.empty((height, width, 1 if grayscale else 3), dtype=np.uint8)

    def put(self, top: int, left: int, rgb: Tensor) -> None:
        """Write RGB ``(3, h, w)`` (any float range; clipped) at ``(top, left)``."""
        h, w = rgb.shape[-2:]
        rgb = rgb.clamp(0, 1)  # before the luma, as the saved colour image would be (NaN stays NaN: refused)
        self.array[top : top + h, left : left + w] = to_uint8(rgb_to_luma(rgb) if self.grayscale else rgb)

    def to_pil(self) -> Image.Image:
        """The image as Pillow sees it: mode L, LA, RGB or RGBA."""
        arr = (
            self.array if self.alpha is None else np.concatenate([self.array, self.alpha[..., None]], axis=2)
        )
        mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[arr.shape[2]]
        return Image.fromarray(arr[..., 0] if mode == "L" else arr, mode=mode)

    def write(self, path: str | os.PathLike) -> Path:
        """Write the image atomically (:func:`lpnet.files.atomic_write`); the format follows the suffix (PNG
        and TIFF keep every mode)."""
        path = Path(path)
        fmt = pillow_format(path.suffix.lower())
        if fmt is None:
            raise ValueError(f"{path}: unknown image extension {path.suffix!r}")
        pil = self.to_pil()
        self.array = None  # the Pillow copy is what gets encoded: hand this one back before the encoder runs
        with atomic_write(path) as tmp:
            pil.save(tmp, format=fmt, **SAVE_OPTIONS.get(fmt, {}))
        return path


def pillow_format(suffix: str) -> str | None:
    """Pillow's format name for a lower-case file ``suffix`` (``".png"`` → ``"PNG"``), None if unknown.

    The common formats come from the plugins Pillow loads first (``Image.preinit``); only another suffix
    loads all ~40 plugins (``Image.init``: ~30-80 ms, a twentieth of a one-photo run).
    """
    Image.preinit()
    return Image.EXTENSION.get(suffix) or Image.registered_extensions().get(suffix)


def encode_pil(image: Tensor, alpha: Tensor | None = None, grayscale: bool = False) -> Image.Image:
    """``(3, H, W)`` [0, 1] ``image`` (plus optional ``(1, H, W)`` alpha in [0, 1]) → 8-bit Pillow image."""
    if image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"expected a (3, H, W) image tensor, got {tuple(image.shape)}")
    return _output(image, alpha, grayscale).to_pil()


def write_image(
    path: str | os.PathLike, image: Tensor, alpha: Tensor | None = None, grayscale: bool = False
) -> Path:
    """Write ``(3, H, W)`` [0, 1] ``image`` as 8 bits (plus optional ``(1, H, W)`` alpha), atomically.

    The format follows the suffix (PNG recommended: lossless, and it stores every mode). Values are
    truncated like :func:`to_uint8`; ``grayscale=True`` writes one luma channel.
    """
    if image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"write_image expects a (3, H, W) tensor, got {tuple(image.shape)} for {path}")
    return _output(image, alpha, grayscale).write(path)


def _output(image: Tensor, alpha: Tensor | None, grayscale: bool) -> OutputImage:
    alpha_u8 = None
    if alpha is not None:
        expected = (1, *image.shape[1:])
        if tuple(alpha.shape) != expected:
            raise ValueError(f"alpha must have shape (1, H, W) = {expected}, got {tuple(alpha.shape)}")
        alpha_u8 = (alpha.detach().clamp(0, 1) * 255).round().to(torch.uint8)[0].cpu().numpy()
    out = OutputImage(image.shape[-2], image.shape[-1], grayscale, alpha_u8)
    out.put(0, 0, image)
    return out
