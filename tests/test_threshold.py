"""The critical-threshold estimate: logistic fit, bootstrap CI, censoring."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from grokkit.analysis.threshold import estimate_threshold, fit_logistic, threshold_report, wilson


def test_recovers_a_known_threshold_with_a_ci_that_covers_it():
    rng = np.random.default_rng(0)
    x = np.repeat(np.linspace(0.1, 0.55, 10), 200)
    p = 1 / (1 + np.exp(-(x - 0.3) / 0.03))
    y = (rng.random(len(x)) < p).astype(float)
    t = estimate_threshold(x, y, n_bootstrap=200)
    assert abs(t.x50 - 0.3) < 0.01
    assert t.ci_low < 0.3 < t.ci_high and t.ci_high - t.ci_low < 0.03
    assert t.censored == ""
    fit = fit_logistic(x, y)
    assert fit.p(np.array([0.3]))[0] == pytest.approx(0.5, abs=0.05)


def test_perfect_separation_gives_the_grid_bracket():
    x = np.repeat([0.1, 0.2, 0.3, 0.4], 5)
    y = (x >= 0.3).astype(float)
    t = estimate_threshold(x, y, n_bootstrap=100)
    assert 0.2 < t.x50 < 0.3
    assert t.ci_low <= 0.2 and t.ci_high >= 0.3
    assert t.ci_low > 0.1 - 1e-9 and t.ci_high < 0.4 + 1e-9


@pytest.mark.parametrize("outcome, censored, text", [(0.0, "above", "> 0.4"), (1.0, "below", "< 0.1")])
def test_outside_the_tested_range_is_censored_not_extrapolated(outcome, censored, text):
    x = np.repeat([0.1, 0.2, 0.3, 0.4], 5)
    t = estimate_threshold(x, np.full(len(x), outcome), n_bootstrap=50)
    assert t.censored == censored and math.isinf(t.x50)
    assert t.text().startswith(text)


def test_wilson_interval():
    lo, hi = wilson(5, 10)
    assert lo == pytest.approx(0.2366, abs=1e-3) and hi == pytest.approx(0.7634, abs=1e-3)
    assert wilson(0, 5)[0] == pytest.approx(0.0, abs=1e-12)


def test_report_files(tmp_path):
    x = np.repeat([0.1, 0.2, 0.3, 0.4], 4)
    table = pd.DataFrame({"task.train_fraction": np.concatenate([x, x]), "case": ["a"] * 16 + ["b"] * 16,
                          "generalized": np.concatenate([x >= 0.3, x >= 0.2]), "status": "ok", "steps": 2000,
                          "steps_to_generalize": pd.array(np.where(np.concatenate([x >= 0.3, x >= 0.2]), 100, None),
                                                          dtype="Int64")})
    th = threshold_report(table, tmp_path, n_bootstrap=20)
    assert list(th.method) == ["a", "b"]
    assert th.set_index("method").x50["a"] > th.set_index("method").x50["b"]
    for name in ("threshold.csv", "threshold_steps.csv", "threshold.md", "threshold.png"):
        assert (tmp_path / name).exists()


def test_the_newton_fit_is_statsmodels_penalised_glm():
    sm = pytest.importorskip("statsmodels.api")
    from grokkit.analysis.threshold import RIDGE, fit_logistic

    x = np.repeat([0.1, 0.2, 0.3, 0.4, 0.5], 5).astype(float)
    y = (x >= 0.3).astype(float)
    y[11] = 0.0  # not separated: a finite maximum both solvers reach
    fit = fit_logistic(x, y)
    z = (x - x.mean()) / x.std()
    ref = sm.GLM(y, np.stack([np.ones_like(z), z], 1), family=sm.families.Binomial()).fit_regularized(
        alpha=np.array([1e-6, RIDGE]) / len(x), L1_wt=0.0, cnvrg_tol=1e-12, maxiter=1000)
    assert fit.b0 == pytest.approx(ref.params[0], rel=1e-3) and fit.b1 == pytest.approx(ref.params[1], rel=1e-3)


def test_the_threshold_counts_generalisation_that_lasted(tmp_path):
    x = np.repeat([0.1, 0.2, 0.3, 0.4], 4)
    lasting = x >= 0.3
    first = x >= 0.2  # at 0.2 every seed crossed once and fell back
    table = pd.DataFrame({"task.train_fraction": x, "case": "a", "status": "ok", "generalized": first,
                          "generalized_lasting": lasting, "steps_to_generalize": pd.array([100] * 16, dtype="Int64"),
                          "steps_to_generalize_lasting": pd.array(np.where(lasting, 200, None), dtype="Int64"),
                          "steps": 2000})
    th = threshold_report(table, tmp_path, n_bootstrap=20)
    assert 0.2 < th.x50.iloc[0] < 0.3  # from the lasting outcome; the first crossings would put it below 0.2
    older = table.drop(columns=["generalized_lasting", "steps_to_generalize_lasting"])  # a store without lasting
    assert threshold_report(older, tmp_path, n_bootstrap=20).x50.iloc[0] < 0.2
    # lasting from 1,900 of 2,000 steps is inside the hold window (200 steps): not generalised, so no threshold
    late = table.assign(steps_to_generalize_lasting=pd.array(np.where(lasting, 1900, None), dtype="Int64"))
    assert threshold_report(late, tmp_path, n_bootstrap=20).n_generalized.iloc[0] == 0


def test_the_steps_table_gives_censored_medians_and_tests_against_the_control(tmp_path):
    from grokkit.analysis.threshold import steps_table

    rows = []
    for f in (0.2, 0.3):
        for seed in range(5):
            rows.append({"case": "scratch", "task.train_fraction": f, "status": "ok", "steps": 2000,
                         "steps_to_generalize_lasting": 1000 + 100 * seed if f == 0.3 and seed < 2 else None})
            rows.append({"case": "distill", "task.train_fraction": f, "status": "ok", "steps": 2000,
                         "steps_to_generalize_lasting": 500 + 50 * seed})
    table = pd.DataFrame(rows)
    steps = steps_table(table).set_index(["case", "task.train_fraction"])
    assert steps.loc[("scratch", 0.3), "km_median_text"] == "> 2,000 [1,000, > 2,000]"  # 2 of 5: no median
    assert steps.loc[("distill", 0.3), "km_median_text"] == "600 [500, 700]"
    assert steps.loc[("distill", 0.2), "logrank_p"] < 0.01 and np.isnan(steps.loc[("scratch", 0.2), "logrank_p"])
    threshold_report(table, tmp_path, n_bootstrap=10)
    text = (tmp_path / "threshold.md").read_text()
    assert "| scratch | 0.3 | 2/5 | > 2,000 [1,000, > 2,000] | — |" in text
