"""``grokkit tune``: a hyper-parameter search per arm (method) with the same budget for every arm, selection on the
validation split only, and the chosen settings re-run on fresh seeds and reported on the test split.

A tune spec (YAML) names a base config (a file or a mapping, with ``{requires.NAME}`` references to runs trained
first, e.g. a teacher), the arms (each a name, dotted overrides and a search space over dotted config keys), one
budget for all arms (candidates, candidates per round, search seeds, step budget) and the fresh seeds of the final
runs. Fair by construction:

* **equal budgets**: the budget is one section of the spec, applied to every arm: the same number of candidates, the
  same step budget, the same search seeds; an arm cannot have its own;
* **selection never reads test metrics**: a candidate's score is computed from ``val_*`` outcomes only (the spec must
  give the task a validation split: ``task.val_fraction`` or ``task.n_val``): per search seed, the fraction of the step
  budget at which validation accuracy reached the threshold *and stayed there* (``val_steps_to_generalize_lasting``
  / steps), or, for a seed that did not, ``1 + log(1 + final validation loss)`` (always worse than any seed that did);
  the candidate's score is the mean over search seeds, lowest wins;
* **fresh seeds**: the chosen setting of each arm is trained again on ``final.seeds`` (which must not overlap the
  search seeds: both the initialisation and the data split change) and reported on the test split.

Candidates are chosen by Optuna's ask-and-tell interface (TPE, seeded per arm and round; its first
``n_startup_trials`` candidates are random), and each round's candidates train as one sweep, so candidates that
differ only in member-level settings (lr, weight decay, init scale, alpha, temperature, train fraction) train packed
into one ensemble. Everything is resumable: the studies are Optuna journals under ``DIR/arms/ARM/``, the rounds are
sweeps (a killed round resumes from its groups' checkpoints), and a finished tune run again is a no-op.

Layout of ``DIR``: ``tune.yaml`` (the spec), ``requires/NAME/``, ``arms/ARM/{optuna.journal,search/,final/}``,
``trace.csv`` (every candidate of every arm: round, settings, validation outcome per seed, score, chosen),
``chosen.json``, ``final.csv`` (per arm and fresh seed: test outcome), ``summary.csv`` and ``tune.md`` (the tables,
each marked with the CSV it shows).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from grokkit.config import ConfigError, _format_validation_error, drop_unused_sections, parse_config, read_yaml
from grokkit.errors import InputError
from grokkit.io import atomic_write, atomic_write_text
from grokkit.rundir import RunDir
from grokkit.sweep.spec import RequiredRun, SweepError, _apply, _load_mapping, _substitute, parse_sweep, trial_id
from grokkit.sweep.store import log_required_runs, required_runs_table
from grokkit.tables import markdown_table

LOCK_FILE = ".tune.lock"


class TuneError(InputError):
    """A tune spec or directory that cannot run: the message says why."""


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Dimension(_Spec):
    """One searched setting: a float range (``low``, ``high``, ``log``), an integer range (``int: true``) or a list
    of ``choices``."""

    low: float | None = Field(None, description="lower end of the range")
    high: float | None = Field(None, description="upper end of the range")
    log: bool = Field(False, description="search the range on a log scale")
    int: bool = Field(False, description="integer values only")
    choices: list[Any] | None = Field(None, description="a list of values to choose from (instead of a range)")

    @model_validator(mode="after")
    def _check(self) -> Dimension:
        if self.choices is not None:
            if self.low is not None or self.high is not None or not self.choices:
                raise ValueError("give either non-empty `choices` or `low`/`high`, not both")
            return self
        if self.low is None or self.high is None or not self.low < self.high:
            raise ValueError(f"a range needs low < high, got low={self.low}, high={self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"a log range needs low > 0, got {self.low}")
        return self

    def distribution(self) -> Any:
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        if self.choices is not None:
            return CategoricalDistribution(self.choices)
        assert self.low is not None and self.high is not None
        if self.int:
            return IntDistribution(int(self.low), int(self.high), log=self.log)
        return FloatDistribution(self.low, self.high, log=self.log)


class Arm(_Spec):
    """A method: dotted overrides of the base config, and the settings searched for it."""

    name: str = Field(..., description="the arm's name (the `arm` column of the tables)")
    overrides: dict[str, Any] = Field(default_factory=dict, description="dotted overrides of the base config")
    space: dict[str, Dimension] = Field(default_factory=dict, description="the searched settings: dotted key -> "
                                        "range or choices")

    @field_validator("name")
    @classmethod
    def _slug(cls, v: str) -> str:
        if not v or not all(c.isalnum() or c in "_.+-" for c in v):
            raise ValueError(f"arm name {v!r} must be letters, digits, '_', '.', '+' or '-'")
        return v


class Budget(_Spec):
    """The search budget of every arm."""

    candidates: int = Field(..., ge=1, description="candidate settings per arm")
    per_round: int | None = Field(None, ge=1, description="candidates asked (and trained packed) per round; "
                                  "default: all at once (a random search, since TPE starts with random candidates)")
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1, description="search seeds per candidate")
    steps: int | None = Field(None, ge=1, description="the step budget (training.steps) of every candidate")


class Final(_Spec):
    """The chosen setting of each arm, re-run on fresh seeds and reported on the test split."""

    seeds: list[int] = Field(..., min_length=1, description="fresh seeds (none of the search seeds)")
    steps: int | None = Field(None, ge=1, description="training.steps of the final runs; default: the budget's")


class TuneSpec(_Spec):
    name: str = Field("tune", description="the tune's name")
    base: str | dict[str, Any] = Field(..., description="config file (relative to the spec) or inline mapping")
    overrides: dict[str, Any] = Field(default_factory=dict, description="dotted overrides applied to the base")
    requires: dict[str, RequiredRun] = Field(
        default_factory=dict, description="runs the arms depend on (a teacher), trained once; `{requires.NAME}` in an "
        "override is its directory")
    arms: list[Arm] = Field(..., min_length=1, description="the methods, each searched with the same budget")
    budget: Budget = Field(..., description="the search budget of every arm")
    final: Final = Field(..., description="the fresh-seed runs of each arm's chosen setting")
    sampler_seed: int = Field(0, description="seed of the TPE sampler (per arm and round: offset from it)")
    n_startup_trials: int = Field(10, ge=0, description="TPE: random candidates before it models the results")
    pack: bool = Field(True, description="train a round's candidates packed into ensembles (False: one by one)")

    @model_validator(mode="after")
    def _check(self) -> TuneSpec:
        names = [a.name for a in self.arms]
        if len(set(names)) != len(names):
            raise ValueError(f"arm names must be distinct, got {names}")
        overlap = sorted(set(self.final.seeds) & set(self.budget.seeds))
        if overlap:
            raise ValueError(f"final.seeds must be fresh: {overlap} are also search seeds (budget.seeds)")
        for arm in self.arms:
            bad = [k for k in arm.space if k in ("seeds", "members", "training.steps") or k.startswith("members.")]
            if bad:
                raise ValueError(f"arm {arm.name}: {bad} cannot be searched (seeds and the step budget are the "
                                 "same for every arm)")
        return self


def parse_tune(data: Any, source: str = "<dict>") -> TuneSpec:
    if not isinstance(data, dict):
        raise TuneError(f"invalid tune spec {source}: the top level must be a mapping")
    try:
        return TuneSpec.model_validate(data)
    except ValidationError as err:
        raise TuneError(_format_validation_error(err, source, TuneSpec, "tune spec").replace(
            "invalid config", "invalid tune spec")) from None


def load_tune(path: str | Path) -> tuple[TuneSpec, Path]:
    path = Path(path)
    return parse_tune(read_yaml(path, "tune spec", TuneError), str(path)), path.resolve().parent


# ---------------------------------------------------------------------------------------------------- configs
def _arm_base(spec: TuneSpec, root: Path, arm: Arm, refs: dict[str, str], steps: int | None) -> dict[str, Any]:
    try:
        data = _apply(_apply(_load_mapping(spec.base, root, "base"), spec.overrides), arm.overrides)
        if steps is not None:
            data = _apply(data, {"training.steps": steps})
    except SweepError as err:
        raise TuneError(str(err)) from None
    data = drop_unused_sections(data)  # a base section only some arms' recipes read
    data.pop("members", None)
    return _substitute(data, refs)


def _check_arm(spec: TuneSpec, root: Path, arm: Arm) -> None:
    """Every arm's config is valid with a validation split, and every searched key exists: before anything runs."""
    data = _arm_base(spec, root, arm, {k: f"<requires.{k}>" for k in spec.requires}, spec.budget.steps)
    probe = {}
    for key, dim in arm.space.items():
        probe[key] = dim.choices[0] if dim.choices is not None else (
            int(dim.low) if dim.int else dim.low)  # type: ignore[arg-type]
    try:
        cfg = parse_config(_apply(data, probe) if probe else data, f"arm {arm.name}")
    except (ConfigError, SweepError) as err:
        raise TuneError(f"arm {arm.name}: {err}") from None
    for t in cfg.all_tasks():
        if not (getattr(t, "val_fraction", 0) or getattr(t, "n_val", 0)):
            raise TuneError(f"arm {arm.name}: selection reads the validation split only, and task {t.name} has none: "
                            "set task.val_fraction (modular tasks) or task.n_val (bit tasks)")


