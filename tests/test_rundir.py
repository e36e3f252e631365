"""The run-directory contract (grokkit.rundir): state checks, the files, and one description of a run's data for
single runs and sweep trials alike."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from grokkit.api import run
from grokkit.checkpoint import CHECKPOINT_FILE, MODEL_FILE
from grokkit.config import load_config, parse_config
from grokkit.rundir import LOCK_FILE, RunDir, RunError, caption, train_fraction
from helpers import tiny_config

XOR = {"kind": "xor", "n_bits": 8, "n_train": 32, "n_test": 32}
BITS_BASE = {"recipe": "scratch", "task": XOR, "model": {"kind": "mlp", "d_embed": 8, "d_mlp": 16, "n_layers": 2},
             "optimizer": {"name": "adamw", "lr": 0.01, "weight_decay": 0.1},
             "training": {"steps": 10, "eval_every": 5, "checkpoint_every": 0, "progress": False}}


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)  # two threads on a busy 2-core machine are many times slower than one
    yield


def test_file_names_and_state(tmp_path):
    assert (MODEL_FILE, CHECKPOINT_FILE, LOCK_FILE) == ("model.safetensors", "checkpoint.safetensors", ".run.lock")
    cfg = parse_config(tiny_config())
    d = RunDir(tmp_path / "r")
    assert d.state(cfg) == "new"
    d.path.mkdir()
    (d / LOCK_FILE).write_text("")
    assert d.state(cfg) == "new"  # a stale lock file alone is an empty directory
    d.write_config(cfg)
    assert d.read_config() == cfg and d.state(cfg) == "new"
    (d / CHECKPOINT_FILE).write_text("")
    assert d.state(cfg) == "resume"
    d.write_summary({"name": "tiny", "recipe": "scratch", "task": "add17", "members": [], "steps": 3})
    assert d.state(cfg) == "done" and d.read_summary()["steps"] == 3 and d.read_summary_model().name == "tiny"
    with pytest.raises(RunError, match="different config"):
        d.state(parse_config(tiny_config(name="other")))
    # how a run executes is not what it computes: another thread count or progress bar resumes the same run
    runtime = tiny_config()
    runtime["training"] = {**runtime.get("training", {}), "threads": 1, "progress": True}
    assert d.state(parse_config(runtime)) == "done"
    changed = tiny_config()
    changed["training"] = {**changed.get("training", {}), "eval_every": 7}
    with pytest.raises(RunError, match="different config"):
        d.state(parse_config(changed))
    d.config_path.write_text("recipe: [")
    with pytest.raises(RunError, match="unreadable config.yaml"):
        RunDir(d.path).state(cfg)
    (tmp_path / "f").write_text("x")
    with pytest.raises(RunError, match="is not a directory"):
        RunDir(tmp_path / "f").state(cfg)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("x")
    with pytest.raises(RunError, match="holds no grokkit run"):
        RunDir(tmp_path / "other").state(cfg)


def test_metrics_from_rows_or_a_frame_are_written_atomically(tmp_path):
    d = RunDir(tmp_path)
    rows = [{"step": 0, "member": 0, "seed": 0, "train_loss": 1.0, "train_acc": 0.5, "test_loss": 1.0,
             "test_acc": 0.5, "weight_norm": 2.0, "test_acc@add13": 0.1}]
    written = d.write_metrics(rows)
    assert list(written.columns)[-1] == "test_acc@add13"
    pd.testing.assert_frame_equal(d.read_metrics(), written)
    frame = pd.DataFrame({"stage": ["weak"], "step": [0]})
    d.write_metrics(frame)
    pd.testing.assert_frame_equal(d.read_metrics(), frame)
    assert not list(tmp_path.glob(".*.tmp"))


def test_caption_and_train_fraction_per_kind_of_task():
    modular = parse_config(tiny_config(task={"op": "add", "modulus": 17, "train_fraction": 0.3}))
    assert caption(modular) == "30% of pairs" and train_fraction(modular) == 0.3
    bits = parse_config(BITS_BASE)
    assert caption(bits) == "32 training inputs" and train_fraction(bits) is None
    assert RunDir.caption(bits) == caption(bits) and RunDir.train_fraction(bits) is None
    joint = parse_config(tiny_config(recipe="joint", joint={}, vocab={"n_numbers": 17, "moduli": [13, 17]},
                                     tasks=[{"op": "add", "modulus": 17, "train_fraction": 0.5},
                                            {"op": "add", "modulus": 13, "train_fraction": 0.4}]))
    assert caption(joint) == "50%/40% of pairs" and train_fraction(joint) == [0.5, 0.4]


def test_a_bit_task_trial_and_a_single_run_describe_their_data_alike(tmp_path, monkeypatch):
    import grokkit.plots
    from grokkit.sweep import parse_sweep, run_sweep

    titles: dict[str, str] = {}
    real = grokkit.plots.plot_curves

    def record(metrics, path, title):
        titles[str(path.parent)] = title
        real(metrics, path, title)

    monkeypatch.setattr(grokkit.plots, "plot_curves", record)
    spec = parse_sweep({"name": "bits", "base": BITS_BASE, "seeds": [0, 1]})
    result = run_sweep(spec, tmp_path, tmp_path / "sw", log=lambda _: None)
    assert set(result.outcomes.values()) <= {"ok", "failed"} and len(result.outcomes) == 2
    trial = result.trials[0]
    d = RunDir(tmp_path / "sw" / "trials" / trial.id)
    alone = RunDir(tmp_path / "alone")
    single = run(load_config(d.config_path), alone, progress=False, log=lambda _: None)
    packed = d.read_summary()
    assert packed["train_fraction"] is None and single["train_fraction"] is None
    assert json.loads(alone.summary_path.read_text())["train_fraction"] is None
    trial_title, single_title = titles[str(d.path)], titles[str(alone.path)]
    assert trial_title.startswith(f"{trial.id}: ") and single_title.startswith(f"{single['name']}: ")
    assert trial_title.split(": ", 1)[1] == single_title.split(": ", 1)[1]
    assert "32 training inputs" in trial_title and "of pairs" not in trial_title
    assert d.curves_path.exists() and alone.curves_path.exists()
