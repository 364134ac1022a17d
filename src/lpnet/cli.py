"""The one shape of every lpnet command: Hydra settings in, one-line errors and a summary out.

Every tool (``lpnet-train``, ``-eval``, ``-derain``, ``-demo``, ``-synthesize``, ``-convert``, ``-export``,
``-report``, ``-bench``; or ``python -m lpnet.<tool>``) is a plain function ``run(cfg) -> Outcome`` wrapped
by :func:`command`, which gives all of them the same behaviour:

- **Settings** are Hydra overrides (``key=value``, ``group=option``), composed from ``lpnet/conf`` over the
  typed defaults of :mod:`lpnet.config`. Hydra is the one parser for all tools (rather than argparse for
  some) because training needs it (config groups, experiments, sweeps) and one syntax for every tool is
  easier to learn than two; ``--cfg job`` prints a tool's composed settings, ``-m`` sweeps. A tool that
  writes where it is told (derain, synthesize, convert, export, report, bench, study, app) is composed once
  with Hydra's compose API and run directly (:func:`compose_once`): the same files, grammar and errors,
  without ``hydra.main``'s second composition (~0.2 s of a one-photo run); the rest go through ``hydra.main``.
- ``--help`` prints the tool's purpose, usage and its own settings with their defaults, nothing else.
- **Errors**: a mistake the user can fix (a bad setting, a missing or unreadable file, a refused
  folder) or a fault of the environment (disk full, permission, out of memory) ends in *one* line,
  ``error: ...``, naming the setting or file and what to do, with exit status 2. A run that did part of its
  work and failed on some files exits with 1 after listing them. Anything else is a bug in lpnet and keeps
  its traceback. ``LPNET_DEBUG=1`` shows the traceback of every error.
- **Summary**: at the end, one block says what the run did and where its results are. Commands that make a
  run directory (train, demo, eval) also print their resolved settings as a tree when they start. Both go
  to the run's log file (``<task_name>.log``) too.

Exit status: 0 done, 1 partly done (some inputs failed, or training stopped on a NaN loss), 2 nothing
done (a user error or an environment fault), 130/143 interrupted (Ctrl-C / SIGTERM).
"""

from __future__ import annotations

import atexit
import dataclasses
import errno
import gc
import importlib
import io
import logging
import os
import re
import sys
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from lpnet.config import MISSING, STRUCTURED_CONFIGS

EXIT_OK, EXIT_PARTIAL, EXIT_ERROR = 0, 1, 2
# Ctrl-C, as a shell reports a process ended by SIGINT (128 + 2).
EXIT_INTERRUPTED = 130
CONFIG_PACKAGE = "lpnet.conf"
# The order of a training config's sections in the printed tree; other keys follow in their own order.
CONFIG_TREE_ORDER = (
    "data",
    "degradation",
    "model",
    "loss",
    "optim",
    "trainer",
    "callbacks",
    "logger",
    "paths",
)


@dataclass
class Outcome:
    """What a command did, for its end-of-run summary and exit status.

    Attributes:
        title: the summary's heading, e.g. ``"derained 12 images"``.
        facts: ``(label, value)`` lines: where the results are, scores, how to resume.
        failed: one line per input that failed (each names the file); any makes the exit status 1, or 2
            when nothing else was done.
        value: what the command returns to Hydra's sweepers (train: the optimised metric).
        nothing_done: no input was handled (every one failed): exit status 2, as for a refused run.
    """

    title: str
    facts: list[tuple[str, Any]] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    value: Any = None
    nothing_done: bool = False

    def render(self) -> str:
        width = max((len(label) for label, _ in self.facts), default=0)
        lines = [f"── {self.title} " + "─" * max(3, 76 - len(self.title))]
        lines += [f"  {label:<{width}}  {value}" for label, value in self.facts]
        if self.failed:
            lines.append(f"  {len(self.failed)} failed:")
            lines += [f"    {line}" for line in self.failed]
        return "\n".join(lines)


def debug() -> bool:
    """Whether ``LPNET_DEBUG=1``: every error shows its traceback."""
    return os.environ.get("LPNET_DEBUG", "") not in ("", "0")


# --------------------------------------------------------------------------------------------------
# Errors


