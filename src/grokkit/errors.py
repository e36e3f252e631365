"""The base of every error grokkit raises on purpose: a message for a person that says what was wrong and what to do.

Every known failure derives from :class:`GrokkitError`; the CLI's top level turns any of them into ``error: ...`` and
its :attr:`~GrokkitError.exit_code` (2: bad input, nothing written; 1: a run that failed while running), never a
traceback. Subclasses also derive from the built-in exception they always were (``ValueError``, ``OSError``), so code
that caught those keeps working.
"""

from __future__ import annotations


class GrokkitError(Exception):
    """A failure grokkit knows how to explain. ``exit_code``: 2 for bad input (a config, an argument, a file that
    cannot be used; nothing was written), 1 for a run that failed while running."""

    exit_code: int = 2


class InputError(GrokkitError, ValueError):
    """Bad input: a config, an argument or a file that cannot be used. Nothing has been written."""


class TrainingError(GrokkitError):
    """A run that started and then failed while training (e.g. it ran out of memory part-way). Exit code 1: what it
    wrote so far (its last checkpoint) is kept, and the same command resumes once the cause is fixed."""

    exit_code = 1


class RunInterrupted(KeyboardInterrupt):
    """A run (or sweep) stopped by SIGINT (Ctrl-C) or SIGTERM: ``message`` says where its last checkpoint is and that
    the same command resumes from it; ``exit_code`` is 130 (SIGINT) or 143 (SIGTERM), as a shell reports them. A
    ``KeyboardInterrupt``, so code that stops on Ctrl-C still does."""

    def __init__(self, message: str, exit_code: int = 130) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the process was (the ``grokkit`` command installs the handler), so a run stops as on
    Ctrl-C: its directory keeps the last checkpoint."""
