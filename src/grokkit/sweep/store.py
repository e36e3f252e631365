"""The results store: one Parquet table of every trial of a sweep (flattened config, outcome, wall-clock).

``steps_to_generalize_lasting`` / ``generalized_lasting`` hold for the trial's hold window (``training.hold_window``:
a run recorded before the window existed gets it applied here, :func:`grokkit.analysis.survival.held_step`), and
:func:`summarize` treats time to lasting generalisation as censored data (:mod:`grokkit.analysis.survival`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from grokkit.analysis.survival import arms_table, held_step, table_outcomes
from grokkit.checkpoint import atomic_write
from grokkit.rundir import RunDir, RunError
from grokkit.sweep.spec import SweepError, SweepSpec, Trial

RESULTS_FILE = "results.parquet"
OUTCOME_COLUMNS = ["trial", "status", "error", "final_train_acc", "final_test_acc", "steps_to_generalize",
                   "generalized", "steps_to_generalize_lasting", "generalized_lasting", "steps", "wall_seconds",
                   "group", "pack_size", "group_wall_seconds"]


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        elif isinstance(v, (list, tuple)):
            out[key] = json.dumps(v)  # Parquet columns need one type; lists are kept as JSON text
        else:
            out[key] = v
    return out


def trial_row(sweep_dir: Path, trial: Trial) -> dict[str, Any]:
    d = sweep_dir / "trials" / trial.id
    row: dict[str, Any] = {"trial": trial.id, **{("case" if k == "case" else k): v for k, v in trial.coords.items()}}
    row.update(trial.labels)
    config = _flatten(trial.config.model_dump(mode="json"))
    config.pop("seeds", None)
    for k, v in config.items():
        row.setdefault(k, v)
    run, error_path = RunDir(d), d / "error.json"
    damage = _unreadable_summary(run)
    if damage is not None:
        row.update(status="error", error=f"{damage}; run the sweep again: it moves this trial aside and trains it "
                   "again", generalized=False, generalized_lasting=False)
    elif run.has_summary():
        s = run.read_summary()
        m = s["members"][0]
        sw = s.get("sweep", {})
        window = trial.config.training.hold_steps()
        lasting = held_step(m.get("steps_to_generalize_lasting"), s["steps"], window)
        row.update(status="failed" if m["failed"] else "ok", error=m.get("error"),
                   final_train_acc=m["final_train_acc"], final_test_acc=m["final_test_acc"],
                   steps_to_generalize=m["steps_to_generalize"], generalized=m["steps_to_generalize"] is not None,
                   steps_to_generalize_lasting=lasting, generalized_lasting=lasting is not None,
                   steps=s["steps"], wall_seconds=s["wall_seconds"], group=sw.get("group"),
                   pack_size=sw.get("pack_size", 1), group_wall_seconds=sw.get("group_wall_seconds"))
        for key, value in s.items():  # run-level diagnostics, e.g. teacher_acc_on_student_test
            if key.startswith("teacher_") and (value is None or isinstance(value, (int, float))):
                row[key] = value
        for name, t in (m.get("tasks") or {}).items():  # multi-task runs: per-task outcomes
            row[f"test_acc@{name}"] = t["final_test_acc"]
            row[f"steps_to_generalize@{name}"] = t["steps_to_generalize"]
            row[f"generalized@{name}"] = t["steps_to_generalize"] is not None
            row[f"steps_to_generalize_lasting@{name}"] = held_step(t.get("steps_to_generalize_lasting"), s["steps"],
                                                                   window)
        for key, value in m.items():  # recipe-specific scalars, e.g. continual backward_transfer
            if key not in row and isinstance(value, (int, float, bool)) and key not in ("failed_step",):
                row[key] = value
            elif key != "tasks" and isinstance(value, dict):
                for sub, v in value.items():
                    if v is None or isinstance(v, (int, float, bool)):
                        row[f"{key}@{sub}"] = v
    elif error_path.exists():
        try:
            message = json.loads(error_path.read_text())["error"]
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as err:
            message = f"{error_path} cannot be read ({err}); run the sweep again to retry this trial"
        row.update(status="error", error=message, generalized=False, generalized_lasting=False)
    else:
        row.update(status="pending", generalized=False, generalized_lasting=False)
    return row


def _unreadable_summary(run: RunDir) -> str | None:
    """Why a trial's summary cannot be used (unreadable, or not a trial's summary), or None (fine, or none yet)."""
    if not run.has_summary():
        return None
    try:
        s = run.read_summary()
        s["members"][0]["failed"]  # noqa: B018 - the fields trial_row reads
        s["steps"], s["wall_seconds"]  # noqa: B018
    except RunError as err:
        return str(err)
    except (KeyError, IndexError, TypeError) as err:
        return f"{run.summary_path} cannot be read: it lacks {err}"
    return None


def build_table(sweep_dir: Path, trials: list[Trial], spec: SweepSpec | None = None) -> pd.DataFrame:
    rows = [trial_row(sweep_dir, t) for t in trials]
    df = pd.DataFrame(rows)
    for c in OUTCOME_COLUMNS:
        if c not in df:
            df[c] = None
    for c in ("steps_to_generalize", "steps_to_generalize_lasting"):
        df[c] = pd.to_numeric(df[c], errors="coerce").astype("Int64")
    for c in ("final_train_acc", "final_test_acc", "wall_seconds", "group_wall_seconds"):
        df[c] = pd.to_numeric(df[c], errors="coerce")
    for c in ("generalized", "generalized_lasting"):
        df[c] = df[c].fillna(False).astype(bool)
    if spec is not None:
        df.attrs["axes"] = spec.axes()
    return df


def write_table(sweep_dir: Path, table: pd.DataFrame) -> None:
    atomic_write(sweep_dir / RESULTS_FILE, lambda p: table.to_parquet(p, index=False))


def read_table(sweep_dir: str | Path) -> pd.DataFrame:
    """The results table a finished sweep wrote; a sweep that has not finished (no table yet) or a directory that is
    no sweep raises :class:`SweepError` naming the missing file and what to do."""
    d = Path(sweep_dir)
    path = d / RESULTS_FILE
    if not d.is_dir():
        raise SweepError(f"{d} is not a directory: give a sweep directory (grokkit sweep ... --out DIR)")
    if not path.exists() and (d / "sweep.yaml").exists():
        raise SweepError(f"{path} is missing: the sweep has not finished (the table is written when it ends). Run the "
                         f"same `grokkit sweep ... --out {d}` again to finish it (finished trials are kept), or "
                         f"`grokkit report {d} --partial` to see the trials finished so far")
    if not path.exists():
        raise SweepError(f"{d} holds no {RESULTS_FILE}: is it a sweep directory (grokkit sweep ... --out)?")
    try:
        return pd.read_parquet(path)
    except Exception as err:  # noqa: BLE001 - pyarrow raises many kinds
        raise SweepError(f"{path} is unreadable: {err}") from None


def sweep_record(sweep_dir: str | Path) -> dict[str, Any]:
    """The ``sweep.yaml`` a sweep directory holds (the resolved spec, as a mapping); raises :class:`SweepError`
    naming the file when it is missing or unreadable."""
    from grokkit.config import read_yaml

    path = Path(sweep_dir) / "sweep.yaml"
    data = read_yaml(path, "sweep record", SweepError)
    if not isinstance(data, dict):
        raise SweepError(f"sweep record {path} must hold a mapping; it is damaged: restore it or re-run the sweep "
                         "into a new directory")
    return data


def axis_columns(sweep_dir: str | Path, table: pd.DataFrame) -> list[str]:
    """The columns a sweep's results are grouped by by default: ``case`` and the sweep's axes (from its
    ``sweep.yaml``) that the table has."""
    spec = sweep_record(sweep_dir)
    axes = list(spec.get("grid") or {}) + list(spec.get("zip") or {})
    return (["case"] if "case" in table.columns else []) + [a for a in axes if a in table.columns]


def require_finished(table: pd.DataFrame, sweep_dir: str | Path, what: str) -> pd.DataFrame:
    """``table`` if at least one of its trials finished (status ok or failed), else :class:`SweepError` saying so,
    with the trials' states and what to do: ``what`` needs finished trials."""
    if table.status.isin(["ok", "failed"]).any():
        return table
    counts = ", ".join(f"{n} {s}" for s, n in table.status.value_counts().items()) or "no trials"
    errors = "; `grokkit report DIR --partial` shows their errors" if (table.status == "error").any() else ""
    raise SweepError(f"{sweep_dir} has no finished trial yet ({counts}; a finished trial has "
                     f"trials/TRIAL/summary.json), so there is nothing for {what}. Run (or resume) the sweep until "
                     f"trials finish{errors}")


