"""Logger factories the Hydra configs point at."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_info

WANDB_DEFAULT_HOST = "https://api.wandb.ai"


def wandb_has_credentials() -> bool:
    """True when an API key is set or ``wandb login`` stored one in ~/.netrc."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    return netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="ignore")


def wandb_reachable(timeout_s: float = 3.0) -> bool:
    """Whether the W&B server (``WANDB_BASE_URL``, default api.wandb.ai) accepts a TCP connection."""
    url = urlparse(os.environ.get("WANDB_BASE_URL") or WANDB_DEFAULT_HOST)
    port = url.port or (80 if url.scheme == "http" else 443)
    try:
        with socket.create_connection((url.hostname or "", port), timeout=timeout_s):
            return True
    except OSError:
        return False


def wandb_logger(**kwargs: Any) -> WandbLogger:
    """A WandbLogger that never blocks on the network.

    ``WANDB_MODE`` wins when set (``offline``, ``disabled``, ``online``); otherwise the run goes online
    only with credentials and a reachable server, and offline otherwise (sync it later with
    ``wandb sync <save_dir>/wandb/offline-run-*``).
    """
    mode = os.environ.get("WANDB_MODE")
    if not mode:
        mode = "online" if wandb_has_credentials() and wandb_reachable() else "offline"
        if mode == "offline":
            rank_zero_info(
                "W&B: no API key or no connection to the server: logging offline (wandb sync later)"
            )
    kwargs.setdefault("offline", mode == "offline")
    if mode == "disabled":
        kwargs["mode"] = "disabled"
    return WandbLogger(**kwargs)
