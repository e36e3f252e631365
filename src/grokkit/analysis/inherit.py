"""What a distilled student inherits from its teacher: the students' Fourier spectra over training against the
teacher's key frequencies (the seed paper's open question on mechanism).

For a teacher grokked on ``(a + b) mod P1`` and students on ``mod P2`` (a different modulus: frequency ``k`` means
``2 pi k / P``, close for close moduli), at every snapshot of every student:

* ``teacher_key_share``: the share of the student's embedding spectrum (squared Fourier norms of ``W_E`` over its
  numbers ``0..P2-1``) held by the *teacher's* key frequencies, carried over to the student's modulus at the same
  angular frequency: teacher frequency ``k`` (``2 pi k / P1`` per number) is student frequency ``round(k P2 / P1)``
  (:func:`carried_keys`). A flat spectrum gives ``chance_share`` (the number of carried keys over the number of
  frequencies); a student that builds the teacher's circuit approaches 1;
* ``key_energy_fraction``, ``gini`` and the student's own key frequencies (:mod:`grokkit.analysis.progress`);
* test accuracy.

Per student seed: its final key frequencies, how many are the teacher's (and the Jaccard overlap), the first step at
which the teacher's keys hold half of its spectrum, the first step at which its own key frequencies do, and the step
from which its test accuracy stays >= 0.99. Comparing distilled students with scratch students on the same data shows
whether the circuit forms earlier, and whether it is the teacher's.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from grokkit.analysis.progress import AnalysisError, analyze_run


def carried_keys(keys: list[int], p1: int, p2: int) -> list[int]:
    """The teacher's key frequencies (of ``mod p1``) at the same angular frequency on ``mod p2``: ``round(k p2 /
    p1)``, kept within ``1..p2 // 2`` (distinct, in the teacher's order)."""
    out = [min(max(1, round(k * p2 / p1)), p2 // 2) for k in keys]
    return list(dict.fromkeys(out))


def _share(norms: list[float], keys: list[int]) -> float:
    sq = np.square(np.asarray(norms, dtype=float))
    total = float(sq.sum())
    return float(sum(sq[k - 1] for k in keys if k - 1 < len(sq)) / total) if total > 0 else math.nan


def _first(steps: pd.Series, cond: pd.Series) -> float:
    hit = steps[cond.to_numpy()]
    return float(hit.iloc[0]) if len(hit) else math.nan


def _lasting(steps: pd.Series, acc: pd.Series, window: float, level: float = 0.99) -> float:
    """The lasting step of a snapshot curve, held for the run's hold window (:func:`grokkit.engine.lasting_step`)."""
    from grokkit.engine import lasting_step

    start = lasting_step(steps.tolist(), acc.tolist(), level, window)
    return math.nan if start is None else float(start)


def over_time(teacher_dir: str | Path, students: dict[str, list[Path]]) -> tuple[list[int], pd.DataFrame]:
    """The teacher's final key frequencies and one row per (arm, run, member, snapshot): the teacher's own rows
    (arm ``teacher``) first, then every student's."""
    teacher = analyze_run(teacher_dir, member=0)
    keys = list(teacher["checkpoints"][-1]["members"][0]["fourier"]["key_frequencies"])
    p1 = int(teacher["modulus"])
    if not keys:
        raise AnalysisError(f"teacher {teacher_dir} has no key frequencies (has it grokked?)")
    rows: list[dict[str, Any]] = []

    def add(arm: str, run: str, result: dict[str, Any]) -> None:
        carried = carried_keys(keys, p1, int(result["modulus"]))
        for ckpt in result["checkpoints"]:
            for m in ckpt["members"]:
                four = m["fourier"]
                own = [int(i) + 1 for i in np.argsort(np.square(four["norms"]))[::-1][:len(keys)]]
                rows.append({"arm": arm, "run": run, "member": m["member"], "seed": m["seed"],
                             "label": ckpt["label"], "step": ckpt["step"], "modulus": result["modulus"],
                             "hold_window_steps": result.get("hold_window_steps", 0),
                             "test_acc": m["losses"]["test_acc"], "train_acc": m["losses"]["train_acc"],
                             "teacher_key_share": _share(four["norms"], carried),
                             "teacher_keys_carried": " ".join(map(str, carried)),
                             "chance_share": len(carried) / len(four["norms"]),
                             "key_energy_fraction": four["key_energy_fraction"], "gini": four["gini"],
                             "top_frequencies": " ".join(map(str, own)),
                             "key_frequencies": " ".join(map(str, four["key_frequencies"]))})

    add("teacher", str(teacher_dir), teacher)
    for arm, dirs in students.items():
        for d in dirs:
            add(arm, str(d), analyze_run(d))
    frame = pd.DataFrame(rows)
    frame = frame[frame.label != "checkpoint"]  # an unfinished run's checkpoint would repeat a step
    order = {arm: i for i, arm in enumerate(["teacher", *students])}
    frame = frame.assign(_arm=frame.arm.map(order)).sort_values(["_arm", "run", "member", "step"], kind="stable")
    frame = frame.drop_duplicates(["arm", "run", "member", "step"], keep="last").drop(columns="_arm")
    return keys, frame.reset_index(drop=True)


def per_seed(keys: list[int], frame: pd.DataFrame) -> pd.DataFrame:
    """One row per student (and the teacher): final key frequencies against the teacher's, and when things happen."""
    out = []
    for (arm, run, _member), g in frame.groupby(["arm", "run", "member"], sort=False):
        g = g.sort_values("step")
        last = g.iloc[-1]
        own = [int(k) for k in str(last.key_frequencies).split()] if str(last.key_frequencies).strip() else []
        carried = [int(k) for k in str(last.teacher_keys_carried).split()]
        shared = sorted(set(own) & set(carried))
        union = set(own) | set(carried)
        out.append({
            "arm": arm, "run": Path(run).name, "seed": int(last.seed), "modulus": int(last.modulus),
            "final_test_acc": float(last.test_acc), "key_frequencies": " ".join(map(str, own)),
            "teacher_key_frequencies": " ".join(map(str, keys)), "teacher_keys_carried": " ".join(map(str, carried)),
            "shared_with_teacher": len(shared),
            "jaccard_with_teacher": len(shared) / len(union) if union else math.nan,
            "final_teacher_key_share": float(last.teacher_key_share), "chance_share": float(last.chance_share),
            "step_teacher_keys_half": _first(g.step, g.teacher_key_share >= 0.5),
            "step_own_keys_half": _first(g.step, g.key_energy_fraction >= 0.5),
            "step_lasting_0.99": _lasting(g.step, g.test_acc, float(last.hold_window_steps)),
        })
    return pd.DataFrame(out)


def plot_inheritance(frame: pd.DataFrame, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from grokkit.checkpoint import atomic_write
    from grokkit.plots import readable_log_axis

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for i, (arm, g) in enumerate(frame.groupby("arm", sort=False)):
        color = "0.3" if arm == "teacher" else f"C{i}"
        for ax, y in zip(axes, ("teacher_key_share", "key_energy_fraction", "test_acc")):
            agg = g.groupby("step")[y].agg(["mean", "min", "max"]).reset_index()
            agg = agg[agg.step > 0]
            ax.plot(agg.step, agg["mean"], color=color, label=f"{arm} ({g.run.nunique() * g.member.nunique()})",
                    ls=":" if arm == "teacher" else "-")
            ax.fill_between(agg.step, agg["min"], agg["max"], color=color, alpha=0.15, lw=0)
    chance = frame[frame.arm != "teacher"].chance_share.mean()
    axes[0].axhline(chance, color="0.6", lw=0.8, ls="--", label=f"flat spectrum ({chance:.2f})")
    for ax, lab in zip(axes, ("share of the student's W_E spectrum in the teacher's key frequencies",
                              "share in its own key frequencies", "test accuracy")):
        ax.set_xscale("log")
        readable_log_axis(ax, "x")
        ax.set_xlabel("step")
        ax.set_title(lab, fontsize=9)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, dpi=120, format="png"))
    plt.close(fig)


def inheritance_report(teacher_dir: str | Path, students: dict[str, list[Path]], out: str | Path,
                       title: str = "") -> pd.DataFrame:
    """Write ``inherit.csv`` (per seed), ``inherit_over_time.csv``, ``inherit.md`` and ``inherit.png`` into ``out``."""
    from grokkit.checkpoint import atomic_write_text
    from grokkit.tables import markdown_table

    out = Path(out)
    keys, frame = over_time(teacher_dir, students)
    seeds = per_seed(keys, frame)
    atomic_write_text(out / "inherit_over_time.csv", frame.to_csv(index=False))
    atomic_write_text(out / "inherit.csv", seeds.to_csv(index=False))
    shown = seeds[["arm", "seed", "final_test_acc", "key_frequencies", "teacher_keys_carried", "shared_with_teacher",
                   "final_teacher_key_share", "step_teacher_keys_half", "step_own_keys_half", "step_lasting_0.99"]]
    atomic_write_text(out / "inherit.md", f"# {title or 'What the students inherit'}\n\nteacher key frequencies: "
                      f"{' '.join(map(str, keys))}\n\n<!-- data: ./inherit.csv -->\n"
                      + markdown_table(shown.round(3)) + "\n")
    plot_inheritance(frame, out / "inherit.png", title or "students against the teacher's key frequencies")
    return seeds
