"""The run-directory contract: which files a run directory holds, and the only code that reads or writes them.

A run directory holds ``config.yaml`` (fully resolved), ``metrics.csv`` (long format, one row per member and
evaluation), ``summary.json``, ``model.safetensors`` and ``curves.png``; while training, ``checkpoint.safetensors``.
While a run writes its directory it holds ``.run.lock`` there. Every write is atomic (a reader sees the old file or
the new one); ``summary.json`` is written last, so a directory with a summary is a finished run.

Single runs (:mod:`grokkit.api`), the stages of multi-stage recipes and sweep trials (:mod:`grokkit.sweep.runner`)
all write their directories through :class:`RunDir`; the summary's ``train_fraction`` (:func:`train_fraction`) and
the curves' data description (:func:`caption`) come from one function each, so a trial of a sweep and a single run of
the same config describe themselves alike.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd
import yaml

from grokkit.checkpoint import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
    MODEL_FILE,
    SUMMARY_FILE,
    atomic_write,
    atomic_write_text,
    load_model,
    save_model,
)
from grokkit.errors import InputError
from grokkit.summary import Summary

if TYPE_CHECKING:
    from grokkit.config import RunConfig
    from grokkit.models import EnsembleModel
    from grokkit.tasks import Vocabulary

METRICS_FILE = "metrics.csv"
CURVES_FILE = "curves.png"
#: held (an OS file lock) while a run writes its directory; removed when the run ends
LOCK_FILE = ".run.lock"
#: weight snapshots during training (``training.snapshot_every`` / ``snapshot_steps``), one model file per step
SNAPSHOT_DIR = "snapshots"
#: the names :meth:`RunDir.move_aside` gives: ``<name>.corrupt-<time>`` or ``<name>.restart-<time>``
MOVED_ASIDE = re.compile(r"\.(corrupt|restart)-\d{8}-\d{6}(-\d+)?$")
__all__ = ["CHECKPOINT_FILE", "CONFIG_FILE", "CURVES_FILE", "LOCK_FILE", "METRICS_FILE", "METRIC_COLUMNS",
           "MODEL_FILE", "SUMMARY_FILE", "RunDir", "RunError", "caption", "curve_title", "metrics_frame", "run_lock",
           "train_fraction"]
METRIC_COLUMNS = ["step", "member", "seed", "train_loss", "train_acc", "test_loss", "test_acc", "weight_norm"]

State = Literal["new", "resume", "done"]


class RunError(InputError):
    """A run that cannot start: the message says why. Nothing has been written when this is raised."""


def train_fraction(cfg: RunConfig) -> float | list[float] | None:
    """The ``train_fraction`` a run's summary records: per task for multi-task recipes (continual: the tasks it
    trains on, ``tasks[1:]``), the task's for a modular task, None for bit tasks (they set ``n_train``)."""
    from grokkit.recipes import RECIPES

    recipe = RECIPES.get(cfg.recipe)
    if recipe.trained_tasks is not None:
        return [t.train_fraction for t in recipe.trained_tasks(cfg)]
    if cfg.tasks:
        return [t.train_fraction for t in cfg.tasks]
    return cfg.task.train_fraction if cfg.task.is_modular else None


def caption(cfg: RunConfig) -> str:
    """The data a run trains on, as curve titles state it: ``"30% of pairs"`` (``"50%/50% of pairs"`` for several
    tasks) or ``"N training inputs"`` (bit tasks)."""
    if cfg.task.is_modular:
        return f"{'/'.join(f'{t.train_fraction:.0%}' for t in cfg.all_tasks())} of pairs"
    return f"{cfg.task.n_train} training inputs"


def curve_title(label: str, task: str, cfg: RunConfig) -> str:
    """The title of a run's ``curves.png``: ``"<label>: <task>, <caption> (<recipe>)"``."""
    return f"{label}: {task}, {caption(cfg)} ({cfg.recipe})"


