"""The tables and the figure of docs/studies/digits.md from a finished digits sweep (configs/sweeps/digits.yaml).

    python experiments/digits_tables.py runs/digits docs/digits

writes ``trials.csv`` (one row per trial), ``arms.csv`` (per case and training-set size: generalised k/n on the test
and on the validation split, held for the hold window, mean ± sd of the final accuracies, the Kaplan-Meier median
step of lasting generalisation with its 95% interval, a seed that did not generalise censored at the budget:
:mod:`grokkit.analysis.survival`),
``teachers.csv`` (the two teachers), ``teacher_by_shift.csv`` (the grokked teacher's accuracy on the students' half
of the images at each shift) and ``curves.png``
(scratch at init scale 8 vs 1: train and test accuracy against steps) and ``by_size.png`` (final test accuracy
against the training-set size, per case). ``summary.csv`` is ``grokkit results``'s (``--csv``); when it is there,
``summary.md`` restates it.

    python experiments/digits_tables.py --from-trials docs/digits docs/digits/sweep.yaml

re-makes ``arms.csv``, ``summary.csv`` (``grokkit results``'s table, from a results table rebuilt from
``trials.csv``) and ``summary.md`` from the committed ``trials.csv`` alone, each trial's budget and hold window taken
from the sweep file (whose students run their whole budget: no early stop).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib
import yaml

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

COLUMNS = {"case": "case", "task.n_train": "n_train", "seed": "seed", "task.shift": "shift",
           "model.init_scale": "init_scale", "distill.alpha": "alpha", "distill.temperature": "temperature",
           "distill.alpha_decay_start": "alpha_decay_start", "final_train_acc": "final_train_acc",
           "final_val_acc": "final_val_acc", "final_test_acc": "final_test_acc",
           "steps_to_generalize_lasting": "steps_lasting", "val_steps_to_generalize_lasting": "val_steps_lasting",
           "wall_seconds": "wall_seconds", "steps": "steps", "training.steps": "budget",
           "training.hold_window": "hold_window"}


def trials(sweep: Path) -> pd.DataFrame:
    table = pd.read_parquet(sweep / "results.parquet")
    out = table[[c for c in COLUMNS if c in table.columns]].rename(columns=COLUMNS)
    teacher_acc = []
    for trial in table.trial:
        summary = json.loads((sweep / "trials" / trial / "summary.json").read_text())
        teacher_acc.append(summary.get("teacher_acc_on_student_test"))
    out["teacher_acc_on_test"] = teacher_acc
    return out.sort_values(["case", "n_train", "seed"]).reset_index(drop=True)


def arms(t: pd.DataFrame) -> pd.DataFrame:
    """Per case and training-set size: lasting generalisation on test and on validation as censored data (held for
    each trial's hold window, a trial that did not generalise censored at the end of its run), accuracies."""
    from grokkit.analysis.survival import km_of, table_outcomes

    def outcomes(g: pd.DataFrame, column: str) -> pd.DataFrame:
        return table_outcomes(g.rename(columns={"budget": "training.steps", "hold_window": "training.hold_window"}),
                              column)

    def agg(g: pd.DataFrame) -> pd.Series:
        budget = float(g.budget.max())
        test, val = km_of(outcomes(g, "steps_lasting"), budget), km_of(outcomes(g, "val_steps_lasting"), budget)
        return pd.Series({
            "trials": len(g),
            "test_generalized": test.generalized,
            "val_generalized": val.generalized,
            "test_acc_mean": g.final_test_acc.mean(), "test_acc_sd": g.final_test_acc.std(ddof=1),
            "val_acc_mean": g.final_val_acc.mean(), "val_acc_sd": g.final_val_acc.std(ddof=1),
            "train_acc_mean": g.final_train_acc.mean(),
            "km_median_steps_lasting": test.median_text(),
            "val_km_median_steps_lasting": val.median_text(),
            "teacher_acc_on_test": g.teacher_acc_on_test.astype(float).mean(),
        })

    return t.groupby(["case", "n_train"]).apply(agg, include_groups=False).reset_index()


def teachers(sweep: Path) -> pd.DataFrame:
    rows = []
    for name in ("teacher", "random_teacher"):
        summary = json.loads((sweep / "requires" / name / "summary.json").read_text())
        m = summary["members"][0]
        rows.append({"teacher": name, "task": summary["task"], "steps": summary["steps"],
                     "final_train_acc": m["final_train_acc"], "final_val_acc": m["final_val_acc"],
                     "final_test_acc": m["final_test_acc"], "steps_lasting": m["steps_to_generalize_lasting"]})
    return pd.DataFrame(rows)


def teacher_by_shift(sweep: Path) -> pd.DataFrame:
    """The grokked teacher's accuracy on all 898 images of half b (the students' half), by shift and shift mode."""
    import torch

    from grokkit.checkpoint import load_model
    from grokkit.tasks.digits import DigitsTask, subset_indices

    model, _, _ = load_model(sweep / "requires" / "teacher")
    rows = []
    for mode in ("roll", "translate"):
        for shift in range(5):
            split = DigitsTask(n_train=0, n_test=len(subset_indices("b")), shift=shift, shift_mode=mode,
                               subset="b").split(0)
            with torch.no_grad():
                logits = model(split.test.tokens.unsqueeze(0), [63])[0, :, 0, :10]
            rows.append({"shift_mode": mode, "shift": shift,
                         "teacher_acc": float((logits.argmax(-1) == split.test.labels).double().mean())})
    return pd.DataFrame(rows)


def curves(sweep: Path, path: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    for ax, n in zip(axes, (60, 150)):
        for case, color in (("scratch", "C0"), ("scratch_init1", "C1")):
            for seed in range(5):
                run = sweep / "trials" / f"{case}__n_train={n}__seed={seed}" / "metrics.csv"
                if not run.exists():
                    continue
                m = pd.read_csv(run)
                label = f"{case} ({'init 8' if case == 'scratch' else 'init 1'})" if seed == 0 else None
                ax.plot(m.step, m.test_acc, "-", color=color, alpha=0.7, lw=1, label=label and f"test, {label}")
                ax.plot(m.step, m.train_acc, ":", color=color, alpha=0.7, lw=1,
                        label=label and f"train, {label}")
        ax.axhline(0.9, color="grey", lw=0.8, ls="--")
        ax.set_title(f"scratch, {n} training images (shift 1), 5 seeds")
        ax.set_xlabel("step")
    axes[0].set_ylabel("accuracy")
    axes[0].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def by_size(a: pd.DataFrame, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for i, (case, g) in enumerate(a.groupby("case", sort=False)):
        ax.errorbar(g.n_train * (1 + 0.012 * (i - 4)), g.test_acc_mean, yerr=g.test_acc_sd, marker="o", ms=3,
                    capsize=2, lw=1, label=case, ls="--" if "random" in case else "-")
    ax.axhline(0.9, color="grey", lw=0.8, ls=":")
    ax.set_xscale("log")
    ax.minorticks_off()
    ax.set_xticks(sorted(a.n_train.unique()), [str(n) for n in sorted(a.n_train.unique())])
    ax.set_xlabel("training images (half b)")
    ax.set_ylabel("final test accuracy (mean ± sd, 5 seeds)")
    ax.set_title("digits: scratch vs distillation (shift 1 unless s0)")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def write_summary_md(out: Path) -> None:
    """``summary.md``: ``summary.csv`` (``grokkit results --csv``) restated as markdown."""
    from grokkit.analysis.survival import format_p
    from grokkit.tables import markdown_table

    s = pd.read_csv(out / "summary.csv")
    summary = pd.DataFrame({
        "case": s.case, "n_train": s["task.n_train"], "trials": s.trials, "errors": s.errors,
        "generalised": [f"{k}/{n}" for k, n in zip(s.generalized, s.n)],
        "share [95% CI]": [f"{v:.2f} [{lo:.2f}, {hi:.2f}]" for v, lo, hi in zip(s.share, s.share_low, s.share_high)],
        "km_median [95% CI]": s.km_median_text, "log-rank p vs scratch": [format_p(p) for p in s.logrank_p],
        "test_acc": s.test_acc.round(4), "test_acc_sd": s.test_acc_sd.round(4), "wall_s": s.wall_s.round(1)})
    marker = ('<!-- data: ./summary.csv; key: case, n_train; columns: n_train=task.n_train, generalised=generalized+n, '
              '"share [95% CI]"=share+share_low+share_high, "km_median [95% CI]"=km_median_text, '
              '"log-rank p vs scratch"=logrank_p -->')
    (out / "summary.md").write_text(
        "# digits: `grokkit results --group-by case --group-by task.n_train`\n\n"
        "Generalised: test accuracy >= 0.9 from some evaluation to the end of the run, held for the hold window (the "
        "last 300 of the 3,000 steps); km_median: the Kaplan-Meier median step of lasting generalisation with its 95% "
        "interval (a seed that did not generalise censored at the budget; '> 3,000' where the data cannot give a "
        "median); test_acc: mean and sd of the final test accuracy over 5 seeds.\n\n"
        + marker + "\n" + markdown_table(summary) + "\n")


def from_trials(out: Path, sweep_file: Path) -> None:
    """Re-make ``arms.csv``, ``summary.csv`` and ``summary.md`` from the committed ``out/trials.csv``: each trial's
    budget and hold window from the sweep file's base (its students run their whole budget)."""
    from grokkit.sections import TrainingConfig
    from grokkit.sweep.store import summarize

    spec = yaml.safe_load(sweep_file.read_text())
    training = TrainingConfig.model_validate(spec["base"]["training"])
    overridden = [c["name"] for c in spec.get("cases", []) if any(k.startswith("training.")
                                                                  for k in c.get("overrides", {}))]
    if training.early_stop or overridden:
        raise SystemExit(f"{sweep_file}: early stop or per-case training settings ({overridden}): the run lengths "
                         "are not in trials.csv")
    t = pd.read_csv(out / "trials.csv").assign(steps=training.steps, budget=training.steps,
                                               hold_window=training.hold_window)
    arms(t).to_csv(out / "arms.csv", index=False, float_format="%.4f")
    results = t.rename(columns={"n_train": "task.n_train", "steps_lasting": "steps_to_generalize_lasting",
                                "budget": "training.steps", "hold_window": "training.hold_window"}).assign(
        status="ok")
    summarize(results, ["case", "task.n_train"]).to_csv(out / "summary.csv", index=False)
    write_summary_md(out)


def main(sweep: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    t = trials(sweep)
    t.to_csv(out / "trials.csv", index=False)
    a = arms(t)
    a.to_csv(out / "arms.csv", index=False, float_format="%.4f")
    by_size(a, out / "by_size.png")
    teachers(sweep).to_csv(out / "teachers.csv", index=False, float_format="%.4f")
    teacher_by_shift(sweep).to_csv(out / "teacher_by_shift.csv", index=False, float_format="%.4f")
    curves(sweep, out / "curves.png")
    if (out / "summary.csv").exists():  # grokkit results --csv, restated as markdown
        write_summary_md(out)


if __name__ == "__main__":
    if sys.argv[1] == "--from-trials":
        from_trials(Path(sys.argv[2]), Path(sys.argv[3]))
    else:
        main(Path(sys.argv[1]), Path(sys.argv[2]))
