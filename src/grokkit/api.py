"""The Python API behind the CLI: run a config into a run directory.

A run directory (:mod:`grokkit.rundir`) holds ``config.yaml`` (fully resolved), ``metrics.csv`` (long format, one row
per member and evaluation), ``summary.json``, ``model.safetensors`` and ``curves.png``; while training,
``checkpoint.safetensors``. A run killed part-way resumes from its checkpoint when started again on the same directory
with the same config. While a run writes its directory it holds ``.run.lock`` there: a second run on the same
directory is refused. Recipes made of stages (:data:`STAGED`) are driven here, one ordinary run per stage.

Before anything is built, a run's memory is estimated and a run too large for the device is refused
(:mod:`grokkit.resources`). A checkpoint or summary that cannot be read is named, with the way forward:
``restart=True`` (``grokkit run --restart``) moves the unreadable files aside (:meth:`RunDir.restart`, nothing is
deleted) and trains from step 0 into the same directory.
"""

from __future__ import annotations

import contextlib
import platform
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from grokkit import __version__
from grokkit.checkpoint import CheckpointError
from grokkit.config import RunConfig
from grokkit.engine import Trainer, TrainResult
from grokkit.errors import TrainingError
from grokkit.recipes import RECIPES, Setup, build_setup
from grokkit.recipes.distillation import TeacherError
from grokkit.recipes.stages import Stage, StageContext, StagedRecipe, StageResult, Stitched
from grokkit.resources import ResourceError, check_memory
from grokkit.rundir import LOCK_FILE, METRIC_COLUMNS, RunDir, RunError, curve_title, metrics_frame, run_lock
from grokkit.rundir import train_fraction as summary_train_fraction
from grokkit.sinks import check_sinks, make_sinks

#: the recipes made of stages (a registered recipe with ``stages(cfg, rundir)`` and ``finish(cfg, rundir, summaries)``,
#: see :mod:`grokkit.recipes.stages`); :func:`run` drives them
STAGED: dict[str, StagedRecipe] = {name: r for name, r in RECIPES.items() if r.stages is not None}  # type: ignore[misc]
RUN_LOCK_FILE = LOCK_FILE
__all__ = ["METRIC_COLUMNS", "RUN_LOCK_FILE", "STAGED", "RunDir", "RunError", "make_summary", "metrics_frame",
           "prepare", "run", "run_lock", "versions"]


def versions() -> dict[str, str]:
    import numpy
    import pydantic
    import safetensors

    return {"grokkit": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "numpy": numpy.__version__, "pydantic": pydantic.__version__, "safetensors": safetensors.__version__,
            "platform": platform.platform()}


def prepare(cfg: RunConfig) -> Setup:
    """Build everything a run needs; raise :class:`RunError` (nothing written) if it cannot run, and
    :class:`~grokkit.resources.ResourceError` (nothing allocated) if its memory estimate exceeds what it may use."""
    if cfg.training.device.startswith("cuda") and not torch.cuda.is_available():
        raise RunError(f"training.device={cfg.training.device!r} but CUDA is not available here; use device: cpu")
    check_memory(cfg)
    try:
        check_sinks(cfg)
        return build_setup(cfg)
    except (TeacherError, CheckpointError, ValueError) as err:
        raise RunError(str(err)) from None
    except (MemoryError, RuntimeError) as err:  # the estimate was too low for this machine after all
        if not _out_of_memory(err):
            raise
        raise ResourceError(f"ran out of memory building the run's data and model ({type(err).__name__}: "
                            f"{str(err).splitlines()[0][:200]}); nothing was written. Reduce the task's size, the "
                            "number of members or the model, or free memory") from None


