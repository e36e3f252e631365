"""Running a sweep: pack trials into ensembles, execute the groups (locally or on Ray), write one run directory per
trial, keep the results table.

Layout of a sweep directory::

    DIR/sweep.yaml            the resolved sweep spec (for the record; a later, different spec may extend the sweep)
    DIR/requires/NAME/        runs the trials depend on (e.g. a teacher), trained first
    DIR/groups/GROUP/         a packed ensemble while it trains (its checkpoint lets a killed sweep resume)
    DIR/.attempts/GROUP.jsonl one line per start of that group (pid, host, whether it resumed); removed when it is done
    DIR/trials/TRIAL/         one run directory per trial (the run-directory contract), or error.json if it failed
    DIR/corrupt/TRIAL.TIME/   a finished trial whose files could not be read, moved aside (it is trained again)
    DIR/corrupt/GROUP/        files ``--restart`` moved aside in a group's folder, kept when the group is done
    DIR/results.parquet       one row per trial: flattened config, outcome, wall-clock
    DIR/.sweep.lock           held while a sweep runs; a second sweep on DIR is refused

A trial is done when its directory holds ``summary.json`` for the same config; re-running the sweep skips it. Trials
that failed (``error.json``) are tried again. Groups are exploded into trial directories only when the whole group has
finished, so a group is either done or resumed from its checkpoint. A group started again (a resumed sweep, or Ray
retrying a task whose worker or node died) resumes from its last checkpoint and rewrites its trials' directories whole;
each trial's ``summary.json`` records how many times its group was started (``sweep.attempts``) and whether the
last start resumed a checkpoint (``sweep.resumed``).

Memory: before anything is written, each kind of trial is checked to fit alone in what a group may use (the
device's memory, or ``GROKKIT_MEMORY_LIMIT``, shared by the ``workers`` groups that run side by side); a packed group
whose estimate exceeds it is split into smaller groups (:func:`plan`, :mod:`grokkit.resources`). A group whose
checkpoint cannot be read fails with a message naming it; ``restart=True`` (``grokkit sweep --restart``) trains such
groups again from step 0, the unreadable file moved aside.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from grokkit.checkpoint import atomic_write_text, load_model
from grokkit.config import MEMBER_SETTINGS, MemberConfig, RunConfig, parse_config
from grokkit.resources import LIMIT_ENV, ResourceError, check_memory, fits, memory_limit, parse_size
from grokkit.rundir import RunDir, curve_title, train_fraction
from grokkit.sweep.spec import SweepError, SweepSpec, Trial, expand, required_configs
from grokkit.sweep.store import log_required_runs

LOCK_FILE = ".sweep.lock"
#: in a trial's directory instead of a summary when its group failed
ERROR_FILE = "error.json"
ATTEMPTS_DIR = ".attempts"
#: Ray executor: how often Ray re-runs a group whose worker process or node died (a system failure; a group's own
#: errors are caught in :func:`run_group` and never retried). The retry resumes from the group's last checkpoint.
RAY_MAX_RETRIES = 3
#: Member-level settings: trials that differ only in these are packed into one ensemble.
PACKABLE = {"seed": ("seeds",), **{name: tuple(s.default.split(".")) for name, s in MEMBER_SETTINGS.items()}}


@dataclass
class Group:
    """Trials trained together as one ensemble (one member per trial)."""

    id: str
    trials: list[Trial]
    config: RunConfig


@dataclass
class SweepResult:
    trials: list[Trial]
    groups: list[Group]
    skipped: int
    outcomes: dict[str, str] = field(default_factory=dict)  # trial id -> "ok" | "error: ..."
    wall_seconds: float = 0.0
    table: pd.DataFrame | None = None


def _pack_key(cfg: RunConfig) -> str:
    d = cfg.model_dump(mode="json")
    d.pop("name")
    d.pop("seeds", None)
    d.pop("members", None)
    for path in PACKABLE.values():
        node = d
        for p in path[:-1]:
            node = node.get(p) or {}
        if isinstance(node, dict) and path[-1] in node:
            node[path[-1]] = None
    return json.dumps(d, sort_keys=True)


def _member(cfg: RunConfig) -> MemberConfig:
    """The trial's one member with every member-level setting that applies to it written out explicitly."""
    m = cfg.member_list()[0]
    values = {name: cfg.member_values(name)[0] for name in MEMBER_SETTINGS if cfg.member_applies(name)}
    return MemberConfig(seed=m.seed, **values)


