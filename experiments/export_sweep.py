"""Commit a sweep's evidence under docs/ (its finished trials, also while it runs): per trial (case, seed, steps,
lasting and first steps to generalise, final accuracies, a weak stage's steps and accuracy, wall-clock) as
``trials.csv`` (the lasting step held for the trial's hold window, applied here to runs recorded before the window
existed: :func:`grokkit.analysis.survival.held_step`), and every trial's curve (``metrics.csv`` rows with the trial's
case and seed) as ``curves.csv``.
A continual sweep (recipe ``continual``) also gets ``continual.csv``, per trial its continual-learning measures (ACC,
BWT, FWT, the lowest accuracy on the first task during the first shift, the stages whose new task reached the
trial's generalisation threshold and those where it stayed there to the stage's end, the accuracy matrix as JSON),
and ``continual_summary.csv``, their mean, min and max per case.

    python experiments/export_sweep.py runs/headline_30k docs/headline/30k
    python experiments/export_sweep.py --rewindow docs/headline/30k/trials.csv configs/paper/long/headline_30k.yaml
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
import yaml

from grokkit.analysis.survival import held_step
from grokkit.engine import lasting_step
from grokkit.sections import TrainingConfig

COLUMNS = ["case", "seed", "steps", "steps_to_generalize_lasting", "steps_to_generalize", "final_test_acc",
           "final_train_acc", "weak_steps", "weak_final_test_acc", "wall_seconds", "status"]


def finished_trials(sweep: Path) -> pd.DataFrame:
    """One row per finished trial (``trials/<case>__seed=<n>/summary.json``), its member's scalars."""
    rows = []
    for summary in sorted((sweep / "trials").glob("*/summary.json")):
        trial = summary.parent.name
        case, _, seed = trial.rpartition("__seed=")
        s = json.loads(summary.read_text())
        m = s["members"][0]
        window = _training(summary.parent).hold_steps()
        rows.append({"trial": trial, "case": case, "seed": int(seed), "steps": s["steps"], "status": "ok",
                     "wall_seconds": s.get("wall_seconds"),
                     **{k: v for k, v in m.items() if isinstance(v, (int, float, str, type(None)))},
                     "steps_to_generalize_lasting": held_step(m.get("steps_to_generalize_lasting"), s["steps"],
                                                              window)})
    return pd.DataFrame(rows)


def _training(trial: Path) -> TrainingConfig:
    """A trial's ``training:`` section (its ``config.yaml``; settings added since it ran take their defaults)."""
    return TrainingConfig.model_validate(yaml.safe_load((trial / "config.yaml").read_text()).get("training", {}))


def stage_lasting(metrics: pd.DataFrame, tasks: list[str], training: TrainingConfig) -> dict[str, int | None]:
    """Per stage of a continual run (``tasks``: the new task of stages 1, 2, ...): the stage's first step from which
    its new task stays at the threshold to the stage's end, held for the hold window of the stage's budget."""
    threshold, window = training.generalization_threshold, training.hold_steps()
    lasting = {}
    for i, task in enumerate(tasks, start=1):
        st = metrics[metrics.stage == i].sort_values("step")
        lasting[task] = lasting_step(st.step.tolist(), st[f"test_acc@{task}"].tolist(), threshold, window)
    return lasting


def continual_trials(sweep: Path) -> pd.DataFrame:
    """Per finished continual trial: its member's accuracy matrix and the measures derived from it."""
    rows = []
    for summary in sorted((sweep / "trials").glob("*/summary.json")):
        s = json.loads(summary.read_text())
        if s.get("recipe") != "continual":
            continue
        case, _, seed = summary.parent.name.rpartition("__seed=")
        m = s["members"][0]
        first_shift = s["tasks"][1]
        per_stage = m["steps_to_generalize_per_stage"]
        metrics = pd.read_csv(summary.parent / "metrics.csv")
        lasting = stage_lasting(metrics, s["tasks"][1:], _training(summary.parent))
        rows.append({
            "case": case, "seed": int(seed), "acc": m["average_accuracy"], "bwt": m["backward_transfer"],
            "fwt": m["forward_transfer"],
            "min_acc_first_task_stage1": m["min_acc_on_previous_task_per_stage"][first_shift],
            "stages_new_task_reached": sum(v is not None for v in per_stage.values()),
            "stages_new_task_lasting": sum(v is not None for v in lasting.values()), "stages": len(per_stage),
            "lasting_step_per_stage": json.dumps(lasting),
            "accuracy_matrix": json.dumps([[round(x, 4) for x in row] for row in m["accuracy_matrix"]]),
        })
    return pd.DataFrame(rows)