def _out_of_memory(err: BaseException) -> bool:
    """An allocation failure: Python's MemoryError, torch's OutOfMemoryError (CUDA) or its CPU allocator's
    ``can't allocate memory`` RuntimeError."""
    if isinstance(err, MemoryError) or type(err).__name__ == "OutOfMemoryError":
        return True
    text = str(err)
    return isinstance(err, RuntimeError) and ("can't allocate memory" in text or "out of memory" in text.lower())


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
        log: Any = None, restart: bool = False) -> dict[str, Any]:
    """Train ``cfg`` and write its run directory (if ``out``); returns the summary dict. ``restart``: train from step
    0 even if ``out`` holds an unfinished or unreadable attempt of this config, whose files are moved aside
    (:meth:`RunDir.restart`; a finished, readable run is left as it is)."""
    from rich.console import Console

    console = Console(stderr=True, soft_wrap=True)
    log = log or (lambda msg: console.print(msg, highlight=False, markup=False))
    rundir = RunDir(out) if out is not None else None
    if cfg.recipe in STAGED:
        return _run_staged(STAGED[cfg.recipe], cfg, rundir, progress, log, restart)
    if rundir is not None and not restart and rundir.state(cfg) == "done":
        return _finished(rundir, log)
    setup = prepare(cfg)
    if rundir is None:
        return _train(cfg, setup, None, "new", progress, log)
    with rundir.lock():
        if restart:
            _restart(rundir, cfg, log)
        state = rundir.state(cfg)  # again under the lock: another run may have moved it on meanwhile
        if state == "done":
            return _finished(rundir, log)
        return _train(cfg, setup, rundir, state, progress, log)


def _restart(rundir: RunDir, cfg: RunConfig, log: Callable[[str], None]) -> None:
    for old, new in rundir.restart(cfg):
        log(f"--restart: moved {old} aside to {new.name}")


def _finished(rundir: RunDir, log: Callable[[str], None]) -> dict[str, Any]:
    try:
        summary = rundir.read_summary()
    except RunError as err:
        raise RunError(f"{err}. The run looks finished but its summary is damaged: run the same command with "
                       "--restart to train it again from step 0 in the same directory (the damaged files are kept, "
                       "renamed *.corrupt-<time>), or choose another --out") from None
    log(f"{rundir} already holds this finished run; nothing to do")
    return summary


def _stage_context() -> StageContext:
    """What a staged recipe borrows from this layer: config parsing and reading a run directory's config."""
    from grokkit.config import ConfigError, parse_config

    def parse(data: dict[str, Any], source: str) -> RunConfig:
        try:
            return parse_config(data, source)
        except ConfigError as err:
            raise ValueError(str(err)) from None

    def read_config(path: Path) -> RunConfig | None:
        d = RunDir(path)
        if not d.has_config():
            return None
        try:
            return d.read_config()
        except ConfigError as err:
            raise ValueError(str(err)) from None

    return StageContext(parse=parse, read_config=read_config)


def _run_staged(recipe: StagedRecipe, cfg: RunConfig, rundir: RunDir | None, progress: bool | None,
                log: Callable[[str], None], restart: bool = False) -> dict[str, Any]:
    """Drive a recipe made of stages: parse and run each stage it yields into its own directory (a finished stage is
    skipped, a killed one resumes), holding ``rundir``'s lock throughout, then write what the recipe stitched.
    ``restart``: each stage (and this directory) as :func:`run` says."""
    if rundir is None:
        raise RunError(f"recipe {cfg.recipe} writes one run directory per stage: give an output directory")
    if restart:
        with rundir.lock():
            _restart(rundir, cfg, log)
    if rundir.state(cfg) == "done":
        return _finished(rundir, log)
    context = _stage_context()
    stages = recipe.stages(cfg, rundir.path, context)
    try:  # the recipe validates every stage's config before its first stage; nothing is written yet
        stage: Stage | None = next(stages)
    except StopIteration:
        stage = None
    except ValueError as err:
        raise RunError(str(err)) from None
    with rundir.lock():  # re-entrant: each stage's own run takes its own directory's lock
        if rundir.state(cfg) == "done":  # finished by another run meanwhile
            stages.close()
            return _finished(rundir, log)
        rundir.write_config(cfg)
        results: list[StageResult] = []
        while stage is not None:
            for note in stage.notes:
                log(note)
            try:
                stage_cfg = context.parse(stage.config, f"stage {stage.name} of {cfg.name}")
            except ValueError as err:
                raise RunError(str(err)) from None
            summary = run(stage_cfg, stage.directory, progress=progress, log=log, restart=restart)
            results.append(StageResult(stage.name, stage.directory, summary, RunDir(stage.directory).read_metrics()))
            try:
                stage = stages.send(results[-1])
            except StopIteration:
                stage = None
        try:
            stitched = recipe.finish(cfg, results)
        except ValueError as err:
            raise RunError(str(err)) from None
        return _write_stitched(rundir, stitched)


