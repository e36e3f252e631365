"""The Python API behind the CLI: run a config into a run directory.

A run directory holds ``config.yaml`` (fully resolved), ``metrics.csv`` (long format, one row per member and
evaluation), ``summary.json``, ``model.safetensors`` and ``curves.png``; while training, ``checkpoint.safetensors``.
A run killed part-way resumes from its checkpoint when started again on the same directory with the same config.
While a run writes its directory it holds ``.run.lock`` there: a second run on the same directory is refused.
"""

from __future__ import annotations

import contextlib
import json
import platform
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import yaml

from grokkit import __version__
from grokkit.checkpoint import CHECKPOINT_FILE, MODEL_FILE, CheckpointError, atomic_write, atomic_write_text, save_model
from grokkit.config import ConfigError, RunConfig, parse_config
from grokkit.engine import Trainer, TrainResult
from grokkit.plots import plot_curves
from grokkit.recipes import RECIPES, Setup, build_setup
from grokkit.recipes.distill import TeacherError
from grokkit.sinks import check_sinks, make_sinks

#: held (an OS file lock) while a run writes its directory; removed when the run ends
RUN_LOCK_FILE = ".run.lock"
METRIC_COLUMNS = ["step", "member", "seed", "train_loss", "train_acc", "test_loss", "test_acc", "weight_norm"]


class RunError(ValueError):
    """A run that cannot start: the message says why. Nothing has been written when this is raised."""


def versions() -> dict[str, str]:
    import numpy
    import pydantic
    import safetensors

    return {"grokkit": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "numpy": numpy.__version__, "pydantic": pydantic.__version__, "safetensors": safetensors.__version__,
            "platform": platform.platform()}


def prepare(cfg: RunConfig) -> Setup:
    """Build everything a run needs; raise :class:`RunError` (nothing written) if it cannot run."""
    if cfg.training.device.startswith("cuda") and not torch.cuda.is_available():
        raise RunError(f"training.device={cfg.training.device!r} but CUDA is not available here; use device: cpu")
    try:
        check_sinks(cfg)
        return build_setup(cfg)
    except (TeacherError, CheckpointError, ValueError) as err:
        raise RunError(str(err)) from None


#: run locks this process holds, by (directory, thread): the holder may take its lock again (nested stages)
_held_locks: dict[tuple[Path, int], tuple[Any, int]] = {}


@contextlib.contextmanager
def run_lock(out: Path) -> Iterator[None]:
    """Hold ``out/.run.lock`` (creating ``out``) while the body writes the run directory; raise :class:`RunError`
    at once, writing nothing, if another process (or another thread of this one) holds it. Re-entrant for its holder:
    a recipe made of stages may take it again for the same directory. The lock file is removed when the outermost
    holder leaves."""
    from filelock import FileLock, Timeout

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RunError(f"--out {out} exists and is not a directory")
    key = (out.resolve(), threading.get_ident())
    if key in _held_locks:
        lock, depth = _held_locks[key]
        _held_locks[key] = (lock, depth + 1)
        try:
            yield
        finally:
            lock, depth = _held_locks[key]
            _held_locks[key] = (lock, depth - 1)
        return
    path = out / RUN_LOCK_FILE
    lock = FileLock(str(path))
    out.mkdir(parents=True, exist_ok=True)  # a no-op when another run holds it: nothing is written then
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise RunError(f"--out {out} is in use by another grokkit run (lock {path} is held); wait for it to finish "
                       "or choose another directory") from None
    _held_locks[key] = (lock, 1)
    try:
        yield
    finally:
        del _held_locks[key]
        with contextlib.suppress(OSError):
            path.unlink()  # while still held: a process waiting on this inode sees it unlinked and retries
        lock.release()


