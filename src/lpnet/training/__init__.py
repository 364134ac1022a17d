"""Training with PyTorch Lightning: the LightningModule, its callbacks and logger factories.

The networks themselves (:mod:`lpnet.models`) know nothing of Lightning; this package does, and nothing
in it knows file layouts (:mod:`lpnet.data` does).
"""

from lpnet.training.gauge import LitGauge
from lpnet.training.module import LitLPNet

__all__ = ["LitGauge", "LitLPNet"]
