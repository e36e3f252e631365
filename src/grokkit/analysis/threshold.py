"""The critical data threshold: P(generalise within the step budget) against the training fraction.

For each method a logistic curve P = sigmoid(b0 + b1 * z), z the standardised fraction, is fitted by penalised
maximum likelihood (a weak ridge on the slope keeps the fit finite when the outcomes are perfectly separated, which is
the usual case for grokking: every seed fails below the threshold and every seed succeeds above it). The threshold
f50 is the fraction where P = 0.5; its confidence interval is the bootstrap percentile interval (resampling the
seeds at each fraction), widened, when every fraction's seeds all agree, to the tested fractions that bracket the
crossing: with such separated outcomes every bootstrap sample gives the same fit, but the data cannot place the
threshold more finely than the grid. A threshold outside the tested range is reported as censored ("< lowest" or
"> highest"), never extrapolated.

The outcome is generalisation that lasted (test accuracy at or above the threshold from some evaluation to the end
of the run, held for the trial's hold window: :func:`grokkit.analysis.survival.table_outcomes`), not a first
crossing. The steps it took are censored data: per method and fraction, the Kaplan–Meier median with its interval
and the log-rank p-value against the control method (``scratch``) at the same fraction (:func:`steps_table`).
The fit is a two-parameter Newton iteration (the same optimum as statsmodels' penalised binomial GLM,
``GLM(...).fit_regularized(alpha=penalty / n, L1_wt=0)``, which the tests check) because the bootstrap refits it a
thousand times per method and statsmodels' elastic-net solver is about 10x slower and stops on a looser tolerance;
the per-fraction intervals are statsmodels' Wilson intervals.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

RIDGE = 0.01


@dataclass
class LogisticFit:
    b0: float
    b1: float  # per standard deviation of x
    x_mean: float
    x_sd: float

    def p(self, x: np.ndarray) -> np.ndarray:
        z = (np.asarray(x, dtype=float) - self.x_mean) / self.x_sd
        return 1.0 / (1.0 + np.exp(-(self.b0 + self.b1 * z)))

    def x50(self) -> float:
        """Where P = 0.5; +inf if P never rises to 0.5 over x, -inf if it is always above."""
        if self.b1 <= 1e-9:
            return math.inf if self.b0 < 0 else -math.inf
        return self.x_mean - self.b0 / self.b1 * self.x_sd


def fit_logistic(x: np.ndarray, y: np.ndarray, ridge: float = RIDGE, iters: int = 100) -> LogisticFit:
    """Newton's method on the penalised log-likelihood (ridge on the slope only)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    mean, sd = float(x.mean()), float(x.std()) or 1.0
    z = (x - mean) / sd
    design = np.stack([np.ones_like(z), z], axis=1)
    penalty = np.diag([1e-6, ridge])  # a vanishing ridge on the intercept keeps all-0/all-1 outcomes finite
    beta = np.zeros(2)
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-(design @ beta)))
        grad = design.T @ (y - p) - penalty @ beta
        hess = design.T @ (design * (p * (1 - p))[:, None]) + penalty
        step = np.linalg.solve(hess, grad)
        beta = beta + step
        if np.abs(step).max() < 1e-10:
            break
    return LogisticFit(float(beta[0]), float(beta[1]), mean, sd)


@dataclass
class Threshold:
    method: str
    n_trials: int
    n_generalized: int
    x_min: float
    x_max: float
    x50: float  # may be +-inf (censored)
    ci_low: float
    ci_high: float
    slope: float
    censored: str  # "", "below" (< x_min) or "above" (> x_max)

    def text(self, digits: int = 3) -> str:
        def f(v: float) -> str:
            if v == -math.inf or v < self.x_min:
                return f"< {self.x_min:.{digits}g}"
            if v == math.inf or v > self.x_max:
                return f"> {self.x_max:.{digits}g}"
            return f"{v:.{digits}f}"

        return f"{f(self.x50)} [95% CI {f(self.ci_low)}, {f(self.ci_high)}]"


