"""The critical threshold against the step budget (issue 30): from one sweep whose members train to the largest
budget without early stop (``configs/studies/threshold_budget.yaml``), each trial's outcome at every budget B is read
off its test-accuracy curve truncated at B: lasting generalisation by B, held for the hold window of B
(``training.hold_window`` x B, the last 10% by default; :func:`grokkit.engine.lasting_step` with ``end = B``).

    python experiments/threshold_budget.py runs/threshold_budget --out docs/threshold_budget

Per arm (``case``) and budget: the critical fraction, where P(lasting generalisation by B) = 0.5, by the logistic fit
and bootstrap CI of :mod:`grokkit.analysis.threshold`; per arm, budget and fraction: the trials that generalised,
the Kaplan-Meier median step with its interval and the log-rank p-value against the control arm at the same
fraction and budget (:mod:`grokkit.analysis.survival`). Writes into ``--out``:

* ``threshold_budget.csv``: one row per arm x budget x fraction;
* ``thresholds.csv``: one row per arm x budget (the fit);
* ``outcomes.csv``: one row per trial x budget (duration, event), the data both are computed from;
* ``threshold_budget.md`` (the tables, each with the data marker the docs checker reads, and the trials missing) and
  ``threshold_budget.png`` (the threshold with its CI against the budget, log x, one line per arm; P(generalise)
  against the fraction per budget), both drawn from the CSVs above.

A sweep still running is fine: trials without a ``summary.json`` are listed as missing (and a trial that ran fewer
steps than a budget is missing from that budget), and everything is computed from the trials that are there.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from grokkit.analysis.survival import arms_table, format_p  # noqa: E402
from grokkit.analysis.threshold import estimate_threshold  # noqa: E402
from grokkit.engine import lasting_step  # noqa: E402
from grokkit.rundir import RunDir  # noqa: E402
from grokkit.sections import hold_steps  # noqa: E402
from grokkit.sweep.store import current_table  # noqa: E402
from grokkit.tables import markdown_table  # noqa: E402

BUDGETS = (2000, 5000, 10000, 20000)
X = "task.train_fraction"


def outcome_at(steps: Sequence[int], accs: Sequence[float], threshold: float, budget: int, hold_window: float
               ) -> tuple[float, bool, int]:
    """One trial at budget ``budget``: its curve cut at the budget, lasting generalisation held for the hold window
    of that budget. Returns (duration, event, window in steps): the lasting step and True, or the budget and False
    (censored there)."""
    window = hold_steps(hold_window, budget)
    keep = [i for i, s in enumerate(steps) if s <= budget]
    start = lasting_step([steps[i] for i in keep], [accs[i] for i in keep], threshold, window, budget)
    return (float(budget), False, window) if start is None else (float(start), True, window)


def trial_outcomes(sweep_dir: Path, budgets: Sequence[int], by: str = "case") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every finished trial's outcome at every budget (columns ``trial``, ``by``, :data:`X`, ``seed``, ``budget``,
    ``duration``, ``event``, ``window``), and the (trial, budget) pairs that are missing, with the reason."""
    _, table = current_table(sweep_dir)
    rows, missing = [], []
    for r in table.to_dict("records"):
        if r["status"] not in ("ok", "failed"):
            missing += [{"trial": r["trial"], "budget": b, "why": r["status"]} for b in budgets]
            continue
        metrics = RunDir(sweep_dir / "trials" / r["trial"]).read_metrics().sort_values("step")
        steps, accs = metrics.step.astype(int).tolist(), metrics.test_acc.astype(float).tolist()
        threshold = float(r["training.generalization_threshold"])
        hold_window = float(r.get("training.hold_window", 0.1))
        for b in budgets:
            if r["status"] == "ok" and int(r["steps"]) < b:
                missing.append({"trial": r["trial"], "budget": b, "why": f"ran {int(r['steps'])} steps"})
                continue
            # a failed (NaN) member is frozen where it failed: it cannot generalise later, so its outcome at any
            # budget is its curve up to the failure, censored at the budget
            duration, event, window = outcome_at(steps, accs, threshold, b, hold_window)
            rows.append({"trial": r["trial"], by: r[by], X: float(r[X]), "seed": r["seed"], "budget": b,
                         "duration": duration, "event": event, "window": window})
    return pd.DataFrame(rows), pd.DataFrame(missing, columns=["trial", "budget", "why"])


def per_fraction(outcomes: pd.DataFrame, by: str = "case", control: str = "scratch") -> pd.DataFrame:
    """One row per arm x budget x fraction: n, generalised, share (Wilson CI), Kaplan-Meier median step [CI], and
    the log-rank p-value against ``control`` at the same budget and fraction."""
    frames = []
    for budget, g in outcomes.groupby("budget", sort=True):
        t = arms_table(g, [by, X], control, by, float(budget))
        frames.append(t.assign(budget=budget))
    out = pd.concat(frames, ignore_index=True)
    return out[[by, "budget", X, *[c for c in out.columns if c not in (by, "budget", X)]]]


