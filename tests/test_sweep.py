"""Sweeps: expansion, packing, equality with single runs, idempotence, resume, failure isolation, lock, store."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from grokkit.api import run
from grokkit.cli import app
from grokkit.config import load_config
from grokkit.engine import Trainer
from grokkit.sweep import SweepError, expand, parse_sweep, plan, read_table, run_sweep, summarize
from grokkit.sweep.runner import LOCK_FILE, execute_local, group_cost, trial_done
from helpers import tiny_config

TEACHER = tiny_config(name="teacher", seeds=[0], task={"op": "add", "modulus": 19, "train_fraction": 0.5},
                      vocab={"n_numbers": 19, "moduli": [17, 19]}, training={"steps": 40, "eval_every": 20,
                                                                             "checkpoint_every": 0, "progress": False})


def sweep_spec(**extra: object) -> dict:
    base = tiny_config(vocab={"n_numbers": 19, "moduli": [17, 19]})
    base["training"]["checkpoint_every"] = 20
    spec = {
        "name": "t",
        "base": base,
        "grid": {"task.train_fraction": [0.3, 0.5]},
        "seeds": [0, 1],
        "max_padding": 1.0,  # pack different fractions together: padded members must still equal runs alone
    }
    spec.update(extra)
    return spec


def quiet(_: str) -> None:
    pass


def test_expand_grid_cases_seeds_and_requires(tmp_path):
    spec = parse_sweep(sweep_spec(
        requires={"teacher": {"base": TEACHER}},
        cases=[{"name": "scratch", "overrides": {"recipe": "scratch"}},
               {"name": "kd", "overrides": {"recipe": "distill", "distill": {"teacher": "{requires.teacher}"}}}],
        grid={"task.train_fraction": [0.3, 0.5], "optimizer.lr": [0.001, 0.003]},
    ))
    trials = expand(spec, tmp_path, {"teacher": "/x/teacher"})
    assert len(trials) == 2 * 2 * 2 * 2
    assert len({t.id for t in trials}) == len(trials)
    kd = [t for t in trials if t.coords["case"] == "kd"]
    assert all(t.config.distill.teacher == "/x/teacher" for t in kd)
    assert all(t.config.distill is None for t in trials if t.coords["case"] == "scratch")
    assert {t.config.optimizer.lr for t in trials} == {0.001, 0.003}
    assert all(len(t.config.member_list()) == 1 for t in trials)
    # everything that differs is member-level: one packed group per case
    groups = plan(trials, max_padding=1.0)
    assert sorted(len(g.trials) for g in groups) == [8, 8]
    assert len(plan(trials, max_pack=3, max_padding=1.0)) == 2 * 3
    assert len(plan(trials, pack=False)) == 16
    # on CPU, by default, fractions 0.3 and 0.5 (40% padding) are not packed together
    assert sorted(len(g.trials) for g in plan(trials)) == [4, 4, 4, 4]
    assert len(plan(trials, max_padding=0.5)) == 2


def test_the_costliest_groups_start_first(tmp_path, monkeypatch):
    """Groups are started longest first (a long group started last leaves the other workers idle): by steps x members
    x training rows x scored positions, distillation at another position than the answer's counting twice."""
    spec = parse_sweep(sweep_spec(
        requires={"teacher": {"base": TEACHER}},
        cases=[{"name": "scratch", "overrides": {"recipe": "scratch"}},
               {"name": "kd", "overrides": {"recipe": "distill", "distill": {"teacher": "{requires.teacher}",
                                                                              "position": "operator"}}}],
        grid={"task.train_fraction": [0.2, 0.5]}, seeds=[0, 1, 2]))
    groups = plan(expand(spec, tmp_path, {"teacher": "/x/teacher"}))
    assert len(groups) == 4
    order = [(g.trials[0].coords["case"], g.trials[0].coords["task.train_fraction"])
             for g in sorted(groups, key=group_cost, reverse=True)]
    assert order == [("kd", 0.5), ("scratch", 0.5), ("kd", 0.2), ("scratch", 0.2)]
    started: list[str] = []

    class Pool:  # records the order groups are submitted in
        def __init__(self, **_: object) -> None:
            pass

        def __enter__(self) -> Pool:
            return self

        def __exit__(self, *_: object) -> None:
            pass

        def submit(self, fn: object, payload: tuple, *args: object) -> str:
            started.append(payload[0])
            return payload[0]

    monkeypatch.setattr("concurrent.futures.ProcessPoolExecutor", Pool)
    monkeypatch.setattr("concurrent.futures.as_completed", lambda futures: [])
    execute_local(list(reversed(groups)), tmp_path, 2, lambda g, o: None)
    assert started == [g.id for g in sorted(groups, key=group_cost, reverse=True)]