def summarize(table: pd.DataFrame, by: list[str], where: str | None = None, control: str | None = "scratch"
              ) -> pd.DataFrame:
    """Per group: trials (errors and pending among them), and over its finished trials (``n``): lasting
    generalisation within the budget (held for the hold window) as censored data: ``generalized`` of ``n``, the
    ``share`` with its Wilson interval, the Kaplan–Meier median step with its interval (``km_median*``; ``inf``: not
    reached within the budget) and its printed form ``km_median_text``, and ``logrank_p`` against the group of case
    ``control`` that agrees on the other grouping columns (when grouping by ``case``); final test accuracy
    (mean, sd) and the wall-clock summed."""
    df = table
    if where:
        try:
            df = df.query(where)
        except Exception as err:  # noqa: BLE001 - pandas raises many kinds for a bad expression
            raise SweepError(f"--where {where!r}: {err} (quote dotted names with backticks, e.g. "
                             "`task.train_fraction` > 0.2)") from None
    missing = [b for b in by if b not in df.columns]
    if missing:
        raise SweepError(f"--group-by {missing}: no such column; columns include {sorted(df.columns)[:40]}")
    if not by:
        df = df.assign(all="all")
        by = ["all"]
    # generalisation that lasted (to the end of the run, for the hold window); first crossings are in other columns
    lasting = "steps_to_generalize_lasting" if "steps_to_generalize_lasting" in df else "steps_to_generalize"
    done = df[df.status.isin(["ok", "failed"])]
    outcomes = pd.concat([done[by], table_outcomes(done, lasting)], axis=1)
    budget = (float(pd.to_numeric(done["training.steps"], errors="coerce").max()) if "training.steps" in done
              and len(done) else None)
    survival = arms_table(outcomes, by, control if "case" in by else None, "case", budget)

    def agg(g: pd.DataFrame) -> pd.Series:
        acc = g["final_test_acc"].astype(float)
        return pd.Series({
            "trials": len(g),
            "errors": int((g.status == "error").sum()),
            "pending": int((g.status == "pending").sum()),
            "test_acc": acc.mean(),
            "test_acc_sd": acc.std(ddof=1) if acc.notna().sum() > 1 else float("nan"),
            "wall_s": g["wall_seconds"].sum(),
        })

    counts = df.groupby(by, dropna=False, sort=False).apply(agg, include_groups=False).reset_index()
    columns = ["n", "generalized", "share", "share_low", "share_high", "km_median", "km_median_low",
               "km_median_high", "km_median_text", "logrank_p"]
    out = counts.merge(survival[[*by, *columns]], on=by, how="left") if len(survival) else counts.assign(
        **{c: float("nan") for c in columns})
    for c in ("trials", "errors", "pending", "n", "generalized"):
        out[c] = out[c].fillna(0).astype(int)
    for c in ("share", "share_low", "share_high", "km_median", "km_median_low", "km_median_high", "logrank_p"):
        out[c] = pd.to_numeric(out[c], errors="coerce")
    order = [*by, "trials", "errors", "pending", *columns, "test_acc", "test_acc_sd", "wall_s"]
    return out[order].sort_values(by, kind="stable").reset_index(drop=True)