def _fraction(t: Trial) -> float:
    if t.config.tasks or not t.config.task.is_modular:  # multi-task: fractions in the pack key; bit tasks: sizes
        return 1.0
    m = t.config.member_list()[0]
    return m.train_fraction if m.train_fraction is not None else t.config.task.train_fraction


def _split_by_padding(trials: list[Trial], max_padding: float) -> list[list[Trial]]:
    """Members of an ensemble are padded to its largest training set; split so that at most ``max_padding`` of
    each group's training rows are padding."""
    ordered = sorted(trials, key=_fraction)
    parts: list[list[Trial]] = []
    for t in ordered:
        if parts and 1 - _fraction(parts[-1][0]) / _fraction(t) <= max_padding + 1e-12:
            parts[-1].append(t)
        else:
            parts.append([t])
    return parts


def plan(trials: list[Trial], pack: bool = True, max_pack: int = 256, name: str = "sweep",
         max_padding: float | None = None, memory_budget: int | None = None) -> list[Group]:
    """Group trials whose configs agree except for member-level settings (seed, fraction, lr, wd, alpha, T).

    ``max_padding``: the largest share of padded training rows allowed in a group (members train on sets of
    different sizes when the fraction varies). Default: 0.25 on CPU, where padding costs compute, and no limit on
    GPUs, where one large ensemble beats several small ones. ``memory_budget``: bytes one group may use; a group
    whose memory estimate exceeds it is split into equal smaller groups (None: no limit)."""
    buckets: dict[str, list[Trial]] = {}
    for t in trials:
        key = _pack_key(t.config) if pack else t.id
        buckets.setdefault(key, []).append(t)
    groups = []
    for members in buckets.values():
        limit = max_padding
        if limit is None:
            limit = 0.25 if members[0].config.training.device == "cpu" else 1.0
        for part in _split_by_padding(members, limit) if limit < 1.0 else [members]:
            for start in range(0, len(part), max_pack):
                for chunk in _within_budget(part[start:start + max_pack], name, memory_budget):
                    groups.append(_group(chunk, name))
    return groups


def group_cost(group: Group) -> float:
    """A relative estimate of a group's training work: steps x members x training rows (the largest member's, as
    padded) x scored positions (two where distillation reads a position other than the answer's). Only its order
    matters: :func:`execute_local` starts the costliest groups first, so that no long group starts last."""
    cfg = group.config
    rows = 0
    for t in group.trials:
        try:
            own = None if t.config.tasks else _fraction(t)
            rows = max(rows, sum(tc.example_counts(own)[0] for tc in t.config.all_tasks()))
        except NotImplementedError:  # a task kind that cannot say: its fraction stands in for its rows
            rows = max(rows, int(1000 * _fraction(t)))
    batch = cfg.training.batch_size
    rows = min(rows, batch) if batch else rows
    distill = getattr(cfg, "distill", None)
    scored = 2 if distill is not None and distill.position != "final" else 1
    return float(cfg.training.steps * len(group.trials) * max(1, rows) * scored)


def _group(chunk: list[Trial], name: str) -> Group:
    digest = hashlib.sha1("\n".join(t.id for t in chunk).encode()).hexdigest()[:12]
    base = chunk[0].config.model_dump(mode="json")
    base.pop("seeds", None)
    base["members"] = [_member(t.config).model_dump(mode="json", exclude_none=True) for t in chunk]
    base["name"] = f"{name}/group-{digest}"
    return Group(f"group-{digest}", chunk, parse_config(base, f"group {digest}"))


def _within_budget(chunk: list[Trial], name: str, budget: int | None) -> list[list[Trial]]:
    """``chunk`` as it is if its group fits ``budget``, else split into equal parts of the largest size that fits
    (found by bisection on the estimate; one trial always forms a group: :func:`check_trials_fit` refuses a trial
    that does not fit alone before anything runs)."""
    if budget is None or len(chunk) == 1 or fits(_group(chunk, name).config, budget):
        return [chunk]
    lo, hi = 1, len(chunk)  # a group of lo trials fits, one of hi does not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(_group(chunk[:mid], name).config, budget) else (lo, mid)
    return [chunk[i:i + lo] for i in range(0, len(chunk), lo)]