def _chain(err: BaseException) -> list[BaseException]:
    """``err`` and its causes (Hydra and DataLoader workers wrap the original error)."""
    chain: list[BaseException] = []
    while err is not None and err not in chain:
        chain.append(err)
        err = err.__cause__ or (err.__context__ if not err.__suppress_context__ else None)
    return chain


def _first_line(text: str) -> str:
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    return lines[0] if lines else ""


def _worker_message(err: BaseException) -> str:
    """A DataLoader worker's re-raised error carries the worker's traceback before the message."""
    text = str(err).strip()
    if "Original Traceback" not in text:
        return text
    last = text.splitlines()[-1]
    return last.split(": ", 1)[1] if ": " in last and last.split(": ", 1)[0].endswith("Error") else last


def _config_problem(chain: list[BaseException]) -> str | None:
    """One line for a composition error: a bad override, an unknown key, a missing setting, a bad type."""
    from hydra.errors import (
        ConfigCompositionException,
        MissingConfigException,
        OverrideParseException,
        SearchPathException,
    )
    from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

    for err in chain:
        if isinstance(err, MissingMandatoryValue):
            key = getattr(err, "full_key", None) or _first_line(err)
            return f"missing setting {key}=... (it has no default)"
    composition = (
        ConfigCompositionException,
        OverrideParseException,
        MissingConfigException,
        SearchPathException,
    )
    hydra_err = next((e for e in chain if isinstance(e, composition)), None)
    omega_err = next((e for e in chain if isinstance(e, OmegaConfBaseException)), None)
    if isinstance(hydra_err, OverrideParseException):
        return f"cannot read the setting {_first_line(hydra_err)}; write settings as key=value"
    if isinstance(hydra_err, MissingConfigException):
        return _first_line(hydra_err).rstrip(".") + " (see --help for the choices)"
    if hydra_err is None and (omega_err is None or not getattr(omega_err, "full_key", "")):
        return None
    parts = []
    if hydra_err is not None:
        parts.append(_first_line(hydra_err).rstrip("."))
    if omega_err is not None:
        detail = _first_line(omega_err)
        key = getattr(omega_err, "full_key", "")
        if key and key not in detail:
            detail += f" (setting {key})"
        parts.append(detail)
    return ": ".join(dict.fromkeys(p for p in parts if p))


def describe_error(err: BaseException) -> tuple[str, int] | None:
    """``(message, exit status)`` for an error the user can act on; None for a bug (keep the traceback)."""
    chain = _chain(err)
    config = _config_problem(chain)
    if config is not None:
        return config, EXIT_ERROR
    for cause in chain:
        if isinstance(cause, FloatingPointError):  # a NaN loss: checkpoints written before it are kept
            return _first_line(cause), EXIT_PARTIAL
        if isinstance(cause, MemoryError) or (
            isinstance(cause, RuntimeError)
            and "memory" in str(cause).lower()
            and "alloc" in str(cause).lower()
        ):
            return (
                "out of memory: "
                + (_first_line(cause) or "the allocation failed")
                + " (use smaller tiles, a smaller batch, or fewer workers)",
                EXIT_ERROR,
            )
        if isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EDQUOT):
            if str(cause).startswith("no space left"):  # lpnet.files.DiskFullError names folder and file
                return f"{cause} (free space and run again)", EXIT_ERROR
            where = cause.filename or os.getcwd()
            return f"no space left on the device of {where} (free space and run again)", EXIT_ERROR
        if isinstance(cause, OSError | ValueError):
            return _first_line(_worker_message(cause)), EXIT_ERROR
    return None


# --------------------------------------------------------------------------------------------------
# Help


def attribute_docs(config_type: type) -> dict[str, str]:
    """``{field: description}`` from the ``Attributes:`` sections of a config dataclass and its bases."""
    docs: dict[str, str] = {}
    for klass in reversed(config_type.__mro__):
        text = klass.__doc__ or ""
        if "Attributes:" not in text:
            continue
        name = None
        for line in text.split("Attributes:", 1)[1].splitlines():
            stripped = line.strip()
            if not stripped:
                continue
            head, _, rest = stripped.partition(": ")
            if line.startswith(" " * 8) and not line.startswith(" " * 12) and rest:
                for key in head.split(", "):
                    docs[key] = rest
                name = head.split(", ")[-1]
            elif name is not None:
                docs[name] += " " + stripped
    return docs


