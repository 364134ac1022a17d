"""Networks and pyramids (plain ``nn.Module``s: no Lightning, no Hydra)."""

from lpnet.models.lpnet import LPNet, RecursiveBlock, Subnet
from lpnet.models.pyramid import (
    GaussianPyramid,
    LaplacianPyramid,
    collapse_laplacian,
    gaussian_pyramid,
    laplacian_pyramid,
    pyr_down,
    pyr_up,
)

__all__ = [
    "GaussianPyramid",
    "LPNet",
    "LaplacianPyramid",
    "RecursiveBlock",
    "Subnet",
    "collapse_laplacian",
    "gaussian_pyramid",
    "laplacian_pyramid",
    "pyr_down",
    "pyr_up",
]
