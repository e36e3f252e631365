"""Time to lasting generalisation as right-censored data (grokkit.analysis.survival): Kaplan–Meier medians and
their intervals against hand computation and statsmodels, the log-rank test, the hold window applied to recorded
results, and the one formatting rule ("> budget" where the data cannot give a median)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from statsmodels.duration.survfunc import SurvfuncRight, survdiff

from grokkit.analysis.survival import (
    arms_table,
    format_median,
    format_p,
    held_step,
    km_summary,
    logrank_p,
    table_outcomes,
    time_to_event,
)

# six members: events at 300, 500, 500, 800; one run censored at 600 (stopped early), one at the budget (2,000)
T = [300, 500, 500, 600, 800, 2000]
E = [1, 1, 1, 0, 1, 0]


def test_kaplan_meier_by_hand():
    """S(300) = 5/6; S(500) = 5/6 * 3/5 = 0.5; the member censored at 600 leaves 2 at risk; S(800) = 0.5 * 1/2.
    statsmodels' median (SAS) is the first time S falls strictly below 0.5: 800, not 500."""
    sf = SurvfuncRight(np.array(T, float), np.array(E))
    np.testing.assert_allclose(sf.surv_prob, [5 / 6, 0.5, 0.25])
    greenwood = 0.5**2 * (1 / (6 * 5) + 2 / (5 * 3))  # Var S(500) = S^2 * sum d / (n (n - d))
    assert sf.surv_prob_se[1] == pytest.approx(math.sqrt(greenwood))
    km = km_summary(T, E, budget=2000)
    assert (km.n, km.generalized, km.median) == (6, 4, 800.0)
    assert (km.median_low, km.median_high) == tuple(float(v) for v in sf.quantile_ci(0.5))
    assert km.share == pytest.approx(4 / 6)


def test_a_median_is_the_middle_member_when_everyone_runs_to_the_budget():
    """With every failure censored at the budget, the Kaplan-Meier median of 5 members is the third smallest time,
    counting failures as beyond the budget, and its interval is statsmodels'."""
    km = km_summary([700, 500, 2000, 900, 2000], [1, 1, 0, 1, 0], budget=2000)
    assert km.median == 900.0 and km.median_text() == "900 [500, > 2,000]"
    everyone = km_summary([500, 600, 700, 800, 900], [1] * 5, budget=2000)
    assert everyone.median == 700.0 and everyone.median_text() == "700 [500, 900]"


def test_more_than_half_failed_prints_beyond_the_budget_never_a_number():
    """2 of 5 generalised: the median over the successes would be 600; the data say only "more than 2,000"."""
    km = km_summary([500, 700, 2000, 2000, 2000], [1, 1, 0, 0, 0], budget=2000)
    assert math.isinf(km.median) and km.median_text() == "> 2,000 [500, > 2,000]"
    none = km_summary([2000] * 3, [0] * 3, budget=2000)
    assert none.median_text() == "> 2,000 [—, > 2,000]" and none.count_text() == "0/3"
    assert none.share == 0 and none.share_low == 0 and 0.5 < none.share_high < 0.6  # Wilson, 0 of 3


def test_share_interval_is_wilson():
    from statsmodels.stats.proportion import proportion_confint

    km = km_summary(T, E, budget=2000)
    assert (km.share_low, km.share_high) == pytest.approx(proportion_confint(4, 6, alpha=0.05, method="wilson"))