def thresholds(outcomes: pd.DataFrame, by: str = "case", n_bootstrap: int = 1000) -> pd.DataFrame:
    """One row per arm x budget: the critical fraction (P = 0.5) with its bootstrap CI, censored outside the tested
    fractions (:func:`grokkit.analysis.threshold.estimate_threshold`)."""
    rows = []
    for (arm, budget), g in outcomes.groupby([by, "budget"], sort=False):
        t = estimate_threshold(g[X].to_numpy(float), g.event.to_numpy(float), str(arm), n_bootstrap)
        rows.append({by: arm, "budget": budget, "n_trials": t.n_trials, "n_generalized": t.n_generalized,
                     "x50": t.x50, "ci_low": t.ci_low, "ci_high": t.ci_high, "censored": t.censored,
                     "x_min": t.x_min, "x_max": t.x_max, "slope": t.slope, "summary": t.text()})
    return pd.DataFrame(rows).sort_values([by, "budget"], kind="stable").reset_index(drop=True)


def _missing_text(missing: pd.DataFrame) -> str:
    """The missing (trial, budget) pairs, compactly: per reason and setting, the seeds and budgets."""
    if missing.empty:
        return "none."
    parts = []
    m = missing.assign(setting=missing.trial.str.rpartition("__seed=")[0],
                       seed=missing.trial.str.rpartition("__seed=")[2])
    for (why, setting), g in m.groupby(["why", "setting"], sort=True):
        seeds = ", ".join(sorted(set(g.seed), key=lambda v: (len(v), v)))
        budgets = ", ".join(f"{int(b):,}" for b in sorted(set(g.budget)))
        parts.append(f"{setting} seeds {seeds} ({why}; budgets {budgets})")
    return (f"{missing.trial.nunique()} trial(s): " + "; ".join(parts)
            + ". The tables use the trials that are there: not final until nothing is missing.")


def markdown(out: Path, sweep_dir: Path, by: str = "case", control: str = "scratch") -> str:
    """``threshold_budget.md`` from the CSVs in ``out``."""
    th = pd.read_csv(out / "thresholds.csv", keep_default_na=False)
    fr = pd.read_csv(out / "threshold_budget.csv", keep_default_na=False)
    missing = pd.read_csv(out / "missing.csv", keep_default_na=False)
    trials = pd.read_csv(out / "outcomes.csv").trial.nunique()
    budgets = sorted(fr.budget.unique())
    lines = [
        "# The critical threshold against the step budget", "",
        f"`python experiments/threshold_budget.py {sweep_dir} --out {out}` "
        f"(sweep `configs/studies/threshold_budget.yaml`). Each trial trains to the largest budget without early "
        "stop; its outcome at a budget B is its test-accuracy curve cut at B: generalised if test accuracy is "
        "at or above the threshold from some evaluation to B *and* for at least the hold window of B (10% of B by "
        "default), else censored at B. Budgets: " + ", ".join(f"{b:,}" for b in budgets) + f"; {trials} trials.",
        "",
        "Missing: " + _missing_text(missing),
        "", "## The critical fraction per budget", "",
        f'<!-- data: ./thresholds.csv; columns: {by}={by}, budget=budget, trials=n_trials, generalised=n_generalized, '
        '"fraction at P(generalise) = 0.5 [95% CI]"=summary -->',
        markdown_table(pd.DataFrame({by: th[by], "budget": th.budget, "trials": th.n_trials,
                                     "generalised": th.n_generalized,
                                     "fraction at P(generalise) = 0.5 [95% CI]": th.summary})),
        "", "## Per fraction: generalised by the budget, Kaplan-Meier median step", "",
        f'<!-- data: ./threshold_budget.csv; columns: {by}={by}, budget=budget, fraction={X}, '
        f'generalised=generalized+n, "median lasting step [95% CI]"=km_median_text, '
        f'"log-rank p vs {control}"=logrank_p -->',
        markdown_table(pd.DataFrame({
            by: fr[by], "budget": fr.budget, "fraction": fr[X].map(lambda v: f"{float(v):g}"),
            "generalised": [f"{k}/{n}" for k, n in zip(fr.generalized, fr.n)],
            "median lasting step [95% CI]": fr.km_median_text,
            f"log-rank p vs {control}": [format_p(float(p)) if p != "" else "—" for p in fr.logrank_p]})),
        "", "![threshold against budget](threshold_budget.png)", ""]
    return "\n".join(lines)