def metrics_frame(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Long format; per-task columns (``test_loss@<task>``, ``test_acc@<task>``) follow the fixed ones."""
    extra = sorted({k for r in rows for k in r} - set(METRIC_COLUMNS))
    return pd.DataFrame(list(rows), columns=METRIC_COLUMNS + extra)


#: run locks this process holds, by (directory, thread): the holder may take its lock again (nested stages)
_held_locks: dict[tuple[Path, int], tuple[Any, int]] = {}


class RunDir:
    """A run directory (a path wrapper): the files of the contract, and the checks a run makes before writing."""

    caption = staticmethod(caption)
    train_fraction = staticmethod(train_fraction)

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._config: tuple[tuple[int, int, int], RunConfig] | None = None

    def __fspath__(self) -> str:
        return os.fspath(self.path)

    def __str__(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    # ------------------------------------------------------------------------------------------ paths
    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS_FILE

    @property
    def summary_path(self) -> Path:
        return self.path / SUMMARY_FILE

    @property
    def model_path(self) -> Path:
        return self.path / MODEL_FILE

    @property
    def curves_path(self) -> Path:
        return self.path / CURVES_FILE

    @property
    def checkpoint_path(self) -> Path:
        return self.path / CHECKPOINT_FILE

    @property
    def lock_path(self) -> Path:
        return self.path / LOCK_FILE

    def has_config(self) -> bool:
        return self.config_path.is_file()

    def has_summary(self) -> bool:
        return self.summary_path.is_file()

    def has_metrics(self) -> bool:
        return self.metrics_path.is_file()

    def has_model(self) -> bool:
        return self.model_path.exists()

    def has_checkpoint(self) -> bool:
        return self.checkpoint_path.exists()

    # ------------------------------------------------------------------------------------------ state and lock
    def state(self, cfg: RunConfig) -> State:
        """``"new"``, ``"resume"`` (a checkpoint of this config) or ``"done"`` (its summary); raises
        :class:`RunError` if the directory holds something else."""
        out = self.path
        if not out.exists():
            return "new"
        if not out.is_dir():
            raise RunError(f"--out {out} exists and is not a directory")
        if not self.config_path.exists():
            if self._foreign_files():
                raise RunError(f"--out {out} is not empty and holds no grokkit run; choose a new directory")
            return "new"
        from grokkit.config import ConfigError

        try:
            previous = self.read_config()
        except ConfigError as err:
            raise RunError(f"--out {out} holds an unreadable config.yaml ({err}); choose a new directory, or run the "
                           "same command with --restart to move it aside (renamed, not deleted) and train this "
                           "config there") from None
        if not previous.same_run(cfg):
            verb = "read back" if self.summary_path.exists() else "resume"
            raise RunError(f"--out {out} holds a run with a different config ({_differ(previous, cfg)}); choose a new "
                           f"directory, or {verb} the run it holds with `grokkit run {self.config_path} --out {out}`")
        if self.summary_path.exists():
            return "done"
        return "resume" if self.checkpoint_path.exists() else "new"

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold ``.run.lock`` (creating the directory) while the body writes the run directory; raise
        :class:`RunError` at once, writing nothing, if another process (or another thread of this one) holds it.
        Re-entrant for its holder: a recipe made of stages may take it again for the same directory. The lock file
        is removed when the outermost holder leaves."""
        from filelock import FileLock, Timeout

        out = self.path
        if out.exists() and not out.is_dir():
            raise RunError(f"--out {out} exists and is not a directory")
        key = (out.resolve(), threading.get_ident())
        if key in _held_locks:
            held, depth = _held_locks[key]
            _held_locks[key] = (held, depth + 1)
            try:
                yield
            finally:
                held, depth = _held_locks[key]
                _held_locks[key] = (held, depth - 1)
            return
        path = self.lock_path
        lock = FileLock(str(path))
        out.mkdir(parents=True, exist_ok=True)  # a no-op when another run holds it: nothing is written then
        try:
            lock.acquire(timeout=0)
        except Timeout:
            raise RunError(f"--out {out} is in use by another grokkit run (lock {path} is held); wait for it to "
                           "finish or choose another directory") from None
        _held_locks[key] = (lock, 1)
        try:
            yield
        finally:
            del _held_locks[key]
            with contextlib.suppress(OSError):
                path.unlink()  # while still held: a process waiting on this inode sees it unlinked and retries
            lock.release()

    # ------------------------------------------------------------------------------------------ config
    def read_config(self) -> RunConfig:
        """The saved ``config.yaml`` (cached while the file is unchanged); raises :class:`ConfigError` if it cannot
        be read as a config, FileNotFoundError if there is none."""
        st = self.config_path.stat()
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        if self._config is not None and self._config[0] == key:
            return self._config[1]
        from pydantic import ValidationError

        from grokkit.config import ConfigError, parse_config, read_yaml

        try:
            cfg = parse_config(read_yaml(self.config_path, "run config"), str(self.config_path))
        except ConfigError:
            raise
        except (ValidationError, yaml.YAMLError, TypeError) as err:
            raise ConfigError(str(err)) from None
        self._config = (key, cfg)
        return cfg

    def read_config_text(self) -> str:
        return self.config_path.read_text()

    def write_config(self, cfg: RunConfig) -> None:
        atomic_write_text(self.config_path, cfg.to_yaml())
        st = self.config_path.stat()
        self._config = ((st.st_ino, st.st_mtime_ns, st.st_size), cfg)

    # ------------------------------------------------------------------------------------------ summary
    def read_summary(self) -> dict[str, Any]:
        """The run's summary; a file that is not a JSON mapping (truncated, overwritten) raises :class:`RunError`
        naming it (FileNotFoundError if there is none)."""
        try:
            data = json.loads(self.summary_path.read_text())
        except (ValueError, UnicodeDecodeError) as err:
            raise RunError(f"{self.summary_path} cannot be read: {err}") from None
        if not isinstance(data, dict):
            raise RunError(f"{self.summary_path} cannot be read: it holds a {type(data).__name__}, not a summary")
        return data

    def read_summary_model(self) -> Summary:
        """The summary as its typed model (:class:`grokkit.summary.Summary`)."""
        return Summary.model_validate(self.read_summary())

    def write_summary(self, summary: dict[str, Any] | Summary) -> dict[str, Any]:
        """Written last: a directory with a summary is a finished run. The file is the JSON dump of the typed
        :class:`~grokkit.summary.Summary` (validated here, so every summary has its schema); returns what
        :meth:`read_summary` will read from it."""
        model = summary if isinstance(summary, Summary) else Summary.model_validate(summary)
        text = model.to_json()
        atomic_write_text(self.summary_path, text)
        return json.loads(text)

    def remove_summary(self) -> None:
        self.summary_path.unlink(missing_ok=True)

    # ------------------------------------------------------------------------------------------ metrics
    def write_metrics(self, metrics: Sequence[dict[str, Any]] | pd.DataFrame) -> pd.DataFrame:
        """(Re)write ``metrics.csv`` atomically from rows (see :func:`metrics_frame`) or a frame (as it is)."""
        frame = metrics if isinstance(metrics, pd.DataFrame) else metrics_frame(metrics)
        atomic_write(self.metrics_path, lambda p: frame.to_csv(p, index=False))
        return frame

    def read_metrics(self) -> pd.DataFrame:
        """The run's metrics; a file pandas cannot parse (empty, truncated mid-row, binary) raises :class:`RunError`
        naming it (FileNotFoundError if there is none)."""
        try:
            frame = pd.read_csv(self.metrics_path)
        except (ValueError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
            raise RunError(f"{self.metrics_path} cannot be read: {err}") from None
        if "step" not in frame.columns:
            raise RunError(f"{self.metrics_path} cannot be read: it has no `step` column (columns: "
                           f"{list(frame.columns)[:8]})")
        return frame

    # ------------------------------------------------------------------------------------------ model, curves
    def write_model(self, model: EnsembleModel, vocab: Vocabulary, extra: dict[str, Any] | None = None) -> None:
        save_model(self.model_path, model, vocab, extra)

    def read_model(self) -> tuple[EnsembleModel, Vocabulary, dict[str, Any]]:
        """Raises :class:`grokkit.checkpoint.CheckpointError` with the reason."""
        return load_model(self.model_path)

    def copy_model_from(self, other: RunDir) -> None:
        """This directory's model is ``other``'s (the file copied as it is)."""
        atomic_write(self.model_path, lambda p: shutil.copyfile(other.model_path, p))

    def write_curves(self, metrics: pd.DataFrame, title: str) -> None:
        """``curves.png``: train and test accuracy of every member against step."""
        from grokkit.plots import plot_curves

        plot_curves(metrics, self.curves_path, title)

    def write_figure(self, fig: Any) -> None:
        """``curves.png`` from a matplotlib figure of the recipe's own (closed afterwards)."""
        import matplotlib.pyplot as plt

        atomic_write(self.curves_path, lambda p: fig.savefig(p, dpi=120, format="png"))
        plt.close(fig)

    # ------------------------------------------------------------------------------------------ snapshots
    @property
    def snapshot_dir(self) -> Path:
        return self.path / SNAPSHOT_DIR

    def write_snapshot(self, step: int, model: EnsembleModel, vocab: Vocabulary) -> Path:
        """Every member's weights at ``step`` as a model file (``snapshots/step_NNNNNNN.safetensors``, atomic)."""
        path = self.snapshot_dir / f"step_{step:07d}.safetensors"
        save_model(path, model, vocab, {"step": step})
        return path

    def snapshots(self) -> list[tuple[int, Path]]:
        """(step, file) of every snapshot, in step order."""
        out = []
        for p in self.snapshot_dir.glob("step_*.safetensors"):
            try:
                out.append((int(p.stem.removeprefix("step_")), p))
            except ValueError:
                continue
        return sorted(out)

    def remove_checkpoint(self) -> None:
        self.checkpoint_path.unlink(missing_ok=True)

    # ------------------------------------------------------------------------------------------ damage and restart
    def unreadable(self) -> dict[str, str]:
        """File name -> why, for each file of the contract that exists but cannot be read (config, summary,
        metrics, model, checkpoint): what :meth:`restart` moves aside."""
        from grokkit.checkpoint import CheckpointError, load_checkpoint
        from grokkit.config import ConfigError

        checks: list[tuple[Path, Any]] = [
            (self.config_path, self.read_config), (self.summary_path, self.read_summary),
            (self.metrics_path, self.read_metrics), (self.model_path, self.read_model),
            (self.checkpoint_path, lambda: load_checkpoint(self.checkpoint_path))]
        problems = {}
        for path, read in checks:
            if not path.exists():
                continue
            try:
                read()
            except (ConfigError, RunError, CheckpointError, OSError) as err:
                problems[path.name] = str(err)
        return problems

    def _foreign_files(self) -> list[Path]:
        """What the directory holds besides the lock and files :meth:`restart` moved aside: a directory holding only
        those is as good as empty for a new run."""
        return [p for p in self.path.iterdir() if p.name != LOCK_FILE and not MOVED_ASIDE.search(p.name)]

    def move_aside(self, name: str, why: str) -> Path:
        """Rename ``name`` (a file or folder of this directory) to ``<name>.<why>-<time>``: kept, out of the way."""
        source = self.path / name
        stamp = time.strftime("%Y%m%d-%H%M%S")
        target = self.path / f"{name}.{why}-{stamp}"
        n = 1
        while target.exists():
            target = self.path / f"{name}.{why}-{stamp}-{n}"
            n += 1
        os.replace(source, target)
        return target

    def restart(self, cfg: RunConfig) -> list[tuple[Path, Path]]:
        """Clear the way for training ``cfg`` from step 0 here, deleting nothing: every file an earlier attempt left
        (checkpoint, metrics, snapshots, and a summary, model or curves of an attempt whose files cannot all be
        read) is renamed ``<name>.corrupt-<time>`` if it cannot be read, else ``<name>.restart-<time>``; an
        unreadable ``config.yaml`` too. A finished run whose files all read is left as it is (nothing to restart).
        Raises :class:`RunError` for a directory that holds another run or something else. Returns (old, new) of
        each move. The caller holds the lock."""
        out = self.path
        if not out.exists():
            return []
        if not out.is_dir():
            raise RunError(f"--out {out} exists and is not a directory")
        problems = self.unreadable()
        if self.config_path.exists() and CONFIG_FILE not in problems and not self.read_config().same_run(cfg):
            raise RunError(f"--out {out} holds a run with a different config ({_differ(self.read_config(), cfg)}); "
                           "--restart only restarts the same config: choose a new directory")
        if not self.config_path.exists() and self._foreign_files():
            raise RunError(f"--out {out} is not empty and holds no grokkit run; choose a new directory")
        if self.has_summary() and not problems:
            return []
        names = [CONFIG_FILE] if CONFIG_FILE in problems else []
        names += [n for n in (CHECKPOINT_FILE, SUMMARY_FILE, METRICS_FILE, MODEL_FILE, CURVES_FILE, SNAPSHOT_DIR)
                  if (out / n).exists()]
        return [(out / n, self.move_aside(n, "corrupt" if n in problems else "restart")) for n in names]


def _differ(old: RunConfig, new: RunConfig) -> str:
    """The keys in which ``new`` differs from the run a directory holds, old → new (the first few)."""
    from grokkit.config import describe_differences

    return "it differs in " + describe_differences(old.differences(new))


def run_lock(out: str | os.PathLike[str]) -> contextlib.AbstractContextManager[None]:
    """:meth:`RunDir.lock` of ``out``."""
    return RunDir(out).lock()
