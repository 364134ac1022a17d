"""Image files in and out (the codec): every error names the file; every write is atomic (:mod:`lpnet.files`).

Image conventions (all readers): RGB float32 tensors ``(3, H, W)`` in [0, 1].

- 8-bit and 16-bit images are scaled by 255 and 65535; float TIFFs are clipped to [0, 1].
- Grayscale (L, I;16) is repeated to three channels; palette (P) is expanded to RGB; CMYK is converted.
- Alpha (RGBA, LA, PA) is dropped for deraining and kept aside by :func:`read_image_with_alpha` so the
  derain tool can put it back unchanged.
- :func:`decode_pil` / :func:`read_image_decoded` also say whether the source was grayscale, so a writer
  can give back the kind it was given (:func:`encode_pil`, ``write_image(..., grayscale=True)``).
- Pillow itself reduces 16-bit *colour* PNGs to 8 bits on reading; 16-bit grayscale keeps its 16 bits.
- EXIF orientation is applied, so outputs look the way viewers show the input.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

from lpnet.files import atomic_write

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})
# Pillow modes with a single colour channel (with or without alpha): written back as grayscale.
GRAYSCALE_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
# JPEG files are written at this quality (Pillow's default, 75, smears the text of lpnet.pictures).
JPEG_QUALITY = 90
# ITU-R BT.601 luma, the weights of Pillow's convert("L") and kornia's rgb_to_grayscale.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


class ImageReadError(OSError):
    """An image file that cannot be read; the message names the file and the reason."""


def is_image_file(path: str | os.PathLike) -> bool:
    """True for a name with an image extension (case-insensitive); says nothing of its content."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def list_images(root: str | os.PathLike) -> list[Path]:
    """Every image file below ``root`` (recursively, sorted, following no broken links)."""
    root = Path(root)
    return sorted(p for p in root.rglob("*") if is_image_file(p) and not p.is_dir())