def group_budget(executor: str, workers: int, device: str) -> tuple[int | None, str]:
    """(bytes one packed group may use, where that comes from): locally the device's memory (or
    ``GROKKIT_MEMORY_LIMIT``) shared by the ``workers`` groups that run side by side; on Ray, whose groups run on
    other machines, only ``GROKKIT_MEMORY_LIMIT`` (per group)."""
    if executor == "ray":
        raw = os.environ.get(LIMIT_ENV)
        return (parse_size(raw) if raw else None), f"{LIMIT_ENV}={raw}" if raw else "no limit on Ray"
    have, where = memory_limit(device)
    if have is None or workers <= 1:
        return have, where
    return have // workers, f"{where}, shared by {workers} workers"


def check_trials_fit(trials: list[Trial], budget: tuple[int | None, str]) -> None:
    """Refuse (:class:`~grokkit.resources.ResourceError`, naming the trial) a sweep one of whose trials needs more
    memory alone than a group may use; one trial of each packable kind is estimated."""
    if budget[0] is None:
        return
    seen: set[str] = set()
    for t in sorted(trials, key=_fraction, reverse=True):  # the largest training set of each kind first
        key = _pack_key(t.config)
        if key in seen:
            continue
        seen.add(key)
        try:
            check_memory(t.config, budget)
        except ResourceError as err:
            raise ResourceError(f"trial {t.id}: {err}") from None


# ------------------------------------------------------------------------------------------------ trial state
def trial_dir(sweep_dir: Path, trial: Trial) -> Path:
    return sweep_dir / "trials" / trial.id


def trial_done(sweep_dir: Path, trial: Trial) -> bool:
    d = RunDir(trial_dir(sweep_dir, trial))
    if not d.has_summary() or not d.has_config():
        return False
    try:
        saved = d.read_config()
        d.read_summary()
    except Exception:  # noqa: BLE001 - an unreadable trial is re-run (see move_damaged)
        return False
    # the run's name is a label (the sweep's name / the trial id): a sweep renamed, or a trial shared by two sweeps
    # of the same settings (a subset spec and the whole), finds its finished trials
    return saved.model_copy(update={"name": trial.config.name}) == trial.config


def damaged(sweep_dir: Path, trial: Trial) -> dict[str, str]:
    """File name -> why, for each file of a trial that looks finished (it has a summary) and cannot be read."""
    d = RunDir(trial_dir(sweep_dir, trial))
    return d.unreadable() if d.has_summary() else {}


def move_damaged(sweep_dir: Path, trial: Trial) -> Path:
    """Move a damaged trial's directory to ``DIR/corrupt/TRIAL.TIME`` (kept, out of the results' way), so that the
    sweep trains it again; returns where it went."""
    target = sweep_dir / "corrupt" / f"{trial.id}.{time.strftime('%Y%m%d-%H%M%S')}"
    n = 1
    while target.exists():
        target = target.with_name(f"{trial.id}.{time.strftime('%Y%m%d-%H%M%S')}-{n}")
        n += 1
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(trial_dir(sweep_dir, trial), target)
    return target


def _write_error(sweep_dir: Path, trial: Trial, message: str, tb: str) -> None:
    d = trial_dir(sweep_dir, trial)
    d.mkdir(parents=True, exist_ok=True)
    atomic_write_text(d / ERROR_FILE, json.dumps({"trial": trial.id, "error": message, "traceback": tb}, indent=2))


# ------------------------------------------------------------------------------------------------ one group
def run_group(group: Group, sweep_dir: str | Path, threads: int | None = None, restart: bool = False
              ) -> dict[str, str]:
    """Train one packed group and write its trials' run directories. Never raises: a failure is recorded in each of
    the group's trial directories (``error.json``) and returned, so the other groups go on. ``restart``: a group
    whose checkpoint cannot be read trains again from step 0 (see :func:`grokkit.api.run`)."""
    import torch

    from grokkit.api import run

    sweep_dir = Path(sweep_dir)
    if threads:
        torch.set_num_threads(threads)
    group_dir = sweep_dir / "groups" / group.id
    try:
        _record_attempt(group_dir)
        summary = run(group.config, group_dir, progress=False, log=lambda msg: None, restart=restart)
        explode(group, group_dir, sweep_dir, summary)
    except Exception as err:  # noqa: BLE001 - isolate the failure to this group's trials
        tb = traceback.format_exc()
        message = f"{type(err).__name__}: {err}"
        for t in group.trials:
            _write_error(sweep_dir, t, message, tb)
        return {t.id: f"error: {message}" for t in group.trials}
    _keep_moved_aside(group_dir, sweep_dir / "corrupt" / group.id)
    shutil.rmtree(group_dir, ignore_errors=True)
    attempts = _attempts_file(group_dir)
    attempts.unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # the last group out removes the folder; others may still be writing there
        attempts.parent.rmdir()
    return {t.id: "failed" if m["failed"] else "ok" for t, m in zip(group.trials, summary["members"])}