def estimate_threshold(x: np.ndarray, y: np.ndarray, method: str = "", n_bootstrap: int = 1000,
                       seed: int = 0, level: float = 0.95) -> Threshold:
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    lo_x, hi_x = float(x.min()), float(x.max())

    def clip(v: float) -> float:  # outside the tested range the curve is not evidence: censor
        return -math.inf if v < lo_x else math.inf if v > hi_x else v

    fit = fit_logistic(x, y)
    x50 = clip(fit.x50())
    rng = np.random.default_rng(seed)
    levels = np.unique(x)
    index = {v: np.flatnonzero(x == v) for v in levels}
    boots = []
    for _ in range(n_bootstrap):
        rows = np.concatenate([rng.choice(index[v], size=len(index[v]), replace=True) for v in levels])
        boots.append(clip(fit_logistic(x[rows], y[rows]).x50()))
    if boots:
        arr = np.array(boots)
        a = (1 - level) / 2
        ci_low = float(np.quantile(arr, a, method="inverted_cdf"))
        ci_high = float(np.quantile(arr, 1 - a, method="inverted_cdf"))
    else:
        ci_low = ci_high = math.nan
    per_x = {v: y[index[v]].mean() for v in levels}
    if math.isfinite(x50) and all(p in (0.0, 1.0) for p in per_x.values()):
        # separated outcomes: the data cannot place the threshold more finely than the fractions around it
        below = [v for v in levels if v <= x50 and per_x[v] < 0.5]
        above = [v for v in levels if v >= x50 and per_x[v] >= 0.5]
        ci_low = min(ci_low, max(below)) if below else -math.inf
        ci_high = max(ci_high, min(above)) if above else math.inf
    censored = "below" if x50 == -math.inf else "above" if x50 == math.inf else ""
    return Threshold(method, len(y), int(y.sum()), lo_x, hi_x, x50, ci_low, ci_high, fit.b1 / fit.x_sd, censored)


