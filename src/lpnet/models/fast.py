"""The fast CPU path of :class:`~lpnet.models.lpnet.LPNet`, for inference and training: same numbers.

LPNet is tiny (7,548 parameters) but runs ~25k multiply-adds per pixel on full-resolution maps of only
16 channels, so plain eager PyTorch spends much of its time *around* the convolutions. What was measured
on 2 cores (``python -m lpnet.bench``) and what this module does:

1. **channels-last (NHWC) images and feature maps**: oneDNN's direct convolution of 16 channels runs near
   the CPU's fp32 peak in NHWC; NCHW costs a layout reorder per call (~3× slower), and the pyramid's
   depthwise blurs are ~2.5× faster in NHWC too.
2. **bias and LeakyReLU fused into the convolution** (``torch.ops.mkldnn._convolution_pointwise``, the
   oneDNN kernels ``torch.compile`` emits on CPU): no separate pass over each map, and for training only
   the activation's *output* is kept for the backward pass (its sign is the input's: the slope is > 0).
3. **allocator tuning** (:mod:`lpnet.allocator`, applied by :func:`optimize_for_inference` and lpnet's
   commands): fresh feature maps no longer page-fault in.

Tried and not used: a reused workspace of in-place kernels (needs a zero-fill and a separate LeakyReLU
pass per convolution: slower once the allocator is tuned), ``torch.inference_mode`` alone (no gain),
TorchScript trace + freeze (≈ channels-last eager), ``torch.jit.optimize_for_inference`` (much slower),
``torch.compile`` (inference: 10–70 s of compilation per new input shape; training: slower than eager),
1×1 convolutions backpropagated as matrix products (no gain over oneDNN's kernels in a whole step), a
separable pyramid blur (slower than oneDNN's depthwise 5×5).

:func:`fast_forward` computes what ``LPNet.forward`` computes (tests hold both the outputs and the
gradients within fp32 rounding) for float32 CPU tensors when PyTorch has oneDNN; anything else (CUDA,
float64, a build without oneDNN) goes through ``LPNet.forward`` unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lpnet.allocator import tune_cpu_allocator
from lpnet.models.lpnet import LPNet, eager_conv

CHANNELS_LAST = torch.channels_last
# Inference runs each subnet in row strips of about this many pixels (never fewer than MIN_STRIP_ROWS
# rows, so the 11-row context of each strip stays a small share): only one strip's feature maps exist at
# once. Measured on a 1504×1504 window (the default tile with its overlap), 1 thread, the work above the
# process's baseline: 1.3 GB whole, 0.52 GB in strips of 2^19 pixels, 0.36 GB at 2^18, 0.27 GB at 2^17.
STRIP_PIXELS = 1 << 18
MIN_STRIP_ROWS = 64


def fast_path_available() -> bool:
    """Whether this PyTorch build has the oneDNN CPU kernels the fast path uses."""
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_convolution_pointwise")


# What ``precision=`` accepts: float32 (exact, the default) or bfloat16 feature convolutions.
PRECISIONS = ("fp32", "bf16")
# The CPU features that compute bfloat16 natively in oneDNN; without them bf16 would be emulated (slower).
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (``/proc/cpuinfo``), empty where they cannot be read."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def bf16_unsupported(device: torch.device) -> str | None:
    """None where ``precision=bf16`` runs natively on ``device`` (CUDA; a CPU with AMX or AVX512-BF16 and
    oneDNN); otherwise one line naming what is missing."""
    if device.type == "cuda":
        return None
    if device.type != "cpu":
        return f"precision=bf16 runs on CUDA or on CPUs with AMX or AVX512-BF16, not on {device.type}"
    if not fast_path_available():
        return "precision=bf16 needs PyTorch with oneDNN on the CPU; this build has none (use precision=fp32)"
    if not set(BF16_CPU_FLAGS) & cpu_flags():
        return (
            "precision=bf16 needs a CPU with AMX (amx_bf16) or AVX512-BF16 (avx512_bf16); this one has "
            "neither, so bfloat16 would be emulated and slower (use precision=fp32, the default)"
        )
    return None


def bf16_conv(x: Tensor, conv: nn.Conv2d, slope: float | None) -> Tensor:
    """A feature convolution (+ LeakyReLU) in bfloat16 (oneDNN on the CPU: AMX or AVX512-BF16), or, for
    the last 1×1 back to the image (``slope`` None), float32, so the residual added to each band and the
    pyramid stay float32. Weights are converted at each call (7,548 numbers: microseconds), so weights
    loaded later are used."""
    if slope is None:
        x = x.float()
        return onednn_conv(x, conv, None) if uses_fast_path(x) else eager_conv(x, conv, None)
    weight, bias = conv.weight.to(torch.bfloat16), conv.bias.to(torch.bfloat16)
    x = x.to(torch.bfloat16)
    if x.device.type == "cpu":
        return onednn_conv_weights(x.contiguous(memory_format=CHANNELS_LAST), weight, bias, slope)
    return F.leaky_relu(F.conv2d(x, weight, bias, padding=conv.padding), slope)


def uses_fast_path(x: Tensor) -> bool:
    """Whether :func:`fast_forward` takes the oneDNN path for ``x`` (float32 on the CPU, oneDNN built)."""
    return x.device.type == "cpu" and x.dtype == torch.float32 and fast_path_available()


def onednn_conv_weights(x: Tensor, weight: Tensor, bias: Tensor | None, slope: float | None) -> Tensor:
    """Stride-1 'same' convolution, optionally followed by LeakyReLU, as one oneDNN kernel."""
    padding = [weight.shape[-2] // 2, weight.shape[-1] // 2]
    attr, scalars = ("leaky_relu", [slope]) if slope is not None else ("none", [])
    return torch.ops.mkldnn._convolution_pointwise(
        x, weight, bias, padding, [1, 1], [1, 1], 1, attr, scalars, ""
    )


class _ConvLeakyReLU(torch.autograd.Function):
    """``leaky_relu(conv2d(x, weight, bias))`` (or the plain convolution when ``slope`` is None)."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None, slope: float | None) -> Tensor:
        y = onednn_conv_weights(x, weight, bias, slope)
        ctx.save_for_backward(x, weight, y if slope is not None else None)
        ctx.slope = slope
        ctx.has_bias = bias is not None
        return y

    @staticmethod
    def backward(ctx, grad_y: Tensor):
        x, weight, y = ctx.saved_tensors
        # Gradients arrive in whatever layout the next operation produced; oneDNN wants NHWC.
        grad = grad_y.contiguous(memory_format=CHANNELS_LAST)
        if ctx.slope is not None:  # y > 0 exactly where the input was > 0
            grad = torch.ops.aten.leaky_relu_backward(grad, y, ctx.slope, True)
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        padding = [weight.shape[-2] // 2, weight.shape[-1] // 2]
        grad_x, grad_w, grad_b = torch.ops.aten.convolution_backward(
            grad, x, weight, [weight.shape[0]] if ctx.has_bias else None, [1, 1], padding, [1, 1],
            False, [0, 0], 1, [need_x, need_w, need_b and ctx.has_bias],
        )  # fmt: skip
        return grad_x, grad_w, grad_b, None


def onednn_conv(x: Tensor, conv: nn.Conv2d, slope: float | None) -> Tensor:
    """:func:`lpnet.models.lpnet.eager_conv` as one fused oneDNN kernel; the result is NHWC."""
    x = x.contiguous(memory_format=CHANNELS_LAST)  # a no-op for the pyramid's NHWC bands
    if torch.is_grad_enabled():
        return _ConvLeakyReLU.apply(x, conv.weight, conv.bias, slope)
    return onednn_conv_weights(x, conv.weight, conv.bias, slope)  # inference: no autograd bookkeeping


def fast_forward(net: LPNet, x: Tensor, max_rows: int | None = None) -> list[Tensor]:
    """``net(x)`` with every convolution through :func:`onednn_conv` where :func:`uses_fast_path` allows.

    Records gradients like ``net(x)`` (use it in training steps); the levels come back NHWC on the
    fast path. ``max_rows`` runs each subnet in row strips (:meth:`lpnet.models.lpnet.Subnet.apply_convs`:
    the same numbers, less memory). Shapes as :class:`~lpnet.models.lpnet.LPNet`.
    """
    if not uses_fast_path(x):
        return net.apply_convs(x, eager_conv, max_rows)
    # NHWC from the start: the pyramid's depthwise 5×5 convolutions are ~2.5× faster in it too, and the
    # subnets' bands arrive in it.
    return net.apply_convs(x.contiguous(memory_format=CHANNELS_LAST), onednn_conv, max_rows)


def strip_rows(width: int) -> int:
    """Rows per strip for images ``width`` pixels wide (see :data:`STRIP_PIXELS`)."""
    return max(MIN_STRIP_ROWS, STRIP_PIXELS // max(1, width))


class FastLPNet(nn.Module):
    """Inference-only twin of an :class:`LPNet` that shares its weights (loading new ones propagates).

    Args:
        net: the network to run; its weights are used as they are at call time.
        precision: ``fp32`` (the same numbers as ``net(x)``) or ``bf16`` (feature convolutions in
            bfloat16, :func:`bf16_conv`; the caller checks :func:`bf16_unsupported` first).

    Shape:
        Input ``(B, C, H, W)`` float images in [0, 1], any ``H, W >= 1``. Output: the same list of
        ``num_levels`` tensors as ``net(x)``, coarsest first, contiguous NCHW float32, no gradients.
    """

    def __init__(self, net: LPNet, precision: str = PRECISIONS[0]) -> None:
        super().__init__()
        if not isinstance(net, LPNet):
            raise TypeError(f"FastLPNet wraps an LPNet, got {type(net).__name__}")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        self.net = net
        self.precision = precision

    def _levels(self, x: Tensor) -> list[Tensor]:
        rows = strip_rows(x.shape[-1])
        if self.precision == "fp32":
            return fast_forward(self.net, x, rows)
        if x.device.type == "cpu":
            x = x.contiguous(memory_format=CHANNELS_LAST)
        return [level.float() for level in self.net.apply_convs(x, bf16_conv, rows)]

    @torch.inference_mode()
    def forward(self, x: Tensor) -> list[Tensor]:
        return [level.contiguous() for level in self._levels(x)]

    @torch.inference_mode()
    def derain(self, x: Tensor) -> Tensor:
        """The finest output only: ``(B, C, H, W)`` → ``(B, C, H, W)`` (not clipped)."""
        return self._levels(x)[-1].contiguous()


def optimize_for_inference(
    net: LPNet, example_shape: Sequence[int] | None = None, precision: str = PRECISIONS[0]
) -> FastLPNet:
    """The fastest exact CPU inference path for ``net`` (see the module docstring for what and why).

    Also tunes the process's allocator (:func:`lpnet.allocator.tune_cpu_allocator`).

    Args:
        net: a trained :class:`LPNet` (put in eval mode; its weights stay shared).
        example_shape: optional ``(B, C, H, W)`` to run once now (e.g. the tile size), so that oneDNN's
            kernels for it are built before the first real call.
        precision: ``fp32`` (exact) or ``bf16`` (see :class:`FastLPNet`).

    Returns:
        A :class:`FastLPNet`; ``fast(x)`` equals ``net(x)`` and ``fast.derain(x)`` equals ``net.derain(x)``.
    """
    tune_cpu_allocator()
    fast = FastLPNet(net.eval(), precision)
    if example_shape is not None:
        if len(example_shape) != 4 or example_shape[1] != net.channels or min(example_shape) < 1:
            raise ValueError(
                f"example_shape must be (B, {net.channels}, H, W) with sizes >= 1, got {example_shape}"
            )
        fast(torch.zeros(tuple(example_shape), device=net.kernel.device))
    return fast
