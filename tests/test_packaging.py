"""A non-editable install ships every Hydra config inside the package (pkg://lpnet.conf)."""

from __future__ import annotations

import subprocess
import sys
import zipfile

import pytest
from conftest import PROJECT_ROOT

CONF = PROJECT_ROOT / "src" / "lpnet" / "conf"


def test_wheel_contains_every_config(tmp_path):
    pytest.importorskip("setuptools")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", str(PROJECT_ROOT),
         "-w", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    (wheel,) = tmp_path.glob("lpnet-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    configs = {f"lpnet/conf/{p.relative_to(CONF).as_posix()}" for p in CONF.rglob("*.yaml")}
    assert len(configs) > 30
    assert configs <= names, sorted(configs - names)
    assert "lpnet/conf/__init__.py" in names
