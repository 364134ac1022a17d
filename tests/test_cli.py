"""Every command has one shape (lpnet.cli): its own --help, one-line errors with exit 2, a summary."""

from __future__ import annotations

import errno
import importlib
import os
import shutil
import subprocess
import sys

import pytest
import tomllib
from conftest import PROJECT_ROOT, run_cli

from lpnet.cli import EXIT_ERROR, EXIT_PARTIAL, Outcome, describe_error, execute

SCRIPTS = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
# A setting only this tool has, to show --help lists the tool's own settings and no other tool's.
OWN_SETTING = {
    "lpnet-train": "optimized_metric:",
    "lpnet-eval": "save_outputs:",
    "lpnet-derain": "skip_existing:",
    "lpnet-demo": "demo:",
    "lpnet-synthesize": "count:",
    "lpnet-convert": "source:",
    "lpnet-export": "opset:",
    "lpnet-report": "input:",
    "lpnet-bench": "quick:",
    "lpnet-app": "max_upload_mb:",
    "lpnet-study": "runs_dir:",
}


def test_every_tool_is_a_console_script():
    assert set(SCRIPTS) == set(OWN_SETTING)
    for name, target in SCRIPTS.items():
        module, _, function = target.partition(":")
        assert function == "main" and module == f"lpnet.{name.removeprefix('lpnet-')}", name


def _main(script: str):
    module, _, function = SCRIPTS[script].partition(":")
    return getattr(importlib.import_module(module), function)


@pytest.mark.parametrize("script", sorted(OWN_SETTING))
def test_help_shows_the_tools_own_settings(script, capsys):
    assert run_cli(_main(script), "--help") == 0
    out = capsys.readouterr().out
    assert OWN_SETTING[script] in out and "Settings" in out
    others = {s for name, s in OWN_SETTING.items() if name != script and s not in ("demo:", "input:")}
    shown = {s for s in others if f"\n{s}" in out}
    if script != "lpnet-demo":  # the demo is a training run: it has the training settings
        assert not shown - {OWN_SETTING["lpnet-train"]} or script == "lpnet-train", shown


@pytest.mark.parametrize("script", sorted(OWN_SETTING))
def test_a_bad_setting_is_one_line_and_exit_2(script, capsys):
    assert run_cli(_main(script), "no_such_setting=1") == EXIT_ERROR
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "no_such_setting" in lines[0], captured.err
    assert "Traceback" not in captured.err + captured.out