def continual_summary(trials: pd.DataFrame) -> pd.DataFrame:
    """Mean, min and max over seeds per case of :func:`continual_trials`' measures; generalised stages summed."""
    g = trials.groupby("case", sort=False)
    out = g[["acc", "bwt", "fwt", "min_acc_first_task_stage1"]].agg(["mean", "min", "max"])
    out.columns = [f"{a}_{b}" for a, b in out.columns]
    out["n_seeds"] = g.size()
    out["stages_new_task_reached"] = g.stages_new_task_reached.sum()
    out["stages_new_task_lasting"] = g.stages_new_task_lasting.sum()
    out["stages_total"] = g.stages.sum()
    return out.reset_index()


def rewindow(trials_csv: Path, sweep_file: Path) -> int:
    """Apply the hold window to a ``trials.csv`` exported before the window existed, in place: each trial's lasting
    step is kept if its run went on for at least its hold window after it (the window of its config in
    ``sweep_file``, the run's end its ``steps``), else emptied. What this script writes today from the same sweep
    directory. Returns the number of trials whose lasting step was censored."""
    from grokkit.repro import export_key, trials_by_export_key

    trials = pd.read_csv(trials_csv)
    if (trials_csv.parent / "continual.csv").exists():
        return _rewindow_continual(trials_csv.parent, sweep_file)
    if "steps_to_generalize_lasting" not in trials:
        return 0
    for col in ("steps_to_generalize", "weak_steps"):  # integer columns with gaps, as exported
        if col in trials:
            trials[col] = trials[col].astype("Int64")
    by_key = trials_by_export_key(sweep_file)
    censored, held = 0, []
    for r in trials.to_dict("records"):
        window = by_key[export_key(f"{r['case']}__seed={r['seed']}")].config.training.hold_steps()
        before = None if pd.isna(r["steps_to_generalize_lasting"]) else r["steps_to_generalize_lasting"]
        step = held_step(before, r["steps"], window)
        censored += before is not None and step is None
        held.append(step)
    trials["steps_to_generalize_lasting"] = pd.array(held, dtype="Int64")
    trials.to_csv(trials_csv, index=False)
    return censored


def _rewindow_continual(export: Path, sweep_file: Path) -> int:
    """The stages' lasting steps of an exported continual sweep (``continual.csv``) recomputed from its committed
    curves (``curves.csv``) with the hold window, and ``continual_summary.csv`` with them. Returns the number of
    stages no longer counted as lasting."""
    from grokkit.repro import export_key, trials_by_export_key

    table, curves = pd.read_csv(export / "continual.csv"), pd.read_csv(export / "curves.csv")
    by_key = trials_by_export_key(sweep_file)
    before = int(table.stages_new_task_lasting.sum())
    lasting_col, count = [], []
    for r in table.to_dict("records"):
        tasks = list(json.loads(r["lasting_step_per_stage"]))
        metrics = curves[(curves.case == r["case"]) & (curves.seed == r["seed"])]
        lasting = stage_lasting(metrics, tasks, by_key[export_key(f"{r['case']}__seed={r['seed']}")].config.training)
        lasting_col.append(json.dumps(lasting))
        count.append(sum(v is not None for v in lasting.values()))
    table["lasting_step_per_stage"], table["stages_new_task_lasting"] = lasting_col, count
    table.to_csv(export / "continual.csv", index=False)
    continual_summary(table).to_csv(export / "continual_summary.csv", index=False)
    return before - int(table.stages_new_task_lasting.sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sweep", type=Path, help="a sweep directory (or, with --rewindow, an exported trials.csv)")
    ap.add_argument("out", type=Path, help="where to write (or, with --rewindow, the sweep file the trials ran)")
    ap.add_argument("--rewindow", action="store_true", help="apply the hold window to an exported trials.csv")
    args = ap.parse_args()
    if args.rewindow:
        n = rewindow(args.sweep, args.out)
        print(f"{args.sweep}: {n} lasting step(s) censored by the hold window")
        return
    results = finished_trials(args.sweep)
    args.out.mkdir(parents=True, exist_ok=True)
    trials = results[[c for c in COLUMNS if c in results]].sort_values(["case", "seed"])
    for col in ("steps_to_generalize_lasting", "steps_to_generalize", "weak_steps"):
        if col not in trials:
            continue
        trials[col] = trials[col].astype("Int64")
    trials.to_csv(args.out / "trials.csv", index=False)
    curves = []
    for trial, case, seed in results[["trial", "case", "seed"]].itertuples(index=False):
        m = pd.read_csv(args.sweep / "trials" / trial / "metrics.csv")
        curves.append(m.drop(columns=[c for c in ("member",) if c in m]).assign(case=case, seed=seed))
    pd.concat(curves, ignore_index=True).to_csv(args.out / "curves.csv", index=False, float_format="%.6g")
    print(f"wrote {args.out / 'trials.csv'} ({len(trials)} trials) and {args.out / 'curves.csv'}")
    continual = continual_trials(args.sweep)
    if len(continual):
        continual.to_csv(args.out / "continual.csv", index=False)
        continual_summary(continual).to_csv(args.out / "continual_summary.csv", index=False)
        print(f"wrote {args.out / 'continual.csv'} and {args.out / 'continual_summary.csv'}")


if __name__ == "__main__":
    main()
