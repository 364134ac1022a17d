"""lpnet: Lightweight Pyramid Networks for Image Deraining (Fu et al., IEEE TNNLS 2019)."""

import lpnet.conf  # noqa: F401  registers the config schemas with Hydra for whatever composes our configs
from lpnet.checkpoint import CheckpointError, load_model, read_checkpoint, save_checkpoint
from lpnet.inference import Derainer, derain_tiled
from lpnet.models import LPNet, gaussian_pyramid, laplacian_pyramid

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "Derainer",
    "LPNet",
    "__version__",
    "derain_tiled",
    "gaussian_pyramid",
    "laplacian_pyramid",
    "load_model",
    "read_checkpoint",
    "save_checkpoint",
]