def _write_stitched(rundir: RunDir, s: Stitched) -> dict[str, Any]:
    """A staged run's own files from what its recipe stitched; the summary last."""
    rundir.write_metrics(s.metrics)
    if s.model_from is not None:
        rundir.copy_model_from(RunDir(s.model_from.parent))
    elif s.model is not None:
        rundir.write_model(*s.model)
    if s.figure is not None:
        rundir.write_figure(s.figure)
    elif s.curves is not None:
        rundir.write_curves(*s.curves)
    return rundir.write_summary(s.summary)  # as a later load reads it


def _train(cfg: RunConfig, setup: Setup, rundir: RunDir | None, state: str, progress: bool | None,
           log: Callable[[str], None]) -> dict[str, Any]:
    if cfg.training.threads:
        torch.set_num_threads(cfg.training.threads)
    out_path = rundir.path if rundir is not None else None
    for note in setup.notes:
        log(note)
    trainer = Trainer(cfg, setup.model, setup.train, setup.test, setup.objective, checkpoint_dir=out_path, log=log,
                      task_sets=setup.task_sets, frozen=setup.frozen, val=setup.val)
    if rundir is not None:
        if state == "resume":
            _resume(trainer, rundir)
            log(f"resuming {rundir} from step {trainer.step}")
        rundir.write_config(cfg)
        if state == "resume":
            rundir.write_metrics(trainer.rows)  # the rows the checkpoint holds
        trainer.on_checkpoint = lambda t: rundir.write_metrics(t.rows)  # progress on disk while training
        if cfg.training.snapshot_every or cfg.training.snapshot_steps:
            trainer.on_snapshot = lambda t: rundir.write_snapshot(t.step, t.model, setup.vocab)
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
    except (MemoryError, RuntimeError) as err:
        if not _out_of_memory(err):
            raise
        kept = (f"; its last checkpoint is kept in {rundir}, and the same command resumes from it once memory is "
                "freed" if rundir is not None and rundir.has_checkpoint() else "")
        raise TrainingError(f"ran out of memory while training, at step {trainer.step} ({type(err).__name__}: "
                            f"{str(err).splitlines()[0][:200]}){kept}. Reduce training.batch_size, "
                            "training.member_chunk, the number of members or the model, or free memory") from None
    finally:
        for sink in sinks:
            sink.close()
    summary = make_summary(cfg, setup, trainer, result)
    if rundir is not None:
        write_outputs(rundir, cfg, setup, result, summary)
    return summary


def _resume(trainer: Trainer, rundir: RunDir) -> None:
    """Load the run's checkpoint into ``trainer``; one that cannot be read (truncated by a full disk or a bad copy,
    or not this run's) is a :class:`RunError` that names it and the way forward. Nothing has been written yet."""
    try:
        trainer.load_checkpoint(rundir.checkpoint_path)
    except (CheckpointError, KeyError, RuntimeError, ValueError, TypeError) as err:
        reason = str(err) if isinstance(err, CheckpointError) else f"{type(err).__name__}: {err}"
        raise RunError(
            f"cannot resume {rundir}: its checkpoint {rundir.checkpoint_path} cannot be read ({reason}). Run the "
            f"same command with --restart to train this run again from step 0 in the same directory (the "
            f"checkpoint is kept, renamed {rundir.checkpoint_path.name}.corrupt-<time>); where the command has no "
            "--restart (compare, repro, tune), rename the checkpoint yourself and run it again; or choose another "
            "--out"
        ) from None


def _last_rows(t: Trainer) -> list[dict[str, Any]]:
    """The rows of the evaluation at the trainer's current step."""
    return [r for r in t.rows[-len(t.seeds):] if r["step"] == t.step]


def make_summary(cfg: RunConfig, setup: Setup, trainer: Trainer, result: TrainResult) -> dict[str, Any]:
    return {
        "name": cfg.name,
        "recipe": cfg.recipe,
        "task": setup.task_name,
        "train_fraction": summary_train_fraction(cfg),
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


def write_outputs(rundir: RunDir, cfg: RunConfig, setup: Setup, result: TrainResult, summary: dict[str, Any]
                  ) -> None:
    """The files of a finished single run; ``summary.json`` last, then the checkpoint goes."""
    metrics = rundir.write_metrics(result.rows)
    rundir.write_model(setup.model, setup.vocab, {"task": setup.task.name, "recipe": cfg.recipe})
    if len(metrics):
        rundir.write_curves(metrics, curve_title(cfg.name, setup.task_name, cfg))
    rundir.write_summary(summary)
    rundir.remove_checkpoint()
