"""`grokkit compare`: censored medians, wall-clock with one-off costs, and the end-to-end table."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from grokkit.cli import app
from grokkit.compare import CompareError, compare, method_rows
from helpers import tiny_config


def table(steps: list[float | None], case: str = "m", wall: float = 2.0, extra: float | None = None) -> pd.DataFrame:
    rows = [{"case": case, "status": "ok", "steps": 1000, "steps_to_generalize": s, "wall_seconds": wall,
             "final_test_acc": 1.0 if s is not None else 0.1} for s in steps]
    df = pd.DataFrame(rows)
    if extra is not None:
        df["weak_wall_seconds"] = extra
    return df


def test_median_counts_failed_seeds_as_beyond_the_budget():
    (row,) = method_rows(table([100, 200, None, None, None]), "s", [])
    assert row["generalized"] == 2 and row["n_seeds"] == 5
    assert math.isinf(row["km_median"])  # 3 of 5 never generalised: the median is censored
    assert row["km_median_text"] == "> 1,000 [100, > 1,000]"
    (row,) = method_rows(table([100, 200, 300, None, 400]), "s", [])
    assert row["km_median"] == 300 and row["km_median_text"] == "300 [100, > 1,000]"
    assert row["steps_per_seed"] == "100 200 300 - 400"
    (row,) = method_rows(table([100, 200, 950]), "s", [])  # 950 of 1,000: inside the hold window (100 steps)
    assert row["generalized"] == 2 and row["steps_per_seed"] == "100 200 -" and row["km_median"] == 200


def test_methods_are_tested_against_the_control():
    both = pd.concat([table([None] * 5, case="scratch"), table([100, 150, 200, 250, 300], case="distill")])
    rows = {r["method"]: r for r in method_rows(both, "s", [])}
    assert math.isnan(rows["scratch"]["logrank_p"]) and rows["distill"]["logrank_p"] < 0.01
    assert all(math.isnan(r["logrank_p"]) for r in method_rows(both, "s", [], control="none"))


def test_time_to_generalise_adds_one_off_costs():
    # a trial's wall-clock (7 s for its 1,000 steps) includes its one-off cost (5 s): 2 s per 1k steps are left
    (row,) = method_rows(table([100, 200, 300], wall=7.0, extra=5.0), "s", ["weak_wall_seconds"])
    assert row["seconds_per_1k_steps"] == pytest.approx(2.0)
    assert row["median_seconds_to_generalize"] == pytest.approx(200 * 2.0 / 1000 + 5.0)
    (row,) = method_rows(table([100, 200, 300], wall=7.0, extra=5.0), "s", [])  # cost not declared: all is rate
    assert row["median_seconds_to_generalize"] == pytest.approx(200 * 7.0 / 1000)


def test_compare_end_to_end(tmp_path):
    base = tiny_config(seeds=[0], task={"op": "add", "modulus": 13, "train_fraction": 0.6},
                       training={"steps": 150, "eval_every": 25, "checkpoint_every": 0, "progress": False},
                       optimizer={"name": "adamw", "lr": 0.01, "weight_decay": 1.0})
    sweep = {"name": "c", "base": base, "n_seeds": 2,
             "cases": [{"name": "scratch"},
                       {"name": "stablemax", "overrides": {"loss.kind": "stablemax"}}]}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(sweep))
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"title": "t", "settings": {"mod 13 @60%": "s.yaml"}}))
    out = tmp_path / "out"
    df = compare(tmp_path / "c.yaml", out, log=lambda _: None)
    assert list(df.method) == ["scratch", "stablemax"] and (df.n_seeds == 2).all()
    results = pd.read_parquet(out / "mod_13__60_" / "results.parquet")
    for row in df.itertuples():
        got = results[results.case == row.method].sort_values("seed").steps_to_generalize
        assert row.steps_per_seed == " ".join("-" if pd.isna(s) else f"{s:g}" for s in got)
    assert (out / "compare.png").stat().st_size > 0
    assert "| mod 13 @60% | stablemax |" in (out / "compare.md").read_text()
    # the table alone, from the stored results
    result = CliRunner().invoke(app, ["compare", str(tmp_path / "c.yaml"), "--out", str(out), "--table-only"])
    assert result.exit_code == 0, result.output
    assert "| mod 13 @60% | scratch |" in result.output


def test_compare_errors(tmp_path):
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"title": "t", "settings": {"a": "missing.yaml"}}))
    with pytest.raises(CompareError, match="no results"):
        compare(tmp_path / "c.yaml", tmp_path / "out", run=False, log=lambda _: None)
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({"title": "t", "settings": {}}))
    result = CliRunner().invoke(app, ["compare", str(tmp_path / "bad.yaml"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "settings" in result.output
