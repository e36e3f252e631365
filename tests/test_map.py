"""The distillation map: case labels in the results, the map's cells and controls, its files, the shipped specs."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from grokkit.analysis.map import answers_shared, map_markdown, map_table
from grokkit.cli import app
from grokkit.sweep import SweepError, expand, load_sweep, parse_sweep, read_table, run_sweep
from grokkit.sweep.spec import MapSpec
from helpers import tiny_config
from tablecheck import parse_markdown_tables

VOCAB = {"n_numbers": 19, "moduli": [13, 17, 19]}
TRAINING = {"steps": 40, "eval_every": 20, "checkpoint_every": 0, "progress": False}


def teacher(op: str, modulus: int) -> dict:
    return {"base": tiny_config(name=f"teacher-{op}{modulus}", seeds=[0], vocab=VOCAB, training=TRAINING,
                                task={"op": op, "modulus": modulus, "train_fraction": 0.5})}


def distill(op: str, p1: int, teacher_op: str | None = None, col: str | None = None) -> dict:
    t = f"{teacher_op or op}{p1}"
    return {"name": f"kd-{t}-{op}17", "labels": {"method": "distill", "op": op, "pair": col or f"{p1}->17"},
            "overrides": {"recipe": "distill", "task.op": op, "distill.teacher": "{requires." + t + "}"}}


def scratch(op: str) -> dict:
    return {"name": f"scratch-{op}17", "labels": {"method": "scratch", "op": op},
            "overrides": {"recipe": "scratch", "task.op": op}}


def map_spec(**extra: object) -> dict:
    base = tiny_config(vocab=VOCAB, training=TRAINING, task={"op": "add", "modulus": 17, "train_fraction": 0.4})
    base["distill"] = {"teacher": "x", "position": "operator", "alpha": 0.9, "temperature": 4.0}
    spec = {"name": "m", "base": base,
            "requires": {"add19": teacher("add", 19), "add13": teacher("add", 13), "sub19": teacher("sub", 19)},
            "cases": [scratch("add"), distill("add", 19), distill("add", 13), scratch("sub"), distill("sub", 19),
                      distill("sub", 19, teacher_op="add", col="other op 19->17")],
            "seeds": [0, 1],
            "map": {"rows": "op", "cols": "pair", "title": "tiny"}}
    spec.update(extra)
    return spec


def test_case_labels_are_result_columns_not_part_of_the_trial():
    spec = parse_sweep(map_spec())
    trials = expand(spec, Path("."))
    kd = [t for t in trials if t.coords["case"] == "kd-add19-add17"]
    assert kd and all(t.labels == {"method": "distill", "op": "add", "pair": "19->17"} for t in kd)
    assert all("pair" not in t.id and "method" not in t.id for t in trials)


@pytest.mark.parametrize("bad, message", [
    ({"cases": [{"name": "a", "labels": {"seed": 1}}]}, "would hide"),
    ({"cases": [{"name": "a", "labels": {"method": "distill"}}, {"name": "b"}]}, "needs the label 'method'"),
    ({"cases": [{"name": "a", "labels": {"method": "distill"}}]}, "no case has method='scratch'"),
])
def test_bad_map_specs_are_refused(bad, message):
    with pytest.raises(SweepError, match=message):
        parse_sweep(map_spec(**bad))


def _table() -> pd.DataFrame:
    rows = []
    for seed in range(3):
        rows.append(dict(method="scratch", op="add", pair=None, **{"task.op": "add", "task.modulus": 59,
                         "task.train_fraction": 0.2}, status="ok", final_test_acc=0.1 + 0.01 * seed,
                         generalized_lasting=False, steps_to_generalize_lasting=None, steps=2000))
        for pair, acc in (("61->59", 1.0), ("31->59", 0.3)):
            rows.append(dict(method="distill", op="add", pair=pair, **{"task.op": "add", "task.modulus": 59,
                             "task.train_fraction": 0.2}, status="ok", final_test_acc=acc,
                             generalized_lasting=acc > 0.99, steps_to_generalize_lasting=500 + 100 * seed if acc > 0.99
                             else None, teacher_kd_acc_on_student_test=0.5, steps=2000))
    # another student fraction: its own control, and must not be mixed with the first
    rows.append(dict(method="scratch", op="add", pair=None, **{"task.op": "add", "task.modulus": 59,
                     "task.train_fraction": 0.5}, status="ok", final_test_acc=1.0, generalized_lasting=True,
                     steps_to_generalize_lasting=700, steps=2000))
    return pd.DataFrame(rows)


def test_map_cells_pair_each_treatment_with_the_control_that_matches_it():
    cells = map_table(_table(), MapSpec(rows="op", cols="pair"))
    assert list(cells.pair) == ["61->59", "31->59"]
    good, bad = cells.iloc[0], cells.iloc[1]
    assert (good.treatment_generalized, good.treatment_trials) == (3, 3)
    assert (good.control_generalized, good.control_trials) == (0, 3)  # the 0.5-fraction scratch run is not its control
    assert math.isclose(good.control_test_acc, 0.11) and math.isclose(good.diff_test_acc, 0.89)
    assert good.treatment_km_median == 600 and math.isinf(bad.treatment_km_median)
    assert good.treatment_km_median_text == "600 [500, 700]" and bad.treatment_km_median_text == "> 2,000 [—, > 2,000]"
    assert good.logrank_p < 0.05 and math.isnan(bad.logrank_p)  # no event in either arm: no test
    assert math.isclose(bad.diff_test_acc, 0.19) and good.teacher_kd_acc_on_student_test == 0.5
    md = parse_markdown_tables(map_markdown(cells, MapSpec(rows="op", cols="pair")))[0]
    assert md.rows[0][3:9] == ["3/3", "1.000 ± 0.000", "600 [500, 700]", "0/3", "0.110 ± 0.010", "> 2,000 [—, > 2,000]"]


def test_a_cell_without_its_control_or_mixing_fractions_is_an_error():
    t = _table()
    with pytest.raises(SweepError, match="no 'scratch' trials"):
        map_table(t[~((t.method == "scratch") & (t["task.train_fraction"] == 0.2))], MapSpec(rows="op", cols="pair"))
    t.loc[t.index[1], "task.train_fraction"] = 0.5
    with pytest.raises(SweepError, match="mixes"):
        map_table(t, MapSpec(rows="op", cols="pair"))
    with pytest.raises(SweepError, match="no column"):
        map_table(t, MapSpec(rows="operation", cols="pair"))


def test_answers_shared_between_a_teachers_rule_and_a_students():
    assert answers_shared("add", 61, "add", 59) == 59 * 60 / 2 / 59**2  # exactly the pairs with a + b < 59
    assert answers_shared("add", 59, "add", 59) == 1.0
    assert answers_shared("sub", 61, "sub", 59) == 59 * 60 / 2 / 59**2  # a >= b
    assert answers_shared("add", 31, "add", 59) == 31 * 32 / 2 / 59**2  # the teacher knows numbers below 31 only
    assert answers_shared("mul", 61, "mul", 59) < 0.11 and answers_shared("add", 61, "sub", 59) < 0.02
    assert answers_shared("div", 59, "div", 59) == 1.0  # over the pairs where division is defined


def test_a_tiny_map_runs_end_to_end(tmp_path):
    result = run_sweep(parse_sweep(map_spec()), tmp_path, tmp_path / "m", log=lambda _: None)
    assert all(v == "ok" for v in result.outcomes.values())
    table = read_table(tmp_path / "m")
    assert {"method", "op", "pair", "teacher_acc_on_student_test", "teacher_kd_acc_on_student_test"} <= set(table)
    cells = pd.read_csv(tmp_path / "m" / "map.csv")
    assert list(zip(cells.op, cells.pair)) == [("add", "19->17"), ("add", "13->17"), ("sub", "19->17"),
                                               ("sub", "other op 19->17")]
    assert (cells.control_trials == 2).all() and (cells.treatment_trials == 2).all()
    assert (tmp_path / "m" / "map.png").stat().st_size > 0
    assert cells.teacher_kd_acc_on_student_test.between(0, 1).all()
    assert cells.teacher_test_acc.between(0, 1).all() and set(cells.teacher) == {"add19", "add13", "sub19"}
    assert cells.answers_shared.iloc[0] == answers_shared("add", 19, "add", 17)
    # `grokkit map` redraws it from the trials, also those of a sweep stopped part-way (the others: pending)
    (tmp_path / "m" / "map.csv").unlink()
    import shutil

    shutil.rmtree(tmp_path / "m" / "trials" / "kd-add13-add17__seed=1")
    result = CliRunner().invoke(app, ["map", str(tmp_path / "m")])
    assert result.exit_code == 0, result.output
    assert "1 trials not finished" in result.output
    redrawn = pd.read_csv(tmp_path / "m" / "map.csv")
    assert list(redrawn.treatment_trials) == [2, 1, 2, 2] and list(redrawn.treatment_pending) == [0, 1, 0, 0]
    assert CliRunner().invoke(app, ["map", str(tmp_path)]).exit_code == 2


@pytest.mark.parametrize("name", ["critical_ops", "map", "map_cpu"])
def test_shipped_map_specs_validate(name):
    spec, root = load_sweep(f"configs/map/{name}.yaml")
    trials = expand(spec, root)
    assert len(trials) >= 15
    if spec.map is not None:
        assert {t.labels["method"] for t in trials} == {"distill", "scratch"}