def _check_out_dir(out: Path, cfg: RunConfig) -> str:
    """'new', 'resume' or 'done'; raises RunError if ``out`` holds something else."""
    if not out.exists():
        return "new"
    if not out.is_dir():
        raise RunError(f"--out {out} exists and is not a directory")
    saved = out / "config.yaml"
    if not saved.exists():
        if any(p.name != RUN_LOCK_FILE for p in out.iterdir()):
            raise RunError(f"--out {out} is not empty and holds no grokkit run; choose a new directory")
        return "new"
    try:
        previous = parse_config(yaml.safe_load(saved.read_text()), str(saved))
    except (ConfigError, yaml.YAMLError) as err:
        raise RunError(f"--out {out} holds an unreadable config.yaml ({err}); choose a new directory") from None
    if previous != cfg:
        raise RunError(f"--out {out} holds a run with a different config; choose a new directory "
                       "(or run the same config there to resume it)")
    if (out / "summary.json").exists():
        return "done"
    return "resume" if (out / CHECKPOINT_FILE).exists() else "new"


def staged_start(cfg: RunConfig, out: Path | None, log: Callable[[str], None]) -> dict[str, Any] | None:
    """The opening of a recipe made of stages (continual, transfer): ``out`` is required and checked; a finished run
    returns its summary (nothing to do), otherwise None."""
    if out is None:
        raise RunError(f"recipe {cfg.recipe} writes one run directory per stage: give --out")
    if _check_out_dir(out, cfg) == "done":
        log(f"{out} already holds this finished run; nothing to do")
        return json.loads((out / "summary.json").read_text())
    return None


def _progress_bar(enabled: bool) -> Any:
    if not enabled:
        return None
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    bar = Progress(TextColumn("[bold]{task.fields[name]}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[stats]}"), TimeElapsedColumn(), TimeRemainingColumn(), transient=False)
    return bar


def run(cfg: RunConfig, out: str | Path | None, progress: bool | None = None,
        log: Any = None) -> dict[str, Any]:
    """Train ``cfg`` and write its run directory (if ``out``); returns the summary dict."""
    from rich.console import Console

    console = Console(stderr=True, soft_wrap=True)
    log = log or (lambda msg: console.print(msg, highlight=False, markup=False))
    out_path = Path(out) if out is not None else None
    recipe = RECIPES.get(cfg.recipe)
    if recipe.stages is not None:
        return recipe.stages(cfg, out_path, progress, log)
    state = _check_out_dir(out_path, cfg) if out_path is not None else "new"
    if state == "done":
        assert out_path is not None
        log(f"{out_path} already holds this finished run; nothing to do")
        return json.loads((out_path / "summary.json").read_text())
    setup = prepare(cfg)
    if out_path is None:
        return _train(cfg, setup, None, state, progress, log)
    with run_lock(out_path):
        state = _check_out_dir(out_path, cfg)  # again under the lock: another run may have moved it on meanwhile
        if state == "done":
            log(f"{out_path} already holds this finished run; nothing to do")
            return json.loads((out_path / "summary.json").read_text())
        return _train(cfg, setup, out_path, state, progress, log)


