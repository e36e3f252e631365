"""Reliability cases a user hits (issue 15): a second run on a directory in use, an empty or non-mapping config, a
full disk, metrics on disk while training, the joint recipe's default position, and first impressions (a report for
the demo's directory, tables readable in a log file, loss and weight-norm panels, plain ``--help``)."""

from __future__ import annotations

import contextlib
import errno
import io
import subprocess
import sys
import threading
from pathlib import Path

import pandas as pd
import pytest
import yaml
from safetensors import SafetensorError
from typer.testing import CliRunner

from grokkit.api import RUN_LOCK_FILE, RunError, run, run_lock
from grokkit.checkpoint import CHECKPOINT_FILE, DiskFullError, atomic_write, atomic_write_text, load_checkpoint
from grokkit.cli import app
from grokkit.config import ConfigError, load_config, parse_config
from grokkit.engine import Trainer
from helpers import run_killed, tiny_config

runner = CliRunner()


def _write(tmp_path: Path, cfg: object, name: str = "cfg.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg))
    return path


def _listing(d: Path) -> dict[str, int]:
    return {str(p.relative_to(d)): p.stat().st_mtime_ns for p in d.rglob("*")}


def quiet(msg: str) -> None:
    pass


# ------------------------------------------------------------------------------------------------ 1. run lock
def test_a_second_run_on_a_directory_in_use_is_refused_and_writes_nothing(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    path = _write(tmp_path, tiny_config(seeds=[0]))
    # another process holds the run directory's lock, as a `grokkit run` does while it trains
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from filelock import FileLock; lock = FileLock(sys.argv[1]); "
         "lock.acquire(); print('held', flush=True); sys.stdin.read()", str(out / RUN_LOCK_FILE)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        before = _listing(out)
        result = runner.invoke(app, ["run", str(path), "--out", str(out)])
        assert result.exit_code == 2, result.output
        assert "in use by another grokkit run" in result.output
        assert _listing(out) == before  # nothing written
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)
    result = runner.invoke(app, ["run", str(path), "--out", str(out)])  # the holder has gone: it runs
    assert result.exit_code == 0, result.output
    assert (out / "summary.json").exists() and not (out / RUN_LOCK_FILE).exists()


def test_run_lock_is_reentrant_for_its_holder_and_refuses_other_threads(tmp_path):
    out = tmp_path / "staged"
    seen: list[str] = []

    def other_thread() -> None:
        try:
            with run_lock(out):
                seen.append("acquired")
        except RunError as err:
            seen.append(str(err))

    with run_lock(out):
        with run_lock(out):  # a stage of a staged recipe taking the lock again: no deadlock
            assert (out / RUN_LOCK_FILE).exists()
        t = threading.Thread(target=other_thread)
        t.start()
        t.join(timeout=30)
        assert len(seen) == 1 and "in use by another grokkit run" in seen[0]
    assert not (out / RUN_LOCK_FILE).exists()
    other_thread()
    assert seen[-1] == "acquired"


def test_a_run_holds_its_lock_while_training(tmp_path, monkeypatch):
    out = tmp_path / "r"
    original = Trainer.train_step
    refused: list[str] = []
    started: list[bool] = []

    def step(self: Trainer):
        if self.step == 5 and not started:  # mid-run: a second run from another thread is refused
            started.append(True)
            t = threading.Thread(target=lambda: _try_run(out, refused))
            t.start()
            t.join(timeout=60)
        return original(self)

    monkeypatch.setattr(Trainer, "train_step", step)
    run(parse_config(tiny_config(seeds=[0])), out, progress=False, log=quiet)
    assert len(refused) == 1 and "in use by another grokkit run" in refused[0]


def _try_run(out: Path, refused: list[str]) -> None:
    try:
        run(parse_config(tiny_config(seeds=[0])), out, progress=False, log=quiet)
        refused.append("ran")
    except RunError as err:
        refused.append(str(err))


# ------------------------------------------------------------------------------------------------ 2. empty config
@pytest.mark.parametrize("text,needle", [("", "is empty"), ("# nothing but a comment\n", "is empty"),
                                         ("- 1\n- 2\n", "must be a mapping"), ("3\n", "must be a mapping"),
                                         ("just a string\n", "must be a mapping")])
def test_empty_or_non_mapping_config_is_an_error_and_nothing_is_written(tmp_path, text, needle):
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=needle):
        load_config(path)
    with pytest.raises(ConfigError, match=needle):  # overrides do not turn it into an all-defaults run either
        load_config(path, ["training.steps=10"])
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", str(path), "--out", str(out)])
    assert result.exit_code == 2 and needle in result.output
    assert not out.exists()