def test_shapes_that_differ_are_not_packed(tmp_path):
    trials = expand(parse_sweep(sweep_spec(grid={"model.d_model": [16, 32]})), tmp_path)
    groups = plan(trials)
    assert len(groups) == 2
    assert {g.config.model.d_model for g in groups} == {16, 32}


@pytest.mark.parametrize("bad, message", [
    ({"grid": {"task.train_fraction": [0.3, 1.5]}}, "task.train_fraction"),
    ({"grid": {"optimizer.nam": ["adam"]}}, "optimizer.nam"),
    ({"grid": {"task.modulus": []}}, "no values"),
    ({"seeds": [0], "n_seeds": 2}, "either"),
    ({"gird": {}}, "gird"),
])
def test_bad_sweeps_are_refused_before_anything_is_written(tmp_path, bad, message):
    with pytest.raises(SweepError, match=message):
        spec = parse_sweep(sweep_spec(**bad))
        run_sweep(spec, tmp_path, tmp_path / "out", log=quiet)
    assert not (tmp_path / "out").exists()


def test_packed_trial_equals_the_same_trial_run_alone(tmp_path):
    spec = parse_sweep(sweep_spec())
    result = run_sweep(spec, tmp_path, tmp_path / "sw", log=quiet)
    assert len(result.groups) == 1 and len(result.groups[0].trials) == 4
    trial = result.trials[3]
    d = tmp_path / "sw" / "trials" / trial.id
    for name in ("config.yaml", "metrics.csv", "summary.json", "model.safetensors", "curves.png"):
        assert (d / name).exists(), name
    assert not (tmp_path / "sw" / "groups").exists() or not any((tmp_path / "sw" / "groups").iterdir())
    alone = run(load_config(d / "config.yaml"), tmp_path / "alone", progress=False, log=quiet)
    packed = json.loads((d / "summary.json").read_text())
    assert packed["sweep"]["pack_size"] == 4
    a = pd.read_csv(tmp_path / "alone" / "metrics.csv")
    b = pd.read_csv(d / "metrics.csv")
    pd.testing.assert_frame_equal(a, b, rtol=1e-4, atol=1e-5)
    assert alone["members"][0]["steps_to_generalize"] == packed["members"][0]["steps_to_generalize"]
    table = read_table(tmp_path / "sw")
    assert len(table) == 4 and set(table.status) == {"ok"}
    assert {"task.train_fraction", "seed", "optimizer.lr", "final_test_acc", "steps_to_generalize",
            "wall_seconds", "pack_size"} <= set(table.columns)


def test_rerun_is_idempotent_and_an_extended_sweep_runs_only_new_trials(tmp_path):
    spec = parse_sweep(sweep_spec())
    run_sweep(spec, tmp_path, tmp_path / "sw", log=quiet)
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "sw" / "trials").rglob("summary.json")}
    again = run_sweep(spec, tmp_path, tmp_path / "sw", log=quiet)
    assert again.skipped == 4 and again.groups == []
    assert stamps == {p: p.stat().st_mtime_ns for p in (tmp_path / "sw" / "trials").rglob("summary.json")}
    more = run_sweep(parse_sweep(sweep_spec(seeds=[0, 1, 2])), tmp_path, tmp_path / "sw", log=quiet)
    assert more.skipped == 4 and sum(len(g.trials) for g in more.groups) == 2
    assert len(read_table(tmp_path / "sw")) == 6
    # the sweep's name is a label: the whole of a sweep run after a subset of it (another name) reuses its trials,
    # but a changed setting does not
    renamed = run_sweep(parse_sweep(sweep_spec(seeds=[0, 1, 2], name="bigger")), tmp_path, tmp_path / "sw", log=quiet)
    assert renamed.skipped == 6 and renamed.groups == []
    changed = expand(parse_sweep(sweep_spec(seeds=[0, 1, 2], name="bigger", overrides={"optimizer.lr": 0.002})),
                     tmp_path)
    assert not any(trial_done(tmp_path / "sw", t) for t in changed)
    assert all(trial_done(tmp_path / "sw", t) for t in expand(parse_sweep(sweep_spec(name="x")), tmp_path))


