"""The tables of the matched map (configs/map/map_matched.yaml): every cell's effect with an interval, and the
teachers' own rows.

    python experiments/map_tables.py runs/map_matched docs/map_matched

Writes ``trials.csv`` (one row per student: its cell, teacher, seed, outcome), ``teachers.csv`` (each teacher's own
run: fraction, training pairs, steps, final test accuracy, lasting step), ``cells.csv`` (per cell: students, training
pairs, generalised n/N, Kaplan–Meier median [CI], mean final test accuracy; the effect = mean final test accuracy
minus the from-scratch control's, with a 95% bootstrap interval that resamples teachers, then seeds within them, and
the control's seeds; ``effect`` is "yes" only where the interval excludes zero; log-rank p against the control) and
``map.md`` (the table, generated from cells.csv and teachers.csv)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from grokkit.analysis.survival import format_p, km_of, logrank_p, table_outcomes
from grokkit.tables import markdown_table

N_BOOT = 2000


def _pairs(modulus: int, fraction: float) -> int:
    return int(round(fraction * modulus * modulus))


def bootstrap_effect(treat: pd.DataFrame, control: np.ndarray, seed: int = 0) -> tuple[float, float, float]:
    """Mean final test accuracy of ``treat`` (rows with ``teacher`` and ``final_test_acc``) minus ``control``'s, and
    its 95% percentile interval: teachers resampled, then seeds within each, and the control's seeds."""
    rng = np.random.default_rng(seed)
    groups = [g.final_test_acc.to_numpy(float) for _, g in treat.groupby("teacher")]
    effect = float(np.mean(np.concatenate(groups)) - control.mean())
    draws = []
    for _ in range(N_BOOT):
        picked = [groups[i] for i in rng.integers(0, len(groups), len(groups))]
        t = np.concatenate([g[rng.integers(0, len(g), len(g))] for g in picked])
        c = control[rng.integers(0, len(control), len(control))]
        draws.append(t.mean() - c.mean())
    lo, hi = np.quantile(draws, [0.025, 0.975])
    return effect, float(lo), float(hi)


def tables(sweep_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    results = pd.read_parquet(sweep_dir / "results.parquet")
    results = results[results.status == "ok"].copy()
    results["teacher"] = results.get("teacher", pd.Series(index=results.index, dtype=object)).fillna("-")
    outcomes = table_outcomes(results)
    trials = results.join(outcomes)
    teachers = []
    for d in sorted((sweep_dir / "requires").iterdir()):
        summary = json.loads((d / "summary.json").read_text())
        m = summary["members"][0]
        fraction = float(summary["train_fraction"])
        modulus = int(summary["task"].lstrip("adsubmlivq"))
        teachers.append({"teacher": d.name, "task": summary["task"], "train_fraction": fraction,
                         "training_pairs": _pairs(modulus, fraction), "steps": summary["steps"],
                         "final_test_acc": m["final_test_acc"], "steps_to_generalize_lasting":
                         m["steps_to_generalize_lasting"]})
    cells = []
    for (op, pair), g in trials[trials.method == "distill"].groupby(["op", "pair"], sort=False):
        control = trials[(trials.method == "scratch") & (trials.op == op)]
        effect, lo, hi = bootstrap_effect(g, control.final_test_acc.to_numpy(float))
        km, kc = km_of(g), km_of(control)
        fraction = float(g["task.train_fraction"].iloc[0])
        cells.append({
            "op": op, "pair": pair, "students": len(g), "teachers": g.teacher.nunique(),
            "train_fraction": fraction, "training_pairs": _pairs(int(g["task.modulus"].iloc[0]), fraction),
            "generalised": km.count_text(), "median_text": km.median_text(),
            "control_generalised": kc.count_text(), "control_median_text": kc.median_text(),
            "final_test_acc": g.final_test_acc.mean(), "control_final_test_acc": control.final_test_acc.mean(),
            "effect": effect, "effect_low": lo, "effect_high": hi,
            "is_effect": "yes" if (lo > 0 or hi < 0) else "within noise",
            "logrank_p": logrank_p(g, control),
        })
    keep = ["trial", "case", "op", "pair", "teacher", "seed", "task.train_fraction", "final_test_acc",
            "steps_to_generalize", "steps_to_generalize_lasting", "steps", "duration", "event"]
    return trials[[c for c in keep if c in trials]], pd.DataFrame(teachers), pd.DataFrame(cells)


def markdown(cells: pd.DataFrame, teachers: pd.DataFrame) -> str:
    table = pd.DataFrame({
        "student": [f"{op} mod 59" for op in cells.op], "teacher": cells.pair,
        "training pairs (fraction)": [f"{n:,} ({f:.0%})" for n, f in zip(cells.training_pairs, cells.train_fraction)],
        "generalised: distilled / scratch": [f"{a} / {b}" for a, b in zip(cells.generalised,
                                                                          cells.control_generalised)],
        "median lasting step, distilled": cells.median_text,
        "final test acc: distilled / scratch": [f"{a:.3f} / {b:.3f}" for a, b in zip(cells.final_test_acc,
                                                                                     cells.control_final_test_acc)],
        "effect [95% CI]": [f"{e:+.3f} [{lo:+.3f}, {hi:+.3f}]" for e, lo, hi in zip(cells.effect, cells.effect_low,
                                                                                   cells.effect_high)],
        "an effect?": cells.is_effect,
        "log-rank p": [format_p(p) if not math.isnan(p) else "—" for p in cells.logrank_p],
    })
    own = pd.DataFrame({
        "teacher": teachers.teacher, "task": teachers.task,
        "training pairs (fraction)": [f"{n:,} ({f:.0%})" for n, f in zip(teachers.training_pairs,
                                                                         teachers.train_fraction)],
        "steps": teachers.steps, "final test acc": [f"{a:.4f}" for a in teachers.final_test_acc],
        "lasting from": [_step(v) for v in teachers.steps_to_generalize_lasting],
    })
    return ("<!-- not data: generated by experiments/map_tables.py from cells.csv; do not edit -->\n"
            + markdown_table(table) + "\n\nThe teachers' own runs:\n\n"
            + "<!-- not data: generated by experiments/map_tables.py from teachers.csv; do not edit -->\n"
            + markdown_table(own) + "\n"
            + unmatched(teachers))


def _step(v: object) -> str:
    return "never" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{int(float(v)):,}"


def unmatched(teachers: pd.DataFrame) -> str:
    """A sentence naming the teachers that did not generalise for good (their cells are not matched), or ''."""
    bad = teachers[teachers.steps_to_generalize_lasting.isna()]
    if bad.empty:
        return ""
    names = ", ".join(f"{t} (final test accuracy {a:.4f} after {int(s):,} steps)"
                      for t, a, s in zip(bad.teacher, bad.final_test_acc, bad.steps))
    return (f"\nNot matched: {names} did not generalise for good within their budget; the cells that use them "
            "compare a weaker teacher with the others.\n")


def main(sweep_dir: str, out: str) -> None:
    trials, teachers, cells = tables(Path(sweep_dir))
    target = Path(out)
    target.mkdir(parents=True, exist_ok=True)
    trials.to_csv(target / "trials.csv", index=False)
    teachers.to_csv(target / "teachers.csv", index=False)
    cells.to_csv(target / "cells.csv", index=False)
    (target / "map.md").write_text(markdown(cells, teachers))
    print((target / "map.md").read_text())


if __name__ == "__main__":
    main(*sys.argv[1:3])
