"""One source for every setting: lpnet.config's dataclasses, Hydra's structured configs, thin YAML.

The scans below fail when a default of lpnet.config is written again as a literal in a Python signature
or a YAML file; each scan is first shown a planted restatement, so it is known to catch one.
"""

from __future__ import annotations

import ast
import dataclasses
import subprocess
import sys
from enum import Enum
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from conftest import PROJECT_ROOT
from hydra import compose, initialize_config_module

import lpnet
from lpnet import config as C
from lpnet.checkpoint import load_model, read_checkpoint
from lpnet.models.lpnet import LPNet
from lpnet.training import LitLPNet

SRC = PROJECT_ROOT / "src" / "lpnet"
CONF = SRC / "conf"
FIXTURES = Path(__file__).parent / "fixtures"
CONFIG_CLASSES = [
    obj
    for obj in vars(C).values()
    if isinstance(obj, type) and dataclasses.is_dataclass(obj) and obj.__module__ == C.__name__
]


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


def field_defaults(config_type: type) -> dict[str, Any]:
    """``{field: default}`` of a config class (enums as their values; nested configs left out)."""
    out = {}
    for f in dataclasses.fields(config_type):
        value = _default(f)
        if value is dataclasses.MISSING or dataclasses.is_dataclass(value) or f.name.startswith("_"):
            continue
        out[f.name] = _plain(value)
    return out


# --------------------------------------------------------------------------------------------------
# Python signatures


def _literal(node: ast.expr) -> Any:
    try:
        return ast.literal_eval(node)
    except ValueError:
        return dataclasses.MISSING


def restated_in_signatures(source: str, filename: str) -> list[str]:
    """Parameters whose literal default equals the default of a config field of the same name."""
    defaults: dict[str, set] = {}
    for config_type in CONFIG_CLASSES:
        for name, value in field_defaults(config_type).items():
            if value is not None and not isinstance(value, bool):  # None/True/False say nothing alone
                defaults.setdefault(name, set()).add(repr(value))
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        args = node.args
        positional = args.posonlyargs + args.args
        pairs = list(zip(positional[len(positional) - len(args.defaults) :], args.defaults))
        pairs += [(a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None]
        for arg, default in pairs:
            value = _literal(default)
            if value is not dataclasses.MISSING and repr(value) in defaults.get(arg.arg, ()):
                found.append(f"{filename}:{default.lineno} {node.name}({arg.arg}={value!r})")
    return found


def test_the_signature_scan_finds_a_planted_restatement():
    planted = "def derain(x, tile=1024, overlap=None):\n    pass\n"
    assert restated_in_signatures(planted, "planted.py") == ["planted.py:1 derain(tile=1024)"]
    assert restated_in_signatures("def f(tile=DerainConfig.tile):\n    pass\n", "ok.py") == []


def test_no_signature_restates_a_default():
    found = []
    for path in sorted(SRC.rglob("*.py")):
        if path.name != "config.py":
            found += restated_in_signatures(path.read_text(), str(path.relative_to(SRC)))
    assert found == [], "refer to the lpnet.config default instead:\n" + "\n".join(found)


# --------------------------------------------------------------------------------------------------
# YAML files

# Where each YAML key lands: the config classes of the top-level keys of a training config.
ROOTS: dict[str, tuple[type, ...]] = {
    "model": (C.ModelConfig,),
    "loss": (C.LossConfig,),
    "optim": (C.OptimConfig,),
    "data": (C.SyntheticDataConfig, C.BenchmarkDataConfig),
    "demo": (C.DemoConfig,),
}


def default_at(classes: tuple[type, ...], keys: list[str]) -> Any:
    """The default every class in ``classes`` gives the dotted path ``keys`` (MISSING when they differ)."""
    found = set()
    for config_type in classes:
        node: Any = config_type
        for key in keys:
            fields = {f.name: f for f in dataclasses.fields(node)} if dataclasses.is_dataclass(node) else {}
            if key not in fields:
                node = dataclasses.MISSING
                break
            node = _default(fields[key])
        if node is dataclasses.MISSING or dataclasses.is_dataclass(node):
            return dataclasses.MISSING
        found.add(repr(_plain(node)))
    return found.pop() if len(found) == 1 else dataclasses.MISSING


def _leaves(node: Any, path: tuple[str, ...] = ()):
    if isinstance(node, dict):
        for key, value in node.items():
            if key != "defaults":
                yield from _leaves(value, (*path, str(key)))
    else:
        yield path, node


def restated_in_yaml(text: str, relative: str) -> list[str]:
    """YAML leaves that set a config field to its lpnet.config default."""
    parts = Path(relative).parts
    is_global = "@package _global_" in text.split("\n", 1)[0]
    stem = Path(relative).stem
    found = []
    for path, value in _leaves(yaml.safe_load(text) or {}):
        if len(parts) == 2 and not is_global and parts[0] in ROOTS:  # a group option
            classes, keys = ROOTS[parts[0]], list(path)
        elif len(parts) <= 2 and path and path[0] in ROOTS:  # training overrides (experiments, demo)
            classes, keys = ROOTS[path[0]], list(path[1:])
        elif len(parts) == 1 and stem in C.STRUCTURED_CONFIGS:  # a tool's primary config
            classes, keys = (C.STRUCTURED_CONFIGS[stem],), list(path)
        else:
            continue
        default = default_at(classes, keys)
        if default is not dataclasses.MISSING and default == repr(value):
            found.append(f"{relative}: {'.'.join(path)}: {value!r}")
    return found


def test_the_yaml_scan_finds_a_planted_restatement():
    assert restated_in_yaml("lr: 0.001\nscheduler: cosine\n", "optim/adam.yaml") == [
        "optim/adam.yaml: lr: 0.001"
    ]
    planted = "# @package _global_\nmodel:\n  net:\n    recursions: 5\ndata:\n  batch_size: 10\n"
    assert restated_in_yaml(planted, "experiment/x.yaml") == [
        "experiment/x.yaml: model.net.recursions: 5",
        "experiment/x.yaml: data.batch_size: 10",
    ]
    assert restated_in_yaml("tile: 1024\n", "derain.yaml") == ["derain.yaml: tile: 1024"]
    assert restated_in_yaml("demo:\n  images: 4\ndata:\n  num_workers: 1\n", "demo.yaml") == [
        "demo.yaml: demo.images: 4"
    ]


def test_no_yaml_restates_a_default():
    found = []
    for path in sorted(CONF.rglob("*.yaml")):
        found += restated_in_yaml(path.read_text(), str(path.relative_to(CONF)))
    assert found == [], "keep only overrides in YAML; the default lives in lpnet.config:\n" + "\n".join(found)


# --------------------------------------------------------------------------------------------------
# Composition and typing


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("optim.lr=fast", "optim.lr"),
        ("optim.scheduler=cosin", "optim.scheduler"),
        ("model.nan_policy=skp", "model.nan_policy"),
        ("loss.pixel=l3", "loss.pixel"),
        ("data.batch_size=ten", "data.batch_size"),
        ("model.net.recursions=1.5", "model.net.recursions"),
    ],
)
def test_a_wrong_type_or_choice_stops_at_composition_naming_the_key(override, key):
    from hydra.errors import ConfigCompositionException

    with (
        initialize_config_module(config_module="lpnet.conf", version_base="1.3"),
        pytest.raises(ConfigCompositionException, match=key.replace(".", r"\.")),
    ):
        compose("train", overrides=[override])