# ------------------------------------------------------------------------------------------------ 3. disk full
SAFETENSORS_FULL = ('Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space left on '
                    'device" })')


@pytest.mark.parametrize("error", [OSError(errno.ENOSPC, "No space left on device"), SafetensorError(SAFETENSORS_FULL)],
                         ids=["oserror", "safetensors"])
def test_atomic_write_on_a_full_disk_keeps_the_previous_file(tmp_path, error):
    target = tmp_path / "x.txt"
    atomic_write_text(target, "previous")

    def fill_disk(p: Path) -> None:
        p.write_text("half a fi")
        raise error

    with pytest.raises(DiskFullError, match=r"no space left on device writing .*x\.txt; the previous x\.txt is intact"):
        atomic_write(target, fill_disk)
    assert target.read_text() == "previous"
    assert [p.name for p in tmp_path.iterdir()] == ["x.txt"]  # no temporary file left behind
    with pytest.raises(DiskFullError, match="new.txt was not written"):
        atomic_write(tmp_path / "new.txt", fill_disk)
    with pytest.raises(ValueError, match="not a disk problem"):  # other errors pass through unchanged

        def other(p: Path) -> None:
            raise ValueError("not a disk problem")

        atomic_write(target, other)


def test_disk_full_at_a_checkpoint_is_a_clear_error_and_the_previous_checkpoint_survives(tmp_path, monkeypatch):
    import grokkit.checkpoint as ck

    out = tmp_path / "run"
    path = _write(tmp_path, tiny_config(seeds=[0]))
    original = ck.save_file
    seen: dict[str, bytes] = {}

    def save_file(tensors, filename, metadata=None):
        if (out / CHECKPOINT_FILE).exists():  # the second checkpoint: the disk is full
            seen["before"] = (out / CHECKPOINT_FILE).read_bytes()
            Path(filename).write_bytes(b"partial")
            raise SafetensorError(SAFETENSORS_FULL)
        return original(tensors, filename, metadata=metadata)

    monkeypatch.setattr(ck, "save_file", save_file)
    result = runner.invoke(app, ["run", str(path), "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and "SafetensorError" not in result.output
    assert "no space left on device writing" in result.output and "checkpoint.safetensors is intact" in result.output
    assert (out / CHECKPOINT_FILE).read_bytes() == seen["before"]
    load_checkpoint(out / CHECKPOINT_FILE)  # still a valid checkpoint
    assert not list(out.glob(".*.tmp")) and not (out / RUN_LOCK_FILE).exists()
    monkeypatch.setattr(ck, "save_file", original)
    result = runner.invoke(app, ["run", str(path), "--out", str(out)])  # space freed: it resumes and finishes
    assert result.exit_code == 0, result.output
    assert (out / "summary.json").exists()


# ------------------------------------------------------------------------------------------------ 4. metrics on disk
def test_metrics_csv_is_on_disk_while_training_and_a_resumed_run_ends_with_the_same_file(tmp_path, monkeypatch):
    cfg = parse_config(tiny_config(training__batch_size=32))  # eval and checkpoint every 20 steps of 60
    run(cfg, tmp_path / "full", progress=False, log=quiet)
    full = pd.read_csv(tmp_path / "full" / "metrics.csv")

    run_killed(cfg, tmp_path / "killed", monkeypatch, log=quiet)  # last checkpoint at step 40
    assert not (tmp_path / "killed" / "summary.json").exists()
    so_far = pd.read_csv(tmp_path / "killed" / "metrics.csv")
    assert sorted(so_far.step.unique()) == [0, 20, 40]
    pd.testing.assert_frame_equal(so_far, full[full.step <= 40].reset_index(drop=True))
    run(cfg, tmp_path / "killed", progress=False, log=quiet)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "killed" / "metrics.csv"), full)


