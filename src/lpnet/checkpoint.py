"""One checkpoint format for every entry point: converted official weights and trained runs alike.

An lpnet checkpoint is a plain dict that ``torch.load(weights_only=True)`` reads (no pickled code):

``{"format": "lpnet", "version": 1, "model_config": {LPNetConfig fields}, "state_dict": ..., "meta": ...}``

Lightning checkpoints written by :class:`lpnet.training.LitLPNet` load too: their hyper-parameters
hold the same plain ``net`` dict and the network's weights sit under the ``net.`` prefix.

Every loader goes through one gate (:func:`read_checkpoint`) before anything is built: the architecture
must lie within :class:`~lpnet.config.LPNetConfig`'s bounds and cost less than :data:`MAX_PARAMS`
parameters and :data:`MAX_BYTES_PER_MEGAPIXEL` of inference memory (costed from a weightless blueprint, so a
46 KB file that claims a 16,000-wide subnet allocates nothing), and every tensor must be a finite float.
A refusal names the file and the offending field.

A *router* (:class:`~lpnet.models.router.RainRouter`, the adaptive default ``lpnet:auto``) is a small JSON
file that names its expert checkpoints and how it measures the rain: a *gauge* file (``"gauge":
"lpnet:gauge", "presence": [low, high]``, thresholds between its rain experts) or a *probe* expert
(``"probe": "heavy", "thresholds": [...]``), e.g.
``{"format": "lpnet-router", "experts": {"light": "lpnet:light", ...}, "gauge": "lpnet:gauge", ...}``
(relative paths are read from the file's folder). A *gauge* file (:func:`save_gauge`,
``{"format": "lpnet-gauge", "gauge_config": ..., "state_dict": ...}``) passes the same gate as a network.
:func:`load_network` loads a network or a router; the functions that need one network
(:func:`load_model`, :func:`read_checkpoint`) refuse a router or a gauge by name.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from lpnet.config import GaugeConfig, LPNetConfig, from_dict, plain
from lpnet.files import write_bytes
from lpnet.models.complexity import architecture_cost
from lpnet.models.gauge import RainGauge
from lpnet.models.lpnet import LPNet
from lpnet.models.router import RainRouter

FORMAT = "lpnet"
VERSION = 1
ROUTER_FORMAT = "lpnet-router"
GAUGE_FORMAT = "lpnet-gauge"
ROUTER_SUFFIX = ".json"
LIGHTNING_PREFIX = "net."
# 1,000× the official model's parameters (7,548) and far beyond any published LPNet variant.
MAX_PARAMS = 10_000_000
# A checkpoint's unpacked contents: MAX_PARAMS float64 weights with Adam's two moments and a spare copy.
MAX_UNPACKED_BYTES = 4 * 8 * MAX_PARAMS
# What a laptop can give one megapixel of float32 inference.
MAX_BYTES_PER_MEGAPIXEL = 8 * 2**30


# ``lpnet:<name>`` names weights shipped inside the package (src/lpnet/weights/<name>.pt): lpnet's own,
# trained only on its synthetic rain (``make weights``). Everywhere a checkpoint path is taken, this works.
BUNDLED_PREFIX = "lpnet:"
WEIGHTS_FOLDER = Path(__file__).resolve().parent / "weights"


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read as an LPNet checkpoint."""


def bundled_weights() -> dict[str, Path]:
    """``{name: file}`` of the weights shipped in the package (networks and routers), as ``lpnet:<name>``."""
    files = [*WEIGHTS_FOLDER.glob("*.pt"), *WEIGHTS_FOLDER.glob(f"*{ROUTER_SUFFIX}")]
    return {p.stem: p for p in sorted(files)}


def checkpoint_file(path: str | os.PathLike) -> Path:
    """The file behind a checkpoint reference: a path, or ``lpnet:<name>`` for bundled weights.

    Raises:
        FileNotFoundError: ``lpnet:<name>`` names no bundled weights (the message lists those that exist).
    """
    text = os.fspath(path)
    if not text.startswith(BUNDLED_PREFIX):
        return Path(text)
    name, available = text[len(BUNDLED_PREFIX) :], bundled_weights()
    if name not in available:
        names = ", ".join(f"{BUNDLED_PREFIX}{n}" for n in available) or "none in this installation"
        raise FileNotFoundError(f"no bundled weights {text!r}; lpnet ships: {names}")
    return available[name]


def save_checkpoint(path: str | os.PathLike, net: LPNet, meta: dict[str, Any] | None = None) -> Path:
    """Write ``net`` as an lpnet checkpoint (atomically: a kill never leaves half a file)."""
    path = Path(path)
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "model_config": plain(net.config),
        "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
        "meta": dict(meta or {}),
    }
    return save_torch(payload, path)