def test_composed_defaults_are_the_dataclasses():
    with initialize_config_module(config_module="lpnet.conf", version_base="1.3"):
        cfg = compose("train")
    assert cfg.model.net.recursions == C.LPNetConfig.recursions
    assert cfg.optim.lr == C.OptimConfig.lr and cfg.loss.ssim_levels == C.LossConfig.ssim_levels
    assert cfg.data.crop_size == C.LoaderConfig.crop_size


def test_config_objects_build_what_they_describe():
    net = LPNet(C.LPNetConfig(recursions=3, width_multiplier=0.5))
    assert net.config.widths == [1, 1, 2, 4, 8] and net.config.recursions == 3
    assert LPNet(recursions=3, width_multiplier=0.5).config == net.config
    with pytest.raises(ValueError, match="model.net: unknown setting"):
        LPNet(recursion=3)
    with pytest.raises(ValueError, match="optim.scheduler must be one of"):
        C.OptimConfig(scheduler="cosin")
    with pytest.raises(ValueError, match="optim.lr must be > 0"):
        C.OptimConfig(lr=-1)


# --------------------------------------------------------------------------------------------------
# The public API and old checkpoints


def test_import_lpnet_is_light():
    heavy = "{'hydra', 'lightning', 'omegaconf'}"
    code = f"import lpnet, sys; print(sorted({{m.split('.')[0] for m in sys.modules}} & {heavy}))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
    assert {"LPNet", "LPNetConfig", "Derainer", "load_model"} <= set(lpnet.__all__)


def test_a_checkpoint_written_before_the_refactor_loads():
    raw = torch.load(FIXTURES / "lpnet_v1.pt", weights_only=True)
    net = load_model(FIXTURES / "lpnet_v1.pt")
    assert net.config == LPNet(num_levels=4, width_multiplier=0.5, recursions=2, share_weights=False).config
    for name, tensor in net.state_dict().items():
        assert torch.equal(tensor, raw["state_dict"][name]), name
    assert read_checkpoint(FIXTURES / "lpnet_v1.pt")[2]["source"].startswith("fixture written by lpnet 0.1.0")


def test_a_training_checkpoint_written_before_the_refactor_loads_and_starts_a_run():
    raw = torch.load(FIXTURES / "lightning_v1.ckpt", weights_only=True)
    net = load_model(FIXTURES / "lightning_v1.ckpt")
    assert net.widths == [1, 1, 2, 4, 8] and net.config.recursions == 2
    for name, tensor in net.state_dict().items():
        assert torch.equal(tensor, raw["state_dict"][f"net.{name}"]), name
    model = LitLPNet(net=raw["hyper_parameters"]["net"], init_from=str(FIXTURES / "lightning_v1.ckpt"))
    assert torch.equal(model.net.subnets[4].tail.weight, net.subnets[4].tail.weight)
    # Its hyper-parameters rebuild the same module (Lightning's load_from_checkpoint path).
    rebuilt = LitLPNet(**{k: v for k, v in raw["hyper_parameters"].items() if k != "init_from"})
    assert rebuilt.net.config == net.config