@pytest.mark.parametrize(
    ("script", "settings", "expect"),
    [
        ("lpnet-derain", ["output=b"], "missing setting input"),
        ("lpnet-derain", ["ckpt_path=x.pt", "input=a", "output=b", "tile=big"], "tile"),
        ("lpnet-train", ["optim.lr=-1"], "optim.lr must be > 0"),
        ("lpnet-train", ["optim.scheduler=cosin"], "optim.scheduler"),
        ("lpnet-eval", ["ckpt_path=missing.pt", "data.root=."], "missing.pt"),
        ("lpnet-convert", ["source=nothing_here", "output=x.pt"], "nothing_here"),
        ("lpnet-train", ["loss=l3"], "l3"),
    ],
)
def test_user_mistakes_are_one_line(script, settings, expect, tmp_path):
    # In a process of its own: training's libraries log to the stderr they found at import time.
    module = SCRIPTS[script].partition(":")[0]
    done = subprocess.run(
        [sys.executable, "-m", module, *settings, f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    lines = done.stderr.strip().splitlines()
    assert done.returncode == EXIT_ERROR and lines[-1].startswith("error: ") and expect in lines[-1], lines
    assert "Traceback" not in done.stderr


def test_the_installed_console_scripts_run(tmp_path):
    script = shutil.which(
        "lpnet-convert", path=os.pathsep.join([os.path.dirname(sys.executable), os.environ["PATH"]])
    )
    assert script, "lpnet-convert is not installed next to this Python (pip install -e .)"
    done = subprocess.run(
        [script, "source=nothing", f"output={tmp_path / 'x.pt'}"], capture_output=True, text=True
    )
    assert (
        done.returncode == EXIT_ERROR and done.stderr.startswith("error: ") and done.stderr.count("\n") == 1
    )


# --------------------------------------------------------------------------------------------------
# The error policy


@pytest.mark.parametrize(
    ("error", "status", "text"),
    [
        (ValueError("data.crop_size must be an int >= 1, got 0"), EXIT_ERROR, "data.crop_size"),
        (FileNotFoundError("checkpoint not found: x.pt"), EXIT_ERROR, "x.pt"),
        (OSError(errno.ENOSPC, "No space left on device", "/runs/a/last.ckpt"), EXIT_ERROR, "no space left"),
        (MemoryError(), EXIT_ERROR, "out of memory"),
        (RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 9 GB"), 2, "memory"),
        (FloatingPointError("training loss became nan at step 3"), EXIT_PARTIAL, "step 3"),
    ],
)
def test_user_and_environment_errors_are_described(error, status, text):
    message, got = describe_error(error)
    assert got == status and text in message and "\n" not in message


def test_a_wrapped_error_is_found_behind_its_wrapper():
    try:
        try:
            raise ValueError("pair 'x': a.png is 10×10, smaller than crop_size 80")
        except ValueError as inner:
            raise RuntimeError(
                "Error in call to target 'lpnet.data.datamodule.synthetic_datamodule'"
            ) from inner
    except RuntimeError as outer:
        assert describe_error(outer)[0].startswith("pair 'x'")


def test_a_bug_keeps_its_traceback():
    assert describe_error(KeyError("state_dict")) is None
    assert describe_error(AttributeError("x")) is None

    def buggy(cfg):
        raise KeyError("oops")

    with pytest.raises(KeyError):
        execute(buggy, None)


def test_lpnet_debug_shows_every_traceback(monkeypatch):
    def refused(cfg):
        raise ValueError("bad setting")

    assert execute(refused, None)[0] == EXIT_ERROR
    monkeypatch.setenv("LPNET_DEBUG", "1")
    with pytest.raises(ValueError, match="bad setting"):
        execute(refused, None)


def test_summary_and_partial_failure(capsys):
    status, value = execute(
        lambda cfg: Outcome("did 2 of 3", [("output", "out/")], ["c.png: unreadable"], 7), None
    )
    out = capsys.readouterr().out
    assert status == EXIT_PARTIAL and value == 7
    assert "── did 2 of 3" in out and "output  out/" in out and "c.png: unreadable" in out


# ---- a command line of plain words, read without Hydra (lpnet.derain) ---------------------------------

from hypothesis import example, given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from lpnet.cli import plain_settings  # noqa: E402
from lpnet.config import DerainCommandConfig  # noqa: E402

DERAIN_FIELDS = [f.name for f in __import__("dataclasses").fields(DerainCommandConfig)]
WORDS = st.one_of(
    st.sampled_from(["true", "false", "True", "null", "Null", "NULL", "0", "7", "-3", "+4", "007", "1_000",
                     "1e3", "1.50", ".5", "inf", "nan", "-inf", "", "a b", "x,y", "'q'", "[1]", "${x}",
                     "lpnet:light", "0/4", "a/b.png", "-dash", "~t", "%20@x", "x=y"]),
    st.text(alphabet="abcXYZ019_-+./:%@eE", min_size=1, max_size=8),
)  # fmt: skip


def hydra_derain(argv: list[str]) -> dict | Exception:
    """What Hydra composes for ``lpnet.derain``'s command line (without Hydra's own node), or its error."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module="lpnet.conf", version_base="1.3"):
            return OmegaConf.to_container(compose("derain", overrides=argv), throw_on_missing=True)
    except Exception as err:
        return err


@given(
    WORDS,
    WORDS,
    st.lists(
        st.tuples(st.sampled_from([*DERAIN_FIELDS, "nosuch", "hydra.verbose", "+tile"]), WORDS), max_size=5
    ),
)
@example("a.png", "out", [])
@example("a.png", "out", [("tile", "512"), ("overlap", "null"), ("overwrite", "true"), ("shard", "0/4")])
def test_plain_words_read_without_hydra_are_what_hydra_composes(source, target, words):
    argv = [f"input={source}", f"output={target}", *(f"{key}={value}" for key, value in words)]
    plain = plain_settings(DerainCommandConfig, argv)
    if plain is None:
        return  # Hydra composes it
    composed = hydra_derain(argv)
    assert not isinstance(composed, Exception), (argv, composed)
    assert __import__("dataclasses").asdict(plain) == composed, argv


def test_derain_settings_are_its_structured_config_alone():
    """What makes plain_settings exact for lpnet.derain: conf/derain.yaml adds nothing to the dataclass."""
    composed = hydra_derain(["input=a", "output=b"])
    assert composed == __import__("dataclasses").asdict(DerainCommandConfig(input="a", output="b"))
