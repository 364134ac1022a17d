"""One checkpoint format for every entry point: converted official weights and trained runs alike.

An lpnet checkpoint is a plain dict that ``torch.load(weights_only=True)`` reads (no pickled code):

``{"format": "lpnet", "version": 1, "model_config": {LPNet kwargs}, "state_dict": ..., "meta": ...}``

Lightning checkpoints written by :class:`lpnet.models.module.LitLPNet` load too: their hyper-parameters
hold the same plain ``net`` dict and the network's weights sit under the ``net.`` prefix.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from lpnet.io import atomic_write
from lpnet.models.lpnet import LPNet

FORMAT = "lpnet"
VERSION = 1
LIGHTNING_PREFIX = "net."


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read as an LPNet checkpoint."""


def save_checkpoint(path: str | os.PathLike, net: LPNet, meta: dict[str, Any] | None = None) -> Path:
    """Write ``net`` as an lpnet checkpoint (atomically: a kill never leaves half a file)."""
    path = Path(path)
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "model_config": net.config(),
        "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
        "meta": dict(meta or {}),
    }
    with atomic_write(path) as tmp:
        torch.save(payload, tmp)
    return path


def read_checkpoint(
    path: str | os.PathLike,
) -> tuple[dict[str, Any], dict[str, torch.Tensor], dict[str, Any]]:
    """Read ``(model_config, state_dict, meta)`` from an lpnet or LitLPNet checkpoint, executing nothing."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for corrupt, truncated or code-carrying files
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"{path}: not a loadable lpnet checkpoint (read with weights_only=True, nothing executed): "
            f"{first_line}"
        ) from None
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path}: expected a checkpoint dict, found {type(ckpt).__name__}")
    if ckpt.get("format") == FORMAT:
        return dict(ckpt["model_config"]), ckpt["state_dict"], dict(ckpt.get("meta", {}))
    hparams = ckpt.get("hyper_parameters", {})
    if "state_dict" in ckpt and isinstance(hparams.get("net"), dict):
        state = {
            k[len(LIGHTNING_PREFIX) :]: v
            for k, v in ckpt["state_dict"].items()
            if k.startswith(LIGHTNING_PREFIX)
        }
        meta = {"epoch": ckpt.get("epoch"), "global_step": ckpt.get("global_step"), "source": "lightning"}
        return _canonical_config(path, hparams["net"]), state, meta
    raise CheckpointError(
        f"{path}: neither an lpnet checkpoint (key 'format'='lpnet') nor a LitLPNet Lightning checkpoint "
        f"(keys 'state_dict' and 'hyper_parameters.net'); found keys {sorted(ckpt)[:8]}"
    )


def _canonical_config(path: Path, net_kwargs: dict[str, Any]) -> dict[str, Any]:
    """A training run's ``model.net`` arguments (``widths: null``, a multiplier) as :meth:`LPNet.config`."""
    try:
        return LPNet(**net_kwargs).config()
    except (TypeError, ValueError) as err:
        raise CheckpointError(
            f"{path}: its model.net {net_kwargs} does not describe an LPNet: {err}"
        ) from None


def check_resumable(path: str | os.PathLike, net_config: dict[str, Any]) -> None:
    """Refuse, before any work, a ``ckpt_path`` that cannot resume a training run of ``net_config``.

    Raises:
        FileNotFoundError / CheckpointError: no file, not a checkpoint (see :func:`read_checkpoint`),
            converted weights (no optimiser state or step to resume), or another architecture.
    """
    config, _, meta = read_checkpoint(path)
    if meta.get("source") != "lightning":
        raise CheckpointError(
            f"ckpt_path={path}: converted weights hold no training state to resume (optimiser, step); "
            f"start a run from them with model.init_from={path}"
        )
    if config != net_config:
        raise CheckpointError(
            f"ckpt_path={path} holds an LPNet {config}, but this run builds {net_config} "
            "(set model.net to match)"
        )


def load_model(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> LPNet:
    """Build the LPNet a checkpoint describes and load its weights (strictly), in eval mode."""
    config, state, _ = read_checkpoint(path)
    try:
        net = LPNet(**config)
        net.load_state_dict(state, strict=True)
    except (TypeError, ValueError, RuntimeError) as err:
        raise CheckpointError(
            f"{path}: weights do not fit the LPNet it describes ({config}): {err}"
        ) from None
    return net.to(map_location).eval()