def test_killed_sweep_resumes_from_the_group_checkpoint(tmp_path, monkeypatch):
    spec = parse_sweep(sweep_spec())
    reference = run_sweep(spec, tmp_path, tmp_path / "ref", log=quiet).table
    original = Trainer.train_step

    def dying(self: Trainer):  # the process is killed between steps 40 and 41 (checkpoint at 40)
        if self.step == 41:
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(Trainer, "train_step", dying)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(spec, tmp_path, tmp_path / "sw", log=quiet)
    groups = list((tmp_path / "sw" / "groups").iterdir())
    assert len(groups) == 1 and (groups[0] / "checkpoint.safetensors").exists()
    monkeypatch.setattr(Trainer, "train_step", original)
    lines: list[str] = []
    resumed = run_sweep(spec, tmp_path, tmp_path / "sw", log=lines.append).table
    cols = ["trial", "final_test_acc", "final_train_acc", "steps_to_generalize"]
    pd.testing.assert_frame_equal(resumed[cols], reference[cols], rtol=1e-4, atol=1e-5)
    assert any("resume from their checkpoints" in line for line in lines)


def test_a_failing_trial_is_isolated(tmp_path):
    spec = parse_sweep(sweep_spec(cases=[
        {"name": "ok", "overrides": {}},
        {"name": "broken", "overrides": {"recipe": "distill", "distill": {"teacher": str(tmp_path / "missing")}}},
    ]))
    result = run_sweep(spec, tmp_path, tmp_path / "sw", log=quiet)
    table = result.table
    assert set(table[table.case == "ok"].status) == {"ok"}
    broken = table[table.case == "broken"]
    assert set(broken.status) == {"error"} and broken.error.str.contains("missing").all()
    for trial in broken.trial:
        assert (tmp_path / "sw" / "trials" / trial / "error.json").exists()
    runner = CliRunner()
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(spec.model_dump(mode="json")))
    res = runner.invoke(app, ["sweep", str(path), "--out", str(tmp_path / "sw")])
    assert res.exit_code == 1  # errors were retried and failed again: a non-zero exit


def test_nan_member_is_recorded_as_failed_and_the_others_go_on(tmp_path):
    spec = parse_sweep(sweep_spec(grid={"optimizer.lr": [0.003, 1e12]}, seeds=[0]))
    table = run_sweep(spec, tmp_path, tmp_path / "sw", log=quiet).table
    assert dict(zip(table["optimizer.lr"], table.status)) == {0.003: "ok", 1e12: "failed"}


def test_a_second_sweep_on_the_same_directory_is_refused(tmp_path):
    from filelock import FileLock

    out = tmp_path / "sw"
    out.mkdir()
    (out / "sweep.yaml").write_text("name: other\n")
    with FileLock(str(out / LOCK_FILE)):
        with pytest.raises(SweepError, match="in use by another sweep"):
            run_sweep(parse_sweep(sweep_spec()), tmp_path, out, log=quiet)
    assert not (out / "trials").exists()


def test_out_dir_holding_something_else_is_refused(tmp_path):
    (tmp_path / "sw").mkdir()
    (tmp_path / "sw" / "notes.txt").write_text("mine")
    with pytest.raises(SweepError, match="not empty"):
        run_sweep(parse_sweep(sweep_spec()), tmp_path, tmp_path / "sw", log=quiet)


