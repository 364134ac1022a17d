"""Derain images and folders: ``python -m lpnet.derain input=FILE_OR_DIR output=DIR [ckpt_path=CKPT]``.

Without ``ckpt_path`` the bundled adaptive default ``lpnet:auto`` derains: lpnet's own weights, per image
``lpnet:light`` or ``lpnet:mixed`` by the rain it sees (:mod:`lpnet.models.router`).

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

Large images run tile by tile with exact results (:mod:`lpnet.apply.tiling`). A file that cannot be read
or written is reported by name on one line and the rest go on. Exit status: 0 all done, 1 some files
failed, 2 nothing done (bad setting, missing checkpoint, unwritable or refused output folder, full disk).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lpnet.apply import Derainer
from lpnet.cli import Outcome, command
from lpnet.config import DerainCommandConfig

if TYPE_CHECKING:
    from omegaconf import DictConfig


def run(cfg: DictConfig | DerainCommandConfig) -> Outcome:
    """Derain ``cfg.input`` into ``cfg.output`` (settings: :class:`lpnet.config.DerainCommandConfig`, or
    its DictConfig from Hydra)."""
    derainer = Derainer.from_settings(cfg.ckpt_path, cfg)
    summary = derainer.derain_files(
        cfg.input,
        cfg.output,
        format=cfg.format,
        skip_existing=cfg.skip_existing,
        overwrite=cfg.overwrite,
        progress=cfg.progress,
        pipeline=cfg.pipeline,
        shard=cfg.shard,
    )
    facts = [("output", cfg.output), ("checkpoint", cfg.ckpt_path)]
    if cfg.shard is not None:
        facts.append(("shard", f"{cfg.shard} (the other shards write the rest)"))
    facts += [("skipped", reason) for _, reason in summary.skipped]
    failed = [reason for _, reason in summary.failed]
    nothing_done = not (summary.written or summary.skipped)
    return Outcome(f"lpnet derain: {summary}", facts, failed=failed, nothing_done=nothing_done)


main = command("derain", run, plain=True)

if __name__ == "__main__":
    main()