def _keep_moved_aside(group_dir: Path, target: Path) -> None:
    """Before a finished group's folder is removed: keep the files ``--restart`` moved aside there
    (``*.corrupt-<time>``, ``*.restart-<time>``) in ``target`` (``DIR/corrupt/GROUP``); grokkit deletes nothing of
    a person's that it could not read."""
    moved = [p for p in group_dir.iterdir() if ".corrupt-" in p.name or ".restart-" in p.name]
    if moved:
        target.mkdir(parents=True, exist_ok=True)
        for p in moved:
            os.replace(p, target / p.name)


def _attempts_file(group_dir: Path) -> Path:
    # outside groups/ (which holds only the groups' run directories) and outside the run directory (which must hold
    # nothing but a run)
    return group_dir.parent.parent / ATTEMPTS_DIR / f"{group_dir.name}.jsonl"


def _record_attempt(group_dir: Path) -> None:
    """Append one line for this start of the group: which process, where, and whether it resumes a checkpoint."""
    import socket

    path = _attempts_file(group_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "time": time.time(),
                       "resumed": RunDir(group_dir).has_checkpoint()})
    with open(path, "a") as f:  # one short write per start; a torn last line is skipped by _attempts
        f.write(line + "\n")


def _attempts(group_dir: Path) -> list[dict[str, Any]]:
    path = _attempts_file(group_dir)
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


def explode(group: Group, group_dir: Path, sweep_dir: Path, summary: dict[str, Any]) -> None:
    """Split a finished group run into one run directory per trial (summary.json written last in each)."""
    import torch

    from grokkit.models import same_model

    if (group_dir / "tensorboard").exists():  # keep the group's event files: DIR/tensorboard/GROUP
        (sweep_dir / "tensorboard").mkdir(exist_ok=True)
        shutil.rmtree(sweep_dir / "tensorboard" / group.id, ignore_errors=True)
        shutil.move(str(group_dir / "tensorboard"), str(sweep_dir / "tensorboard" / group.id))
    source = RunDir(group_dir)
    metrics = source.read_metrics()
    model, vocab, meta = source.read_model()
    k = len(group.trials)
    starts = _attempts(group_dir)
    attempts, resumed = max(1, len(starts)), bool(starts and starts[-1]["resumed"])
    snapshots = [(step, load_model(path)[0]) for step, path in source.snapshots()]

    def member(m: Any, i: int, seed: int) -> Any:
        single, params = same_model(m, [seed]), dict(m.named_parameters())
        with torch.no_grad():
            for name, p in single.named_parameters():
                p.copy_(params[name][i:i + 1])
        return single

    for i, trial in enumerate(group.trials):
        d = RunDir(trial_dir(sweep_dir, trial))
        d.path.mkdir(parents=True, exist_ok=True)
        d.remove_summary()
        (d / ERROR_FILE).unlink(missing_ok=True)
        cfg = trial.config
        d.write_config(cfg)
        rows = d.write_metrics(metrics[metrics.member == i].assign(member=0))
        seed = cfg.member_list()[0].seed
        single = member(model, i, seed)
        for step, snap in snapshots:  # the trial's own member of each of the group's snapshots
            d.write_snapshot(step, member(snap, i, seed), vocab)
        d.write_model(single, vocab, {k_: v for k_, v in meta.items()
                                      if k_ not in ("format", "shape", "vocab", "token_layout", "seeds")})
        if len(rows):
            d.write_curves(rows, curve_title(trial.id, summary["task"], cfg))
        s = dict(summary)
        s.update(name=cfg.name, train_fraction=train_fraction(cfg), members=[summary["members"][i]],
                 wall_seconds=round(summary["wall_seconds"] / k, 3),
                 sweep={"trial": trial.id, "coords": trial.coords, "group": group.id, "pack_size": k, "index": i,
                        "group_wall_seconds": summary["wall_seconds"], "attempts": attempts,
                        "resumed": resumed})
        d.write_summary(s)


def _exit_with_parent(parent: int, interval: float = 2.0) -> None:
    """In a pool worker: exit once the process that started it has gone (a killed ``grokkit sweep``/``compare``),
    instead of training on unseen and racing the next run for the same group folder. Checkpoints are atomic, so
    the next run resumes from the last one."""
    import threading

    def watch() -> None:
        while True:
            time.sleep(interval)
            if os.getppid() != parent:
                os._exit(3)

    threading.Thread(target=watch, name="grokkit-parent-watch", daemon=True).start()


