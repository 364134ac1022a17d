"""lpnet: Lightweight Pyramid Networks for Image Deraining (Fu et al., IEEE TNNLS 2019).

The public API, importable without Hydra or Lightning::

    import lpnet
    net = lpnet.load_model("heavy.pt")            # an LPNet (nn.Module) in eval mode
    derainer = lpnet.Derainer("heavy.pt")         # photos of any size: tensors, PIL, numpy, files, folders
    lpnet.LPNet(lpnet.LPNetConfig(recursions=3))  # a variant, untrained
"""

from lpnet.apply import Derainer, derain_tiled
from lpnet.checkpoint import CheckpointError, load_model, read_checkpoint, save_checkpoint
from lpnet.config import LPNetConfig
from lpnet.models import LPNet, gaussian_pyramid, laplacian_pyramid

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "Derainer",
    "LPNet",
    "LPNetConfig",
    "__version__",
    "derain_tiled",
    "gaussian_pyramid",
    "laplacian_pyramid",
    "load_model",
    "read_checkpoint",
    "save_checkpoint",
]