def _help(config_name: str, module: str) -> str:
    """The tool's purpose and usage (its docstring's first paragraph) and its settings with defaults."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    purpose = (importlib.import_module(module).__doc__ or "").strip().split("\n\n")[0]
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module=CONFIG_PACKAGE, version_base="1.3"):
        cfg = compose(config_name)
    docs = attribute_docs(STRUCTURED_CONFIGS[config_name]) if config_name in STRUCTURED_CONFIGS else {}
    lines = []
    for line in OmegaConf.to_yaml(cfg).rstrip().splitlines():
        key = line.split(":", 1)[0]
        lines.append(
            f"{line}    # {docs[key].replace('``', '')}" if not line.startswith(" ") and key in docs else line
        )
    return (
        f"{purpose}\n\nSettings (key=value on the command line; ??? = required), with their defaults:\n\n"
        + "\n".join(lines)
        + f"\n\nMore in the docs of {module}. LPNET_DEBUG=1 shows tracebacks; --cfg job prints the "
        "composed settings of a run."
    )


# --------------------------------------------------------------------------------------------------
# What a run prints


def to_log_file(text: str) -> None:
    """Write ``text`` into the run's log file (the file handlers on the root logger: Hydra's
    ``<task_name>.log``) without printing it a second time; nothing when there is none."""
    record = logging.LogRecord("lpnet", logging.INFO, __file__, 0, text, None, None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def route_logs_to_file() -> None:
    """Let Lightning's log records (and Python warnings) reach the run's log file, ``<task_name>.log``.

    Lightning gives its loggers a console handler of their own and stops them propagating to the root
    logger when it is imported before logging is configured, which is always the case under Hydra (a
    command imports Lightning, then Hydra configures logging): the model summary, checkpoint messages
    and warnings went to the console only. Once Hydra's file handler is on the root logger, this sends
    them there, and through the root's console handler (so they are still printed, once).
    """
    if not any(isinstance(handler, logging.FileHandler) for handler in logging.getLogger().handlers):
        return  # no log file (the tools that write where they are told): nothing to route
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        lightning_logger = logging.getLogger(name)
        for handler in list(lightning_logger.handlers):
            if type(handler) is logging.StreamHandler:
                lightning_logger.removeHandler(handler)
        lightning_logger.propagate = True
    logging.captureWarnings(True)


def config_tree(cfg: Any) -> Any:
    """The resolved settings as a ``rich`` tree: plain top-level values first, then one branch per section
    (as YAML), in :data:`CONFIG_TREE_ORDER` and then the others."""
    from omegaconf import DictConfig, OmegaConf
    from rich.syntax import Syntax
    from rich.tree import Tree

    tree = Tree("settings (resolved)", guide_style="dim")
    keys = [k for k in CONFIG_TREE_ORDER if k in cfg] + [k for k in cfg if k not in CONFIG_TREE_ORDER]
    for key in keys:
        if not isinstance(cfg[key], DictConfig):
            tree.add(OmegaConf.to_yaml(OmegaConf.create({key: cfg[key]}), resolve=True).strip())
    for key in keys:
        if isinstance(cfg[key], DictConfig):
            text = OmegaConf.to_yaml(cfg[key], resolve=True).rstrip() or "{}"
            tree.add(key).add(Syntax(text, "yaml", background_color="default"))
    return tree


def print_config(cfg: Any) -> None:
    """Print :func:`config_tree` (in colour on a terminal) and write it, plain, to the run's log file."""
    from rich.console import Console

    tree = config_tree(cfg)
    Console().print(tree)
    buffer = io.StringIO()
    Console(file=buffer, color_system=None, width=110).print(tree)
    to_log_file("resolved settings:\n" + buffer.getvalue())


# --------------------------------------------------------------------------------------------------
# The command


def _report(err: BaseException) -> int | None:
    """Print the one ``error:`` line of a user or environment error and return its exit status; None
    for a bug (or with ``LPNET_DEBUG=1``): the caller re-raises it with its traceback."""
    described = None if debug() else describe_error(err)
    if described is None:
        return None
    message, status = described
    print(f"error: {message}", file=sys.stderr, flush=True)
    to_log_file(f"error: {message}")
    return status