# ------------------------------------------------------------------------------------------------ 5. joint default
def test_joint_distillation_teaches_the_final_position():
    """Joint distillation with alpha = 1 learns no labels, so it must teach the answer's position: a config written
    before the one `distill:` section (joint: {mode: distill, teachers}) still means the final position, and a
    `distill:` section that would teach another position without labels is refused, naming the fix."""
    from grokkit.recipes import joint

    assert "distill.position: final" in " ".join((joint.__doc__ or "").split())
    base = dict(recipe="joint", tasks=[{"op": "add", "modulus": 17, "train_fraction": 0.5},
                                       {"op": "add", "modulus": 13, "train_fraction": 0.5}],
                vocab={"n_numbers": 17, "moduli": [13, 17]})
    cfg = parse_config(tiny_config(**base, joint={"mode": "distill", "teachers": ["a", "b"]}))
    assert cfg.distill is not None and cfg.distill.position == "final" and cfg.distill.alpha == 1.0
    with pytest.raises(ConfigError, match="distill.position: final"):
        parse_config(tiny_config(**base, joint={"mode": "distill"},
                                 distill={"teacher": ["a", "b"], "alpha": 1.0, "position": "operator"}))


# ------------------------------------------------------------------------------------------------ 7. first impressions
@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo pipeline on tiny configs, its console output captured as a log file would capture it."""
    from grokkit.demo import run_demo

    out = tmp_path_factory.mktemp("demo")
    vocab = {"n_numbers": 17, "moduli": [13, 17]}
    teacher = parse_config(tiny_config(seeds=[0], vocab=vocab, task__train_fraction=0.6))
    distill = parse_config(tiny_config(recipe="distill", seeds=[0, 1], vocab=vocab, task__modulus=13,
                                       distill={"teacher": "unused", "temperature": 8.0}))
    scratch = parse_config(tiny_config(seeds=[0, 1], vocab=vocab, task__modulus=13))
    log = io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("COLUMNS", "80")  # what rich assumes off a terminal
        with contextlib.redirect_stderr(log):
            run_demo(out, progress=False, configs=(teacher, distill, scratch), student_steps=40)
    return out, log.getvalue()


def test_demo_table_is_readable_in_a_log_file(demo):
    _, log = demo
    assert "…" not in log
    header = next(line for line in log.splitlines() if "seed" in line and "group" in line)
    for column in ("group", "seed", "steps_to_generalize", "final_test_acc", "final_train_acc", "steps"):
        assert column in header


def test_report_of_the_demo_directory_covers_its_three_runs(demo):
    out, _ = demo
    result = runner.invoke(app, ["report", str(out)])
    assert result.exit_code == 0, result.output
    page = (out / "report.html").read_text()
    assert "3 runs (distill, scratch, teacher)" in page and page.count("<h2>Run ") == 3
    assert "<b>distill</b>" in page and "headline.md" in page and "comparison.png" in page


def test_report_of_a_folder_without_runs_is_still_refused(tmp_path):
    result = runner.invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 2 and "folder of finished runs" in result.output


def test_run_curves_have_loss_on_a_log_scale_and_weight_norm_panels(tmp_path):
    from grokkit.plots import curves_figure

    out = tmp_path / "r"
    run(parse_config(tiny_config()), out, progress=False, log=quiet)
    fig = curves_figure(pd.read_csv(out / "metrics.csv"), "t")
    acc_ax, loss_ax, norm_ax = fig.axes
    assert loss_ax.get_yscale() == "log" and "loss" in loss_ax.get_ylabel() and "accuracy" in acc_ax.get_ylabel()
    assert "norm" in norm_ax.get_ylabel() and len(norm_ax.get_lines()) == 2  # one line per member
    assert len(loss_ax.get_lines()) == 4  # train and test per member
    result = runner.invoke(app, ["report", str(out)])
    assert result.exit_code == 0, result.output
    page = (out / "report.html").read_text()
    # curves.png is the run's one figure: the report shows it and draws no second copy of its panels
    assert "<h3>curves.png</h3>" in page and "Curves (from metrics.csv" not in page and page.count("<img") == 1
    (out / "curves.png").unlink()  # without it, the same figure is drawn from metrics.csv
    assert runner.invoke(app, ["report", str(out)]).exit_code == 0
    page = (out / "report.html").read_text()
    assert "Curves (from metrics.csv" in page and page.count("<img") == 1


def test_help_is_plain_text():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for rst in ("``", ":mod:", ":class:", ":func:"):
        assert rst not in result.output
    assert "grokking" in result.output