def test_logrank_by_hand_and_against_statsmodels():
    """A: events at 1 and 2; B: censored at 3 and 3. At t=1: 4 at risk, E_A = 1/2, V = 1/4; at t=2: 3 at risk,
    E_A = 1/3, V = 2/9. chi2 = (2 - 5/6)^2 / (17/36) = 2.882, p = 0.0896."""
    a = pd.DataFrame({"duration": [1.0, 2.0], "event": [True, True]})
    b = pd.DataFrame({"duration": [3.0, 3.0], "event": [False, False]})
    chi2 = (2 - 5 / 6) ** 2 / (1 / 4 + 2 / 9)
    from scipy.stats import chi2 as chi2_dist

    assert logrank_p(a, b) == pytest.approx(chi2_dist.sf(chi2, 1))
    t, e, g = np.r_[T, [2000] * 5], np.r_[E, [0] * 5], np.r_[[0] * 6, [1] * 5]
    other = pd.DataFrame({"duration": [2000.0] * 5, "event": [False] * 5})
    mine = pd.DataFrame({"duration": np.array(T, float), "event": np.array(E, bool)})
    assert logrank_p(mine, other) == pytest.approx(survdiff(t.astype(float), e, g)[1])
    assert math.isnan(logrank_p(other, other))  # no event in either arm: no test
    assert format_p(math.nan) == "—" and format_p(0.0004) == "< 0.001" and format_p(0.0896) == "0.09"


def test_the_hold_window_applied_to_a_recorded_lasting_step():
    assert held_step(1800, 2000, 200) == 1800 and held_step(1801, 2000, 200) is None
    assert held_step(None, 2000, 200) is None and held_step(float("nan"), 2000, 0) is None
    assert time_to_event(2000, 2000, 200) == (2000.0, False)  # first at the threshold at the last evaluation
    assert time_to_event(2000, 2000, 0) == (2000.0, True)  # ... which only a zero window counts
    table = pd.DataFrame({"steps_to_generalize_lasting": pd.array([1200, 1800, None, 1200], dtype="Int64"),
                          "steps": [2000, 2000, 2000, 1250], "training.steps": [2000] * 4,
                          "training.hold_window": [0.1] * 4})
    out = table_outcomes(table)
    # the last row was stopped early at 1,250, 50 steps after its crossing: censored there, not at the budget
    assert out.event.tolist() == [True, True, False, False] and out.duration.tolist() == [1200, 1800, 2000, 1250]
    assert out.window.tolist() == [200] * 4
    old = table.drop(columns=["training.hold_window", "training.steps"])  # results recorded before the window
    assert table_outcomes(old).event.tolist() == [True, True, False, False]
    assert table_outcomes(old, hold_window=0.0).event.tolist() == [True, True, False, True]


def test_format_median():
    assert format_median(1050.0, 950.0, 1200.0, 2000) == "1,050 [950, 1,200]"
    assert format_median(math.inf, 1800.0, math.inf, 2000) == "> 2,000 [1,800, > 2,000]"
    assert format_median(math.inf, math.nan, math.nan, 30000) == "> 30,000 [—, > 30,000]"
    assert format_median(700.0, math.nan, math.nan, 1500) == "700 [—, —]"


def test_arms_table_tests_each_arm_against_the_control_at_the_same_setting():
    rows = []
    for frac, n_ok in ((0.2, 0), (0.3, 2)):
        for seed in range(5):
            rows.append({"case": "scratch", "f": frac, "duration": 900.0 if seed < n_ok else 2000.0,
                         "event": seed < n_ok})
            rows.append({"case": "distill", "f": frac, "duration": 500.0 + 50 * seed, "event": True})
    table = arms_table(pd.DataFrame(rows), ["case", "f"], control="scratch", budget=2000)
    by = table.set_index(["case", "f"])
    assert math.isnan(by.loc[("scratch", 0.2), "logrank_p"]) and by.loc[("distill", 0.2), "logrank_p"] < 0.01
    assert by.loc[("scratch", 0.2), "km_median_text"] == "> 2,000 [—, > 2,000]"
    assert by.loc[("scratch", 0.3), "km_median_text"].startswith("> 2,000")
    assert by.loc[("distill", 0.3), "km_median_text"] == "600 [500, 700]"
    assert by.loc[("distill", 0.3), "generalized"] == 5 and by.loc[("scratch", 0.3), "n"] == 5