def plot(out: Path, by: str = "case") -> None:
    """``threshold_budget.png`` from the CSVs in ``out``: (a) the critical fraction with its 95% CI against the budget
    (log x), one line per arm, a threshold beyond the tested fractions drawn at the edge as an open triangle
    pointing beyond it; (b) the share
    that generalised (Wilson CI) against the fraction, one line per arm and budget."""
    th = pd.read_csv(out / "thresholds.csv")
    fr = pd.read_csv(out / "threshold_budget.csv")
    fig, (ax_t, ax_p) = plt.subplots(1, 2, figsize=(12, 4.6))
    n_arms = th[by].nunique()
    for i, (arm, g) in enumerate(th.groupby(by, sort=False)):
        color = f"C{i}"
        lo_edge, hi_edge = float(g.x_min.min()), float(g.x_max.max())
        x50 = g.x50.replace([np.inf], hi_edge).replace([-np.inf], lo_edge)
        low = g.ci_low.replace([-np.inf], lo_edge).fillna(lo_edge).clip(lower=lo_edge)
        high = g.ci_high.replace([np.inf], hi_edge).fillna(hi_edge).clip(upper=hi_edge)
        budget = g.budget * (1 + 0.04 * (i - (n_arms - 1) / 2))  # arms side by side at each budget
        ax_t.errorbar(budget, x50, yerr=[np.maximum(x50 - low, 0), np.maximum(high - x50, 0)], fmt="-o",
                      color=color, capsize=4, label=str(arm))
        censored = g.censored.astype(object).fillna("")
        for side, marker in (("above", "^"), ("below", "v")):
            sel = (censored == side).to_numpy()
            if sel.any():  # beyond the tested fractions: an open triangle at the edge, pointing the way
                ax_t.plot(budget[sel], x50[sel], marker, ms=11, mfc="white", color=color)
    ax_t.set_xscale("log")
    ax_t.set_xticks(sorted(th.budget.unique()), [f"{b:,}" for b in sorted(th.budget.unique())])
    ax_t.minorticks_off()
    ax_t.set_xlabel("step budget B")
    ax_t.set_ylabel("critical training fraction (P = 0.5)")
    ax_t.set_title("threshold with 95% bootstrap CI; open triangle: beyond the tested fractions", fontsize=9)
    ax_t.grid(alpha=0.3)
    ax_t.legend(fontsize=8)
    budgets = sorted(fr.budget.unique())
    cmap = plt.get_cmap("viridis")
    styles = ["-", "--", ":", "-."]
    for j, (arm, g) in enumerate(fr.groupby(by, sort=False)):
        for k, b in enumerate(budgets):
            s = g[g.budget == b].sort_values(X)
            ax_p.errorbar(s[X], s.share, yerr=[s.share - s.share_low, s.share_high - s.share], fmt="o",
                          ls=styles[j % len(styles)], ms=3, capsize=2, lw=1.2,
                          color=cmap(k / max(1, len(budgets) - 1)), label=f"{arm}, B = {b:,}")
    ax_p.set_xlabel("training fraction")
    ax_p.set_ylabel("P(lasting generalisation by B)")
    ax_p.set_ylim(-0.05, 1.05)
    ax_p.set_title("share of seeds that generalised for good (Wilson 95% CI)", fontsize=9)
    ax_p.grid(alpha=0.3)
    ax_p.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(out / "threshold_budget.png", dpi=120)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sweep", type=Path)
    ap.add_argument("--out", type=Path, default=Path("docs/threshold_budget"))
    ap.add_argument("--budgets", type=int, nargs="+", default=list(BUDGETS))
    ap.add_argument("--by", default="case", help="the arm column")
    ap.add_argument("--control", default="scratch", help="the arm each other is tested against (log-rank)")
    ap.add_argument("--n-bootstrap", type=int, default=1000)
    args = ap.parse_args(argv)
    outcomes, missing = trial_outcomes(args.sweep, sorted(args.budgets), args.by)
    if outcomes.empty:
        print(f"{args.sweep}: no finished trial yet ({len(set(missing.trial))} missing)", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    outcomes.to_csv(args.out / "outcomes.csv", index=False)
    missing.to_csv(args.out / "missing.csv", index=False)
    per_fraction(outcomes, args.by, args.control).to_csv(args.out / "threshold_budget.csv", index=False)
    thresholds(outcomes, args.by, args.n_bootstrap).to_csv(args.out / "thresholds.csv", index=False)
    (args.out / "threshold_budget.md").write_text(markdown(args.out, args.sweep, args.by, args.control))
    plot(args.out, args.by)
    n_missing = missing.trial.nunique()
    print(f"wrote {args.out}/threshold_budget.{{csv,md,png}} and thresholds.csv from {outcomes.trial.nunique()} "
          f"trials" + (f"; {n_missing} trial(s) missing, listed in missing.csv" if n_missing else ""))
    for r in pd.read_csv(args.out / "thresholds.csv").itertuples():
        print(f"  {getattr(r, args.by)} at {r.budget:,} steps: {r.summary} ({r.n_generalized}/{r.n_trials})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
