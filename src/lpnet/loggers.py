"""Logger factories the Hydra configs point at."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import WandbLogger


def wandb_has_credentials() -> bool:
    """True when an API key is set or ``wandb login`` stored one in ~/.netrc."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    return netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="ignore")


def wandb_logger(**kwargs: Any) -> WandbLogger:
    """A WandbLogger that never blocks on the network.

    ``WANDB_MODE`` wins when set (``offline``, ``disabled``, ``online``); otherwise the run goes online
    only with credentials and offline without them (``wandb sync <save_dir>/wandb/offline-run-*`` later).
    """
    mode = os.environ.get("WANDB_MODE") or ("online" if wandb_has_credentials() else "offline")
    kwargs.setdefault("offline", mode == "offline")
    if mode == "disabled":
        kwargs["mode"] = "disabled"
    return WandbLogger(**kwargs)
