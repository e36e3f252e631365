"""Fault injection (issue 32): broken state and hostile input end with a message that names the problem and the way
forward, the right exit code, no traceback, quickly, and nothing the user had deleted or overwritten.

States produced here: a truncated, garbage or foreign checkpoint on resume; an unreadable summary or config of a run;
unreadable metrics; a run too large for the machine (and a sweep whose packed groups are); YAML alias bombs, recursive
aliases and oversized files; an incomplete run or sweep for each tool (report, analyze, results, threshold, map,
inherit); a damaged group checkpoint and a damaged finished trial of a sweep. And every error class grokkit defines,
raised inside every command, reaches the user as ``error: ...`` with its exit code, never a traceback; anything else
as one line and a crash log. Training is a few steps of tiny models (modulus 11, d_model 8).
"""

from __future__ import annotations

import hashlib
import importlib
import os
import pkgutil
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

import grokkit
from grokkit.api import run
from grokkit.cli import app, main
from grokkit.config import load_config, parse_config
from grokkit.errors import GrokkitError
from grokkit.resources import LIMIT_ENV, GiB, ResourceError, check_memory, estimate_memory
from helpers import run_killed

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]
TINY = {"recipe": "scratch", "name": "tiny", "seeds": [0],
        "task": {"op": "add", "modulus": 11, "train_fraction": 0.5},
        "model": {"d_model": 8, "n_heads": 2, "d_head": 4, "d_mlp": 16},
        "optimizer": {"name": "adamw", "lr": 0.01, "weight_decay": 1.0},
        "training": {"steps": 30, "eval_every": 10, "checkpoint_every": 10, "progress": False}}
BIG = ["task.modulus=50021", "vocab.n_numbers=50021", "vocab.moduli=[50021]"]


def quiet(msg: str) -> None:
    pass


def _invoke(*args: object, env: dict[str, str] | None = None):
    return runner.invoke(app, [str(a) for a in args], env=env)


def _files(d: Path) -> dict[str, str]:
    """Relative path -> content hash of every file under ``d``."""
    return {p.relative_to(d).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(d.rglob("*")) if p.is_file()}


def _kept(before: dict[str, str], after: dict[str, str]) -> None:
    """Every file the user had is still there with its content, under its name or a moved-aside one."""
    lost = {name for name, digest in before.items() if digest not in set(after.values())}
    assert not lost, f"lost or overwritten: {sorted(lost)}"


def _clean(result) -> str:
    out = result.output
    assert "Traceback" not in out, out
    return " ".join(out.split())  # rich wraps long lines


@pytest.fixture(scope="module")
def config_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cfg") / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return path


@pytest.fixture(scope="module")
def finished(tmp_path_factory, config_file) -> Path:
    out = tmp_path_factory.mktemp("finished") / "run"
    run(load_config(config_file), out, progress=False, log=quiet)
    return out


@pytest.fixture(scope="module")
def killed(tmp_path_factory, config_file) -> Path:
    """A run killed during step 25: its last checkpoint is at step 20, no summary."""
    out = tmp_path_factory.mktemp("killed") / "run"
    with pytest.MonkeyPatch.context() as mp:
        run_killed(load_config(config_file), out, mp, at_step_call=25, log=quiet)
    assert (out / "checkpoint.safetensors").exists() and not (out / "summary.json").exists()
    return out


