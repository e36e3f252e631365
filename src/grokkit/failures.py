"""How a ``grokkit`` command fails in front of a person: a known failure is a message and an exit code, anything else
one line and a crash log.

* Every error grokkit raises on purpose derives from :class:`~grokkit.errors.GrokkitError`: it becomes
  ``error: <message>`` on stderr and its ``exit_code`` (2: bad input, nothing written; 1: a run that failed while
  running). A person reads what was wrong and what to do, never a traceback.
* Anything else is a bug or an environment problem grokkit did not foresee. The person gets one line naming the
  exception and a crash log (the traceback, the command line, the library versions; as pip does), exit code 1: enough
  to file an issue, without a wall of frames in the terminal. ``GROKKIT_TRACEBACK=1`` re-raises instead, for
  debugging.

:class:`GuardedGroup` applies this inside the typer app (so ``typer.testing.CliRunner`` sees it too) and
:func:`run_app` around it (for anything raised outside a command).
"""

from __future__ import annotations

import datetime
import os
import platform
import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from typer.core import TyperGroup
from typer.exceptions import Abort, Exit, TyperException

from grokkit.errors import GrokkitError, RunInterrupted, Terminated

#: set to 1 to get the traceback of an unexpected exception instead of the crash log (developers)
TRACEBACK_ENV = "GROKKIT_TRACEBACK"
#: the distributions whose versions a crash log records
VERSIONED = ("grokkit", "torch", "numpy", "pandas", "pydantic", "safetensors", "pyyaml", "typer", "click", "rich",
             "pyarrow", "matplotlib", "filelock")


def crash_dir() -> Path:
    """Where crash logs go: ``$XDG_STATE_HOME/grokkit`` (default ``~/.local/state/grokkit``, the XDG place for logs
    a program keeps for its user)."""
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "grokkit"


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": platform.python_version(), "platform": platform.platform()}
    for name in VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def write_crash_log(err: BaseException, argv: list[str] | None = None) -> Path:
    """Write the traceback of ``err``, the command line and the library versions to a new file in :func:`crash_dir`
    (the system's temporary folder if that cannot be written); returns its path."""
    now = datetime.datetime.now()
    lines = [f"grokkit crash log, {now.isoformat(timespec='seconds')}",
             f"command: {' '.join(argv if argv is not None else sys.argv)}",
             f"working directory: {os.getcwd()}", "", "versions:"]
    lines += [f"  {k}: {v}" for k, v in _versions().items()]
    lines += ["", "".join(traceback.format_exception(type(err), err, err.__traceback__))]
    text = "\n".join(lines)
    name = f"crash-{now:%Y%m%d-%H%M%S}-{os.getpid()}.log"
    for folder in (crash_dir(), Path(tempfile.gettempdir()) / "grokkit"):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / name
            path.write_text(text)
            return path
        except OSError:
            continue
    raise OSError("no writable folder for the crash log")


def _print_error(text: str) -> None:
    from rich.console import Console
    from rich.markup import escape

    Console(stderr=True, soft_wrap=True).print(f"[bold red]error:[/] {escape(text)}", highlight=False)


def handle(err: Exception, argv: list[str] | None = None) -> int:
    """Report ``err`` to the person at the terminal and return the exit code (see the module docstring)."""
    if isinstance(err, GrokkitError):
        _print_error(str(err))
        return err.exit_code
    try:
        where = f"the traceback and versions are in {write_crash_log(err, argv)}"
    except OSError:
        where = "no crash log could be written; run again with GROKKIT_TRACEBACK=1 to see the traceback"
    first = (str(err).strip().splitlines() or [""])[0][:300]
    from rich.console import Console

    Console(stderr=True, soft_wrap=True).print(
        f"grokkit crashed: {type(err).__name__}: {first}; {where}. This is a bug in grokkit or a problem it does not "
        "know yet: please report it with that file.", highlight=False, markup=False)
    return 1


def _passes_through(err: BaseException) -> bool:
    """typer's own exits and usage errors, and a re-raise asked for by :data:`TRACEBACK_ENV`."""
    if isinstance(err, (Exit, Abort, TyperException)):
        return True
    return not isinstance(err, GrokkitError) and os.environ.get(TRACEBACK_ENV, "") not in ("", "0")


def interrupted(stop: KeyboardInterrupt) -> int:
    """Tell the person what an interrupted command left (a run: its last checkpoint) and the exact command that
    resumes it; the exit code a shell gives a process stopped by that signal (130 SIGINT, 143 SIGTERM)."""
    import shlex

    from rich.console import Console

    command = shlex.join(["grokkit", *sys.argv[1:]])
    if isinstance(stop, RunInterrupted):
        text, code = f"{stop.message}: {command}", stop.exit_code
    else:
        text, code = (f"stopped by {'SIGTERM' if isinstance(stop, Terminated) else 'SIGINT'}; run the same command "
                      f"again to go on: {command}", 143 if isinstance(stop, Terminated) else 130)
    Console(stderr=True, soft_wrap=True).print(f"interrupted: {text}", highlight=False, markup=False)
    return code


class GuardedGroup(TyperGroup):
    """A typer command group whose commands fail as the module docstring says, and stop on SIGINT/SIGTERM saying how
    to resume."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as stop:
            raise Exit(interrupted(stop)) from None
        except Exception as err:
            if _passes_through(err):
                raise
            raise Exit(handle(err)) from None


def _terminate(signum: int, frame: Any) -> None:
    raise Terminated()


def run_app(app: Callable[[], Any]) -> NoReturn:
    """Run the typer ``app`` (standalone: it exits) with the same handling for anything raised outside a command;
    SIGTERM stops it as Ctrl-C does (the run keeps its last checkpoint)."""
    import signal

    signal.signal(signal.SIGTERM, _terminate)
    try:
        app()
    except SystemExit:
        raise
    except Exception as err:
        if _passes_through(err):
            raise
        sys.exit(handle(err))
    sys.exit(0)