def execute(run: Callable[[Any], Outcome], cfg: Any, *, reraise: bool = False) -> tuple[int, Any]:
    """Run a command function under the error policy; returns ``(exit status, outcome value)``.

    Prints the summary on success, one ``error:`` line for a user or environment error (re-raised
    instead when ``reraise``: a sweep records a failed job and runs the others), and lets bugs raise.
    """
    try:
        outcome = run(cfg)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as err:
        status = None if reraise else _report(err)
        if status is None:
            raise
        return status, None
    print(outcome.render(), flush=True)
    to_log_file(outcome.render())
    if not outcome.failed:
        return EXIT_OK, outcome.value
    return (EXIT_ERROR if outcome.nothing_done else EXIT_PARTIAL), outcome.value


# Command-line flags only Hydra's own run understands: sweeps, printing the composed settings, its help,
# shell completion. A command line with any of them (or a hydra.* setting) goes through hydra.main.
HYDRA_RUN_FLAGS = frozenset(
    ("-m", "--multirun", "--cfg", "-c", "--resolve", "--package", "-p", "--info", "-i", "--run", "-r",
     "--hydra-help", "--version", "--shell-completion", "-sc", "--config-path", "-cp", "--config-name", "-cn",
     "--config-dir", "-cd", "--experimental-rerun")
)  # fmt: skip


def compose_once(config_name: str, argv: Sequence[str]) -> Any | None:
    """The settings of a tool that writes where it is told (its config picks ``hydra: tool``: no run
    directory, no log file), composed once with Hydra's compose API from the same config files and
    overrides as ``hydra.main`` (which composes twice: once to learn the mode, once to run). None when the
    command line needs Hydra's own run (:data:`HYDRA_RUN_FLAGS`, ``hydra.*`` settings, ``-m``) or the tool
    makes a run directory (train, eval, demo): then ``hydra.main`` runs it.
    """
    if any(arg.split("=", 1)[0] in HYDRA_RUN_FLAGS or arg.lstrip("+~").startswith("hydra") for arg in argv):
        return None
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import open_dict

    GlobalHydra.instance().clear()
    with initialize_config_module(config_module=CONFIG_PACKAGE, version_base="1.3"):
        cfg = compose(config_name, overrides=list(argv), return_hydra_config=True)
    GlobalHydra.instance().clear()
    if cfg.hydra.output_subdir is not None or cfg.hydra.run.dir != ".":  # not conf/hydra/tool.yaml
        return None
    with open_dict(cfg):
        del cfg.hydra
    return cfg


# Words Hydra's override grammar reads one way only, for the plain fields of plain_settings: a string is an
# unquoted word that is not a number, a bool, null, inf or nan in any spelling; an int is Hydra's INT.
_PLAIN_STRING = re.compile(r"[A-Za-z0-9_\-+./:%@]+")
_NOT_A_STRING = re.compile(r"[+-]?([0-9._]+([eE][+-]?[0-9_]+)?|inf|nan)|true|false|null", re.IGNORECASE)
_HYDRA_INT = re.compile(r"[+-]?(0|[1-9][0-9]*)")
_UNSURE = object()


def _plain_value(text: str, hint: Any) -> Any:
    """``text`` as a value of a field typed ``hint`` (str, int or bool, or one of them or None), exactly as
    Hydra and OmegaConf would read it; :data:`_UNSURE` for anything else."""
    kinds = set(typing.get_args(hint)) or {hint}
    base = (kinds - {type(None)}).pop() if len(kinds - {type(None)}) == 1 else None
    if text == "null":
        return None if type(None) in kinds else _UNSURE
    if base is bool:
        return {"true": True, "false": False}.get(text, _UNSURE)
    if base is int:
        return int(text) if _HYDRA_INT.fullmatch(text) else _UNSURE
    if base is str and _PLAIN_STRING.fullmatch(text) and not _NOT_A_STRING.fullmatch(text):
        return text
    return _UNSURE


