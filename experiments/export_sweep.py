"""Commit a sweep's evidence under docs/ (its finished trials, also while it runs): per trial (case, seed, steps,
lasting and first steps to generalise, final accuracies, a weak stage's steps and accuracy, wall-clock) as
``trials.csv``, and every trial's curve (``metrics.csv`` rows with the trial's case and seed) as ``curves.csv``.

    python experiments/export_sweep.py runs/headline_30k docs/headline/30k
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

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
        rows.append({"trial": trial, "case": case, "seed": int(seed), "steps": s["steps"], "status": "ok",
                     "wall_seconds": s.get("wall_seconds"),
                     **{k: v for k, v in m.items() if isinstance(v, (int, float, str, type(None)))}})
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sweep", type=Path)
    ap.add_argument("out", type=Path)
    args = ap.parse_args()
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


if __name__ == "__main__":
    main()
