"""The first hour (issue 31): each mistake a newcomer makes gets a message that says what was wrong and what to do,
the right exit code, no traceback, and nothing written where nothing should be.

The mistakes: a misspelt top-level key and misspelt section keys (answered with the nearest valid key and the keys
allowed there), a run directory that holds another config (the keys that differ, old → new), a re-run of a finished
run (one line, nothing trained or rewritten), Ctrl-C and SIGTERM of a real ``python -m grokkit.cli run`` process
(the last checkpoint and the exact command that resumes it; exit 130/143), and a distillation teacher path that is
not a finished run (a sweep directory, an unfinished run, no such path).
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

import grokkit
from grokkit.checkpoint import checkpoint_step
from grokkit.cli import app
from grokkit.config import load_config
from grokkit.rundir import RunDir
from helpers import run_killed, tiny_config

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()
VOCAB = {"n_numbers": 17, "moduli": [13, 17]}


def _invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def _text(result) -> str:
    """The command's output as one line (rich wraps long lines), after checking that it holds no traceback and none
    of the placeholders that say nothing."""
    out = result.output
    assert "Traceback" not in out, out
    assert "{...}" not in out and "(top level)" not in out, out
    return " ".join(out.split())


def _write(folder: Path, cfg: dict, name: str = "cfg.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(cfg))
    return path


def _files(d: Path) -> dict[str, str]:
    return {p.relative_to(d).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(d.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, Path]:
    """A finished tiny run (one seed) and its config file."""
    folder = tmp_path_factory.mktemp("finished")
    config = _write(folder, tiny_config(seeds=[0], vocab=VOCAB))
    result = _invoke("run", config, "--out", folder / "run")
    assert result.exit_code == 0, result.output
    return folder / "run", config


# ------------------------------------------------------------------------------------------------ misspelt keys
@pytest.mark.parametrize("key, value, where, near, section", [
    ("trainig", {"steps": 10}, "trainig", "training", "the config's top level takes"),
    ("optimizer.learning_rate", 0.01, "optimizer.learning_rate", "lr", "`optimizer` takes"),
    ("optimizer.wd", 0.5, "optimizer.wd", "weight_decay", "`optimizer` takes"),
    ("training.epochs", 10, "training.epochs", "steps", "`training` takes"),
    ("training.eval_evry", 10, "training.eval_evry", "eval_every", "`training` takes"),
])
def test_a_misspelt_key_gets_the_nearest_valid_key_and_the_keys_allowed_there(tmp_path, key, value, where, near,
                                                                                section):
    cfg = tiny_config()
    node = cfg
    *parents, leaf = key.split(".")
    for part in parents:
        node = node[part]
    node[leaf] = value
    out = tmp_path / "out"
    result = _invoke("run", _write(tmp_path, cfg), "--out", out)
    text = _text(result)
    assert result.exit_code == 2, text
    assert f"{where}: unknown key" in text and f"did you mean `{near}`?" in text, text
    assert section in text and f"{near}," in text.split(section)[1], text  # the allowed keys, the right one among them
    assert not out.exists()


def test_a_distill_key_spelt_another_way_and_a_key_in_the_wrong_section(tmp_path, finished):
    cfg = tiny_config(recipe="distill", seeds=[0], task__modulus=13, vocab=VOCAB,
                      distill={"teacher": str(finished[0]), "temp": 2.0})
    cfg["training"]["lr"] = 0.01
    out = tmp_path / "out"
    result = _invoke("run", _write(tmp_path, cfg), "--out", out)
    text = _text(result)
    assert result.exit_code == 2
    assert "distill.temp: unknown key; did you mean `temperature`?" in text, text
    assert "training.lr: unknown key; `lr` belongs in `optimizer:`" in text, text
    assert not out.exists()


def test_rules_over_several_sections_name_the_top_level_in_words(tmp_path):
    out = tmp_path / "out"
    result = _invoke("run", _write(tmp_path, tiny_config(seeds=[1, 1])), "--out", out)
    text = _text(result)
    assert result.exit_code == 2 and "the config's top level: members must be distinct" in text, text
    assert not out.exists()


# ------------------------------------------------------------------------------------------------ run directories
def test_a_directory_holding_another_config_names_the_keys_that_differ(tmp_path, finished):
    run_dir, config = finished
    before = _files(run_dir)
    result = _invoke("run", config, "training.steps=40", "optimizer.lr=0.01", "--out", run_dir)
    text = _text(result)
    assert result.exit_code == 2
    assert "holds a run with a different config" in text
    assert "training.steps: 60 → 40" in text and "optimizer.lr: 0.003 → 0.01" in text, text
    assert f"grokkit run {run_dir}/config.yaml --out {run_dir}" in text, text
    assert _files(run_dir) == before


def test_a_rerun_of_a_finished_run_says_only_that(finished):
    run_dir, config = finished
    before = _files(run_dir)
    result = _invoke("run", config, "--out", run_dir)
    assert result.exit_code == 0
    assert _text(result) == f"{run_dir} already holds this finished run; nothing to do"
    assert _files(run_dir) == before
    again = grokkit.run(config, run_dir, log=lambda _: None)  # the Python interface reads it back, trains nothing
    assert again.reused and _files(run_dir) == before


# ------------------------------------------------------------------------------------------------ signals
@pytest.mark.parametrize("signum, code, name", [(signal.SIGINT, 130, "SIGINT"), (signal.SIGTERM, 143, "SIGTERM")],
                         ids=["SIGINT", "SIGTERM"])
def test_a_signal_to_a_real_run_names_the_last_checkpoint_and_the_command_that_resumes(tmp_path, signum, code,
                                                                                        name):
    """A real ``python -m grokkit.cli run`` process, signalled once its first checkpoint exists (SIGINT is set to its
    default in the child: a shell that started the tests in the background may have it ignored)."""
    cfg = tiny_config(seeds=[0], task={"op": "add", "modulus": 11, "train_fraction": 0.5},
                      model={"d_model": 8, "n_heads": 2, "d_head": 4, "d_mlp": 16},
                      training={"steps": 20000, "eval_every": 10, "checkpoint_every": 10, "progress": False})
    config = _write(tmp_path, cfg, "tiny.yaml")
    out = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "grokkit.cli", "run", "tiny.yaml", "--out", "run"]
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 120
        while not (out / "checkpoint.safetensors").exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "no checkpoint within 120 s"
            time.sleep(0.05)
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    text = " ".join((stdout + stderr).split())
    assert process.returncode == code, text
    assert "Traceback" not in text
    step = checkpoint_step(out / "checkpoint.safetensors")
    assert step is not None and step >= 10
    assert f"stopped by {name}: the last checkpoint is run/checkpoint.safetensors (step {step})" in text, text
    assert "the same command resumes it: grokkit run tiny.yaml --out run" in text, text
    assert not (out / "summary.json").exists() and not (out / "model.safetensors").exists()
    assert RunDir(out).state(load_config(config)) == "resume"  # the same command picks it up from there


# ------------------------------------------------------------------------------------------------ teacher paths
@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory) -> Path:
    """A finished sweep whose teacher was trained first into DIR/requires/teacher."""
    folder = tmp_path_factory.mktemp("sweep")
    teacher = tiny_config(name="teacher", seeds=[0], vocab=VOCAB, training={"steps": 20, "eval_every": 10,
                                                                            "checkpoint_every": 0, "progress": False})
    base = tiny_config(task__modulus=13, vocab=VOCAB, training={"steps": 20, "eval_every": 10,
                                                                "checkpoint_every": 0, "progress": False})
    spec = {"name": "kd", "base": base, "requires": {"teacher": {"base": teacher}}, "seeds": [0],
            "cases": [{"name": "distill", "overrides": {"recipe": "distill",
                                                        "distill": {"teacher": "{requires.teacher}"}}}]}
    result = _invoke("sweep", _write(folder, spec, "sweep.yaml"), "--out", folder / "sw")
    assert result.exit_code == 0, result.output
    return folder / "sw"


@pytest.fixture(scope="module")
def unfinished(tmp_path_factory) -> Path:
    """A teacher run stopped during its 25th step: config and checkpoint, no model yet."""
    out = tmp_path_factory.mktemp("unfinished") / "teacher"
    with pytest.MonkeyPatch.context() as mp:
        run_killed(load_config(_write(out.parent, tiny_config(seeds=[0], vocab=VOCAB))), out, mp, at_step_call=25,
                   log=lambda _: None)
    assert (out / "checkpoint.safetensors").exists() and not (out / "model.safetensors").exists()
    return out


def _student_with_teacher(tmp_path: Path, teacher: Path):
    cfg = tiny_config(recipe="distill", seeds=[0], task__modulus=13, vocab=VOCAB, distill={"teacher": str(teacher)})
    out = tmp_path / "student"
    result = _invoke("run", _write(tmp_path, cfg, "student.yaml"), "--out", out)
    text = _text(result)
    assert result.exit_code == 2, text
    assert "cannot load teacher" in text and "model file" not in text, text  # a folder is never called a model file
    assert not out.exists()
    return text


def test_a_teacher_path_that_is_a_sweep_directory_names_the_sweeps_teacher(tmp_path, sweep_dir):
    text = _student_with_teacher(tmp_path, sweep_dir)
    assert f"{sweep_dir} is a sweep directory, not a run" in text, text
    assert str((sweep_dir / "requires" / "teacher").resolve()) in text or str(sweep_dir / "requires" / "teacher") \
        in text, text


def test_a_teacher_path_that_is_an_unfinished_run_gives_the_command_that_finishes_it(tmp_path, unfinished):
    text = _student_with_teacher(tmp_path, unfinished)
    assert f"{unfinished} is an unfinished run" in text, text
    assert f"grokkit run {unfinished}/config.yaml --out {unfinished}" in text, text


def test_a_teacher_path_that_does_not_exist_says_so(tmp_path, finished):
    text = _student_with_teacher(tmp_path, finished[0].parent / "runn")  # a typo of `run`
    assert f"{finished[0].parent / 'runn'} does not exist" in text and "run" in text.split("does not exist")[1], text