def plain_settings(config_type: type, argv: Sequence[str]) -> Any | None:
    """A command line of plain words read without Hydra: ``config_type`` with each ``field=value`` set.

    For a tool whose settings are its structured config alone (``command(..., plain=True)``): when every
    word sets a str, int or bool field of ``config_type`` (or one of them or None) to a value Hydra's grammar
    reads one way only (:func:`_plain_value`) and no setting is left missing, the result is what Hydra
    would compose, without importing Hydra or OmegaConf (~0.3 s of a one-photo run). Anything else (another
    key, a quoted or bracketed value, a flag, a missing setting, a bad value) gives None: Hydra composes it,
    with its grammar and its errors. ``tests/test_cli.py`` checks the two agree.
    """
    hints = typing.get_type_hints(config_type)
    values: dict[str, Any] = {}
    for arg in argv:
        key, sep, text = arg.partition("=")
        if not sep or key not in hints or key in values or key.startswith("_"):
            return None
        value = _plain_value(text, hints[key])
        if value is _UNSURE:
            return None
        values[key] = value
    cfg = config_type(**values)
    return None if any(getattr(cfg, f.name) == MISSING for f in dataclasses.fields(cfg)) else cfg


def _sweeping() -> bool:
    """Whether this process runs a job of a Hydra sweep (without importing Hydra when it has not been)."""
    if "hydra.core.hydra_config" not in sys.modules:
        return False
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def command(
    config_name: str, run: Callable[[Any], Outcome], show_config: bool = False, plain: bool = False
) -> Callable[[], None]:
    """A console-script ``main`` for ``run``: composes ``lpnet/conf/<config_name>.yaml``, runs, reports.

    Args:
        config_name: the tool's primary config.
        run: ``run(cfg) -> Outcome`` (a plain function: tests and other code call it directly).
        show_config: print the resolved settings (:func:`print_config`) before running.
        plain: the tool's settings are its structured config alone (``conf/<config_name>.yaml`` adds
            nothing), so a command line of plain words is read without Hydra (:func:`plain_settings`).

    Returns:
        ``main()``: reads ``sys.argv``; exits with the status of the module docstring.
    """

    def task(cfg: Any) -> Any:
        sweeping = _sweeping()
        route_logs_to_file()
        if show_config:
            print_config(cfg)
        status, value = execute(run, cfg, reraise=sweeping)
        if status:
            sys.exit(status)
        return value

    def main() -> None:
        # The interpreter's last garbage collection walks every object torch's import made: ~0.15 s of a
        # one-photo run (1.15 s against 1.00 s for `import torch` alone). Frozen, they are left to the OS;
        # exit handlers (loggers, temporary folders) still run first.
        atexit.register(gc.freeze)
        argv = sys.argv[1:]
        if {"--help", "-h"} & set(argv):
            # ``python -m lpnet.report`` runs the module as __main__: name it as users import it
            module = run.__module__
            if module == "__main__" and getattr(sys.modules["__main__"], "__spec__", None) is not None:
                module = sys.modules["__main__"].__spec__.name
            print(_help(config_name, module))
            sys.exit(EXIT_OK)
        # Hydra would print composition errors itself (several lines, exit 1); let them reach us instead.
        os.environ["HYDRA_FULL_ERROR"] = "1"
        try:
            cfg = plain_settings(STRUCTURED_CONFIGS[config_name], argv) if plain else None
            cfg = cfg if cfg is not None else compose_once(config_name, argv)
            if cfg is not None:
                task(cfg)
                return
            import hydra

            importlib.import_module(CONFIG_PACKAGE)  # registers the structured configs
            hydra_main = hydra.main(
                version_base="1.3", config_path=f"pkg://{CONFIG_PACKAGE}", config_name=config_name
            )
            hydra_main(task)()
        except KeyboardInterrupt:  # one line, not Python's traceback: every file written is whole (atomic)
            print(
                "interrupted (Ctrl-C): stopped; the files written so far are whole (derain: rerun with "
                "skip_existing=true to go on; train: resume from checkpoints/last.ckpt)",
                file=sys.stderr,
                flush=True,
            )
            sys.exit(EXIT_INTERRUPTED)
        except SystemExit:
            raise
        except Exception as err:  # composition errors, and a sweep's failed job at its end
            status = _report(err)
            if status is None:
                raise
            sys.exit(status)

    main.__doc__ = f"Console script of {run.__module__} (see its docstring)."
    return main
