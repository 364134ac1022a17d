"""Hydra configuration: the config groups' YAML (overrides and wiring only) and the structured configs.

Every default lives in :mod:`lpnet.config`; :func:`register` stores those dataclasses in Hydra's
ConfigStore as ``lpnet/<name>``, and each YAML file starts from one of them (``defaults:
[/lpnet/optim@_here_]``). Importing this package registers them (Hydra imports it to read
``pkg://lpnet.conf``), so every composition of lpnet's configs finds them.
"""

from hydra.core.config_store import ConfigStore

from lpnet.config import STRUCTURED_CONFIGS


def register() -> None:
    """Store every structured config as ``lpnet/<name>`` in Hydra's ConfigStore (idempotent)."""
    store = ConfigStore.instance()
    for name, node in STRUCTURED_CONFIGS.items():
        store.store(group="lpnet", name=name, node=node)


register()