def current_table(sweep_dir: str | Path) -> tuple[SweepSpec, pd.DataFrame]:
    """The spec a sweep directory was run with and the table of its trials as they stand (finished, failed or
    pending), also while the sweep is still running or after it was stopped."""
    from grokkit.sweep.spec import expand, load_sweep

    sweep_dir = Path(sweep_dir)
    if not (sweep_dir / "sweep.yaml").exists():
        raise SweepError(f"{sweep_dir} holds no sweep.yaml: is it a sweep directory (grokkit sweep ... --out)?")
    spec, root = load_sweep(sweep_dir / "sweep.yaml")
    required = {name: str((sweep_dir / "requires" / name).resolve()) for name in spec.requires}
    try:
        trials = expand(spec, root, required)
    except SweepError as err:
        raise SweepError(f"{sweep_dir}/sweep.yaml: {err} (a base config given as a relative path is resolved "
                         "against the sweep directory)") from None
    return spec, build_table(sweep_dir, trials, spec)


def required_runs_table(out: str | Path) -> pd.DataFrame:
    """One row per run a tune (or sweep) trained before its trials (``DIR/requires/*``, e.g. a distillation
    teacher): its task, training fraction, steps, final test accuracy and the step from which it generalised for good
    (held for its hold window; empty: it did not)."""
    rows = []
    for d in sorted(Path(out, "requires").glob("*")):
        path = d / "summary.json"
        if not path.is_file():
            continue
        s = json.loads(path.read_text())
        for m in s.get("members", []):
            rows.append({"run": d.name, "task": s.get("task"), "train_fraction": s.get("train_fraction"),
                         "seed": m.get("seed"), "steps": s.get("steps"), "final_test_acc": m.get("final_test_acc"),
                         "steps_to_generalize_lasting": m.get("steps_to_generalize_lasting")})
    return pd.DataFrame(rows)


def log_required_runs(out: str | Path, log: Any) -> None:
    """Say how each required run (e.g. a teacher) did, with a warning for one that never generalised for good."""
    for r in required_runs_table(out).to_dict("records"):
        held = r["steps_to_generalize_lasting"]
        log(f"required run {r['run']} (seed {r['seed']}): final test accuracy {r['final_test_acc']:.4f}, "
            + (f"generalised for good from step {held:.0f}" if held is not None and held == held else
               "warning: it never generalised for good (a teacher that never generalised teaches anyway)"))
