"""Time to (lasting) generalisation as right-censored data: the statistics every table of step counts uses.

A member either generalises for good within its run (an *event* at its lasting step: test accuracy at or above the
threshold from that step to the end of the run, held for at least the hold window, :func:`grokkit.engine.lasting_step`)
or it does not (*censored* at the step its run ended: all we know is that it had not generalised for good by then).
Taking the median over the members that generalised, as the tables once did, drops the failures and makes a method
that generalised on 2 seeds of 5 look fast; counting a failure as "the budget" is right only while fewer than half
fail. The Kaplan–Meier estimate handles both, and different run lengths too:

* :func:`km_summary`: per arm, the Kaplan–Meier median with its confidence interval (statsmodels ``SurvfuncRight``:
  ``quantile`` and ``quantile_ci``, which inverts a test on the complementary log-log scale, the SAS method), and the
  share generalised by the budget with its Wilson interval (statsmodels ``proportion_confint``);
* :func:`logrank_p`: the log-rank test between two arms (statsmodels ``survdiff``);
* :func:`format_median`: the one way every table prints a median step and its interval. A median the data cannot
  give (the Kaplan–Meier curve never falls below 0.5 within the budget) is printed ``> budget``, never as a number;
  an upper confidence bound the data do not reach is ``> budget`` too, a lower bound they cannot give ``—``.

statsmodels' median follows SAS: the first event time at which the estimated survival S(t) falls strictly below 0.5
(for 4 members that all generalise: the third time, where a mean of the middle two would take the second and third).
The share generalised by the budget counts events among all members: a member whose run stopped before the budget
without holding (only runs made before the hold window existed stop so: early stop now waits for every member to
hold) counts as not generalised, which can only understate the share; the Kaplan–Meier median and the log-rank test
use its true censoring step.

:func:`table_outcomes` turns a results-like table (a sweep's results store, a tune's ``final.csv``) into (duration,
event) pairs, applying each trial's hold window to its recorded lasting step: results recorded before the window
existed get it applied here, results recorded since already have it (applying it again changes nothing).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

ALPHA = 0.05


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float | np.floating) and math.isnan(v)) or v is pd.NA or v is pd.NaT


def held_step(lasting: float | None, end: float, window: float) -> int | None:
    """A recorded lasting step under the hold window: ``lasting`` if the run (which ended at ``end``) went on for at
    least ``window`` steps after it, else None. The rule is :func:`grokkit.engine.lasting_step`'s, applied to a
    curve that is at the threshold from ``lasting`` to ``end``."""
    from grokkit.engine import lasting_step

    if _missing(lasting):
        return None
    return lasting_step([int(lasting), end], [1.0, 1.0], 1.0, window, end)


def time_to_event(lasting: float | None, end: float, window: float) -> tuple[float, bool]:
    """One member as (duration, event): ``(lasting, True)`` if it generalised for good and held for the window,
    else ``(end, False)``: censored at the step its run ended."""
    step = held_step(lasting, end, window)
    return (float(end), False) if step is None else (float(step), True)


def table_outcomes(table: pd.DataFrame, lasting: str = "steps_to_generalize_lasting", end: str = "steps",
                   hold_window: float | None = None) -> pd.DataFrame:
    """Per row of a results-like table (one finished trial each): ``duration``, ``event`` and the ``window`` (in
    steps) applied. The window is each row's ``training.hold_window`` of its ``training.steps`` (the budget) where
    the table has those columns, else ``hold_window`` (default: :class:`~grokkit.sections.TrainingConfig`'s) of the
    row's ``end`` (a run that was not stopped early ended at its budget). A row whose lasting step is missing, or
    that did not hold for the window, is censored at ``end``."""
    from grokkit.sections import TrainingConfig, hold_steps

    default = TrainingConfig.model_fields["hold_window"].default if hold_window is None else hold_window
    n = len(table)
    ends = pd.to_numeric(table[end], errors="coerce").astype(float).to_numpy() if n else np.zeros(0)
    fraction = (pd.to_numeric(table["training.hold_window"], errors="coerce").fillna(default).to_numpy()
                if "training.hold_window" in table and hold_window is None else np.full(n, default))
    budget = (pd.to_numeric(table["training.steps"], errors="coerce").astype(float).fillna(pd.Series(ends)).to_numpy()
              if "training.steps" in table else ends)
    steps = table[lasting].tolist() if lasting in table else [None] * n
    rows = []
    for s, e, f, b in zip(steps, ends, fraction, budget):
        window = hold_steps(float(f), int(b))
        duration, event = time_to_event(None if _missing(s) else float(s), float(e), window)
        rows.append({"duration": duration, "event": event, "window": window})
    return pd.DataFrame(rows, index=table.index, columns=["duration", "event", "window"])


@dataclass(frozen=True)
class KM:
    """One arm's time to lasting generalisation: members ``n``, events ``generalized``, the ``budget`` (the longest
    any member was followed), the Kaplan–Meier median and its CI (``inf``: not reached within the budget; a lower
    bound ``nan``: the data cannot give one), the share generalised by the budget and its Wilson CI."""

    n: int
    generalized: int
    budget: float
    median: float
    median_low: float
    median_high: float
    share: float
    share_low: float
    share_high: float

    def median_text(self) -> str:
        return format_median(self.median, self.median_low, self.median_high, self.budget)

    def count_text(self) -> str:
        return f"{self.generalized}/{self.n}"

    def record(self, prefix: str = "") -> dict[str, Any]:
        """The CSV columns (``{prefix}n``, ``{prefix}generalized``, ``{prefix}km_median`` ...) and the printed text
        (``{prefix}km_median_text``)."""
        names = {"median": "km_median", "median_low": "km_median_low", "median_high": "km_median_high"}
        out = {f"{prefix}{names.get(k, k)}": v for k, v in asdict(self).items()}
        out[f"{prefix}km_median_text"] = self.median_text()
        return out


def km_summary(durations: Sequence[float] | np.ndarray, events: Sequence[bool] | np.ndarray,
               budget: float | None = None, alpha: float = ALPHA) -> KM:
    """The Kaplan–Meier median of one arm with its ``1 - alpha`` interval, and the share generalised by ``budget``
    (default: the longest duration) with its Wilson interval."""
    from statsmodels.duration.survfunc import SurvfuncRight
    from statsmodels.stats.proportion import proportion_confint

    t = np.asarray(durations, dtype=float)
    e = np.asarray(events, dtype=bool)
    n, k = len(t), int(e.sum())
    horizon = float(budget) if budget is not None else (float(t.max()) if n else math.nan)
    if n == 0:
        return KM(0, 0, horizon, math.nan, math.nan, math.nan, math.nan, math.nan, math.nan)
    median, low, high = math.inf, math.nan, math.inf
    if k:
        sf = SurvfuncRight(t, e.astype(int))
        with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            q = float(sf.quantile(0.5))
            lo, hi = sf.quantile_ci(0.5, alpha=alpha)
        median = math.inf if math.isnan(q) else q
        low = float(lo)
        high = math.inf if math.isnan(float(hi)) and math.isinf(median) else float(hi)
    share_low, share_high = proportion_confint(k, n, alpha=alpha, method="wilson")
    return KM(n, k, horizon, median, low, high, k / n, float(share_low), float(share_high))


def km_of(outcomes: pd.DataFrame, budget: float | None = None, alpha: float = ALPHA) -> KM:
    """:func:`km_summary` of :func:`table_outcomes`' rows."""
    return km_summary(outcomes["duration"].to_numpy(float), outcomes["event"].to_numpy(bool), budget, alpha)


