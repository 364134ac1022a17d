"""Export a trained LPNet to ONNX: ``python -m lpnet.export ckpt_path=CKPT output=FILE.onnx``.

The graph takes ``image`` ``(B, 3, H, W)`` float32 in [0, 1] with dynamic batch, height and width (odd
sizes and 1×1 included) and returns ``derained`` ``(B, 3, H, W)``, the finest level only (not clipped).
The pyramid's TF 'SAME' padding depends on the parity of H and W; the exporter records it as shape
arithmetic on the runtime input, so one file serves every size (tests check this with onnxruntime).

The TorchScript-based exporter (``dynamo=False``) is used: the dynamo exporter needs ``onnxscript``, an
extra dependency, and gives nothing more here.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
from omegaconf import DictConfig
from torch import Tensor, nn

from lpnet.checkpoint import load_model
from lpnet.cli import Outcome, command
from lpnet.config import ExportCommandConfig
from lpnet.files import atomic_write
from lpnet.models.lpnet import LPNet

INPUT_NAME = "image"
OUTPUT_NAME = "derained"
DYNAMIC_AXES = {name: {0: "batch", 2: "height", 3: "width"} for name in (INPUT_NAME, OUTPUT_NAME)}


class FinestLevel(nn.Module):
    """``net(x)[-1]``: the derained image only, the one output an exported graph needs."""

    def __init__(self, net: LPNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)[-1]


def export_onnx(
    net: LPNet,
    path: str | os.PathLike,
    opset: int = ExportCommandConfig.opset,
    overwrite: bool = ExportCommandConfig.overwrite,
) -> Path:
    """Write ``net`` as an ONNX graph with dynamic batch, height and width.

    Args:
        net: the network (any configuration); exported in eval mode, on the CPU, in float32.
        path: the ``.onnx`` file to write (its folder is created).
        opset: ONNX opset version.
        overwrite: replace an existing file; otherwise an existing ``path`` raises ``FileExistsError``.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=true to replace it")
    model = FinestLevel(net).cpu().float().eval()
    example = torch.rand(1, net.channels, 64, 64)
    with torch.no_grad(), warnings.catch_warnings(), atomic_write(path) as tmp:
        # The tracer warns about the Python shape checks; the graph is tested on odd and even sizes.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(
            model,
            (example,),
            str(tmp),
            dynamo=False,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes=DYNAMIC_AXES,
            opset_version=opset,
        )
    return path


def check_onnx(net: LPNet, path: str | os.PathLike, sizes=((37, 53), (64, 64)), atol: float = 1e-4) -> float:
    """Run the exported graph with onnxruntime on random images; return the largest difference to PyTorch.

    Raises:
        ImportError: onnxruntime is not installed.
        ValueError: a difference exceeds ``atol``.
    """
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst = 0.0
    for height, width in sizes:
        x = torch.rand(1, net.channels, height, width)
        (got,) = session.run(None, {INPUT_NAME: x.numpy()})
        with torch.no_grad():
            want = net.cpu().float().eval()(x)[-1]
        worst = max(worst, (torch.from_numpy(got) - want).abs().max().item())
        if worst > atol:
            raise ValueError(f"{path}: onnxruntime differs from PyTorch by {worst:.3g} at {height}×{width}")
    return worst


def run(cfg: DictConfig) -> Outcome:
    """Export ``cfg.ckpt_path`` to ``cfg.output`` (settings: :class:`lpnet.config.ExportCommandConfig`)."""
    net = load_model(cfg.ckpt_path)
    path = export_onnx(net, cfg.output, opset=int(cfg.opset), overwrite=bool(cfg.overwrite))
    facts: list[tuple[str, str]] = [("from", cfg.ckpt_path)]
    if cfg.check:
        try:
            facts.append(("checked", f"onnxruntime matches PyTorch within {check_onnx(net, path):.2g}"))
        except ImportError:
            facts.append(("checked", "no: onnxruntime is not installed"))
    return Outcome(f"lpnet export: wrote {path}", facts)


main = command("export", run)

if __name__ == "__main__":
    main()