def wilson(k: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """The Wilson score interval of k successes in n trials (statsmodels' ``proportion_confint``)."""
    if n == 0:
        return (math.nan, math.nan)
    from statsmodels.stats.proportion import proportion_confint

    lo, hi = proportion_confint(k, n, alpha=alpha, method="wilson")
    return (float(lo), float(hi))


def outcome_columns(table: pd.DataFrame) -> tuple[str, str]:
    """The outcome a threshold is fitted on: generalisation that *lasted* (``generalized_lasting``,
    ``steps_to_generalize_lasting``) where the results have it, else the first crossing (older results stores)."""
    if "steps_to_generalize_lasting" in table.columns:
        return "generalized_lasting", "steps_to_generalize_lasting"
    return "generalized", "steps_to_generalize"


def outcomes(table: pd.DataFrame) -> pd.DataFrame:
    """The finished (and errored) trials of a results table with their time to lasting generalisation as censored
    data (``duration``, ``event``: held for each trial's hold window, censored at the end of its run); a results
    store too old to record lasting steps gives first crossings (no window)."""
    from grokkit.analysis.survival import table_outcomes

    df = table[table.status != "pending"]
    if "steps" not in df.columns:
        raise ValueError("threshold: the results have no `steps` column (the steps each trial ran)")
    _, steps = outcome_columns(df)
    return pd.concat([df, table_outcomes(df, steps, hold_window=None if steps.endswith("lasting") else 0.0)], axis=1)


def threshold_table(table: pd.DataFrame, x: str = "task.train_fraction", by: str = "case",
                    n_bootstrap: int = 1000, seed: int = 0) -> pd.DataFrame:
    from grokkit.sweep.spec import SweepError
    from grokkit.sweep.store import require_finished

    require_finished(table, "the sweep", "a threshold fit")
    if x not in table.columns:
        raise SweepError(f"threshold: no column {x!r} in the results; give --x one of the varied columns, e.g. "
                         f"{[c for c in table.columns if c.startswith(('task.', 'distill.', 'optimizer.'))][:6]}")
    df = outcomes(table)
    groups = df.groupby(by) if by in df.columns else [("all", df)]
    rows = []
    for method, g in groups:
        t = estimate_threshold(g[x].to_numpy(float), g["event"].astype(bool).to_numpy(float), str(method),
                               n_bootstrap, seed)
        rows.append({**asdict(t), "summary": t.text()})
    return pd.DataFrame(rows)


def steps_table(table: pd.DataFrame, x: str = "task.train_fraction", by: str = "case", control: str = "scratch"
                ) -> pd.DataFrame:
    """Per method and value of ``x``: the trials that generalised for good, the Kaplan–Meier median step with its
    interval, and the log-rank p-value against method ``control`` at the same ``x`` (:mod:`grokkit.analysis.
    survival`)."""
    from grokkit.analysis.survival import arms_table

    df = outcomes(table)
    if by not in df.columns:
        df = df.assign(**{by: "all"})
    budget = pd.to_numeric(df["training.steps"] if "training.steps" in df else df["steps"]).max()
    return arms_table(df, [by, x], control, by, float(budget) if len(df) else None)


def plot_threshold(table: pd.DataFrame, thresholds: pd.DataFrame, path: Path, x: str = "task.train_fraction",
                   by: str = "case", title: str = "") -> None:
    """:func:`threshold_figure` written to ``path``."""
    import matplotlib.pyplot as plt

    from grokkit.checkpoint import atomic_write

    fig = threshold_figure(table, thresholds, x, by, title)
    atomic_write(path, lambda p: fig.savefig(p, dpi=120, format="png"))
    plt.close(fig)


def threshold_figure(table: pd.DataFrame, thresholds: pd.DataFrame, x: str = "task.train_fraction",
                     by: str = "case", title: str = "") -> Any:
    """P(generalise for good) against ``x`` per method with its logistic fit and the threshold's interval (left), and
    the Kaplan-Meier median step to lasting generalisation per method and ``x``, each point sized and labelled by
    the seeds it rests on (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from grokkit.plots import readable_log_axis

    df = outcomes(table)
    outcome, _ = outcome_columns(df)
    steps_of = steps_table(table, x, by) if by in df.columns else steps_table(table, x, by).assign(**{by: "all"})
    groups = list(df.groupby(by)) if by in df.columns else [("all", df)]
    fig, (ax_p, ax_s) = plt.subplots(1, 2, figsize=(11, 4.2))
    grid = np.linspace(df[x].min(), df[x].max(), 200)
    for i, (method, g) in enumerate(groups):
        color = f"C{i}"
        per_x = g.groupby(x)["event"].agg(["sum", "count"]).reset_index()
        p = per_x["sum"] / per_x["count"]
        ci = np.array([wilson(int(k), int(n)) for k, n in zip(per_x["sum"], per_x["count"])])
        counts = per_x["count"].astype(int)
        same = counts.nunique() == 1
        ax_p.errorbar(per_x[x], p, yerr=[p - ci[:, 0], ci[:, 1] - p], fmt="o", color=color, capsize=3,
                      label=f"{method} (n={counts.iloc[0]}/point)" if same else f"{method} (n per point)")
        if not same:  # points resting on different numbers of trials say how many each
            for xv, pv, n in zip(per_x[x], p, counts):
                ax_p.annotate(f"n={n}", (xv, pv), textcoords="offset points", xytext=(5, -10), fontsize=7,
                              color=color)
        fit = fit_logistic(g[x].to_numpy(float), g["event"].to_numpy(float))
        ax_p.plot(grid, fit.p(grid), "-", color=color, alpha=0.8)
        row = thresholds[thresholds.method == str(method)]
        if len(row) and not row.censored.iloc[0]:
            r = row.iloc[0]
            lo = max(r.ci_low, df[x].min()) if np.isfinite(r.ci_low) else df[x].min()
            hi = min(r.ci_high, df[x].max()) if np.isfinite(r.ci_high) else df[x].max()
            ax_p.axvspan(lo, hi, color=color, alpha=0.12)
            ax_p.axvline(r.x50, color=color, ls=":", lw=1)
        ok = g[g["event"]]
        if len(ok):
            ax_s.scatter(ok[x], ok["duration"].astype(float), color=color, alpha=0.35, s=14)
        med = steps_of[(steps_of[by].astype(str) == str(method)) & np.isfinite(steps_of.km_median)]
        if len(med):  # the Kaplan-Meier median where the data give one; its CI bar up to the budget if unbounded
            top = np.where(np.isfinite(med.km_median_high), med.km_median_high, med.budget)
            low = np.where(np.isfinite(med.km_median_low), med.km_median_low, med.km_median)
            ax_s.errorbar(med[x], med.km_median, yerr=[med.km_median - low, top - med.km_median], fmt="-",
                          color=color, capsize=3, lw=1, alpha=0.7, label=str(method))
            # each median sized and labelled by what it rests on: the seeds that generalised of those run
            ax_s.scatter(med[x], med.km_median, s=[18 + 14 * int(k) for k in med.generalized], color=color,
                         edgecolors="white", linewidths=0.6, zorder=3)
            for xv, yv, k, n in zip(med[x], med.km_median, med.generalized, med.n):
                ax_s.annotate(f"{int(k)}/{int(n)}", (xv, yv), textcoords="offset points", xytext=(5, 4),
                              fontsize=7, color=color)
    ax_p.set_xlabel(x)
    ax_p.set_ylabel("P(generalise within budget, and stay)" if outcome.endswith("lasting")
                    else "P(generalise within budget)")
    ax_p.set_ylim(-0.05, 1.05)
    ax_p.grid(alpha=0.3)
    ax_p.legend(fontsize=8)
    ax_p.set_title("logistic fit; shaded: 95% bootstrap CI of the threshold", fontsize=9)
    ax_s.set_xlabel(x)
    ax_s.set_ylabel("steps to lasting generalisation" if outcome.endswith("lasting")
                    else "steps to generalise")
    ax_s.set_yscale("log")
    readable_log_axis(ax_s, "y")
    ax_s.margins(x=0.1)  # room for the k/n labels of the outermost points
    ax_s.grid(alpha=0.3)
    ax_s.set_title("Kaplan-Meier median and 95% CI over seeds (failures censored; none where the data give no\n"
                   "median), sized and labelled k/n: k of n seeds generalised; small dots: trials that generalised",
                   fontsize=8)
    if ax_s.get_legend_handles_labels()[0]:
        ax_s.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def threshold_report(table: pd.DataFrame, out: str | Path, x: str = "task.train_fraction", by: str = "case",
                     n_bootstrap: int = 1000, seed: int = 0, control: str = "scratch") -> pd.DataFrame:
    """Fit, then write ``threshold.csv``, ``threshold_steps.csv`` (:func:`steps_table`), ``threshold.md`` (both
    tables) and ``threshold.png`` into ``out``."""
    from grokkit.analysis.survival import format_p
    from grokkit.checkpoint import atomic_write, atomic_write_text

    out = Path(out)
    thresholds = threshold_table(table, x, by, n_bootstrap, seed)
    steps = steps_table(table, x, by, control)
    atomic_write(out / "threshold.csv", lambda p: thresholds.to_csv(p, index=False))
    atomic_write(out / "threshold_steps.csv", lambda p: steps.to_csv(p, index=False))
    header = f"{x} at P(generalise) = 0.5"
    lines = [f'<!-- data: ./threshold.csv; columns: {by}=method, trials=n_trials, generalised=n_generalized, '
             f'"{header}"=summary -->', f"| {by} | trials | generalised | {header} |", "|---|---|---|---|"]
    for r in thresholds.itertuples():
        lines.append(f"| {r.method} | {r.n_trials} | {r.n_generalized} | {r.summary} |")
    p_header = f"log-rank p vs {control}"
    lines += ["", f'<!-- data: ./threshold_steps.csv; columns: {by}={by}, {x}={x}, generalised=generalized+n, '
              f'"median lasting step [95% CI]"=km_median_text, "{p_header}"=logrank_p -->',
              f"| {by} | {x} | generalised | median lasting step [95% CI] | {p_header} |", "|---|---|---|---|---|"]
    for r in steps.to_dict("records"):
        lines.append(f"| {r[by]} | {r[x]:g} | {r['generalized']}/{r['n']} | {r['km_median_text']} | "
                     f"{format_p(r['logrank_p'])} |")
    atomic_write_text(out / "threshold.md", "\n".join(lines) + "\n")
    plot_threshold(table, thresholds, out / "threshold.png", x, by)
    return thresholds