def _run_group_payload(payload: tuple[str, list[tuple[str, str, dict[str, Any]]], str], sweep_dir: str,
                       threads: int | None, parent: int | None = None, restart: bool = False) -> dict[str, str]:
    """Picklable entry point for process pools and Ray: configs travel as JSON."""
    if parent is not None:
        _exit_with_parent(parent)
    gid, trials, group_cfg = payload
    group = Group(gid, [Trial(tid, parse_config(json.loads(c)), coords) for tid, c, coords in trials],
                  parse_config(json.loads(group_cfg)))
    return run_group(group, sweep_dir, threads, restart)


def _payload(group: Group) -> tuple[str, list[tuple[str, str, dict[str, Any]]], str]:
    return (group.id, [(t.id, t.config_json(), t.coords) for t in group.trials],
            json.dumps(group.config.model_dump(mode="json")))


# ------------------------------------------------------------------------------------------------ executors
Report = Callable[[Group, dict[str, str]], None]


def execute_local(groups: list[Group], sweep_dir: Path, workers: int, report: Report, restart: bool = False) -> None:
    if workers <= 1 or len(groups) <= 1:
        for g in groups:
            report(g, run_group(g, sweep_dir, restart=restart))
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    threads = max(1, (os.cpu_count() or 1) // workers)
    groups = sorted(groups, key=group_cost, reverse=True)  # longest first: the last group to start is a short one
    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
        futures = {pool.submit(_run_group_payload, _payload(g), str(sweep_dir), threads, os.getpid(), restart): g
                   for g in groups}
        for fut in as_completed(futures):
            report(futures[fut], fut.result())


def execute_ray(groups: list[Group], sweep_dir: Path, report: Report, address: str | None,
                cpus_per_group: float, restart: bool = False) -> None:
    """Each group is a Ray task. On a cluster the sweep directory must be on a filesystem every node shares."""
    try:
        import ray
    except ImportError:
        raise SweepError("--executor ray needs Ray: pip install 'grokkit[ray]'") from None
    started = False
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if address:
            kwargs["address"] = address
        ray.init(**kwargs)
        started = True
    try:
        threads = max(1, int(cpus_per_group))
        # A worker or node that dies mid-group is a system failure: Ray re-runs the task (on any node), and the
        # group resumes from its last checkpoint in the shared sweep directory.
        task = ray.remote(num_cpus=cpus_per_group, max_retries=RAY_MAX_RETRIES,
                          retry_exceptions=False)(_run_group_payload)
        pending = {task.remote(_payload(g), str(sweep_dir.resolve()), threads, None, restart): g for g in groups}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                g = pending.pop(ref)
                try:
                    outcome = ray.get(ref)
                except Exception as err:  # noqa: BLE001 - lost RAY_MAX_RETRIES + 1 times: record and go on
                    outcome = {t.id: f"error: {type(err).__name__}: {err}" for t in g.trials}
                    for t in g.trials:
                        _write_error(sweep_dir, t, outcome[t.id], "")
                report(g, outcome)
    finally:
        if started:
            ray.shutdown()


# ------------------------------------------------------------------------------------------------ the sweep
def _log_errors(outcomes: dict[str, str], log: Callable[[str], None]) -> None:
    """One line per distinct error: how many trials, which (the first few), and the message (which says what to
    do, e.g. --restart for a group whose checkpoint cannot be read)."""
    by_message: dict[str, list[str]] = {}
    for trial, outcome in outcomes.items():
        if outcome.startswith("error"):
            by_message.setdefault(outcome.removeprefix("error: "), []).append(trial)
    for message, ids in by_message.items():
        more = f" and {len(ids) - 3} more" if len(ids) > 3 else ""
        log(f"{len(ids)} trial(s) failed ({', '.join(ids[:3])}{more}; each has error.json): {message}")


class _Lock:
    def __init__(self, sweep_dir: Path) -> None:
        from filelock import FileLock, Timeout

        self.path = sweep_dir / LOCK_FILE
        self._lock = FileLock(str(self.path))
        self._timeout = Timeout

    def __enter__(self) -> _Lock:
        try:
            self._lock.acquire(timeout=0)
        except self._timeout:
            raise SweepError(f"{self.path.parent} is in use by another sweep (lock {self.path} is held); "
                             "wait for it to finish or choose another directory") from None
        return self

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


def train_required(spec: SweepSpec, root: Path, out: Path, log: Callable[[str], None]) -> dict[str, str]:
    """Train (or find finished) every run ``spec.requires`` names into ``out/requires/NAME``, in order, each with the
    paths of the runs before it; returns their directories. A run that cannot start raises :class:`SweepError`."""
    from grokkit.api import RunError, run

    dirs: dict[str, str] = {}
    for name in spec.requires:
        cfg = required_configs(spec, root, dirs)[name]
        log(f"required run {name!r}: {cfg.name}")
        try:
            run(cfg, out / "requires" / name, progress=False, log=log)
        except RunError as err:
            raise SweepError(f"required run {name!r} cannot run: {err}") from None
        dirs[name] = str((out / "requires" / name).resolve())
    return dirs


def run_sweep(spec: SweepSpec, root: Path, out: str | Path, executor: str = "local", workers: int = 1,
              address: str | None = None, cpus_per_group: float = 1.0, dry_run: bool = False,
              log: Callable[[str], None] = print, restart: bool = False) -> SweepResult:
    """Run (or resume, or extend) a sweep into ``out``; returns what was planned and what happened. ``restart``:
    groups whose checkpoint cannot be read train again from step 0 (the file moved aside)."""
    from grokkit.sweep.store import build_table, write_table

    out = Path(out)
    if executor not in ("local", "ray"):
        raise SweepError(f"executor {executor!r} unknown; allowed: local, ray")
    if out.exists() and not out.is_dir():
        raise SweepError(f"--out {out} exists and is not a directory")
    if out.exists() and any(out.iterdir()) and not (out / "sweep.yaml").exists():
        raise SweepError(f"--out {out} is not empty and holds no grokkit sweep; choose a new directory")
    required = required_configs(spec, root)
    checked = expand(spec, root)  # validate every trial before anything is written
    budget = group_budget(executor, workers, checked[0].config.training.device) if checked else (None, "")
    check_trials_fit(checked, budget)  # and refuse one too large for the machine even alone
    if dry_run:
        trials = expand(spec, root, {k: str(out / "requires" / k) for k in required})
        return SweepResult(trials, plan(trials, spec.pack, spec.max_pack, spec.name, spec.max_padding, budget[0]), 0)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with _Lock(out):
        atomic_write_text(out / "sweep.yaml", yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False))
        required_dirs = train_required(spec, root, out, log)
        log_required_runs(out, log)
        trials = expand(spec, root, required_dirs)
        pending = [t for t in trials if not trial_done(out, t)]
        for t in pending:
            problems = damaged(out, t)
            if problems:
                where = move_damaged(out, t)
                log(f"trial {t.id} looked finished but cannot be read ({'; '.join(problems.values())}); it is "
                    f"trained again, its old directory kept as {where}")
        groups = plan(pending, spec.pack, spec.max_pack, spec.name, spec.max_padding, budget[0])
        result = SweepResult(trials, groups, len(trials) - len(pending))
        sizes = sorted((len(g.trials) for g in groups), reverse=True)
        log(f"{len(trials)} trials: {result.skipped} already done, {len(pending)} to run in {len(groups)} "
            f"packed ensemble(s) of sizes {sizes}")
        resuming = [g.id for g in groups if RunDir(out / "groups" / g.id).has_checkpoint()]
        if resuming:
            log(f"{len(resuming)} group(s) resume from their checkpoints: {', '.join(resuming)}")
        n_done = 0

        def report(g: Group, outcome: dict[str, str]) -> None:
            nonlocal n_done
            n_done += 1
            result.outcomes.update(outcome)
            bad = [v for v in outcome.values() if v.startswith("error")]
            state = f"{len(bad)} error(s): {bad[0]}" if bad else "ok"
            log(f"[{n_done}/{len(groups)}] {g.id} ({len(g.trials)} trials): {state}")

        if executor == "local":
            execute_local(groups, out, workers, report, restart)
        else:
            execute_ray(groups, out, report, address, cpus_per_group, restart)
        _log_errors(result.outcomes, log)
        table = build_table(out, trials, spec)
        write_table(out, table)
        result.table = table
        if spec.threshold is not None and table.status.isin(["ok", "failed"]).any():
            from grokkit.analysis.threshold import threshold_report

            threshold_report(table, out, spec.threshold.x, spec.threshold.by, spec.threshold.n_bootstrap)
        if spec.map is not None and (table.status == "ok").any():
            from grokkit.analysis.map import map_report

            map_report(table, out, spec.map)
    result.wall_seconds = time.perf_counter() - t0
    return result
