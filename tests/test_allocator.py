"""Allocator tuning: applied once, on glibc only, and switched off by LPNET_TUNE_ALLOCATOR=0."""

from __future__ import annotations

import ctypes.util
import os
import subprocess
import sys

import pytest
from conftest import PROJECT_ROOT

GLIBC = sys.platform.startswith("linux") and "libc.so" in (ctypes.util.find_library("c") or "")
SCRIPT = "from lpnet.allocator import tune_cpu_allocator as t; print(t(), t())"


def _run(env_value: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "LPNET_TUNE_ALLOCATOR"}
    if env_value is not None:
        env["LPNET_TUNE_ALLOCATOR"] = env_value
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_tunes_once_on_glibc():
    assert _run(None) == "True True"


def test_switched_off_by_environment():
    assert _run("0") == "False False"
