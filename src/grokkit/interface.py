"""The public Python interface: what ``import grokkit`` exports, and all the ``grokkit`` command calls.

Every function takes plain Python values (paths, dicts, keyword overrides) and returns result objects
(:mod:`grokkit.results`) or pandas DataFrames; errors are :class:`grokkit.GrokkitError` with a message that says
what to do. A notebook's first run::

    import grokkit

    teacher = grokkit.run("configs/smoke.yaml", **{"training.steps": 1500})
    student = grokkit.run("configs/smoke.yaml", recipe="distill", distill={"teacher": teacher},
                          **{"task.train_fraction": 0.2})
    student.to_frame()            # one row per member: final accuracies, steps to generalise
    student.plot()                # accuracy and loss curves
"""

from __future__ import annotations

import copy
import hashlib
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from grokkit.errors import GrokkitError, InputError, RunInterrupted
from grokkit.results import RunResult, SingleMember, SweepResult, TuneResult

if TYPE_CHECKING:
    from grokkit.config import RunConfig

ConfigLike = "str | Path | Mapping[str, Any] | RunConfig"


def _cache_dir() -> Path:
    import os

    root = os.environ.get("GROKKIT_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "grokkit")
    return Path(root)


def _teacher_path(value: Any) -> Any:
    """A teacher given from Python as a path: a :class:`RunResult` is its directory; a model in memory (a
    :class:`SingleMember`, or ``(ensemble, vocabulary)``) is saved once to a file named by its content under
    ``$GROKKIT_CACHE/models`` (default ``~/.cache/grokkit``), so a re-run names the same file."""
    if value is None or isinstance(value, str | Path):
        return None if value is None else str(value)
    if isinstance(value, RunResult):
        return str(value.dir)
    if isinstance(value, SingleMember):
        model, vocab = value.ensemble, value.vocab
    elif isinstance(value, tuple) and len(value) == 2:
        model, vocab = value
    else:
        from torch import nn

        if isinstance(value, nn.Module):
            raise InputError("a teacher model in memory needs its vocabulary: give (model, vocab), a member of a "
                             "RunResult (result.member(i)), or the RunResult itself")
        raise InputError(f"a teacher is a path, a RunResult or a model, not a {type(value).__name__}")
    from safetensors.torch import save

    from grokkit.checkpoint import save_model

    digest = hashlib.sha256(save({n: p.detach().cpu().contiguous() for n, p in model.state_dict().items()})
                            + repr(vocab.to_dict()).encode()).hexdigest()[:20]
    path = _cache_dir() / "models" / f"teacher-{digest}.safetensors"
    if not path.is_file():
        save_model(path, model, vocab, {"source": "grokkit.run (a model in memory)"})
    return str(path)


def _resolve_teachers(data: dict[str, Any]) -> dict[str, Any]:
    section = data.get("distill")
    if isinstance(section, dict) and "teacher" in section:
        teacher = section["teacher"]
        section = dict(section, teacher=[_teacher_path(t) for t in teacher] if isinstance(teacher, list)
                       else _teacher_path(teacher))
        data = dict(data, distill=section)
    return data


def _config_data(config: Any) -> tuple[dict[str, Any], str]:
    from grokkit.config import RunConfig, read_config_file

    if isinstance(config, str | Path):
        return read_config_file(config), str(config)
    if isinstance(config, RunConfig):
        return config.model_dump(mode="json"), "<RunConfig>"
    if isinstance(config, Mapping):
        return copy.deepcopy(dict(config)), "<dict>"
    raise InputError(f"config must be a YAML path, a dict or a RunConfig, not a {type(config).__name__}")


def make_config(config: Any, overrides: Mapping[str, Any] | None = None, cli_overrides: list[str] | None = None
                ) -> RunConfig:
    """A validated :class:`~grokkit.config.RunConfig` from a YAML path, a dict or a RunConfig, with dotted overrides
    (``{"training.steps": 500}``, or ``["training.steps=500"]`` as on the command line; both validated alike) and
    teachers given as results or models resolved to paths."""
    from grokkit.config import _set_dotted, apply_overrides, parse_config

    data, source = _config_data(config)
    data = apply_overrides(data, cli_overrides or [])
    for key, value in (overrides or {}).items():
        _set_dotted(data, key, value.model_dump(mode="json") if hasattr(value, "model_dump") else value)
    return parse_config(_resolve_teachers(data), source)


def run(config: Any, out: str | Path | None = None, *, progress: bool | None = None, restart: bool = False,
        log: Callable[[str], None] | None = None, assignments: list[str] | None = None, **overrides: Any
        ) -> RunResult:
    """Train a run and return its :class:`~grokkit.results.RunResult`.

    Args:
        config: a YAML path, a dict (as the YAML would be) or a :class:`~grokkit.config.RunConfig`.
        out: the run directory. A finished run there is read back (nothing trained); a killed one resumes; another
            config there is refused. ``None``: a temporary directory that lives as long as the result. Every recipe,
            staged ones (continual, transfer) included.
        progress: show a progress bar (default: the config's ``training.progress``).
        restart: the run's checkpoint is unreadable: move it aside and train from the start into ``out``.
        log: where progress lines go (default: stderr).
        assignments: overrides as the command line writes them, ``["training.steps=500"]`` (values read as YAML).
        **overrides: dotted config keys, validated as on the command line: ``**{"training.steps": 500}``, or a
            section as a dict: ``distill={"teacher": teacher_result}``. A distillation teacher may be a path, a
            :class:`RunResult` or a model in memory (``result.member(0)``, or ``(ensemble, vocabulary)``).

    Returns:
        the :class:`RunResult`: ``members`` (typed per-member outcomes), ``metrics`` (DataFrame), ``model``,
        ``member(i)``, ``plot()``, ``to_frame()``.

    Example::

        result = grokkit.run("configs/smoke.yaml", **{"training.steps": 300, "seeds": [0, 1]})
        result.to_frame()[["seed", "final_test_acc", "steps_to_generalize_lasting"]]
    """
    from grokkit import api

    cfg = make_config(config, {k.replace("__", "."): v for k, v in overrides.items()}, assignments)
    temporary = None
    if out is None:
        temporary = tempfile.TemporaryDirectory(prefix="grokkit-run-")
        out = Path(temporary.name) / "run"
    kwargs: dict[str, Any] = {"progress": progress, "restart": restart}
    if log is not None:
        kwargs["log"] = log
    from grokkit.rundir import RunDir

    already = RunDir(out).has_summary()
    try:
        api.run(cfg, out, **kwargs)
    except KeyboardInterrupt as stop:
        raise interrupted(Path(out), stop, "run") from None
    result = RunResult(out, temporary=temporary)
    result.reused = already
    return result


def interrupted(out: Path, stop: KeyboardInterrupt, what: str) -> RunInterrupted:
    """What to tell a person whose run (or sweep) in ``out`` was stopped: where the last checkpoint is, and that the
    same command resumes."""
    from grokkit.checkpoint import CHECKPOINT_FILE, checkpoint_step
    from grokkit.errors import Terminated

    signal, code = ("SIGTERM", 143) if isinstance(stop, Terminated) else ("SIGINT", 130)
    checkpoints = sorted(Path(out).rglob(CHECKPOINT_FILE), key=lambda p: p.stat().st_mtime) if Path(out).is_dir() \
        else []
    if checkpoints:
        step = checkpoint_step(checkpoints[-1])
        where = f"the last checkpoint is {checkpoints[-1]}" + (f" (step {step})" if step is not None else "")
    elif what == "sweep":
        where = f"finished trials are kept in {out}/trials"
    else:
        where = "no checkpoint was written yet (training.checkpoint_every), so it will start over"
    return RunInterrupted(f"{what} in {out} stopped by {signal}: {where}; the same command resumes it", code)


def plot_runs(runs: Mapping[str, RunResult], title: str = "") -> Any:
    """Several runs on one figure, one colour per run (e.g. ``{"distilled": student, "scratch": baseline}``):
    accuracy and loss against step, test solid and train dotted, every member; returns the matplotlib Figure.

    Example::

        grokkit.plot_runs({"distilled": student, "scratch": baseline}, "mod 29 at 30% of the pairs")
    """
    from grokkit.plots import groups_figure

    return groups_figure({label: r.metrics for label, r in runs.items()}, title)


def compare_runs(runs: Mapping[str, RunResult]) -> pd.DataFrame:
    """One row per member of every run, labelled by its key (``arm``): seed, final accuracies and losses, steps to
    generalise."""
    return pd.concat([r.to_frame().assign(arm=label) for label, r in runs.items()], ignore_index=True)


def load(run_dir: str | Path) -> RunResult:
    """A finished run written by :func:`run` or ``grokkit run`` (also a stage of a staged run, or a sweep trial) as a
    :class:`RunResult`. An unfinished run is refused with the command that finishes it.

    Example::

        result = grokkit.load("runs/smoke")
        result.metrics.query("member == 0")[["step", "train_loss", "test_loss"]]
    """
    from grokkit.checkpoint import describe_missing_model
    from grokkit.rundir import RunDir, RunError

    d = RunDir(run_dir)
    if not d.has_summary():
        if d.path.is_dir() and d.has_config():
            raise RunError(f"{d.path} is an unfinished run (no summary.json yet): finish it with `grokkit run "
                           f"{d.config_path} --out {d.path}` (it resumes), then load it")
        raise RunError(describe_missing_model(d.path).replace("model.safetensors", "summary.json"))
    return RunResult(d.path)


def sweep(spec: str | Path, out: str | Path, *, overrides: list[str] | None = None, executor: str = "local",
          workers: int = 1, address: str | None = None, cpus_per_group: float = 1.0, dry_run: bool = False,
          restart: bool = False, log: Callable[[str], None] | None = None) -> SweepResult:
    """Run (or resume, or extend) the sweep in the YAML file ``spec`` into ``out``; finished trials are skipped.

    ``overrides``: ``dotted.key=value`` strings applied to the base config; ``executor``: ``local`` (``workers``
    processes side by side) or ``ray``; ``dry_run``: plan only (``result.run_info.groups``), train nothing;
    ``restart``: groups whose checkpoint cannot be read train again from step 0 (the file moved aside). Returns
    the :class:`SweepResult` (``trials``, ``summary``, ``threshold`` as DataFrames; ``plot()``)."""
    from grokkit.sweep import load_sweep, run_sweep

    loaded, root = load_sweep(spec)
    if overrides:
        loaded = loaded.with_overrides(overrides)
    try:
        info = run_sweep(loaded, root, out, executor=executor, workers=workers, address=address,
                         cpus_per_group=cpus_per_group, dry_run=dry_run, restart=restart, log=log or _stderr)
    except KeyboardInterrupt as stop:
        raise interrupted(Path(out), stop, "sweep") from None
    return SweepResult(out, run=info)


def tune(spec: str | Path, out: str | Path, *, executor: str = "local", workers: int = 1, address: str | None = None,
         train: bool = True, log: Callable[[str], None] | None = None) -> TuneResult:
    """Tune every arm of the tune spec ``spec`` with the same budget (selection on the validation split), then run
    each arm's choice on fresh seeds (reported on the test split); a killed tune resumes. ``train=False`` only
    rewrites the tables (``summary.csv``, ``tune.md``) from a finished tune's files. Returns the
    :class:`TuneResult` (``chosen``, ``trials``, ``final``, ``summary``; ``plot()``)."""
    from grokkit.tune import load_tune, run_tune, write_tables

    loaded, root = load_tune(spec)
    if train:
        run_tune(loaded, root, out, executor=executor, workers=workers, address=address, log=log or _stderr)
    else:
        write_tables(loaded, Path(out))
    return TuneResult(out)


def results(sweep_dir: str | Path, *, where: str | None = None, group_by: list[str] | None = None
            ) -> pd.DataFrame:
    """A sweep's results summarised per setting (``group_by``: columns; default: its case and axes), optionally of
    the trials matching the pandas query ``where``."""
    from grokkit.sweep import summarize

    result = SweepResult(sweep_dir)
    return summarize(result.trials, group_by if group_by is not None else result.default_group_by(), where)


def readable_results(summary: pd.DataFrame) -> pd.DataFrame:
    """:func:`results`' table as people read it: the grouping columns, trials (errors, pending), generalised n/N,
    the share with its interval, the Kaplan–Meier median lasting step [95% CI] (``> budget`` where the data cannot
    give it), the log-rank p against scratch, final test accuracy and wall-clock."""
    from grokkit.analysis.survival import format_p

    group_by = [c for c in summary.columns if c not in SUMMARY_COLUMNS]
    return summary[[*group_by, "trials", "errors", "pending"]].assign(
        generalised=[f"{k}/{n}" for k, n in zip(summary.generalized, summary.n)],
        **{"share [95% CI]": [f"{v:.2f} [{lo:.2f}, {hi:.2f}]" if n else "—" for v, lo, hi, n in
                              zip(summary.share, summary.share_low, summary.share_high, summary.n)],
           "median lasting step [95% CI]": summary.km_median_text.fillna("—"),
           "log-rank p": [format_p(p) for p in summary.logrank_p]},
        test_acc=summary.test_acc, test_acc_sd=summary.test_acc_sd, wall_s=summary.wall_s)


#: the columns :func:`results` adds to the grouping columns
SUMMARY_COLUMNS = ("trials", "errors", "pending", "n", "generalized", "share", "share_low", "share_high", "km_median",
                   "km_median_low", "km_median_high", "km_median_text", "logrank_p", "test_acc", "test_acc_sd",
                   "wall_s")


def threshold(sweep_dir: str | Path, *, x: str = "task.train_fraction", by: str = "case", n_bootstrap: int = 1000
              ) -> pd.DataFrame:
    """Fit P(generalise) against ``x`` per value of ``by``; writes ``threshold.{csv,md,png}`` into the sweep
    directory and returns the table (one row per method: the threshold and its interval)."""
    from grokkit.analysis.threshold import threshold_report
    from grokkit.sweep import read_table

    return threshold_report(read_table(sweep_dir), Path(sweep_dir), x, by, n_bootstrap)


def draw_map(sweep_dir: str | Path) -> pd.DataFrame:
    """A sweep's map (its ``map:`` section) from the trials finished so far: writes ``map.{csv,md,png}`` and returns
    the cells."""
    from grokkit.analysis.map import map_report
    from grokkit.sweep import SweepError, current_table

    spec, table = current_table(sweep_dir)
    if spec.map is None:
        raise SweepError(f"{sweep_dir}/sweep.yaml has no `map:` section")
    return map_report(table, Path(sweep_dir), spec.map)


def inherit(sweep_dir: str | Path, *, teacher: str = "teacher", cases: list[str] | None = None,
            out: str | Path | None = None) -> pd.DataFrame:
    """What distilled students inherit: each case's students' Fourier spectra over their snapshots against the
    teacher's key frequencies (the sweep's required run ``teacher``); writes ``inherit.{csv,md,png}`` and returns
    the per-seed table."""
    from grokkit.analysis.inherit import inheritance_report
    from grokkit.sweep import SweepError, current_table

    sweep_dir = Path(sweep_dir)
    spec, table = current_table(sweep_dir)
    if teacher not in spec.requires:
        raise SweepError(f"the sweep requires no run {teacher!r} (it requires {sorted(spec.requires)})")
    done = table[table.status == "ok"]
    if cases:
        unknown = sorted(set(cases) - set(table.case))
        if unknown:
            raise SweepError(f"--case {unknown}: no such case (cases: {', '.join(dict.fromkeys(table.case))})")
        done = done[done.case.isin(cases)]
    if done.empty:
        raise SweepError(f"{sweep_dir}: no finished trial yet")
    arms = {str(c): [sweep_dir / "trials" / t for t in g.trial] for c, g in done.groupby("case", sort=False)}
    target = Path(out) if out is not None else sweep_dir
    target.mkdir(parents=True, exist_ok=True)
    return inheritance_report(sweep_dir / "requires" / teacher, arms, target,
                              f"{spec.name}: students against the teacher run {teacher!r}")


def analyze(run_dir: str | Path, *, member: int | None = None, position: str = "final", min_gap: float = 1.5,
            out: str | Path | None = None) -> tuple[dict[str, Any], list[Path]]:
    """Progress measures of a run (Nanda et al.): key Fourier frequencies of the embedding, restricted and excluded
    loss, softmax collapse, weight norms, over its snapshots; writes ``analysis.json`` and figures into ``out``
    (default: the run directory) and returns the analysis and the paths written."""
    from grokkit.analysis.progress import analyze_run, write_analysis

    result = analyze_run(run_dir, member=member, position=position, min_gap=min_gap)
    return result, write_analysis(result, Path(out) if out is not None else Path(run_dir))


def report(directory: str | Path, out: str | Path | None = None, *, partial: bool = False) -> tuple[Path, list[str]]:
    """One static HTML file with every figure and table of a run or a sweep; returns its path and what it could not
    show (an unfinished or damaged directory is refused unless ``partial``, which draws what there is under a
    banner)."""
    from grokkit.report import write_report

    return write_report(Path(directory), Path(out) if out is not None else None, partial=partial)


def markdown(table: pd.DataFrame) -> str:
    """A table as markdown (a missing step count reads ``never``), as the docs and reports print them."""
    from grokkit.tables import markdown_table

    return markdown_table(table)


def compare(comparison: str | Path, out: str | Path, *, executor: str = "local", workers: int = 1,
            overrides: list[str] | None = None, train: bool = True, log: Callable[[str], None] | None = None
            ) -> pd.DataFrame:
    """Rank methods (a comparison YAML: one sweep per setting, its cases the methods): steps to generalise and
    wall-clock per setting; writes CSV, markdown and figures into ``out`` and returns the table."""
    from grokkit.compare import compare as run_compare

    return run_compare(comparison, out, executor=executor, workers=workers, overrides=overrides or [],
                       log=log or _stderr, run=train)


def compare_markdown(table: pd.DataFrame) -> str:
    """A comparison table (:func:`compare`) as markdown, log-rank p-values against its control arm."""
    from grokkit.compare import markdown

    return markdown(table, table.attrs.get("control", "scratch"))


def figures() -> dict[str, Any]:
    """The paper figures and reference results ``grokkit repro`` knows: name -> (title, what it needs)."""
    from grokkit.repro import ReferenceSpec, available, load_figure

    out = {}
    for name, path in available().items():
        spec, _ = load_figure(path)
        needs = (f"run: {spec.run}" if isinstance(spec, ReferenceSpec)
                 else f"sweeps: {', '.join(spec.sweeps.values())}")
        out[name] = (spec.title, needs)
    return out


def repro(figure: str, out: str | Path, *, executor: str = "local", workers: int = 1,
          overrides: list[str] | None = None, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Reproduce one of the paper's figures (or a reference result): run the sweeps it needs (finished trials are
    skipped), draw PNG + CSV into ``out``; returns paths and the summary table (``"summary"``, a DataFrame)."""
    from grokkit.repro import repro as run_repro

    return run_repro(figure, out, executor=executor, workers=workers, overrides=overrides or [],
                     log=log or _stderr)


def demo(out: str | Path = "runs/demo", *, seeds: int | None = None, steps: int | None = None,
         progress: bool | None = None) -> pd.DataFrame:
    """The headline: a teacher grokked on (a + b) mod 113, then students on mod 107 at 20% of the pairs, distilled
    and from scratch; writes ``headline.{md,csv}``, ``comparison.png`` and the three run directories into ``out``;
    returns the headline table (one row per student)."""
    from grokkit.demo import run_demo

    return run_demo(out, n_seeds=seeds, student_steps=steps, progress=progress)


def _stderr(message: str) -> None:
    from rich.console import Console

    Console(stderr=True, soft_wrap=True).print(message, highlight=False, markup=False)


__all__ = [
    "GrokkitError", "RunResult", "SingleMember", "SweepResult", "TuneResult", "analyze", "compare",
    "compare_markdown", "compare_runs", "demo", "draw_map", "figures", "inherit", "load", "make_config", "markdown",
    "plot_runs", "readable_results", "report", "repro", "results", "run", "sweep", "threshold", "tune"
]
