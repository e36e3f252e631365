"""A map of where a treatment (distillation) beats its control (training from scratch): one heat-map cell per
(row, column) value of the results table, e.g. the student's operation x the teacher -> student modulus pair.

A cell holds the treatment's trials of that (row, column); its control is the control arm's trials that agree with
them on every ``match`` column (by default the student's operation, modulus and training fraction), so one
from-scratch control serves every teacher of the same student. Outcomes are the sweep's own: generalisation that
lasted, held for each trial's hold window, as censored data (the seeds that generalised, the Kaplan–Meier median
step with its interval and the log-rank p-value of treatment against control: :mod:`grokkit.analysis.survival`), and
the final test accuracy, with the spread over seeds. Diagnostics of the
teacher recorded by the distillation recipe (``teacher_*`` columns: how often the teacher's answer, and the argmax
of the distilled position, is the student's answer) are averaged per cell, to read why a cell fails.

Outputs (:func:`map_report`): ``map.csv`` (one row per cell), ``map.md`` (the same as a table with a data marker)
and ``map.png`` (cells coloured by the difference in mean final test accuracy, annotated with the seeds that
generalised in each arm).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from grokkit.analysis.survival import format_p, km_of, logrank_p, table_outcomes
from grokkit.sweep.spec import MapSpec, SweepError
from grokkit.sweep.store import require_finished

TEACHER_COLUMNS = ("teacher_acc_on_student_test", "teacher_kd_acc_on_student_test")


def _ordered(values: pd.Series) -> list[Any]:
    """Distinct values in order of first appearance (the sweep's case order)."""
    return list(dict.fromkeys(values.tolist()))


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        try:
            return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
        except (TypeError, ValueError):
            return False
    return bool(a == b)


def _outcomes(g: pd.DataFrame) -> pd.DataFrame:
    """The finished trials of an arm as (duration, event): lasting generalisation held for the hold window."""
    return table_outcomes(g[g.status == "ok"])


def _arm(g: pd.DataFrame, prefix: str) -> dict[str, Any]:
    done = g[g.status == "ok"]
    acc = done.final_test_acc.astype(float)
    budget = pd.to_numeric(done["training.steps"] if "training.steps" in done else done["steps"]).max()
    km = km_of(_outcomes(g), float(budget) if len(done) else None)
    return {
        f"{prefix}_trials": len(done),
        f"{prefix}_pending": int((g.status != "ok").sum()),
        f"{prefix}_generalized": km.generalized,
        f"{prefix}_test_acc": float(acc.mean()) if len(acc) else float("nan"),
        f"{prefix}_test_acc_sd": float(acc.std(ddof=1)) if len(acc) > 1 else float("nan"),
        f"{prefix}_test_acc_min": float(acc.min()) if len(acc) else float("nan"),
        f"{prefix}_test_acc_max": float(acc.max()) if len(acc) else float("nan"),
        f"{prefix}_km_median": km.median,
        f"{prefix}_km_median_text": km.median_text() if len(done) else "—",
    }


def _teacher_acc(path: str) -> float:
    """A teacher run's own final test accuracy (its first member), NaN when it cannot be read."""
    from grokkit.rundir import RunDir

    run = RunDir(path)
    if not run.has_summary():
        return float("nan")
    return float(run.read_summary()["members"][0]["final_test_acc"])


def answers_shared(teacher_op: str, p1: int, student_op: str, p2: int) -> float:
    """The share of the student's pairs ``(a, b)`` (both below ``p2``, where the student's operation is defined) on
    which the teacher's rule gives the student's answer: ``teacher_op(a, b) mod p1 == student_op(a, b) mod p2``.
    A property of the two tasks alone (e.g. add 61 -> 59: the pairs with a + b < 59, and a few more)."""
    import torch

    from grokkit.tasks.modular import OPS

    a, b = torch.meshgrid(torch.arange(p2), torch.arange(p2), indexing="ij")
    a, b = a.flatten(), b.flatten()
    target, ok = OPS.get(student_op)(a, b, p2)
    inside = (a < p1) & (b < p1)  # the teacher's rule is defined on its own numbers only
    a1, b1 = a.clamp(max=p1 - 1), b.clamp(max=p1 - 1)
    guess, ok1 = OPS.get(teacher_op)(a1, b1, p1)
    hit = (guess == target) & ok1 & inside
    return float(hit[ok].double().mean())


def _task_of(path: str) -> tuple[str, int] | None:
    from grokkit.rundir import RunDir

    run = RunDir(path)
    if not run.has_config():
        return None
    task = run.read_config().task
    return (task.op, task.modulus) if getattr(task, "is_modular", False) else None


def map_table(table: pd.DataFrame, spec: MapSpec) -> pd.DataFrame:
    """One row per cell: the cell's coordinates and match values, both arms' outcomes, their difference."""
    require_finished(table, "the sweep", "a map")
    need = [spec.rows, spec.cols, spec.arm, *spec.match]
    missing = [c for c in need if c not in table.columns]
    if missing:
        raise SweepError(f"map: the results have no column {missing}; columns include "
                         f"{sorted(c for c in table.columns if '.' not in c)[:30]} and the config's dotted keys")
    treat = table[table[spec.arm] == spec.treatment]
    control = table[table[spec.arm] == spec.control]
    if treat.empty or control.empty:
        raise SweepError(f"map: no trials with {spec.arm}={spec.treatment!r} and/or {spec.arm}={spec.control!r}")
    out = []
    for r in _ordered(treat[spec.rows]):
        for c in _ordered(treat[spec.cols]):
            g = treat[(treat[spec.rows] == r) & (treat[spec.cols] == c)]
            if g.empty:
                continue
            keys = g[spec.match].drop_duplicates()
            if len(keys) != 1:
                raise SweepError(f"map: cell ({r}, {c}) mixes {spec.match} values {keys.to_dict('records')}; "
                                 "give each its own row or column")
            key = keys.iloc[0].to_dict()
            sel = control[np.logical_and.reduce([control[k].map(lambda v, w=w: _same(v, w)) for k, w in key.items()])]
            if sel.empty:
                raise SweepError(f"map: cell ({r}, {c}) has no {spec.control!r} trials with {key}")
            row: dict[str, Any] = {spec.rows: r, spec.cols: c, **key, **_arm(g, "treatment"), **_arm(sel, "control")}
            row["diff_test_acc"] = row["treatment_test_acc"] - row["control_test_acc"]
            row["logrank_p"] = logrank_p(_outcomes(g), _outcomes(sel))
            teachers = g["distill.teacher"].dropna().unique() if "distill.teacher" in g else []
            row["teacher"] = "; ".join(Path(str(t)).name for t in teachers)
            row["teacher_test_acc"] = float(np.mean([_teacher_acc(str(t)) for t in teachers])) if len(teachers) \
                else float("nan")
            tasks = {_task_of(str(t)) for t in teachers}
            if len(tasks) == 1 and None not in tasks and "task.op" in key and "task.modulus" in key:
                (t_op, p1), = tasks
                row["answers_shared"] = answers_shared(t_op, p1, str(key["task.op"]), int(key["task.modulus"]))
            for col in TEACHER_COLUMNS:
                if col in g.columns:
                    row[col] = float(pd.to_numeric(g[col], errors="coerce").mean())
            out.append(row)
    return pd.DataFrame(out)


def plot_map(cells: pd.DataFrame, spec: MapSpec, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from grokkit.checkpoint import atomic_write

    rows, cols = _ordered(cells[spec.rows]), _ordered(cells[spec.cols])
    grid = np.full((len(rows), len(cols)), np.nan)
    fig, ax = plt.subplots(figsize=(1.7 * len(cols) + 2.4, 0.9 * len(rows) + 1.8))
    for cell in cells.itertuples(index=False):
        d = cell._asdict()
        i, j = rows.index(d[spec.rows]), cols.index(d[spec.cols])
        grid[i, j] = d["diff_test_acc"]
        ax.text(j, i, f"{d['diff_test_acc']:+.2f}\n{d['treatment_generalized']}/{d['treatment_trials']} vs "
                f"{d['control_generalized']}/{d['control_trials']}", ha="center", va="center", fontsize=7.5)
    cmap = plt.get_cmap("RdBu").with_extremes(bad="0.85")
    im = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=-1, vmax=1, aspect="auto")
    ax.set_xticks(range(len(cols)), [str(c) for c in cols], fontsize=8, rotation=20, ha="right")
    ax.set_yticks(range(len(rows)), [str(r) for r in rows], fontsize=8)
    ax.set_xlabel(spec.cols)
    ax.set_ylabel(spec.rows)
    fig.colorbar(im, ax=ax, label=f"final test acc: {spec.treatment} - {spec.control} (mean over seeds)")
    ax.set_title(spec.title or f"{spec.treatment} vs {spec.control}: Δ final test accuracy; seeds generalised "
                 f"({spec.treatment} vs {spec.control})", fontsize=9)
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, dpi=120, format="png"))
    plt.close(fig)