def test_results_summary_and_cli(tmp_path):
    spec = parse_sweep(sweep_spec())
    run_sweep(spec, tmp_path, tmp_path / "sw", log=quiet)
    table = read_table(tmp_path / "sw")
    s = summarize(table, ["task.train_fraction"])
    assert list(s["trials"]) == [2, 2]
    assert len(summarize(table, ["task.train_fraction"], "seed == 0")) == 2
    with pytest.raises(SweepError, match="backticks"):
        summarize(table, [], "task.train_fraction >")
    with pytest.raises(SweepError, match="no such column"):
        summarize(table, ["nope"])
    runner = CliRunner()
    res = runner.invoke(app, ["results", str(tmp_path / "sw"), "--csv", str(tmp_path / "s.csv")])
    assert res.exit_code == 0, res.output
    assert len(pd.read_csv(tmp_path / "s.csv")) == 2
    res = runner.invoke(app, ["results", str(tmp_path / "nothing")])
    assert res.exit_code == 2
    res = runner.invoke(app, ["report", str(tmp_path / "sw")])
    assert res.exit_code == 0, res.output
    page = (tmp_path / "sw" / "report.html").read_text()
    assert page.count("<img") >= 1 and "Outcomes by setting" in page
    trial_dir = next((tmp_path / "sw" / "trials").iterdir())
    res = runner.invoke(app, ["report", str(trial_dir)])
    assert res.exit_code == 0 and "curves.png" in (trial_dir / "report.html").read_text()


def test_smoke_sweep_config_runs_end_to_end(tmp_path):
    """The packaged smoke sweep shows the effect it advertises: its teacher generalises (for good) well before its
    budget, and distillation's critical fraction lies below scratch's with intervals that do not overlap."""
    runner = CliRunner()
    sweep = Path(__file__).parents[1] / "src" / "grokkit" / "configs" / "sweeps" / "smoke.yaml"
    res = runner.invoke(app, ["sweep", str(sweep), "--out", str(tmp_path / "sw"), "--workers", "2"])
    assert res.exit_code == 0, res.output
    teacher = json.loads((tmp_path / "sw" / "requires" / "teacher" / "summary.json").read_text())
    lasting = teacher["members"][0]["steps_to_generalize_lasting"]
    assert lasting is not None and lasting <= 0.5 * 3000, teacher["members"][0]
    table = read_table(tmp_path / "sw")
    assert len(table) == 24 and set(table.status) == {"ok"}
    th = pd.read_csv(tmp_path / "sw" / "threshold.csv").set_index("method")
    assert set(th.index) == {"scratch", "distill"}
    assert (tmp_path / "sw" / "threshold.png").exists()
    assert np.isfinite(th.x50["distill"]) and th.ci_high["distill"] < th.ci_low["scratch"], th


def test_ray_executor_on_a_local_ray_instance_matches_the_local_executor(tmp_path):
    ray = pytest.importorskip("ray")
    spec = parse_sweep(sweep_spec(grid={"task.train_fraction": [0.3, 0.5], "model.d_model": [16, 32]}, seeds=[0]))
    local = run_sweep(spec, tmp_path, tmp_path / "local", log=quiet).table
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        remote = run_sweep(spec, tmp_path, tmp_path / "ray", executor="ray", log=quiet).table
    finally:
        ray.shutdown()
    assert len(remote) == 4 and set(remote.status) == {"ok"}
    cols = ["trial", "status", "final_train_acc", "final_test_acc", "steps_to_generalize"]
    pd.testing.assert_frame_equal(local[cols], remote[cols], rtol=1e-4, atol=1e-5)


def test_local_process_pool_matches_in_process(tmp_path):
    spec = parse_sweep(sweep_spec(grid={"model.d_model": [16, 32]}, seeds=[0]))
    one = run_sweep(spec, tmp_path, tmp_path / "one", log=quiet).table
    two = run_sweep(spec, tmp_path, tmp_path / "two", workers=2, log=quiet).table
    cols = ["trial", "final_train_acc", "final_test_acc", "steps_to_generalize"]
    pd.testing.assert_frame_equal(one[cols], two[cols], rtol=1e-4, atol=1e-5)


def test_dry_run_with_cli_overrides_trains_nothing(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep_spec()))
    res = CliRunner().invoke(app, ["sweep", str(path), "training.device=cuda", "--out", str(tmp_path / "sw"),
                                   "--dry-run"])
    assert res.exit_code == 0, res.output
    assert "4 trials in 1 packed ensembles" in res.output  # on a GPU every fraction shares one ensemble
    assert not (tmp_path / "sw").exists()
    res = CliRunner().invoke(app, ["sweep", str(path), "training.stepz=3", "--out", str(tmp_path / "sw")])
    assert res.exit_code == 2 and "training.stepz" in res.output
    # overrides every trial would replace are refused, not silently dropped
    for item, word in (("seeds=[3,4]", "seeds"), ("task.train_fraction=0.9", "axis")):
        res = CliRunner().invoke(app, ["sweep", str(path), item, "--out", str(tmp_path / "sw"), "--dry-run"])
        assert res.exit_code == 2 and word in res.output, res.output