def save_torch(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` atomically: serialised in memory first (lpnet's checkpoints are kilobytes), so a
    full disk fails as a plain write with its errno (:class:`lpnet.files.DiskFullError`)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return write_bytes(path, buffer.getbuffer())


def read_checkpoint(path: str | os.PathLike) -> tuple[LPNetConfig, dict[str, torch.Tensor], dict[str, Any]]:
    """Read ``(config, state_dict, meta)`` from an lpnet or LitLPNet checkpoint, executing nothing.

    ``path`` may be ``lpnet:<name>`` for the weights bundled with the package (:func:`bundled_weights`).
    The config comes back resolved (widths written out) and checked (see the module doc).

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: not a checkpoint, or one that fails the gate; the message names the file.
    """
    path = checkpoint_file(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.suffix == ROUTER_SUFFIX:
        experts = ", ".join(_router_spec(path)["experts"].values())
        raise CheckpointError(
            f"{path}: a router that picks one of several networks per image ({experts}), not one network: "
            "name one of them here, or derain with it (lpnet.Derainer, python -m lpnet.derain)"
        )
    ckpt = _load_dict(path)
    if ckpt.get("format") == GAUGE_FORMAT or _is_gauge_training(ckpt):
        raise CheckpointError(
            f"{path}: a rain gauge (it reads how much rain an image holds), not an LPNet: a router file "
            "names it as its 'gauge'"
        )
    if ckpt.get("format") == FORMAT:
        raw_config, state, meta = ckpt.get("model_config"), ckpt.get("state_dict"), ckpt.get("meta") or {}
        where = "model_config"
    elif "state_dict" in ckpt and isinstance(ckpt.get("hyper_parameters", {}).get("net"), dict):
        raw_config, where = ckpt["hyper_parameters"]["net"], "hyper_parameters.net"
        state = {
            k[len(LIGHTNING_PREFIX) :]: v
            for k, v in ckpt["state_dict"].items()
            if isinstance(k, str) and k.startswith(LIGHTNING_PREFIX)
        }
        meta = {"epoch": ckpt.get("epoch"), "global_step": ckpt.get("global_step"), "source": "lightning"}
    else:
        raise CheckpointError(
            f"{path}: neither an lpnet checkpoint (key 'format'='lpnet') nor a LitLPNet Lightning "
            f"checkpoint (keys 'state_dict' and 'hyper_parameters.net'); found keys "
            f"{sorted(map(str, ckpt))[:8]}"
        )
    config = _checked_config(path, raw_config, where)
    _check_state(path, state)
    return config, state, dict(meta) if isinstance(meta, dict) else {}


def _load_dict(path: Path) -> dict[str, Any]:
    """The dict a checkpoint file holds, read executing nothing (after :func:`_check_unpacked_size`).

    Raises:
        CheckpointError: damaged, not a PyTorch file, holding code, or not a dict.
    """
    _check_unpacked_size(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notes on pickle protocols: the error below says it
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for corrupt, truncated or code-carrying files
        # Not torch's advice to retry with weights_only=False: that would run whatever code the file holds.
        if "GLOBAL" in str(err):
            why = "it holds Python classes or functions, which lpnet never unpickles (that could run code)"
        else:
            why = f"damaged, truncated or not a PyTorch file ({_first_line(err).split('. In PyTorch')[0]})"
        raise CheckpointError(f"{path}: not an lpnet checkpoint: {why}") from None
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path}: expected a checkpoint dict, found {type(ckpt).__name__}")
    return ckpt


def _is_gauge_training(ckpt: dict[str, Any]) -> bool:
    """A LitGauge Lightning checkpoint: its ``hyper_parameters.net`` is a gauge's (it has ``strides``)."""
    net = (
        ckpt.get("hyper_parameters", {}).get("net")
        if isinstance(ckpt.get("hyper_parameters"), dict)
        else None
    )
    return isinstance(net, dict) and "strides" in net


def is_gauge(path: str | os.PathLike) -> bool:
    """Whether a checkpoint file holds a rain gauge (a gauge file or a LitGauge training checkpoint)."""
    ckpt = _load_dict(checkpoint_file(path))
    return ckpt.get("format") == GAUGE_FORMAT or _is_gauge_training(ckpt)


def save_gauge(path: str | os.PathLike, gauge: RainGauge, meta: dict[str, Any] | None = None) -> Path:
    """Write a rain gauge (atomically): ``{"format": "lpnet-gauge", "version": 1, "gauge_config",
    "state_dict", "meta"}``."""
    payload = {
        "format": GAUGE_FORMAT,
        "version": VERSION,
        "gauge_config": plain(gauge.config),
        "state_dict": {k: v.detach().cpu() for k, v in gauge.state_dict().items()},
        "meta": dict(meta or {}),
    }
    return save_torch(payload, Path(path))


def read_gauge(path: str | os.PathLike) -> tuple[GaugeConfig, dict[str, torch.Tensor], dict[str, Any]]:
    """``(config, state_dict, meta)`` of a gauge file or a LitGauge training checkpoint, executing nothing.

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: not a gauge, or one whose architecture is out of bounds or whose weights are not
            finite floats; the message names the file.
    """
    path = checkpoint_file(path)
    if not path.is_file():
        raise FileNotFoundError(f"gauge not found: {path}")
    ckpt = _load_dict(path)
    if ckpt.get("format") == GAUGE_FORMAT:
        raw, state, meta = ckpt.get("gauge_config"), ckpt.get("state_dict"), ckpt.get("meta") or {}
    elif _is_gauge_training(ckpt):
        raw = ckpt["hyper_parameters"]["net"]
        state = {
            k[len(LIGHTNING_PREFIX) :]: v
            for k, v in (ckpt.get("state_dict") or {}).items()
            if isinstance(k, str) and k.startswith(LIGHTNING_PREFIX)
        }
        meta = {"global_step": ckpt.get("global_step"), "source": "lightning"}
    else:
        raise CheckpointError(f"{path}: not a rain gauge (expected 'format': '{GAUGE_FORMAT}')")
    try:
        config = from_dict(GaugeConfig, raw, "gauge_config")
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: {err}") from None
    params = sum(w * c * 9 + w for c, w in zip([3, *config.widths], config.widths))
    if params > MAX_PARAMS:
        raise CheckpointError(
            f"{path}: a gauge of {params:,} parameters; lpnet refuses more than {MAX_PARAMS:,}"
        )
    _check_state(path, state)
    return config, state, dict(meta) if isinstance(meta, dict) else {}


def load_gauge(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> RainGauge:
    """The :class:`~lpnet.models.gauge.RainGauge` a gauge file holds, in eval mode.

    Raises:
        FileNotFoundError / CheckpointError: as :func:`read_gauge`, or weights that do not fit.
    """
    config, state, _ = read_gauge(path)
    gauge = RainGauge(config)
    try:
        gauge.load_state_dict(state)
    except RuntimeError as err:
        raise CheckpointError(
            f"{checkpoint_file(path)}: weights do not fit the gauge it describes ({_first_line(err)})"
        ) from None
    return gauge.to(map_location).eval()


def _check_unpacked_size(path: Path) -> None:
    """Refuse a checkpoint whose contents unpack to more than any allowed LPNet's checkpoint, before
    ``torch.load`` inflates a single byte: a zip entry can deflate gigabytes of zeros into kilobytes."""
    if not zipfile.is_zipfile(path):
        return  # torch.load's own error names it below
    try:
        with zipfile.ZipFile(path) as archive:
            unpacked = sum(entry.file_size for entry in archive.infolist())
    except (zipfile.BadZipFile, OSError) as err:
        raise CheckpointError(f"{path}: not an lpnet checkpoint: damaged zip ({_first_line(err)})") from None
    if unpacked > MAX_UNPACKED_BYTES:
        raise CheckpointError(
            f"{path}: unpacks to {unpacked / 2**20:,.0f} MiB, more than a checkpoint of any LPNet within "
            f"lpnet's limits ({MAX_UNPACKED_BYTES / 2**20:,.0f} MiB); not loaded"
        )


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _checked_config(path: Path, raw: Any, where: str) -> LPNetConfig:
    """The checkpoint's architecture, resolved, within bounds and affordable; else a CheckpointError."""
    if not isinstance(raw, dict):
        raise CheckpointError(f"{path}: {where} must be a dict of LPNet settings, found {type(raw).__name__}")
    try:
        config = from_dict(LPNetConfig, raw, where).resolved()
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: {err}") from None
    cost = architecture_cost(config)
    if cost.params > MAX_PARAMS or cost.bytes_per_megapixel > MAX_BYTES_PER_MEGAPIXEL:
        raise CheckpointError(
            f"{path}: {where} describes an LPNet of {cost.params:,} parameters needing about "
            f"{cost.bytes_per_megapixel / 2**30:.1f} GB per megapixel (widths {config.widths}, "
            f"{config.recursions} recursions); lpnet refuses more than {MAX_PARAMS:,} parameters or "
            f"{MAX_BYTES_PER_MEGAPIXEL / 2**30:.0f} GB per megapixel"
        )
    return config


def _check_state(path: Path, state: Any) -> None:
    """Every entry a finite floating-point tensor; else a CheckpointError naming it."""
    if not isinstance(state, dict) or not state:
        raise CheckpointError(f"{path}: no network weights (state_dict is missing or empty)")
    for name, tensor in state.items():
        if not isinstance(tensor, torch.Tensor) or not tensor.is_floating_point():
            kind = tensor.dtype if isinstance(tensor, torch.Tensor) else type(tensor).__name__
            raise CheckpointError(f"{path}: weight {name!r} is {kind}, not a floating-point tensor")
        if not torch.isfinite(tensor).all():
            raise CheckpointError(f"{path}: weight {name!r} holds NaN or infinite values")


def check_resumable(path: str | os.PathLike, net_config: LPNetConfig) -> None:
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
    check_same_architecture(f"ckpt_path={path}", config, net_config)


def check_same_architecture(what: str, found: LPNetConfig, expected: LPNetConfig) -> None:
    """Raise a CheckpointError naming ``what`` and the differing settings when the two networks differ."""
    found, expected = found.resolved(), expected.resolved()
    if found == expected:
        return
    differ = {
        f.name: (getattr(found, f.name), getattr(expected, f.name))
        for f in dataclasses.fields(LPNetConfig)
        if getattr(found, f.name) != getattr(expected, f.name)
    }
    details = ", ".join(f"{name} {a} (this run: {b})" for name, (a, b) in differ.items())
    raise CheckpointError(f"{what} holds another LPNet: {details}; set model.net to match")


def load_model(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> LPNet:
    """Build the LPNet a checkpoint describes and load its weights (strictly), in eval mode."""
    config, state, _ = read_checkpoint(path)
    net = LPNet(config)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = str(err).strip().splitlines()
        raise CheckpointError(
            f"{path}: weights do not fit the LPNet it describes (widths {config.widths}, "
            f"{config.recursions} recursions): {' '.join(line.strip() for line in first[:2])}"
        ) from None
    return net.to(map_location).eval()


def _router_spec(path: Path) -> dict[str, Any]:
    """The checked contents of a router file (see the module doc)."""
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path}: not a readable router file ({_first_line(err)})") from None
    if not isinstance(spec, dict) or spec.get("format") != ROUTER_FORMAT:
        raise CheckpointError(f"{path}: not an lpnet router (expected 'format': '{ROUTER_FORMAT}')")
    experts, probe, thresholds = spec.get("experts"), spec.get("probe"), spec.get("thresholds", [])
    if not isinstance(experts, dict) or not experts or not all(isinstance(v, str) for v in experts.values()):
        raise CheckpointError(f"{path}: 'experts' must map names to checkpoint paths")
    numbers = (int, float)
    for key, value in (("thresholds", thresholds), ("presence", spec.get("presence", []))):
        if not isinstance(value, list) or not all(
            isinstance(t, numbers) and not isinstance(t, bool) for t in value
        ):
            raise CheckpointError(f"{path}: '{key}' must be a list of numbers")
    if "gauge" in spec:
        if not isinstance(spec["gauge"], str):
            raise CheckpointError(f"{path}: 'gauge' must be the path of a gauge file")
    elif not isinstance(probe, str):
        raise CheckpointError(
            f"{path}: 'probe' must name one of the experts {list(experts)}, or 'gauge' a gauge"
        )
    return spec


def load_router(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> RainRouter:
    """Build the :class:`~lpnet.models.router.RainRouter` a router file describes, its experts loaded.

    Raises:
        FileNotFoundError: no such file, or an expert's checkpoint is missing.
        CheckpointError: a bad router file or expert checkpoint; the message names the file.
    """
    file = checkpoint_file(path)
    if not file.is_file():
        raise FileNotFoundError(f"checkpoint not found: {file}")
    spec = _router_spec(file)

    def resolve(ref: str) -> str:
        return ref if ref.startswith(BUNDLED_PREFIX) else os.fspath(file.parent / ref)

    experts = {name: load_model(resolve(ref), map_location) for name, ref in spec["experts"].items()}
    gauge = load_gauge(resolve(spec["gauge"]), map_location) if "gauge" in spec else None
    try:
        router = RainRouter(
            experts,
            spec.get("probe"),
            spec.get("thresholds", []),
            gauge=gauge,
            presence=spec.get("presence"),
            **spec.get("options", {}),
        )
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{file}: {err}") from None
    return router.to(map_location).eval()


def load_network(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> LPNet | RainRouter:
    """The LPNet a checkpoint holds, or the RainRouter a router file describes (both in eval mode)."""
    if checkpoint_file(path).suffix == ROUTER_SUFFIX:
        return load_router(path, map_location)
    return load_model(path, map_location)