def _fmt(v: Any, digits: int = 3) -> str:
    if isinstance(v, float):
        return "—" if math.isnan(v) else f"{v:.{digits}f}"
    return str(v)


def map_markdown(cells: pd.DataFrame, spec: MapSpec, data: str = "./map.csv") -> str:
    header = [spec.rows, spec.cols, "fraction", f"{spec.treatment}: generalised", f"{spec.treatment}: test acc",
              f"{spec.treatment}: median lasting step [95% CI]", f"{spec.control}: generalised",
              f"{spec.control}: test acc", f"{spec.control}: median lasting step [95% CI]", "log-rank p",
              "Δ test acc", "answers shared", "teacher's own test acc",
              "teacher right on the student (final)", "teacher right on the student (distilled position)"]
    frac = next((m for m in spec.match if m.endswith("train_fraction")), None)
    checked = {spec.rows: spec.rows, spec.cols: spec.cols, header[3]: "treatment_generalized+treatment_trials",
               header[5]: "treatment_km_median_text", header[6]: "control_generalized+control_trials",
               header[8]: "control_km_median_text", "log-rank p": "logrank_p", "Δ test acc": "diff_test_acc"}
    columns = ", ".join(f'"{h}"={c}' for h, c in checked.items())
    unchecked = ", ".join(f'"{h}"' for h in header if h not in checked)
    marker = f"<!-- data: {data}; columns: {columns}; unchecked: {unchecked} -->"
    lines = [marker, "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for d in cells.to_dict("records"):
        def arm(p: str) -> str:
            sd = d[f"{p}_test_acc_sd"]
            return _fmt(d[f"{p}_test_acc"]) + ("" if isinstance(sd, float) and math.isnan(sd) else f" ± {sd:.3f}")

        lines.append("| " + " | ".join([
            str(d[spec.rows]), str(d[spec.cols]), _fmt(d[frac], 2) if frac else "",
            f"{d['treatment_generalized']}/{d['treatment_trials']}", arm("treatment"), d["treatment_km_median_text"],
            f"{d['control_generalized']}/{d['control_trials']}", arm("control"), d["control_km_median_text"],
            format_p(d["logrank_p"]), f"{d['diff_test_acc']:+.3f}",
            *(_fmt(d.get(c, float("nan"))) for c in ("answers_shared", "teacher_test_acc", *TEACHER_COLUMNS))]) + " |")
    return "\n".join(lines) + "\n"


def map_report(table: pd.DataFrame, out: str | Path, spec: MapSpec) -> pd.DataFrame:
    """Write ``map.csv``, ``map.md`` and ``map.png`` into ``out``; returns the cells."""
    from grokkit.checkpoint import atomic_write, atomic_write_text

    out = Path(out)
    cells = map_table(table, spec)
    atomic_write(out / "map.csv", lambda p: cells.to_csv(p, index=False))
    atomic_write_text(out / "map.md", map_markdown(cells, spec))
    plot_map(cells, spec, out / "map.png")
    return cells