def _to_float_array(img: Image.Image) -> np.ndarray:
    """PIL image (no alpha) → ``(H, W, 3)`` float32 in [0, 1]."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img, dtype=np.float32) / 65535.0
        arr = np.repeat(arr[..., None], 3, axis=2)
    elif img.mode == "F":
        arr = np.repeat(np.asarray(img, dtype=np.float32)[..., None], 3, axis=2)
    else:
        arr = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    return np.clip(arr, 0.0, 1.0, out=arr)


@dataclass(frozen=True)
class DecodedImage:
    """An image in the package's conventions plus what a writer needs to give back the same kind.

    Attributes:
        rgb: ``(3, H, W)`` float32 in [0, 1].
        alpha: ``(1, H, W)`` float32 in [0, 1], or None when the source has no transparency.
        grayscale: the source had a single colour channel (L, LA, I;16, F, 1-bit).
        mode: the source's Pillow mode.
    """

    rgb: Tensor
    alpha: Tensor | None
    grayscale: bool
    mode: str


def decode_pil(img: Image.Image) -> DecodedImage:
    """Convert a Pillow image to a :class:`DecodedImage` (see the module doc for each mode)."""
    mode = img.mode
    alpha = None
    if mode in ("RGBA", "LA", "La", "PA", "RGBa") or (mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        alpha = np.asarray(rgba, dtype=np.float32)[..., 3:] / 255.0
        img = rgba.convert("L" if mode in GRAYSCALE_MODES else "RGB")
    arr = _to_float_array(img)
    rgb = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))
    alpha_t = torch.from_numpy(np.ascontiguousarray(alpha.transpose(2, 0, 1))) if alpha is not None else None
    return DecodedImage(rgb, alpha_t, mode in GRAYSCALE_MODES, mode)


def read_image_decoded(path: str | os.PathLike) -> DecodedImage:
    """Read an image file (EXIF orientation applied) as a :class:`DecodedImage`.

    Raises:
        ImageReadError: missing, a broken link, a directory, a FIFO or device, unreadable, truncated, too
            large for Pillow's decompression-bomb guard, or not an image; the message names ``path``.
    """
    path = Path(path)
    # A FIFO, socket or device named like an image would block Image.open or stream forever.
    if path.exists() and not (path.is_file() or path.is_dir()):
        raise ImageReadError(f"{path}: not a regular file (a FIFO, socket or device)")
    try:
        with Image.open(path) as img:
            img.load()
            decoded = decode_pil(ImageOps.exif_transpose(img))
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
        raise ImageReadError(f"{path}: {err} (raise PIL.Image.MAX_IMAGE_PIXELS to read it)") from None
    except (OSError, ValueError, SyntaxError) as err:  # truncated data, decoder errors
        raise ImageReadError(f"{path}: cannot decode image ({err})") from None
    if decoded.rgb.shape[1] < 1 or decoded.rgb.shape[2] < 1:
        raise ImageReadError(f"{path}: empty image")
    return decoded


def read_image_with_alpha(path: str | os.PathLike) -> tuple[Tensor, Tensor | None]:
    """Read an image file as ``(rgb, alpha)``: ``(3, H, W)`` and ``(1, H, W)`` or None, float32 in [0, 1].

    Raises:
        ImageReadError: missing, unreadable, truncated or not an image; the message names ``path``.
    """
    decoded = read_image_decoded(path)
    return decoded.rgb, decoded.alpha


def read_image(path: str | os.PathLike) -> Tensor:
    """Read an image file as RGB float32 ``(3, H, W)`` in [0, 1] (alpha dropped; see module doc)."""
    return read_image_with_alpha(path)[0]


def to_uint8(x: Tensor) -> np.ndarray:
    """``(C, H, W)`` float in [0, 1] → ``(H, W, C)`` uint8 the way the official test saves outputs.

    ``uint8(clip(x, 0, 1) * 255)``: truncation, not rounding, so our scores match the published ones.
    """
    return (x.detach().clamp(0, 1) * 255).to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def rgb_to_luma(image: Tensor) -> Tensor:
    """``(*, 3, H, W)`` RGB → ``(*, 1, H, W)`` ITU-R 601 luma (here, not kornia: io stays light to import)."""
    weights = torch.tensor(LUMA_WEIGHTS, dtype=image.dtype, device=image.device).view(3, 1, 1)
    return (image * weights).sum(dim=-3, keepdim=True)


def encode_pil(image: Tensor, alpha: Tensor | None = None, grayscale: bool = False) -> Image.Image:
    """``(3, H, W)`` [0, 1] ``image`` (plus optional ``(1, H, W)`` alpha) → 8-bit Pillow image.

    Colour values are truncated like :func:`to_uint8`; ``grayscale=True`` stores the ITU-R 601 luma
    (``0.299 R + 0.587 G + 0.114 B``, what Pillow's ``convert("L")`` uses). Gives mode L, LA, RGB or RGBA.
    """
    if image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"expected a (3, H, W) image tensor, got {tuple(image.shape)}")
    image = image.detach().clamp(0, 1)
    arr = to_uint8(rgb_to_luma(image) if grayscale else image)
    if alpha is not None:
        expected = (1, *image.shape[1:])
        if tuple(alpha.shape) != expected:
            raise ValueError(f"alpha must have shape (1, H, W) = {expected}, got {tuple(alpha.shape)}")
        a = (alpha.detach().clamp(0, 1) * 255).round().to(torch.uint8)[0].cpu().numpy()
        arr = np.concatenate([arr, a[..., None]], axis=2)
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[arr.shape[2]]
    return Image.fromarray(arr[..., 0] if mode == "L" else arr, mode=mode)


def write_image(
    path: str | os.PathLike, image: Tensor, alpha: Tensor | None = None, grayscale: bool = False
) -> Path:
    """Write ``(3, H, W)`` [0, 1] ``image`` as 8 bits (plus optional ``(1, H, W)`` alpha), atomically.

    The format follows the suffix (PNG recommended: lossless, and it stores every mode). Values are
    truncated like :func:`to_uint8`; ``grayscale=True`` writes one luma channel (see :func:`encode_pil`).
    """
    path = Path(path)
    if image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"write_image expects a (3, H, W) tensor, got {tuple(image.shape)} for {path}")
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: unknown image extension {path.suffix!r}")
    pil = encode_pil(image, alpha, grayscale)
    options = {"quality": JPEG_QUALITY} if fmt == "JPEG" else {}
    with atomic_write(path) as tmp:
        pil.save(tmp, format=fmt, **options)
    return path
