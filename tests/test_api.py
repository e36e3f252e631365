"""The public Python interface: ``import grokkit`` and nothing else drives a run, returns results as objects, reads
run directories (including ones written before this version), and takes teachers as results or models."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import torch

import grokkit
from helpers import tiny_config

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).resolve().parent.parent
TINY = {"task": {"op": "add", "modulus": 13, "train_fraction": 0.6}, "seeds": [0, 1],
        "vocab": {"n_numbers": 13, "moduli": [11, 13]},
        "model": {"d_model": 16, "n_heads": 2, "d_head": 8, "d_mlp": 32},
        "training": {"steps": 30, "eval_every": 10, "progress": False}}


def quiet(_: str) -> None:
    pass


def _script(code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    (tmp_path / "s.py").write_text(textwrap.dedent(code))
    return subprocess.run([sys.executable, str(tmp_path / "s.py")], cwd=tmp_path, capture_output=True, text=True,
                          timeout=600, env={**__import__("os").environ, "GROKKIT_CACHE": str(tmp_path / "cache")})


def test_a_short_script_trains_a_teacher_and_a_distilled_student_in_memory(tmp_path):
    code = f"""
        import grokkit
        base = {TINY!r}
        teacher = grokkit.run(base)
        student = grokkit.run(base, recipe="distill", distill={{"teacher": teacher, "alpha": 0.5}},
                              **{{"task.modulus": 11, "task.train_fraction": 0.3}})
        print(student.to_frame().to_string())
        student.plot().savefig("student.png")
        continual = grokkit.run(dict(base, recipe="continual", seeds=[0],
                                     tasks=[base["task"], {{"op": "add", "modulus": 11, "train_fraction": 0.5}}],
                                     continual={{"init": str(teacher.dir), "init_member": 0, "steps_per_stage": 20}}))
        print(continual.to_frame().to_string())
        continual.plot().savefig("continual.png")
    """
    assert len([line for line in textwrap.dedent(code).strip().splitlines()]) <= 15
    done = _script(code, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "final_test_acc" in done.stdout and "steps_to_generalize_lasting" in done.stdout
    assert (tmp_path / "student.png").stat().st_size > 10_000 and (tmp_path / "continual.png").is_file()


def test_load_gives_what_run_returned(tmp_path):
    result = grokkit.run(TINY, tmp_path / "r", log=quiet)
    loaded = grokkit.load(tmp_path / "r")
    assert loaded.members == result.members and isinstance(loaded.members[0], grokkit.MemberResult)
    pd.testing.assert_frame_equal(loaded.metrics, result.metrics)
    assert list(loaded.metrics.columns[:8]) == ["step", "member", "seed", "train_loss", "train_acc", "test_loss",
                                                "test_acc", "weight_norm"]
    frame = loaded.to_frame()
    assert list(frame.seed) == [0, 1] and {"final_test_loss", "steps_to_generalize_lasting"} <= set(frame.columns)
    # the summary on disk is the object's schema
    assert grokkit.Summary.model_validate_json((tmp_path / "r" / "summary.json").read_text()) == loaded.summary
    # a member as a plain module computes what the ensemble computes for it
    tokens = torch.tensor([[1, 2, 13, 19], [3, 4, 13, 19]])
    with torch.no_grad():
        assert torch.allclose(loaded.member(1)(tokens), loaded.model(tokens.expand(2, -1, -1), [3])[1, :, 0])
    assert loaded.member(1).seed == 1
    fig = loaded.plot()
    assert [ax.get_ylabel() for ax in fig.axes][:2] == ["accuracy", "loss"]


def test_a_run_directory_written_before_this_version_loads():
    old = grokkit.load(DATA / "legacy_run_v0" / "student")
    assert [m.seed for m in old.members] == [0, 1] and old.summary.recipe == "distill"
    assert old.config.distill.teacher == "tests/data/legacy_run_v0/teacher"
    assert len(old.metrics) == 10 and old.model.n_members == 2
    assert old.members[0].final_test_loss is None  # not recorded then


def test_overrides_are_validated_as_on_the_command_line(tmp_path):
    with pytest.raises(grokkit.ConfigError, match="training.stepz"):
        grokkit.run(TINY, tmp_path / "x", **{"training.stepz": 5})
    assert not (tmp_path / "x").exists()
    cfg = grokkit.make_config(TINY, {"training.steps": 7}, ["training.eval_every=7"])
    assert (cfg.training.steps, cfg.training.eval_every) == (7, 7)


def test_a_teacher_from_python_a_result_a_member_or_a_model_and_vocabulary(tmp_path, monkeypatch):
    monkeypatch.setenv("GROKKIT_CACHE", str(tmp_path / "cache"))
    teacher = grokkit.run(TINY, tmp_path / "t", log=quiet)
    student = dict(TINY, recipe="distill", task={"op": "add", "modulus": 11, "train_fraction": 0.4})
    by_result = grokkit.run(student, tmp_path / "a", distill={"teacher": teacher}, log=quiet)
    member = teacher.member(0)
    by_member = grokkit.run(student, tmp_path / "b", distill={"teacher": member}, log=quiet)
    # the member's weights are the run's member 0: the same targets, the same run
    assert by_member.members == grokkit.run(student, tmp_path / "c", distill={"teacher": str(teacher.dir)},
                                            log=quiet).members
    assert by_result.summary.teachers[0].source == str(teacher.dir)
    cached = by_member.config.distill.teacher
    assert cached.startswith(str(tmp_path / "cache" / "models"))
    again = grokkit.run(student, tmp_path / "d", distill={"teacher": (member.ensemble, member.vocab)}, log=quiet)
    assert again.config.distill.teacher == cached  # the same model is the same file
    with pytest.raises(grokkit.InputError, match=r"needs its vocabulary"):
        grokkit.run(student, tmp_path / "e", distill={"teacher": member.ensemble}, log=quiet)


def test_out_none_lives_as_long_as_the_result():
    result = grokkit.run(TINY, log=quiet)
    path = result.dir
    assert (path / "summary.json").is_file()
    del result
    import gc

    gc.collect()
    assert not path.exists()


def test_load_refuses_an_unfinished_run_with_the_command_that_finishes_it(tmp_path):
    from grokkit.config import parse_config

    (tmp_path / "u").mkdir()
    (tmp_path / "u" / "config.yaml").write_text(parse_config(tiny_config()).to_yaml())
    with pytest.raises(grokkit.RunError, match=r"unfinished run .* `grokkit run .*config.yaml --out"):
        grokkit.load(tmp_path / "u")


def test_sweep_and_tune_return_tables(tmp_path):
    import yaml

    base = dict(TINY)
    base.pop("seeds")
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({"name": "s", "base": base, "seeds": [0, 1],
                                                     "grid": {"task.train_fraction": [0.4, 0.6]}}))
    swept = grokkit.sweep(tmp_path / "s.yaml", tmp_path / "sweep", log=quiet)
    assert len(swept.trials) == 4 and isinstance(swept.summary, pd.DataFrame)
    assert set(swept.summary["task.train_fraction"]) == {0.4, 0.6}
    assert swept.trial(swept.trials.trial.iloc[0]).summary.steps == 30
    swept.plot()
    tune = {"name": "t", "base": dict(base, task=dict(base["task"], val_fraction=0.1)),
            "arms": [{"name": "a", "space": {"optimizer.lr": {"low": 0.001, "high": 0.01}}}],
            "budget": {"candidates": 2, "per_round": 2, "seeds": [0], "steps": 20}, "final": {"seeds": [5]}}
    (tmp_path / "t.yaml").write_text(yaml.safe_dump(tune))
    tuned = grokkit.tune(tmp_path / "t.yaml", tmp_path / "tune", log=quiet)
    assert list(tuned.chosen) == ["a"] and len(tuned.trials) == 2 and len(tuned.final) == 1
    assert "arm" in tuned.summary.columns
    tuned.plot()


def test_docstrings_a_notebook_user_reads():
    for name in ("run", "load", "sweep", "tune", "RunResult", "plot_runs"):
        doc = getattr(grokkit, name).__doc__
        assert doc and len(doc) > 200, name
    assert "Example" in grokkit.run.__doc__ and "out" in grokkit.run.__doc__


def test_public_functions_keep_their_names_when_their_modules_are_imported():
    import grokkit.compare  # noqa: F401
    import grokkit.report  # noqa: F401
    import grokkit.results  # noqa: F401
    import grokkit.sweep.runner  # noqa: F401
    import grokkit.tune  # noqa: F401
    from grokkit.sweep import run_sweep

    for name in ("sweep", "tune", "report", "compare", "repro", "demo", "results"):
        assert callable(getattr(grokkit, name)) and getattr(grokkit, name).__module__ == "grokkit.interface", name
    assert run_sweep.__module__ == "grokkit.sweep.runner"