def logrank_p(a: pd.DataFrame, b: pd.DataFrame) -> float:
    """The log-rank test's p-value between two arms given as :func:`table_outcomes` frames (``duration``,
    ``event``); NaN when it cannot be computed (an empty arm, or no event in either)."""
    from statsmodels.duration.survfunc import survdiff

    if not len(a) or not len(b) or not (a["event"].any() or b["event"].any()):
        return math.nan
    time = np.concatenate([a["duration"].to_numpy(float), b["duration"].to_numpy(float)])
    status = np.concatenate([a["event"].to_numpy(bool), b["event"].to_numpy(bool)]).astype(int)
    group = np.r_[np.zeros(len(a), dtype=int), np.ones(len(b), dtype=int)]
    with np.errstate(divide="ignore", invalid="ignore"):
        _, p = survdiff(time, status, group)
    return float(p)


def format_step(v: float, budget: float) -> str:
    """One step count: ``1,050``; ``> 2,000`` for a value the data cannot give within the budget (``inf``)."""
    if math.isinf(v):
        return f"> {budget:,.0f}"
    if math.isnan(v):
        return "—"
    return f"{v:,.0f}"


def format_median(median: float, low: float, high: float, budget: float) -> str:
    """The one way a table prints a median step: ``1,050 [950, 1,200]`` (the Kaplan–Meier median and its 95%
    interval), ``> 2,000 [1,800, > 2,000]`` where the median is not reached within the budget of 2,000 steps, ``—``
    for a bound the data cannot give. An upper bound or a median that is not reached is never printed as a number."""
    if math.isnan(median):
        return "—"
    if math.isinf(median) and math.isnan(high):
        high = math.inf
    return f"{format_step(median, budget)} [{format_step(low, budget)}, {format_step(high, budget)}]"


def format_p(p: float) -> str:
    """A log-rank p-value: two significant digits, ``< 0.001`` below that, ``—`` when there is none."""
    if math.isnan(p):
        return "—"
    return "< 0.001" if p < 0.001 else f"{p:.2g}"


def arms_table(outcomes: pd.DataFrame, by: str | list[str], control: Any = None, control_column: str | None = None,
               budget: float | None = None) -> pd.DataFrame:
    """One row per group of ``outcomes`` (:func:`table_outcomes` joined to the grouping columns): the group's
    values, :meth:`KM.record` and, where ``control`` names a value of ``control_column`` (default: the first ``by``
    column), ``logrank_p`` against the control rows that agree on the other ``by`` columns (NaN for the control
    itself and where there is none)."""
    keys = [by] if isinstance(by, str) else list(by)
    column = control_column or keys[0]
    rows = []
    for values, g in outcomes.groupby(keys, sort=False, dropna=False):
        values = values if isinstance(values, tuple) else (values,)
        row = dict(zip(keys, values))
        row.update(km_of(g, budget).record())
        p = math.nan
        if control is not None and row.get(column) != control:
            others = [(k, v) for k, v in row.items() if k in keys and k != column]
            sel = outcomes[outcomes[column] == control]
            for k, v in others:
                sel = sel[sel[k].isna()] if _missing(v) else sel[sel[k] == v]
            p = logrank_p(g, sel) if len(sel) else math.nan
        row["logrank_p"] = p
        rows.append(row)
    return pd.DataFrame(rows)

