"""Applying a trained LPNet.

Exact tiling (:mod:`~lpnet.apply.tiling`), the :class:`Derainer` for tensors, images and arrays
(:mod:`~lpnet.apply.derainer`), and folders of files (:mod:`~lpnet.apply.folder`).
"""

from lpnet.apply.derainer import Derainer, resolve_device
from lpnet.apply.folder import DerainSummary, OutputFullError, derain_folder
from lpnet.apply.tiling import derain_tiled

__all__ = ["DerainSummary", "Derainer", "OutputFullError", "derain_folder", "derain_tiled", "resolve_device"]