def _copy(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / src.name
    shutil.copytree(src, dst)
    return dst


# ------------------------------------------------------------------------------------------------ corrupt checkpoint
def _damage(path: Path, how: str, other: Path) -> None:
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "garbage":
        path.write_bytes(b"\x00\x01 not a checkpoint " * 50)
    elif how == "empty":
        path.write_bytes(b"")
    else:  # a valid safetensors file that is no checkpoint: a model file copied over it
        path.write_bytes(other.read_bytes())


@pytest.mark.parametrize("how", ["truncated", "garbage", "empty", "a model file"])
def test_unreadable_checkpoint_on_resume_names_it_and_restart_moves_it_aside(tmp_path, killed, finished, config_file,
                                                                          how):
    out = _copy(killed, tmp_path)
    _damage(out / "checkpoint.safetensors", how, finished / "model.safetensors")
    before = _files(out)
    start = time.perf_counter()
    result = _invoke("run", config_file, "--out", out)
    assert result.exit_code == 2, result.output
    text = _clean(result)
    assert f"{out}/checkpoint.safetensors cannot be read" in text and "--restart" in text
    assert time.perf_counter() - start < 5
    assert _files(out) == before  # nothing written, nothing moved

    result = _invoke("run", config_file, "--out", out, "--restart")
    assert result.exit_code == 0, result.output
    assert "moved" in _clean(result) and (out / "summary.json").exists()
    _kept(before, _files(out))
    aside = list(out.glob("checkpoint.safetensors.corrupt-*"))
    assert [hashlib.sha256(p.read_bytes()).hexdigest() for p in aside] == [before["checkpoint.safetensors"]]
    # trained from step 0 with the same config: the same metrics as an undisturbed run
    assert (out / "metrics.csv").read_text() == (finished / "metrics.csv").read_text()


def test_restart_from_python_and_what_it_leaves_alone(tmp_path, killed, finished, config_file):
    cfg = load_config(config_file)
    out = _copy(killed, tmp_path)
    (out / "checkpoint.safetensors").write_bytes(b"truncated")
    summary = run(cfg, out, progress=False, log=quiet, restart=True)
    assert summary["steps"] == 30
    assert [p.read_bytes() for p in out.glob("checkpoint.safetensors.corrupt-*")] == [b"truncated"]
    assert len(list(out.glob("metrics.csv.restart-*"))) == 1  # the killed attempt's metrics, kept
    # a finished run whose files all read: --restart has nothing to do
    done = _copy(finished, tmp_path / "done")
    before = _files(done)
    result = _invoke("run", config_file, "--out", done, "--restart")
    assert result.exit_code == 0 and "already holds this finished run" in _clean(result)
    assert _files(done) == before
    # another config's run is never touched, --restart or not
    result = _invoke("run", config_file, "training.steps=20", "--out", done, "--restart")
    assert result.exit_code == 2 and "different config" in _clean(result)
    assert _files(done) == before


@pytest.mark.parametrize("name, content", [("summary.json", b'{"name": "tin'), ("config.yaml", b"recipe: [oops\n"),
                                           ("model.safetensors", b"\x00" * 10)])
def test_damaged_files_of_a_run(tmp_path, finished, config_file, name, content):
    out = _copy(finished, tmp_path)
    (out / name).write_bytes(content)
    before = _files(out)
    result = _invoke("run", config_file, "--out", out)
    text = _clean(result)
    if name == "model.safetensors":  # a finished run is not re-read by `run`; analyze names the file
        assert result.exit_code == 0
        result = _invoke("analyze", out)
        text = _clean(result)
        assert result.exit_code == 2 and f"{out}/model.safetensors" in text
    else:
        assert result.exit_code == 2 and name in text
    assert "--restart" in text
    assert _files(out) == before
    result = _invoke("run", config_file, "--out", out, "--restart")
    assert result.exit_code == 0, result.output
    _kept(before, _files(out))
    assert [p.read_bytes() for p in out.glob(f"{name}.corrupt-*")] == [content]
    assert (out / "metrics.csv").read_text() == (finished / "metrics.csv").read_text()


# ------------------------------------------------------------------------------------------------ unreadable metrics
@pytest.mark.parametrize("content", [b"", b"step,member\n1,0,0,0,0,9\n\x00\xff", b"\x89PNG garbage"])
def test_unreadable_metrics_are_named_by_report_and_drawn_around_only_with_partial(tmp_path, finished, content):
    out = _copy(finished, tmp_path)
    (out / "metrics.csv").write_bytes(content)
    before = _files(out)
    result = _invoke("report", out)
    text = _clean(result)
    assert result.exit_code == 2 and f"{out}/metrics.csv" in text and "--partial" in text
    assert _files(out) == before and not (out / "report.html").exists()
    result = _invoke("report", out, "--partial")
    assert result.exit_code == 0 and "metrics.csv" in _clean(result)
    page = (out / "report.html").read_text()
    assert "Partial report" in page and "metrics.csv" in page and "Curves (from metrics.csv" not in page
    _kept(before, _files(out))


# ------------------------------------------------------------------------------------------------ oversized run
def test_a_run_too_large_for_the_machine_is_refused_before_anything_is_allocated(tmp_path):
    out = tmp_path / "big"
    start = time.perf_counter()
    result = _invoke("run", ROOT / "configs" / "smoke.yaml", *BIG, "--out", out)
    elapsed = time.perf_counter() - start
    text = _clean(result)
    assert result.exit_code == 2, text
    assert "this run needs about" in text and "TiB" in text and "task.modulus" in text and LIMIT_ENV in text
    assert elapsed < 5, elapsed
    assert not out.exists()


def test_memory_limit_env(tmp_path, config_file, monkeypatch):
    cfg = load_config(config_file)
    need = estimate_memory(cfg).device_bytes
    assert 0 < need < 100 * (1 << 20)
    result = _invoke("run", config_file, "--out", tmp_path / "r", env={LIMIT_ENV: "1KiB"})
    text = _clean(result)
    assert result.exit_code == 2 and f"{LIMIT_ENV}=1KiB" in text and not (tmp_path / "r").exists()
    result = _invoke("run", config_file, "--out", tmp_path / "r", env={LIMIT_ENV: "lots"})
    assert result.exit_code == 2 and f"{LIMIT_ENV}='lots' is not a size" in _clean(result)
    monkeypatch.setenv(LIMIT_ENV, "off")  # the escape hatch: no check at all, even for the huge run
    assert check_memory(load_config(ROOT / "configs" / "smoke.yaml", BIG)).device_bytes > 1 << 40
    monkeypatch.setenv(LIMIT_ENV, "1GiB")
    with pytest.raises(ResourceError, match="1GiB"):
        check_memory(load_config(ROOT / "configs" / "smoke.yaml", BIG))


def _shipped(kind: str) -> list[Path]:
    out = []
    for p in sorted((Path(grokkit.__file__).parent / "configs").rglob("*.yaml")):
        data = yaml.safe_load(p.read_text())
        is_sweep = any(k in data for k in ("cases", "grid", "zip", "n_seeds")) and "settings" not in data \
            and "arms" not in data
        if (kind == "sweep") == is_sweep and (kind == "sweep" or not ({"settings", "arms"} & set(data)
                                                                     or p.parent.name == "repro")):
            out.append(p)
    return out


def test_no_shipped_run_or_sweep_is_refused_or_split_on_a_24_gib_machine():
    from grokkit.sweep.runner import check_trials_fit, plan
    from grokkit.sweep.spec import expand, load_sweep

    machine = (24 * GiB, "a 24 GiB machine")
    runs = _shipped("run")
    assert len(runs) >= 6
    for path in runs:
        check_memory(load_config(path), machine)
    sweeps = _shipped("sweep")
    assert len(sweeps) >= 15
    for path in sweeps:
        spec, root = load_sweep(path)
        trials = expand(spec, root)
        check_trials_fit(trials, machine)
        unsplit = plan(trials, spec.pack, spec.max_pack, spec.name, spec.max_padding)
        assert [g.id for g in plan(trials, spec.pack, spec.max_pack, spec.name, spec.max_padding,
                                   machine[0])] == [g.id for g in unsplit], path


def test_packed_groups_over_the_budget_are_split_and_a_trial_too_large_alone_refused(tmp_path):
    from grokkit.sweep.runner import check_trials_fit, plan
    from grokkit.sweep.spec import SweepSpec, expand

    spec = SweepSpec.model_validate({"name": "s", "base": TINY, "seeds": list(range(8))})
    trials = expand(spec, tmp_path)
    (whole,) = plan(trials)
    one = estimate_memory(plan(trials[:1])[0].config).device_bytes
    all_eight = estimate_memory(whole.config).device_bytes
    budget = (one + all_eight) // 3
    groups = plan(trials, memory_budget=budget)
    assert len(groups) > 1 and sorted(t.id for g in groups for t in g.trials) == sorted(t.id for t in trials)
    assert all(estimate_memory(g.config).device_bytes <= budget for g in groups)
    with pytest.raises(ResourceError, match=f"trial {trials[0].id}: this run needs about"):
        check_trials_fit(trials, (one // 2, "a tiny machine"))
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(spec.model_dump(mode="json")))
    result = _invoke("sweep", path, "--out", tmp_path / "out", "--dry-run", env={LIMIT_ENV: str(budget)})
    assert result.exit_code == 0 and f"{len(groups)} packed ensembles" in _clean(result)
    result = _invoke("sweep", path, "--out", tmp_path / "out", env={LIMIT_ENV: str(one // 2)})
    assert result.exit_code == 2 and "trial " in _clean(result) and not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------------ bounded YAML
def _bomb(levels: int = 9) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("text, needle", [
    (yaml.safe_dump(TINY) + _bomb(), "expands to more than 100,000 YAML nodes"),
    (yaml.safe_dump(TINY) + "loop: &l [1, *l]\n", "recursive alias"),
    (yaml.safe_dump(TINY) + "# padding\n" * 120_000, "larger than 1,048,576 bytes"),
])
def test_hostile_yaml_is_refused_at_once_naming_the_file(tmp_path, text, needle):
    path = tmp_path / "hostile.yaml"
    path.write_text(text)
    for command in (["run", path, "--out", tmp_path / "out"], ["sweep", path, "--out", tmp_path / "out"]):
        start = time.perf_counter()
        result = _invoke(*command)
        assert time.perf_counter() - start < 5
        text_out = _clean(result)
        assert result.exit_code == 2 and str(path) in text_out and needle in text_out, text_out
        assert not (tmp_path / "out").exists()


def test_an_alias_bomb_in_an_override_is_refused_at_once(tmp_path, config_file):
    from grokkit.config import ConfigError, apply_overrides

    value = "{" + _bomb().strip().replace("\n", ", ") + "}"
    start = time.perf_counter()
    with pytest.raises(ConfigError, match="override 'name=.*YAML nodes"):
        apply_overrides({}, [f"name={value}"])
    assert time.perf_counter() - start < 1
    result = _invoke("run", config_file, f"name={value}", "--out", tmp_path / "o")
    assert result.exit_code == 2 and "YAML nodes" in _clean(result) and not (tmp_path / "o").exists()


def test_ordinary_anchors_aliases_and_merge_keys_still_load(tmp_path):
    path = tmp_path / "aliases.yaml"
    path.write_text("common: &c {op: add, modulus: 11, train_fraction: 0.5}\n"
                    + yaml.safe_dump({k: v for k, v in TINY.items() if k != "task"})
                    + "task: {<<: *c, train_fraction: 0.6}\n")
    from grokkit.config import read_yaml

    data = read_yaml(path)
    assert data["task"] == {"op": "add", "modulus": 11, "train_fraction": 0.6} and data["common"]["modulus"] == 11
    data.pop("common")
    assert parse_config(data).task.train_fraction == 0.6
    tagged = tmp_path / "tagged.yaml"
    tagged.write_text("name: !!python/object/apply:os.system [echo hi]\n")
    with pytest.raises(Exception, match="not valid YAML"):
        load_config(tagged)


# ------------------------------------------------------------------------------------------------ incomplete runs
def test_report_and_analyze_on_an_unfinished_run(tmp_path, killed):
    out = _copy(killed, tmp_path)
    before = _files(out)
    result = _invoke("report", out)
    text = _clean(result)
    assert result.exit_code == 2 and f"{out}/summary.json is missing" in text and "--partial" in text
    assert _files(out) == before
    result = _invoke("report", out, "--partial")
    assert result.exit_code == 0, result.output
    page = (out / "report.html").read_text()
    assert "Partial report" in page and "summary.json is missing" in page and "<img" in page
    assert ("<h3>curves.png</h3>" in page) != ("Curves (from metrics.csv" in page)  # the curves so far, drawn once
    result = _invoke("analyze", out, "--out", tmp_path / "analysis")  # an unfinished run: where it got to
    assert result.exit_code == 0, result.output
    (out / "checkpoint.safetensors").unlink()
    result = _invoke("analyze", out)
    text = _clean(result)
    assert result.exit_code == 2 and "model.safetensors" in text and "checkpoint.safetensors" in text
    result = _invoke("analyze", tmp_path / "nowhere")
    assert result.exit_code == 2 and "does not exist" in _clean(result)


def test_report_of_a_finished_run_without_metrics(tmp_path, finished):
    out = _copy(finished, tmp_path)
    (out / "metrics.csv").unlink()
    result = _invoke("report", out)
    assert result.exit_code == 2 and f"{out}/metrics.csv is missing" in _clean(result)
    assert not (out / "report.html").exists()
    result = _invoke("report", out, "--partial")
    assert result.exit_code == 0 and "Partial report" in (out / "report.html").read_text()
    result = _invoke("report", _copy(finished, tmp_path / "whole"))
    assert result.exit_code == 0 and "Partial" not in (tmp_path / "whole" / "run" / "report.html").read_text()


def _sweep_spec(**extra: object) -> dict:
    return {"name": "s", "base": TINY, "seeds": [0, 1], **extra}


@pytest.fixture(scope="module")
def killed_sweep(tmp_path_factory) -> tuple[Path, Path]:
    """A sweep killed while its one packed group trained (its checkpoint at step 20; no trial finished, no
    results.parquet), and its spec file."""
    from grokkit.engine import Trainer
    from grokkit.sweep import parse_sweep, run_sweep

    base = tmp_path_factory.mktemp("sweep")
    spec_path = base / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(_sweep_spec()))
    original, calls = Trainer.train_step, {"n": 0}

    def crashing(self: Trainer):
        calls["n"] += 1
        if calls["n"] == 25:
            raise KeyboardInterrupt
        return original(self)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Trainer, "train_step", crashing)
        with pytest.raises(KeyboardInterrupt):
            run_sweep(parse_sweep(_sweep_spec()), base, base / "out", log=quiet)
    out = base / "out"
    assert len(list(out.glob("groups/*/checkpoint.safetensors"))) == 1 and not (out / "results.parquet").exists()
    return out, spec_path


@pytest.mark.parametrize("command", ["results", "threshold"])
def test_results_and_threshold_of_an_unfinished_sweep(tmp_path, killed_sweep, command):
    out = _copy(killed_sweep[0], tmp_path)
    before = _files(out)
    result = _invoke(command, out)
    text = _clean(result)
    assert result.exit_code == 2 and f"{out}/results.parquet is missing" in text and "has not finished" in text
    assert _files(out) == before


def test_report_of_an_unfinished_sweep(tmp_path, killed_sweep):
    out = _copy(killed_sweep[0], tmp_path)
    result = _invoke("report", out)
    assert result.exit_code == 2 and "results.parquet" in _clean(result) and not (out / "report.html").exists()
    result = _invoke("report", out, "--partial")
    assert result.exit_code == 0, result.output
    page = (out / "report.html").read_text()
    assert "Partial report" in page and "2 of 2 trials have not finished" in page


def test_threshold_on_a_sweep_with_no_finished_trial():
    from grokkit.analysis.threshold import threshold_table
    from grokkit.sweep import SweepError

    table = pd.DataFrame({"trial": ["a", "b"], "status": ["error", "pending"], "task.train_fraction": [0.3, 0.5],
                          "generalized": [False, False], "case": ["x", "x"]})
    with pytest.raises(SweepError, match=r"no finished trial yet \(1 error, 1 pending"):
        threshold_table(table)


def test_map_and_inherit_of_a_sweep_with_no_finished_trial(tmp_path):
    from grokkit.checkpoint import atomic_write_text

    vocab = {"n_numbers": 13, "moduli": [11, 13]}
    teacher = {**TINY, "vocab": vocab, "task": {"op": "add", "modulus": 13, "train_fraction": 0.5}}
    base = {**TINY, "vocab": vocab, "distill": {"teacher": "{requires.t13}", "alpha": 0.9, "temperature": 4.0}}
    spec = _sweep_spec(base=base, requires={"t13": {"base": teacher}},
                       cases=[{"name": "kd", "labels": {"method": "distill", "op": "add", "pair": "13->11"},
                               "overrides": {"recipe": "distill"}},
                              {"name": "scratch", "labels": {"method": "scratch", "op": "add"},
                               "overrides": {"recipe": "scratch"}}],
                       map={"rows": "op", "cols": "pair"})
    out = tmp_path / "s"
    out.mkdir()
    atomic_write_text(out / "sweep.yaml", yaml.safe_dump(spec))  # what a sweep writes first
    before = _files(out)
    result = _invoke("map", out)
    text = _clean(result)
    assert result.exit_code == 2 and "no finished trial yet (4 pending" in text and "summary.json" in text
    result = _invoke("inherit", out, "--teacher", "t13")
    assert result.exit_code == 2 and "no finished trial yet" in _clean(result)
    assert _files(out) == before


# ------------------------------------------------------------------------------------------------ damaged sweeps
def test_a_sweep_whose_group_checkpoint_is_unreadable(tmp_path, killed_sweep):
    out = _copy(killed_sweep[0], tmp_path)
    (ckpt,) = out.glob("groups/*/checkpoint.safetensors")
    ckpt.write_bytes(ckpt.read_bytes()[:300])
    # what the group trained so far: its checkpoint and metrics (the sweep's own records, sweep.yaml, .attempts/ and
    # the group's config.yaml, are rewritten or removed by design once the group is done)
    before = {k: v for k, v in _files(out).items() if k.startswith("groups/") and not k.endswith("config.yaml")}
    result = _invoke("sweep", killed_sweep[1], "--out", out)
    text = _clean(result)
    assert result.exit_code == 1, text
    assert "2 trial(s) failed (seed=0, seed=1" in text and f"{ckpt} cannot be read" in text and "--restart" in text
    _kept(before, _files(out))
    assert ckpt.exists()
    result = _invoke("sweep", killed_sweep[1], "--out", out, "--restart")
    assert result.exit_code == 0, result.output
    _kept(before, _files(out))
    assert len(list(out.glob("corrupt/group-*/checkpoint.safetensors.corrupt-*"))) == 1
    assert (out / "results.parquet").exists() and len(list(out.glob("trials/*/summary.json"))) == 2


def test_a_sweep_with_a_damaged_finished_trial(tmp_path, killed_sweep):
    from grokkit.sweep import read_table

    out = _copy(killed_sweep[0], tmp_path)
    result = _invoke("sweep", killed_sweep[1], "--out", out)  # resume: both trials finish
    assert result.exit_code == 0, result.output
    summary = out / "trials" / "seed=1" / "summary.json"
    good = summary.read_bytes()
    summary.write_bytes(good[:40])
    before = _files(out)
    for command in ("results", "report"):  # the tools do not crash on it
        assert _invoke(command, out).exit_code == 0
    from grokkit.sweep import current_table

    row = current_table(out)[1].set_index("trial").loc["seed=1"]
    assert row.status == "error" and "summary.json cannot be read" in row.error and "run the sweep again" in row.error
    result = _invoke("sweep", killed_sweep[1], "--out", out)  # the sweep moves it aside and trains it again
    text = _clean(result)
    assert result.exit_code == 0 and "trial seed=1 looked finished but cannot be read" in text
    _kept({k: v for k, v in before.items() if k.startswith("trials/")}, _files(out))  # the trials' files
    assert [p.read_bytes() for p in out.glob("corrupt/seed=1.*/summary.json")] == [good[:40]]
    (old,) = out.glob("corrupt/seed=1.*/metrics.csv")  # trained again (alone now, packed before): the same curves
    pd.testing.assert_frame_equal(pd.read_csv(old), pd.read_csv(out / "trials" / "seed=1" / "metrics.csv"),
                                  rtol=1e-4, atol=1e-5)
    assert (read_table(out).status == "ok").all()


# ------------------------------------------------------------------------------------------------ no traceback, ever
def _all_error_classes() -> list[type[GrokkitError]]:
    for m in pkgutil.walk_packages(grokkit.__path__, "grokkit."):
        try:
            importlib.import_module(m.name)
        except ImportError:  # an optional dependency (ray, optuna, transformer_lens) that is not installed
            continue
    found: list[type[GrokkitError]] = []
    todo = [GrokkitError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo += cls.__subclasses__()
    return sorted(set(found), key=lambda c: f"{c.__module__}.{c.__qualname__}")


ERROR_CLASSES = _all_error_classes()
#: each command and a function it calls first (patched to raise)
COMMANDS = {
    "run": ("grokkit.interface", "make_config", ["run", "cfg.yaml", "--out", "o"]),
    "demo": ("grokkit.demo", "run_demo", ["demo", "--out", "o"]),
    "sweep": ("grokkit.sweep", "load_sweep", ["sweep", "s.yaml", "--out", "o"]),
    "tune": ("grokkit.tune", "load_tune", ["tune", "t.yaml", "--out", "o"]),
    "repro": ("grokkit.repro", "repro", ["repro", "fig2", "--out", "o"]),
    "compare": ("grokkit.compare", "compare", ["compare", "c.yaml", "--out", "o"]),
    "results": ("grokkit.sweep", "read_table", ["results", "d"]),
    "threshold": ("grokkit.sweep", "read_table", ["threshold", "d"]),
    "map": ("grokkit.sweep", "current_table", ["map", "d"]),
    "inherit": ("grokkit.sweep", "current_table", ["inherit", "d"]),
    "report": ("grokkit.report", "write_report", ["report", "d"]),
    "analyze": ("grokkit.analysis.progress", "analyze_run", ["analyze", "d"]),
}


def _instance(cls: type[GrokkitError]) -> GrokkitError:
    try:
        return cls("the injected failure; do the thing the message says")
    except TypeError:  # DiskFullError takes the path it could not write
        return cls(Path("the injected failure"))  # type: ignore[call-arg]


def test_the_package_defines_the_error_classes_this_test_covers():
    names = {c.__name__ for c in ERROR_CLASSES}
    assert {"GrokkitError", "InputError", "ConfigError", "RunError", "CheckpointError", "TeacherError", "SweepError",
            "TuneError", "ReportError", "CompareError", "AnalysisError", "ReproError", "DiskFullError",
            "TrainingError", "ResourceError"} <= names


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=[c.__name__ for c in ERROR_CLASSES])
def test_no_command_prints_a_traceback_for_any_grokkit_error(monkeypatch, cls, command):
    module, name, argv = COMMANDS[command]
    err = _instance(cls)

    def fail(*args: object, **kwargs: object) -> None:
        raise err

    monkeypatch.setattr(importlib.import_module(module), name, fail)
    result = runner.invoke(app, argv)
    text = _clean(result)
    assert result.exit_code == cls.exit_code, text
    assert f"error: {err}" in text


def test_the_top_level_handler_of_the_entry_point(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    for cls in ERROR_CLASSES:
        err = _instance(cls)

        def fail(*args: object, err: GrokkitError = err, **kwargs: object) -> None:
            raise err

        monkeypatch.setattr("grokkit.interface.make_config", fail)
        monkeypatch.setattr(sys, "argv", ["grokkit", "run", "cfg.yaml", "--out", str(tmp_path / "o")])
        with pytest.raises(SystemExit) as exit_info:
            main()
        out = capsys.readouterr()
        assert exit_info.value.code == cls.exit_code and f"error: {err}" in " ".join(out.err.split())
        assert "Traceback" not in out.out + out.err
    assert not (tmp_path / "state").exists()  # known failures write no crash log


def test_an_unexpected_exception_is_one_line_and_a_crash_log(monkeypatch, capsys, tmp_path):
    def fail(*args: object, **kwargs: object) -> None:
        raise ZeroDivisionError("the injected bug")

    monkeypatch.setattr("grokkit.interface.make_config", fail)
    monkeypatch.setattr(sys, "argv", ["grokkit", "run", "cfg.yaml", "--out", "o"])
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = " ".join(capsys.readouterr().err.split())
    assert exit_info.value.code == 1 and "Traceback" not in err
    assert "grokkit crashed: ZeroDivisionError: the injected bug; the traceback and versions are in" in err
    (log,) = (tmp_path / "state" / "grokkit").glob("crash-*.log")
    text = log.read_text()
    assert str(log) in err
    assert "Traceback" in text and "ZeroDivisionError: the injected bug" in text and "in fail" in text
    assert "command: grokkit run cfg.yaml --out o" in text and "torch: " in text and "python: " in text
    # the state folder cannot be written: the log goes to the temporary folder instead
    (tmp_path / "blocked").write_text("a file, not a folder")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "blocked"))
    result = runner.invoke(app, ["run", "cfg.yaml", "--out", "o"])
    assert result.exit_code == 1 and "grokkit crashed" in result.output and "Traceback" not in result.output
    path = Path(" ".join(result.output.split()).split("are in ")[1].split(". This")[0])
    assert path.is_file() and path.parent == Path(tempfile.gettempdir()) / "grokkit"
    path.unlink()
    monkeypatch.setenv("GROKKIT_TRACEBACK", "1")  # for debugging: the exception itself
    assert isinstance(runner.invoke(app, ["run", "cfg.yaml", "--out", "o"]).exception, ZeroDivisionError)


def test_the_installed_entry_point_refuses_hostile_input_without_a_traceback(tmp_path):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(yaml.safe_dump(TINY) + _bomb())
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    for args in (["run", str(bomb), "--out", str(tmp_path / "o")],
                 ["run", str(ROOT / "configs" / "smoke.yaml"), *BIG, "--out", str(tmp_path / "o")]):
        done = subprocess.run([sys.executable, "-m", "grokkit.cli", *args], capture_output=True, text=True, env=env,
                              timeout=120)
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stdout + done.stderr and "error:" in done.stderr
    assert not (tmp_path / "o").exists()


def test_out_of_memory_while_training_is_a_training_error(tmp_path, config_file, monkeypatch):
    from grokkit.engine import Trainer
    from grokkit.errors import TrainingError

    original = Trainer.train_step

    def oom(self: Trainer):
        if self.step == 15:
            raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: "
                               "you tried to allocate 20016803528 bytes. Error code 12 (Cannot allocate memory)")
        return original(self)

    monkeypatch.setattr(Trainer, "train_step", oom)
    out = tmp_path / "r"
    result = _invoke("run", config_file, "--out", out)
    text = _clean(result)
    assert result.exit_code == TrainingError.exit_code == 1
    assert "ran out of memory while training, at step 15" in text and "last checkpoint is kept" in text
    assert (out / "checkpoint.safetensors").exists()
    monkeypatch.setattr(Trainer, "train_step", original)
    result = _invoke("run", config_file, "--out", out)  # and the same command resumes
    assert result.exit_code == 0 and "resuming" in result.output and (out / "summary.json").exists()
