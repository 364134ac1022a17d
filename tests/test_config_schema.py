"""Config mistakes stop at composition with Hydra's errors, naming the key (or listing the choices)."""

from __future__ import annotations

import dataclasses

import pytest
from conftest import compose_train
from hydra.errors import ConfigCompositionException, MissingConfigException
from omegaconf import OmegaConf

from lpnet.conf import schema

CONF = schema.__file__.rsplit("/", 1)[0]
YAML_OF = {
    "optim": "optim/adam.yaml",
    "loss": "loss/paper.yaml",
    "model": "model/lpnet.yaml",
    "data_benchmark": "data/benchmark.yaml",
    "data_synthetic": "data/synthetic.yaml",
}


@pytest.mark.parametrize("name", schema.SCHEMAS)
def test_each_schema_types_exactly_its_yaml(name):
    config = OmegaConf.load(f"{CONF}/{YAML_OF[name]}")
    assert config.pop("defaults") == [f"/schema/{name}@_here_", "_self_"]
    assert set(config) == {f.name for f in dataclasses.fields(schema.SCHEMAS[name])}


@pytest.mark.parametrize(
    "override, key, expected",
    [
        ("optim.lr=fast", "optim.lr", "Float"),
        ("data.batch_size=ten", "data.batch_size", "Integer"),
        ("model.net.recursions=many", "model.net.recursions", "Integer"),
        ("model.net.share_weights=maybe", "model.net.share_weights", "not a valid bool"),
        ("loss.level_weights=heavy", "loss.level_weights", "ListConfig"),
    ],
)
def test_wrong_type_names_the_key(tmp_path, override, key, expected):
    with pytest.raises(ConfigCompositionException) as info:
        compose_train(tmp_path, [override])
    message = f"{info.value} {info.value.__cause__}"
    assert key in message and expected in message


def test_wrong_type_in_synthetic_data(tmp_path):
    with pytest.raises(ConfigCompositionException, match="data.val_length"):
        compose_train(tmp_path, ["data=synthetic", "data.val_length=some"])


def test_typo_in_a_key_is_refused(tmp_path):
    with pytest.raises(ConfigCompositionException, match="optimizer"):
        compose_train(tmp_path, ["model.optimizer.lr=1"])


def test_unknown_option_lists_the_choices(tmp_path):
    with pytest.raises(MissingConfigException) as info:
        compose_train(tmp_path, ["optim=adamw"])
    assert info.value.options is not None and "adam" in info.value.options


def test_right_types_still_compose(tmp_path):
    cfg = compose_train(tmp_path, ["optim.lr=1", "model.net.widths=[2,4,8,16,32]", "data=synthetic"])
    assert cfg.optim.lr == 1.0 and isinstance(cfg.optim.lr, float)
    assert list(cfg.model.net.widths) == [2, 4, 8, 16, 32]
