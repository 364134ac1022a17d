"""Derain images and folders from the command line.

Usage::

    python -m lpnet.derain ckpt_path=light.pt input=photos/ output=derained/ [tile=1024] [device=cpu]

Every image below ``input`` (or the single ``input`` file) is written to ``output`` with its relative path
and stem kept, as ``<stem>.png`` (``<name>.png``, e.g. ``x.jpg.png``, where two inputs share a stem, so
neither output is lost); inputs are never overwritten and an output folder that is, or lies
inside, the input folder is refused. How each kind of image is handled (all outputs are 8 bits/channel):

- RGB (8-bit, or 16-bit, which Pillow reads as 8-bit): derained, written as RGB.
- Grayscale (L, 1-bit, 16-bit I;16, 32-bit I/F): derained as three equal channels, written as grayscale
  (ITU-R 601 luma of the output); 16-bit grayscale is read at full precision.
- Alpha (RGBA, LA, PA, palette transparency): the colour is derained and the alpha re-attached unchanged.
- Palette (P): expanded to RGB (RGBA with transparency).
- EXIF orientation is applied, so outputs look the way viewers show the input.

Large images run tile by tile with exact results (see :mod:`lpnet.inference`). A file that cannot be read
or written is reported by name on one line and the rest go on. Exit status: 0 all done, 1 some files
failed, 2 nothing done (bad setting, missing checkpoint, unwritable or refused output folder).
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig
from omegaconf.errors import MissingMandatoryValue

from lpnet.checkpoint import CheckpointError
from lpnet.inference import Derainer, OutputFullError

# A setting, a checkpoint or the output folder the user can fix: one line, exit status 2.
SETUP_ERRORS = (CheckpointError, FileNotFoundError, PermissionError, OutputFullError, ValueError, TypeError)
USAGE = "usage: python -m lpnet.derain ckpt_path=CKPT input=FILE_OR_DIR output=DIR [tile=1024] [device=auto]"


def derain(cfg: DictConfig) -> int:
    """Run the derain tool on a composed ``conf/derain.yaml``; returns the exit status (0, 1 or 2)."""
    try:
        derainer = Derainer(
            cfg.ckpt_path, device=cfg.device, tile=cfg.tile, overlap=cfg.overlap, batch_size=cfg.batch_size
        )
        summary = derainer.derain_files(
            cfg.input,
            cfg.output,
            format=cfg.format,
            skip_existing=cfg.skip_existing,
            progress=cfg.progress,
        )
    except MissingMandatoryValue as err:
        print(f"error: missing setting {err.full_key}=...\n{USAGE}", file=sys.stderr)
        return 2
    except SETUP_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    # Each failure was reported on stderr as it happened; the summary repeats them so none scrolls away.
    if summary.failed:
        print("failed:\n" + "\n".join(f"  {reason}" for _, reason in summary.failed))
    print(f"{summary} -> {cfg.output}")
    return 1 if summary.failed else 0


@hydra.main(version_base="1.3", config_path="conf", config_name="derain")
def main(cfg: DictConfig) -> None:
    sys.exit(derain(cfg))


if __name__ == "__main__":
    main()
