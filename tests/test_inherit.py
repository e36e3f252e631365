"""What a student inherits: its spectrum against the teacher's key frequencies, per snapshot and per seed."""

from __future__ import annotations

import math

import pandas as pd
from typer.testing import CliRunner

from grokkit.analysis.inherit import _share, carried_keys, per_seed
from grokkit.cli import app
from grokkit.sweep import parse_sweep, run_sweep
from helpers import tiny_config

VOCAB = {"n_numbers": 19, "moduli": [17, 19]}


def test_share_of_the_spectrum_in_given_frequencies():
    assert _share([1.0, 0.0, 1.0, 0.0], [1]) == 0.5
    assert _share([3.0, 4.0], [2]) == 16 / 25
    assert _share([1.0, 1.0], [5]) == 0.0  # a frequency the student's modulus does not have
    assert math.isnan(_share([0.0, 0.0], [1]))


def test_teacher_keys_carry_over_at_the_same_angular_frequency():
    assert carried_keys([14, 23, 2, 6], 61, 59) == [14, 22, 2, 6]  # 13.5 rounds to 14; 22.2 to 22
    assert carried_keys([23, 20], 61, 59) == [22, 19]
    assert carried_keys([1, 56], 113, 107) == [1, 53]  # 56 * 107 / 113 = 53.03
    assert carried_keys([30, 29], 61, 31) == [15]  # kept within 1..p2 // 2, distinct
    assert carried_keys([5, 9], 59, 59) == [5, 9]


def test_per_seed_reads_when_the_teachers_keys_take_over():
    rows = []
    for step, share, own, acc in ((0, 0.1, 0.1, 0.0), (50, 0.6, 0.3, 0.5), (100, 0.9, 0.8, 1.0), (150, 0.9, 0.9, 1.0)):
        rows.append({"arm": "distill", "run": "r/kd0", "member": 0, "seed": 0, "label": "snapshot", "step": step,
                     "modulus": 17, "test_acc": acc, "train_acc": 1.0, "teacher_key_share": share,
                     "chance_share": 0.25, "teacher_keys_carried": "3 5", "key_energy_fraction": own, "gini": 0.5,
                     "top_frequencies": "3 5", "hold_window_steps": 50,
                     "key_frequencies": "3 4" if step == 150 else ""})
    seeds = per_seed([3, 5], pd.DataFrame(rows))
    r = seeds.iloc[0]
    assert (r.step_teacher_keys_half, r.step_own_keys_half, r["step_lasting_0.99"]) == (50, 100, 100)
    # held from 100 to the last snapshot at 150: 50 steps, less than a 60-step hold window
    assert pd.isna(per_seed([3, 5], pd.DataFrame(rows).assign(hold_window_steps=60)).iloc[0]["step_lasting_0.99"])
    assert r.shared_with_teacher == 1 and r.jaccard_with_teacher == 1 / 3 and r.key_frequencies == "3 4"


def test_grokkit_inherit_on_a_tiny_sweep(tmp_path):
    teacher = tiny_config(name="teacher", seeds=[0], vocab=VOCAB, task={"op": "add", "modulus": 19,
                                                                       "train_fraction": 0.8},
                          optimizer={"name": "adamw", "lr": 0.01, "weight_decay": 1.0},
                          training={"steps": 400, "eval_every": 50, "checkpoint_every": 0, "progress": False})
    base = tiny_config(vocab=VOCAB, task={"op": "add", "modulus": 17, "train_fraction": 0.5},
                       training={"steps": 60, "eval_every": 20, "checkpoint_every": 0, "progress": False,
                                 "snapshot_every": 20})
    base["distill"] = {"teacher": "{requires.teacher}", "alpha": 0.9, "temperature": 4.0}
    spec = parse_sweep({"name": "inh", "base": base, "requires": {"teacher": {"base": teacher}},
                        "cases": [{"name": "distill", "overrides": {"recipe": "distill"}},
                                  {"name": "scratch", "overrides": {"recipe": "scratch"}}], "seeds": [0, 1]})
    run_sweep(spec, tmp_path, tmp_path / "s", log=lambda _: None)
    result = CliRunner().invoke(app, ["inherit", str(tmp_path / "s")])
    assert result.exit_code == 0, result.output
    seeds = pd.read_csv(tmp_path / "s" / "inherit.csv")
    assert list(seeds.arm) == ["teacher", "distill", "distill", "scratch", "scratch"]
    assert seeds.final_teacher_key_share.between(0, 1).all()
    assert seeds.iloc[0].final_teacher_key_share > seeds.iloc[0].chance_share  # the teacher's own keys dominate it
    over = pd.read_csv(tmp_path / "s" / "inherit_over_time.csv")
    assert sorted(over[over.arm == "distill"].step.unique()) == [0, 20, 40, 60]
    assert (tmp_path / "s" / "inherit.png").stat().st_size > 0
    bad = CliRunner().invoke(app, ["inherit", str(tmp_path / "s"), "--teacher", "nobody"])
    assert bad.exit_code == 2 and "requires no run 'nobody'" in bad.output