def _train(cfg: RunConfig, setup: Setup, out_path: Path | None, state: str, progress: bool | None,
           log: Callable[[str], None]) -> dict[str, Any]:
    if cfg.training.threads:
        torch.set_num_threads(cfg.training.threads)
    trainer = Trainer(cfg, setup.model, setup.train, setup.test, setup.objective, checkpoint_dir=out_path, log=log,
                      task_sets=setup.task_sets, frozen=setup.frozen, val=setup.val)
    if out_path is not None:
        atomic_write_text(out_path / "config.yaml", cfg.to_yaml())
        if state == "resume":
            trainer.load_checkpoint(out_path / CHECKPOINT_FILE)
            log(f"resuming {out_path} from step {trainer.step}")
            write_metrics(out_path, trainer.rows)  # the rows the checkpoint holds
        trainer.on_checkpoint = lambda t: write_metrics(out_path, t.rows)  # progress on disk while training
    show = cfg.training.progress if progress is None else progress
    bar = _progress_bar(show and sys.stderr.isatty())
    callbacks: list[Callable[[Trainer], None]] = []
    if bar is not None:
        task_id = bar.add_task("train", total=cfg.training.steps, name=cfg.name, stats="")

        def update_bar(t: Trainer) -> None:
            last = _last_rows(t)
            if last:
                tra = sum(r["train_acc"] for r in last) / len(last)
                tea = sum(r["test_acc"] for r in last) / len(last)
                bar.update(task_id, completed=t.step, stats=f"train {tra:.3f} test {tea:.3f} (mean of {len(last)})")
            else:
                bar.update(task_id, completed=t.step)

        callbacks.append(update_bar)
    elif show:
        def print_progress(t: Trainer) -> None:
            if t.step % max(cfg.training.eval_every, cfg.training.steps // 10) == 0 or t.step == cfg.training.steps:
                accs = " ".join(f"{r['test_acc']:.3f}" for r in _last_rows(t))
                log(f"[{cfg.name}] step {t.step}/{cfg.training.steps} test acc per member: {accs}")

        callbacks.append(print_progress)
    try:
        sinks = make_sinks(cfg, out_path)
    except ValueError as err:
        raise RunError(str(err)) from None
    for sink in sinks:
        callbacks.append(lambda t, sink=sink: sink.write(t.step, _last_rows(t)))
    try:
        with bar if bar is not None else contextlib.nullcontext():
            result = trainer.fit(lambda t: [c(t) for c in callbacks])
    finally:
        for sink in sinks:
            sink.close()
    summary = make_summary(cfg, setup, trainer, result)
    if out_path is not None:
        write_outputs(out_path, cfg, setup, result, summary)
    return summary


def _last_rows(t: Trainer) -> list[dict[str, Any]]:
    """The rows of the evaluation at the trainer's current step."""
    return [r for r in t.rows[-len(t.seeds):] if r["step"] == t.step]


def make_summary(cfg: RunConfig, setup: Setup, trainer: Trainer, result: TrainResult) -> dict[str, Any]:
    return {
        "name": cfg.name,
        "recipe": cfg.recipe,
        "task": setup.task_name,
        "train_fraction": ([t.train_fraction for t in cfg.all_tasks()] if setup.multi_task
                           else cfg.task.train_fraction if cfg.task.is_modular else None),
        "steps": result.steps_done,
        "generalization_threshold": cfg.training.generalization_threshold,
        "loss_dtype": cfg.loss.dtype,
        "member_chunk": trainer.chunk,
        "device": cfg.training.device,
        "threads": torch.get_num_threads(),
        "wall_seconds": round(result.wall_seconds, 3),
        "members": [asdict(m) for m in result.members],
        **setup.info,
        "versions": versions(),
    }


def metrics_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Long format; per-task columns (``test_loss@<task>``, ``test_acc@<task>``) follow the fixed ones."""
    extra = sorted({k for r in rows for k in r} - set(METRIC_COLUMNS))
    return pd.DataFrame(rows, columns=METRIC_COLUMNS + extra)


def write_metrics(out: Path, rows: list[dict[str, Any]]) -> pd.DataFrame:
    """(Re)write ``out/metrics.csv`` atomically from ``rows``: at each checkpoint while training, and at the end."""
    metrics = metrics_frame(rows)
    atomic_write(out / "metrics.csv", lambda p: metrics.to_csv(p, index=False))
    return metrics


def write_outputs(out: Path, cfg: RunConfig, setup: Setup, result: TrainResult, summary: dict[str, Any]) -> None:
    metrics = write_metrics(out, result.rows)
    save_model(out / MODEL_FILE, setup.model, setup.vocab, {"task": setup.task.name, "recipe": cfg.recipe})
    if len(metrics):
        data = (f"{'/'.join(f'{t.train_fraction:.0%}' for t in cfg.all_tasks())} of pairs" if cfg.task.is_modular
                else f"{cfg.task.n_train} training inputs")
        plot_curves(metrics, out / "curves.png", f"{cfg.name}: {setup.task_name}, {data} ({cfg.recipe})")
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2))
    (out / CHECKPOINT_FILE).unlink(missing_ok=True)
