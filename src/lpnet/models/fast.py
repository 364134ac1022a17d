"""Fast CPU inference for :class:`~lpnet.models.lpnet.LPNet`: same numbers, about 3–5× less time.

LPNet is tiny (7,548 parameters) but runs ~25k multiply-adds per pixel on full-resolution maps of only
16 channels, so plain eager PyTorch spends most of its time *around* the convolutions rather than in them.
What was measured on 2 cores (see ``python -m lpnet.bench`` and NOTES_perf.md) and what this module does:

1. **channels-last (NHWC) activations**: oneDNN's direct convolution for 1–16 channels is ~2× faster in
   NHWC than in NCHW (which falls back to a reorder per call, or to the slow reference kernel).
2. **oneDNN fused kernels** (``torch.ops.mkldnn._convolution_pointwise``, the ops ``torch.compile`` itself
   emits on CPU): bias and the final add are fused into the convolution, so no separate pass over memory.
3. **A reused workspace**: four full-resolution feature maps per level, allocated once per input shape and
   written in place. A 481×321 map of 16 channels is 10 MB and a 1024² one 64 MB: glibc hands such blocks
   back to the kernel on free, and each of eager's ~100 fresh allocations per image page-faults its memory in
   again (a third of eager's time at 481×321, more at 1024²). Writing in place needs the in-place oneDNN op,
   which cannot fuse the LeakyReLU, so that stays a separate in-place pass (cheaper than the page faults).

Tried and not used (figures in NOTES_perf.md): ``torch.inference_mode`` alone (no gain), TorchScript
trace + freeze (≈ channels-last eager), ``torch.jit.optimize_for_inference`` (much slower), and
``torch.compile`` (inductor with ``freezing``: as fast at one size, but 10–70 s of compilation per new
input shape, which a folder of differently sized photos pays again and again).

The pyramid and the network's structure are taken from the wrapped :class:`LPNet` at call time (its
``laplacian_pyramid``/``pyr_up`` functions, recursions, weight sharing, skips, slope), so the fast path
computes exactly what ``LPNet.forward`` does; tests hold the two within 1e-5. It runs for float32 CPU
tensors when PyTorch has oneDNN; anything else (CUDA, float64, a build without oneDNN) goes through
``LPNet.forward`` unchanged. Inference only: nothing here records gradients.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lpnet.models.lpnet import LPNet, Subnet
from lpnet.models.pyramid import laplacian_pyramid, pyr_up

CHANNELS_LAST = torch.channels_last


def fast_path_available() -> bool:
    """Whether this PyTorch build has the oneDNN CPU kernels the fast path uses."""
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_convolution_pointwise_")


def _conv_into(out: Tensor, x: Tensor, conv: nn.Conv2d) -> Tensor:
    """``out = conv(x) + out`` in one oneDNN kernel (``out`` NHWC, zeroed or holding the addend)."""
    return torch.ops.mkldnn._convolution_pointwise_.binary(
        out, x, conv.weight, conv.bias, list(conv.padding), [1, 1], [1, 1], 1, "add", 1.0, None, [None], None
    )


class FastLPNet(nn.Module):
    """Inference-only twin of an :class:`LPNet` that shares its weights (loading new ones propagates).

    Args:
        net: the network to run; its weights are used as they are at call time.

    Shape:
        Input ``(B, C, H, W)`` float images in [0, 1], any ``H, W >= 1``. Output: the same list of
        ``num_levels`` tensors as ``net(x)``, coarsest first, contiguous NCHW.

    Not thread-safe: the workspace belongs to the module, so give each thread its own ``FastLPNet``.
    """

    def __init__(self, net: LPNet) -> None:
        super().__init__()
        if not isinstance(net, LPNet):
            raise TypeError(f"FastLPNet wraps an LPNet, got {type(net).__name__}")
        self.net = net
        self._workspace: dict[tuple, list[Tensor]] = {}

    def _buffers_for(self, level: int, shape: Sequence[int], like: Tensor) -> list[Tensor]:
        key = (level, tuple(shape), like.dtype)
        if key not in self._workspace:
            if level == 0:  # a new input shape: drop the previous one's maps rather than hoard them
                self._workspace.clear()
            self._workspace[key] = [
                torch.empty(shape, dtype=like.dtype).contiguous(memory_format=CHANNELS_LAST) for _ in range(4)
            ]
        return self._workspace[key]

    def _subnet(self, level: int, subnet: Subnet, band: Tensor) -> Tensor:
        """``subnet(band)`` with its features in the workspace (``band`` NHWC)."""
        slope = subnet.act.negative_slope
        shape = (band.shape[0], subnet.head.out_channels, *band.shape[-2:])
        first, a, b, features = self._buffers_for(level, shape, band)
        F.leaky_relu_(_conv_into(first.zero_(), band, subnet.head), slope)
        features.copy_(first)
        for step in range(subnet.recursions):
            block = subnet.blocks[step % len(subnet.blocks)]
            F.leaky_relu_(_conv_into(a.zero_(), features, block.conv1), block.act.negative_slope)
            F.leaky_relu_(_conv_into(b.zero_(), a, block.conv2), block.act.negative_slope)
            F.leaky_relu_(_conv_into(features.zero_(), b, block.conv3), block.act.negative_slope)
            if subnet.residual_skip:
                features.add_(first)
        # tail(features) + band into a fresh tensor: an output must not alias the workspace.
        return _conv_into(band.clone(memory_format=CHANNELS_LAST), features, subnet.tail)

    @torch.inference_mode()
    def forward(self, x: Tensor) -> list[Tensor]:
        net = self.net
        if x.device.type != "cpu" or x.dtype != torch.float32 or not fast_path_available():
            return net(x)
        if x.dim() != 4 or x.shape[1] != net.channels:
            raise ValueError(f"LPNet expects (B, {net.channels}, H, W) images, got {tuple(x.shape)}")
        kernel = net.kernel.to(x.dtype)
        bands = laplacian_pyramid(x, net.num_levels, kernel)
        outputs: list[Tensor] = []
        for level, (subnet, band) in enumerate(zip(net.subnets, bands, strict=True)):
            out = self._subnet(level, subnet, band.contiguous(memory_format=CHANNELS_LAST))
            if outputs:
                out.add_(pyr_up(outputs[-1], band.shape[-2:], kernel))
            outputs.append(out.relu_() if net.final_relu else out)
        return [out.contiguous() for out in outputs]

    def derain(self, x: Tensor) -> Tensor:
        """The finest output only: ``(B, C, H, W)`` → ``(B, C, H, W)`` (not clipped)."""
        return self(x)[-1]


def optimize_for_inference(net: LPNet, example_shape: Sequence[int] | None = None) -> FastLPNet:
    """The fastest exact CPU inference path for ``net`` (see the module docstring for what and why).

    Args:
        net: a trained :class:`LPNet` (put in eval mode; its weights stay shared).
        example_shape: optional ``(B, C, H, W)`` to allocate the workspace for now (e.g. the tile size),
            so the first real call is as fast as the rest.

    Returns:
        A :class:`FastLPNet`; ``fast(x)`` equals ``net(x)`` and ``fast.derain(x)`` equals ``net.derain(x)``.
    """
    fast = FastLPNet(net.eval())
    if example_shape is not None:
        if len(example_shape) != 4 or example_shape[1] != net.channels or min(example_shape) < 1:
            raise ValueError(
                f"example_shape must be (B, {net.channels}, H, W) with sizes >= 1, got {example_shape}"
            )
        fast(torch.zeros(tuple(example_shape), device=net.kernel.device))
    return fast
