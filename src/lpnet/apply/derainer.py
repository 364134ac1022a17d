"""The :class:`Derainer`: a trained LPNet applied to tensors, Pillow images, numpy arrays and files.

It loads a checkpoint (or takes an :class:`~lpnet.models.lpnet.LPNet`), runs the fast CPU path where it
applies (:mod:`lpnet.models.fast`) and tiles large images exactly (:mod:`lpnet.apply.tiling`). Folders of
files go through :mod:`lpnet.apply.folder`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from lpnet.apply.folder import DerainSummary, derain_folder
from lpnet.apply.tiling import Tile, check_tiling, derain_tiled, plan_tiles, run_tiles
from lpnet.checkpoint import load_network
from lpnet.config import DerainCommandConfig, DerainConfig, check_max_pixels
from lpnet.io import OutputImage, SourceImage, decode_pil, open_image, rgb_to_luma
from lpnet.models.complexity import receptive_field_radius
from lpnet.models.fast import bf16_unsupported, optimize_for_inference
from lpnet.models.lpnet import LPNet
from lpnet.models.router import RainRouter, preview_factor

DEVICES = ("auto", "cpu", "cuda", "cuda:N", "mps")


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` → CUDA when available, else CPU; other names are checked against what this machine has.

    Raises:
        ValueError: an unknown device name, or one this machine does not have (CUDA, its index, MPS).
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        resolved = None
    if resolved is None or resolved.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    available = {
        "cpu": True,
        "cuda": torch.cuda.is_available() and (resolved.index or 0) < torch.cuda.device_count(),
        "mps": torch.backends.mps.is_available(),
    }[resolved.type]
    if not available:
        raise ValueError(f"device={device!r} is not available on this machine; use device=cpu or device=auto")
    return resolved


class Derainer:
    """Derain tensors, Pillow images, numpy arrays, image files and folders with one LPNet.

    Args:
        checkpoint_or_net: a checkpoint path (read with :func:`lpnet.checkpoint.load_network`,
            ``weights_only``), an :class:`~lpnet.models.lpnet.LPNet` or a
            :class:`~lpnet.models.router.RainRouter` (moved to ``device`` and put in eval mode). A router
            (``lpnet:auto``, the default) derains each image with the expert its rain strength chooses.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or a torch.device.
        tile: output pixels kept per tile side (see :func:`derain_tiled`); images up to about
            ``tile + 2 overlap`` per side run whole.
        overlap: context per tile side; None = the network's receptive field (exact results).
        batch_size: tiles per network call.
        max_pixels: refuse image files with more pixels (None: Pillow's limit, 89,478,485).
        precision: ``"fp32"`` (exact) or ``"bf16"`` (feature convolutions in bfloat16: CUDA, or a CPU with
            AMX or AVX512-BF16; elsewhere a ValueError names the missing feature).

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
        device: str | torch.device = DerainConfig.device,
        tile: int = DerainConfig.tile,
        overlap: int | None = DerainConfig.overlap,
        batch_size: int = DerainConfig.batch_size,
        max_pixels: int | None = DerainCommandConfig.max_pixels,
        precision: str = DerainConfig.precision,
    ) -> None:
        check_tiling(tile, overlap, batch_size)
        check_max_pixels(max_pixels)  # here, not per image: a limit no image meets fails every file
        self.device = resolve_device(device)
        refusal = bf16_unsupported(self.device) if precision == "bf16" else None
        if refusal:
            raise ValueError(refusal)
        if isinstance(checkpoint_or_net, (LPNet, RainRouter)):
            model = checkpoint_or_net.to(self.device).eval()
        elif isinstance(checkpoint_or_net, (str, os.PathLike)):
            model = load_network(checkpoint_or_net, map_location=self.device)
        else:
            raise TypeError(
                "Derainer needs a checkpoint path, an LPNet or a RainRouter, "
                f"got {type(checkpoint_or_net).__name__}"
            )
        self.router = model if isinstance(model, RainRouter) else None
        experts = dict(model.experts) if self.router else {"net": model}
        # Tiles are planned once for every expert, so they must share one architecture.
        self.net = next(iter(experts.values()))
        for name, net in experts.items():
            if net.config != self.net.config:
                raise ValueError(f"the router's experts differ in architecture ({name}: {net.extra_repr()})")
        self.tile = tile
        self.overlap = receptive_field_radius(self.net) if overlap is None else overlap
        self.batch_size = batch_size
        self.max_pixels = max_pixels
        # The fast path computes the same numbers (within 1e-5) 3-5x faster on the CPU (it also tunes the
        # process's allocator: lpnet.allocator) and hands other devices and dtypes to LPNet.forward itself
        # (lpnet.models.fast; `python -m lpnet.bench`).
        self.precision = precision
        self.experts = {
            name: (net, optimize_for_inference(net, precision=precision)) for name, net in experts.items()
        }
        # What the last image was derained with: "net"; a router's expert ("light"), or its blend of two
        # ("light 40% + mixed 60%").
        self.last_expert = "net"

    def __repr__(self) -> str:
        return (
            f"Derainer(device={self.device}, precision={self.precision}, tile={self.tile}, "
            f"overlap={self.overlap}, batch_size={self.batch_size}, "
            f"net={(self.router or self.net).extra_repr()})"
        )

    def _experts(self, preview: Callable[[], Tensor]) -> tuple[LPNet, Callable[[Tensor], Tensor]]:
        """One image's net (for planning its tiles: every expert has its architecture) and its derain
        function: the one net's fast path, or the router's choice from the image's ``preview()``: one
        expert's fast path, or the blend of two by their shares."""
        if self.router is None:
            net, fast = self.experts["net"]
            return net, fast.derain
        probe = self.experts[self.router.probe][1].derain if self.router.probe else None
        (weights,) = self.router.mixture(preview()[None].to(self.device), probe)
        self.last_expert = " + ".join(f"{name} {w:.0%}" for name, w in weights.items())
        if len(weights) == 1:
            (self.last_expert,) = weights
            net, fast = self.experts[self.last_expert]
            return net, fast.derain
        parts = [(w, self.experts[name][1]) for name, w in weights.items()]
        return self.net, lambda tile: sum(w * fast.derain(tile) for w, fast in parts)

    def _source_preview(self, source: SourceImage) -> Tensor:
        """The router's preview of a decoded image, box-downscaled strip by strip (never whole in float)."""
        k = preview_factor(source.height, source.width, self.router.preview_side)
        if k == 1:
            return source.rgb()
        rows = k * max(1, 2**20 // (k * source.width))
        strips = [
            F.avg_pool2d(source.window(top, 0, min(rows, source.height - top), source.width)[None], k)[0]
            for top in range(0, source.height - source.height % k, rows)
        ]
        return torch.cat(strips, dim=1)

    @classmethod
    def from_settings(
        cls, checkpoint_or_net: str | os.PathLike | LPNet | RainRouter, settings: Any
    ) -> Derainer:
        """A Derainer with a command's apply settings (``device``, ``tile``, ``overlap``, ``batch_size``,
        ``precision`` of :class:`~lpnet.config.DerainConfig`, and ``max_pixels``): ``lpnet.derain`` and
        ``lpnet.app`` build theirs so."""
        return cls(
            checkpoint_or_net,
            device=settings.device,
            tile=settings.tile,
            overlap=settings.overlap,
            batch_size=settings.batch_size,
            max_pixels=settings.max_pixels,
            precision=settings.precision,
        )

    def derain_tensor(self, x: Tensor) -> Tensor:
        """``(3, H, W)`` or ``(B, 3, H, W)`` float in [0, 1] → derained, same shape, clipped to [0, 1].

        Raises:
            ValueError: the network's output holds NaN or infinite values (never returned as pixels).
        """
        if not isinstance(x, Tensor) or not x.is_floating_point():
            raise TypeError(
                f"expected a floating tensor in [0, 1], got {type(x).__name__} {getattr(x, 'dtype', '')}"
            )
        if x.dim() not in (3, 4) or x.shape[-3] != 3:
            raise ValueError(f"expected a (3, H, W) or (B, 3, H, W) tensor, got {tuple(x.shape)}")
        batch = x if x.dim() == 4 else x[None]
        parts = []
        for image in batch.split(1) if self.router else [batch]:
            net, derain = self._experts(lambda image=image: self.router.preview(image)[0])
            parts.append(derain_tiled(net, image, self.tile, self.overlap, self.batch_size, derain))
        y = torch.cat(parts)
        if not torch.isfinite(y).all():
            raise ValueError(_non_finite(x))
        y = y.clamp_(0, 1)
        return y if x.dim() == 4 else y[0]

    def derain_image(
        self, source: SourceImage, on_tiles: Callable[[int, int], None] | None = None
    ) -> OutputImage:
        """Derain a decoded image tile by tile into an 8-bit :class:`~lpnet.io.OutputImage`.

        Only one tile at a time exists in float: memory is the 8-bit input and output plus one tile's
        work, whatever the image size. Grayscale stays grayscale and alpha passes through unchanged.
        ``on_tiles(done, total)`` is told the tiles done as they finish (the web app's progress bar).

        Raises:
            ValueError: the network's output holds NaN or infinite values.
        """
        out = OutputImage(source.height, source.width, source.grayscale, source.alpha)

        def read(t: Tile) -> Tensor:
            rows, cols = t.rows, t.cols
            height, width = rows.win_end - rows.win_start, cols.win_end - cols.win_start
            return source.window(rows.win_start, cols.win_start, height, width)

        def write(t: Tile, y: Tensor) -> None:
            if not torch.isfinite(y).all():
                raise ValueError(_non_finite(source.name))
            out.put(t.rows.keep_start, t.cols.keep_start, y)

        net, derain = self._experts(lambda: self._source_preview(source))
        plan = plan_tiles(net, source.height, source.width, self.tile, self.overlap)
        run_tiles(net, plan, read, write, self.batch_size, derain, on_tiles)
        return out

    def __call__(self, image: Tensor | Image.Image | np.ndarray | str | os.PathLike):
        """Derain one image of any supported kind (see the class doc) and return the same kind."""
        if isinstance(image, Tensor):
            return self.derain_tensor(image)
        if isinstance(image, Image.Image):
            return self.derain_image(decode_pil(image)).to_pil()
        if isinstance(image, np.ndarray):
            return self._derain_array(image)
        if isinstance(image, (str, os.PathLike)):
            return self.derain_tensor(open_image(image, self.max_pixels).rgb())
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
        self, source: str | os.PathLike, output_dir: str | os.PathLike, **options: Any
    ) -> DerainSummary:
        """Derain an image file, or every image below a folder, into ``output_dir``.

        :func:`lpnet.apply.folder.derain_folder` with this Derainer; ``options`` are its keyword arguments.
        """
        return derain_folder(self, source, output_dir, **options)


def _non_finite(what: object) -> str:
    return (
        f"{what}: the network's output holds NaN or infinite values (a damaged checkpoint, or an input far "
        "outside [0, 1]); nothing was written"
    )