def _sweep(spec: TuneSpec, base: dict[str, Any], name: str, settings: list[dict[str, Any]], seeds: list[int]) -> Any:
    """One round (or the final runs) as a sweep: each setting crossed with the seeds."""
    zipped = {k: [s[k] for s in settings] for k in settings[0]} if settings and settings[0] else {}
    return parse_sweep({"name": name, "base": base, "zip": zipped, "seeds": seeds, "pack": spec.pack})


def _trial_dir(sweep_dir: Path, setting: dict[str, Any], seed: int) -> Path:
    return sweep_dir / "trials" / trial_id({**setting, "seed": seed})


# ---------------------------------------------------------------------------------------------------- scoring
def seed_score(member: dict[str, Any], steps: int) -> float:
    """A search seed's outcome on the validation split only: lasting validation generalisation as a fraction of the
    step budget, else ``1 + log(1 + final validation loss)``; a failed (NaN) member scores ``inf``."""
    if member.get("failed"):
        return math.inf
    lasting = member.get("val_steps_to_generalize_lasting")
    if lasting is not None:
        return lasting / max(1, steps)
    loss = member.get("final_val_loss")
    return 1.0 + math.log1p(loss) if loss is not None and math.isfinite(loss) else math.inf


def _candidate_row(sweep_dir: Path, setting: dict[str, Any], seeds: list[int]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    scores = []
    for seed in seeds:
        s = RunDir(_trial_dir(sweep_dir, setting, seed)).read_summary()
        m = s["members"][0]
        row[f"val_lasting@{seed}"] = m.get("val_steps_to_generalize_lasting")
        row[f"val_acc@{seed}"] = m.get("final_val_acc")
        row[f"val_loss@{seed}"] = m.get("final_val_loss")
        scores.append(seed_score(m, s["steps"]))
    row["score"] = sum(scores) / len(scores)
    row["val_generalized"] = sum(row[f"val_lasting@{s}"] is not None for s in seeds)
    return row


# ---------------------------------------------------------------------------------------------------- the search
def _study(spec: TuneSpec, arm: Arm, arm_dir: Path, round_index: int) -> Any:
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = JournalStorage(JournalFileBackend(str(arm_dir / "optuna.journal")))
    # seeded per arm and round: a resumed search asks what an uninterrupted one would
    arm_index = [a.name for a in spec.arms].index(arm.name)
    sampler = optuna.samplers.TPESampler(seed=spec.sampler_seed + 1000 * arm_index + round_index,
                                         n_startup_trials=spec.n_startup_trials)
    return optuna.create_study(study_name=arm.name, storage=storage, sampler=sampler, direction="minimize",
                               load_if_exists=True)


def _search_arm(spec: TuneSpec, root: Path, arm: Arm, out: Path, refs: dict[str, str], run_kwargs: dict[str, Any],
                log: Callable[[str], None]) -> pd.DataFrame:
    from optuna.trial import TrialState

    from grokkit.sweep import run_sweep

    arm_dir = out / "arms" / arm.name
    arm_dir.mkdir(parents=True, exist_ok=True)
    base = _arm_base(spec, root, arm, refs, spec.budget.steps)
    per_round = spec.budget.per_round or spec.budget.candidates
    n_rounds = math.ceil(spec.budget.candidates / per_round)
    distributions = {k: d.distribution() for k, d in arm.space.items()}
    rows: list[dict[str, Any]] = []
    for r in range(n_rounds):
        study = _study(spec, arm, arm_dir, r)

        def of_round(t: Any) -> bool:  # a candidate asked by a run killed before it was labelled belongs here too
            return t.user_attrs.get("round", r if t.state == TrialState.RUNNING else None) == r

        round_trials = [t for t in study.trials if of_round(t)]
        if not round_trials:  # ask this round's candidates (they are in the journal before anything trains)
            for _ in range(min(per_round, spec.budget.candidates - len(study.trials))):
                study.ask(distributions).set_user_attr("round", r)
            round_trials = [t for t in study.trials if of_round(t)]
        settings = [{k: t.params[k] for k in arm.space} for t in round_trials]
        unique = [dict(s) for s in {json.dumps(s, sort_keys=True): s for s in settings}.values()]
        todo = [t for t in round_trials if t.state != TrialState.COMPLETE]
        if todo:
            log(f"[{arm.name}] round {r + 1}/{n_rounds}: {len(unique)} candidate(s) x {len(spec.budget.seeds)} "
                "seed(s)")
            run_sweep(_sweep(spec, base, f"{spec.name}/{arm.name}/search", unique, spec.budget.seeds), root,
                      arm_dir / "search", log=log, **run_kwargs)
        for t, setting in zip(round_trials, settings):
            row = {"arm": arm.name, "candidate": t.number, "round": r, **setting,
                   **_candidate_row(arm_dir / "search", setting, spec.budget.seeds)}
            if t.state != TrialState.COMPLETE:
                study.tell(t.number, row["score"] if math.isfinite(row["score"]) else 1e9)
            rows.append(row)
    trace = pd.DataFrame(rows)
    best = trace.sort_values(["score", "candidate"]).iloc[0]
    trace["chosen"] = trace.candidate == best.candidate
    return trace


def _final_arm(spec: TuneSpec, root: Path, arm: Arm, out: Path, refs: dict[str, str], chosen: dict[str, Any],
               run_kwargs: dict[str, Any], log: Callable[[str], None]) -> pd.DataFrame:
    from grokkit.sweep import run_sweep

    arm_dir = out / "arms" / arm.name
    steps = spec.final.steps or spec.budget.steps
    base = _arm_base(spec, root, arm, refs, steps)
    log(f"[{arm.name}] final: the chosen setting on fresh seeds {spec.final.seeds}")
    run_sweep(_sweep(spec, base, f"{spec.name}/{arm.name}/final", [chosen], spec.final.seeds), root,
              arm_dir / "final", log=log, **run_kwargs)
    rows = []
    for seed in spec.final.seeds:
        s = RunDir(_trial_dir(arm_dir / "final", chosen, seed)).read_summary()
        m = s["members"][0]
        training = RunDir(_trial_dir(arm_dir / "final", chosen, seed)).read_config().training
        rows.append({"arm": arm.name, "seed": seed, **chosen, "steps": s["steps"],
                     "training.steps": training.steps, "training.hold_window": training.hold_window,
                     "steps_to_generalize_lasting": m.get("steps_to_generalize_lasting"),
                     "steps_to_generalize": m.get("steps_to_generalize"),
                     "final_test_acc": m.get("final_test_acc"), "final_train_acc": m.get("final_train_acc"),
                     "failed": m.get("failed", False), "wall_seconds": s.get("wall_seconds"),
                     # a staged method's steps before the tuned model's (GrokTransfer's weak model); 0 for the others
                     "weak_steps": m.get("weak_steps", 0)})
    return pd.DataFrame(rows)


def summary_table(final: pd.DataFrame, chosen: dict[str, dict[str, Any]], control: str = "scratch") -> pd.DataFrame:
    """Per arm: the chosen settings; time to lasting generalisation (held for the hold window) as censored data
    (:mod:`grokkit.analysis.survival`): the seeds that generalised by the budget, the Kaplan–Meier median lasting step
    with its 95% interval (``> budget`` where the data cannot give it: a seed that never generalised is censored at
    the end of its run, never left out), the median steps of a weak stage trained before it (GrokTransfer; 0
    otherwise), the Kaplan–Meier median counting them (a seed's time and its censoring step both include its weak
    stage) and the log-rank p-value of that time against the ``control`` arm; final test accuracy, and the median
    wall-clock of a final seed (its share of the packed ensemble it trained in, as the sweep records it, a weak stage
    included)."""
    from grokkit.analysis.survival import format_p, km_of, logrank_p, table_outcomes

    weak_all = pd.to_numeric(final.weak_steps, errors="coerce").fillna(0) if "weak_steps" in final else pd.Series(
        0.0, index=final.index)
    outcomes = table_outcomes(final)
    with_weak = outcomes.assign(duration=outcomes.duration + weak_all)
    arms = list(dict.fromkeys(final.arm))
    rows = []
    for arm in arms:
        sel = final.arm == arm
        g, weak = final[sel], weak_all[sel]
        budget = float(pd.to_numeric(g.steps).max())
        km, km_weak = km_of(outcomes[sel], budget), km_of(with_weak[sel], float((g.steps + weak).max()))
        p = logrank_p(with_weak[sel], with_weak[final.arm == control]) if arm != control and control in arms \
            else float("nan")
        wall = pd.to_numeric(g.wall_seconds, errors="coerce").dropna() if "wall_seconds" in g else pd.Series([])
        acc = g.final_test_acc.astype(float)
        rows.append({
            "arm": arm,
            "chosen": ", ".join(f"{k.split('.')[-1]}={_short(v)}" for k, v in chosen[str(arm)].items()) or "(none)",
            "generalised (lasting)": km.count_text(),
            "median lasting step [95% CI]": km.median_text(),
            "weak-stage steps": int(weak.median()),
            "median lasting step incl. weak stage [95% CI]": km_weak.median_text(),
            f"log-rank p vs {control}": format_p(p),
            "final test acc (mean ± sd)": f"{acc.mean():.3f} ± {acc.std(ddof=1) if len(acc) > 1 else 0.0:.3f}",
            "min-max": f"{acc.min():.3f}-{acc.max():.3f}",
            "wall-clock s per final seed": round(float(wall.median()), 1) if len(wall) else None,
        })
    return pd.DataFrame(rows)


def _short(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def run_tune(spec: TuneSpec, root: Path, out: str | Path, executor: str = "local", workers: int = 1,
             address: str | None = None, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run (or resume) a tune into ``out``; returns the chosen settings and the final table (as records)."""
    from filelock import FileLock, Timeout

    from grokkit.sweep.runner import train_required
    from grokkit.sweep.spec import required_configs

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise TuneError(f"--out {out} exists and is not a directory")
    if out.exists() and any(out.iterdir()) and not (out / "tune.yaml").exists():
        raise TuneError(f"--out {out} is not empty and holds no grokkit tune; choose a new directory")
    saved = out / "tune.yaml"
    if saved.exists():
        before = parse_tune(read_yaml(saved, "tune spec", TuneError), str(saved))
        added = _extension(before, spec)
        if added is None:
            raise TuneError(f"--out {out} holds a tune of another spec; choose a new directory (or run the same "
                            "spec there to resume it, or append arms or final seeds to it)")
        if added:
            log(f"extending the tune in {out} with {added}")
    for arm in spec.arms:
        _check_arm(spec, root, arm)
    sweep_like = parse_sweep({"name": spec.name, "base": {}, "requires": {
        k: v.model_dump(mode="json") for k, v in spec.requires.items()}})
    try:
        required_configs(sweep_like, root)
    except SweepError as err:
        raise TuneError(str(err)) from None
    out.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(out / LOCK_FILE))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise TuneError(f"--out {out} is in use by another grokkit tune") from None
    try:
        atomic_write_text(saved, yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False))
        try:
            refs = train_required(sweep_like, root, out, log)
        except SweepError as err:
            raise TuneError(str(err)) from None
        log_required_runs(out, log)
        run_kwargs = {"executor": executor, "workers": workers, "address": address}
        traces, finals, chosen = [], [], {}
        for arm in spec.arms:
            trace = _search_arm(spec, root, arm, out, refs, run_kwargs, log)
            best = trace[trace.chosen].iloc[0]
            chosen[arm.name] = {k: _plain(best[k]) for k in arm.space}
            traces.append(trace)
            finals.append(_final_arm(spec, root, arm, out, refs, chosen[arm.name], run_kwargs, log))
        trace_all = pd.concat(traces, ignore_index=True)
        final_all = pd.concat(finals, ignore_index=True)
        atomic_write(out / "trace.csv", lambda p: trace_all.to_csv(p, index=False))
        atomic_write(out / "final.csv", lambda p: final_all.to_csv(p, index=False))
        atomic_write_text(out / "chosen.json", json.dumps(chosen, indent=2))
        table = write_tables(spec, out)
        return {"chosen": chosen, "table": table.to_dict("records"), "final": final_all.to_dict("records")}
    finally:
        lock.release()


def write_tables(spec: TuneSpec, out: str | Path) -> pd.DataFrame:
    """(Re)write ``summary.csv`` and ``tune.md`` from the records in ``out`` (``trace.csv``, ``final.csv``,
    ``chosen.json``), e.g. a tune's outputs copied under docs/ (``grokkit tune SPEC --out DIR --table-only``);
    returns the summary table."""
    out = Path(out)
    missing = [f for f in ("trace.csv", "final.csv", "chosen.json") if not (out / f).exists()]
    if missing:
        raise TuneError(f"--out {out} holds no {', '.join(missing)}: run the tune first")
    trace, final = pd.read_csv(out / "trace.csv"), pd.read_csv(out / "final.csv")
    table = summary_table(final, json.loads((out / "chosen.json").read_text()))
    teachers = required_runs_table(out)
    if len(teachers):
        atomic_write(out / "teachers.csv", lambda p: teachers.to_csv(p, index=False))
    elif (out / "teachers.csv").exists():
        teachers = pd.read_csv(out / "teachers.csv")
    atomic_write(out / "summary.csv", lambda p: table.to_csv(p, index=False))
    atomic_write_text(out / "tune.md", _markdown(spec, trace, table, teachers))
    return table


def _extension(before: TuneSpec, spec: TuneSpec) -> str | None:
    """What ``spec`` adds to the tune ``before`` ("" if nothing; None if it changes it otherwise). Arms appended to the
    list search and report on their own, and final seeds appended to ``final.seeds`` add runs of each arm's chosen
    setting: neither changes what the tune already ran or chose."""
    n_arms, seeds = len(before.arms), before.final.seeds
    if len(spec.arms) < n_arms or spec.final.seeds[:len(seeds)] != seeds:
        return None
    trimmed = spec.model_copy(update={"arms": spec.arms[:n_arms],
                                      "final": spec.final.model_copy(update={"seeds": seeds})})
    if trimmed != before:
        return None
    added = []
    if len(spec.arms) > n_arms:
        added.append(f"arms {', '.join(a.name for a in spec.arms[n_arms:])}")
    if len(spec.final.seeds) > len(seeds):
        added.append(f"final seeds {spec.final.seeds[len(seeds):]}")
    return " and ".join(added)


def _plain(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


def _markdown(spec: TuneSpec, trace: pd.DataFrame, table: pd.DataFrame, teachers: pd.DataFrame | None = None) -> str:
    b = spec.budget
    lines = [f"# {spec.name}", "",
             f"Budget per arm (the same for every arm): {b.candidates} candidates "
             f"({b.per_round or b.candidates} per round), search seeds {b.seeds}, "
             f"{b.steps or 'the base config'} steps; selection on the validation split only (score: lasting "
             f"validation generalisation as a fraction of the budget, else 1 + log(1 + val loss); mean over seeds). "
             f"Final runs: fresh seeds {spec.final.seeds}, test split.", "",
             "<!-- data: ./summary.csv -->", markdown_table(table), ""]
    if teachers is not None and len(teachers):
        lines += ["## Required runs (e.g. teachers)", "",
                  "Each run the arms start from, trained once before them: its own final test accuracy and the step "
                  "from which it generalised for good (empty: it did not).", "",
                  "<!-- data: ./teachers.csv -->", markdown_table(teachers), ""]
    lines += ["## Search trace", ""]
    for arm, g in trace.groupby("arm", sort=False):
        shown = g.drop(columns=["arm"]).dropna(axis=1, how="all").round(6)
        lines += [f"### {arm}", "", f"<!-- data: ./trace.csv; where: arm={arm} -->", markdown_table(shown), ""]
    return "\n".join(lines)