def test_required_runs_build_on_each_other_and_axes_index_lists(tmp_path):
    from grokkit.sweep.spec import required_configs

    student = dict(TEACHER, recipe="distill", name="s", distill={"teacher": "{requires.t1}"})
    spec = parse_sweep(sweep_spec(requires={"t1": {"base": TEACHER}, "t2": {"base": student}}))
    assert required_configs(spec, tmp_path, {"t1": "/runs/t1"})["t2"].distill.teacher == "/runs/t1"
    joint = tiny_config(recipe="joint", joint={}, vocab={"n_numbers": 19, "moduli": [17, 19]},
                        tasks=[{"op": "add", "modulus": 19, "train_fraction": 0.5},
                               {"op": "add", "modulus": 17, "train_fraction": 0.5}])
    trials = expand(parse_sweep({"base": joint, "grid": {"tasks.1.train_fraction": [0.3, 0.4]}}), tmp_path)
    assert [t.config.tasks[1].train_fraction for t in trials] == [0.3, 0.4]
    with pytest.raises(SweepError, match="not an index"):
        expand(parse_sweep({"base": joint, "grid": {"tasks.5.train_fraction": [0.3]}}), tmp_path)


def test_multitask_recipes_in_a_sweep_report_per_task_columns(tmp_path):
    vocab = {"n_numbers": 19, "moduli": [17, 19]}
    tasks = [{"op": "add", "modulus": 19, "train_fraction": 0.5}, {"op": "add", "modulus": 17, "train_fraction": 0.5}]
    continual = tiny_config(recipe="continual", vocab=vocab, tasks=tasks,
                            continual={"init": "{requires.t}", "steps_per_stage": 20})
    spec = parse_sweep({"base": continual, "requires": {"t": {"base": TEACHER}}, "seeds": [0, 1],
                        "cases": [{"name": "plain"}, {"name": "kd", "overrides": {"continual.distill": True}}]})
    table = run_sweep(spec, tmp_path, tmp_path / "c", log=quiet).table
    assert set(table.status) == {"ok"} and len(table) == 4
    assert {"backward_transfer", "forward_transfer", "average_accuracy",
            "min_acc_on_previous_task_per_stage@add17"} <= set(table.columns)
    joint = tiny_config(recipe="joint", vocab=vocab, tasks=tasks, joint={})
    table = run_sweep(parse_sweep({"base": joint, "seeds": [0, 1]}), tmp_path, tmp_path / "j", log=quiet).table
    assert {"test_acc@add19", "steps_to_generalize@add17", "generalized@add17"} <= set(table.columns)


@pytest.mark.parametrize("orphaned", [True, False])
def test_a_pool_worker_exits_once_its_parent_has_gone(orphaned):
    """A killed `grokkit sweep` must not leave workers training on (and racing the next run for a group folder)."""
    parent = "-1" if orphaned else "os.getppid()"  # -1: never the real parent, as after the parent died
    code = ("import os, time\nfrom grokkit.sweep.runner import _exit_with_parent\n"
            f"_exit_with_parent({parent}, 0.05)\ntime.sleep(1.0)\n")
    done = subprocess.run([sys.executable, "-c", code], timeout=60)
    assert done.returncode == (3 if orphaned else 0)


def test_results_table_has_the_lasting_step_of_every_trial(tmp_path):
    table = run_sweep(parse_sweep(sweep_spec(seeds=[0])), tmp_path, tmp_path / "sw", log=quiet).table
    assert {"steps_to_generalize_lasting", "generalized_lasting"} <= set(table.columns)
    for trial in table.itertuples():
        summary = json.loads((tmp_path / "sw" / "trials" / trial.trial / "summary.json").read_text())
        want = summary["members"][0]["steps_to_generalize_lasting"]
        assert (None if pd.isna(trial.steps_to_generalize_lasting) else int(trial.steps_to_generalize_lasting)) == want
        assert trial.generalized_lasting == (want is not None)
        first = trial.steps_to_generalize
        assert want is None or (not pd.isna(first) and want >= int(first))  # lasting never precedes the first crossing
