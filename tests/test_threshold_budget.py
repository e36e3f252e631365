"""experiments/threshold_budget.py on a small synthetic sweep directory: each trial's outcome at every budget from
its curve cut there (with the hold window of that budget), the critical fraction and the Kaplan-Meier medians per
budget, the tables checked against their CSVs, and a sweep with a trial still missing."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from grokkit.sweep.spec import expand, parse_sweep
from helpers import tiny_config
from tablecheck import check_table, load_data, parse_markdown_tables, parse_marker

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "experiments" / "threshold_budget.py"
STEPS, EVERY = 4000, 100


def _script():
    spec = importlib.util.spec_from_file_location("threshold_budget", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def _from(case: str, fraction: float, seed: int) -> int | None:
    """The step from which a synthetic trial's test accuracy is 1.0 (None: never)."""
    if case == "fast":
        return 300 if fraction == 0.4 else 600 + 100 * seed
    if fraction == 0.4:
        return 1500 + 100 * seed
    return 1950 if seed == 0 else None  # at B = 2,000 inside the hold window (200 steps); held at B = 4,000


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("tb") / "sweep"
    base = tiny_config(training={"steps": STEPS, "eval_every": EVERY, "checkpoint_every": 0, "progress": False})
    data = {"name": "tb", "base": base, "n_seeds": 3, "grid": {"task.train_fraction": [0.2, 0.4]},
            "cases": [{"name": "scratch"}, {"name": "fast", "overrides": {"optimizer.lr": 0.01}}]}
    d.mkdir(parents=True)
    (d / "sweep.yaml").write_text(yaml.safe_dump(data))
    for trial in expand(parse_sweep(data), d, {}):
        case, fraction, seed = trial.coords["case"], trial.coords["task.train_fraction"], trial.coords["seed"]
        if (case, fraction, seed) == ("scratch", 0.2, 2):
            continue  # still training: no run directory yet
        start = _from(case, fraction, seed)
        steps = list(range(0, STEPS + 1, EVERY))
        acc = [1.0 if start is not None and s >= start else 0.05 for s in steps]
        t = d / "trials" / trial.id
        t.mkdir(parents=True)
        pd.DataFrame({"step": steps, "member": 0, "seed": seed, "train_acc": 1.0, "test_acc": acc}).to_csv(
            t / "metrics.csv", index=False)
        member = {"seed": seed, "failed": False, "error": None, "final_train_acc": 1.0, "final_test_acc": acc[-1],
                  "steps_to_generalize": start, "steps_to_generalize_lasting": start}
        (t / "summary.json").write_text(json.dumps({"steps": STEPS, "wall_seconds": 1.0, "members": [member],
                                                    "sweep": {"trial": trial.id, "coords": trial.coords}}))
    return d


def test_outcome_at_a_budget_cuts_the_curve_and_applies_that_budgets_window():
    tb = _script()
    steps = list(range(0, 4001, 100))
    acc = [1.0 if s >= 1950 else 0.0 for s in steps]  # from 2,000 in steps of 100
    assert tb.outcome_at(steps, acc, 0.99, 2000, 0.1) == (2000.0, False, 200)  # held 0 of 200 steps by B
    assert tb.outcome_at(steps, acc, 0.99, 4000, 0.1) == (2000.0, True, 400)
    dip = [1.0 if 500 <= s < 2500 else 0.0 for s in steps]  # generalised, then lost it after B = 2,000
    assert tb.outcome_at(steps, dip, 0.99, 2000, 0.1) == (500.0, True, 200)
    assert tb.outcome_at(steps, dip, 0.99, 4000, 0.1)[1] is False


def test_the_script_on_a_partial_sweep(sweep, tmp_path):
    tb = _script()
    out = tmp_path / "out"
    assert tb.main([str(sweep), "--out", str(out), "--budgets", "1000", "2000", "4000", "--control", "scratch",
                    "--n-bootstrap", "50"]) == 0
    missing = pd.read_csv(out / "missing.csv")
    assert set(missing.trial) == {"scratch__train_fraction=0.2__seed=2"} and sorted(missing.budget) == [1000, 2000,
                                                                                                        4000]
    assert "scratch__train_fraction=0.2 seeds 2 (pending" in (out / "threshold_budget.md").read_text()
    rows = pd.read_csv(out / "threshold_budget.csv").set_index(["case", "budget", "task.train_fraction"])
    assert rows.loc[("scratch", 2000, 0.2), ["generalized", "n"]].tolist() == [0, 2]  # 1,950: inside the window
    assert rows.loc[("scratch", 4000, 0.2), ["generalized", "n"]].tolist() == [1, 2]
    assert rows.loc[("scratch", 1000, 0.4), "km_median_text"] == "> 1,000 [—, > 1,000]"
    assert rows.loc[("scratch", 2000, 0.4), "km_median_text"] == "1,600 [1,500, 1,700]"
    # log-rank against scratch at the same fraction and budget: 3 seeds at 600-800 against 2 never (p = 0.063)
    assert 0.05 < rows.loc[("fast", 2000, 0.2), "logrank_p"] < 0.07
    assert rows.sort_index().loc["scratch", "logrank_p"].isna().all()
    th = pd.read_csv(out / "thresholds.csv").set_index(["case", "budget"])
    assert th.loc[("scratch", 1000), "censored"] == "above" and th.loc[("fast", 1000), "censored"] == "below"
    assert th.loc[("scratch", 2000), "n_generalized"] == 3 and th.loc[("scratch", 2000), "n_trials"] == 5
    assert (out / "threshold_budget.png").stat().st_size > 0
    tables = parse_markdown_tables((out / "threshold_budget.md").read_text())
    assert len(tables) == 2
    for t in tables:  # the markdown says what its CSVs say
        marker = parse_marker(t.marker)
        assert marker.kind == "data" and not check_table(t, load_data(marker, out))
    # no medians the data cannot give: where fewer than half generalised the table prints "> budget"
    md = pd.read_csv(out / "threshold_budget.csv")
    few = md[md.generalized * 2 < md.n]
    assert len(few) and few.km_median_text.str.startswith(">").all()
