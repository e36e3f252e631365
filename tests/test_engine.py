import pandas as pd
import pytest
import torch

from grokkit.api import prepare, run
from grokkit.config import parse_config
from grokkit.engine import Trainer
from helpers import run_killed, tiny_config


def _curves(cfg_dict, tmp_path, name):
    summary = run(parse_config(cfg_dict), tmp_path / name, progress=False)
    return pd.read_csv(tmp_path / name / "metrics.csv"), summary


EXTRAS = [{}, {"training__batch_size": 16}, {"optimizer__transforms": [{"name": "grokfast_ema"}]}]


@pytest.mark.parametrize("extra", EXTRAS)
def test_member_in_ensemble_equals_member_alone(tmp_path, extra):
    ensemble, _ = _curves(tiny_config(seeds=[0, 1, 2], **extra), tmp_path, "ensemble")
    alone, _ = _curves(tiny_config(seeds=[1], **extra), tmp_path, "alone")
    a = ensemble[ensemble.seed == 1].reset_index(drop=True).drop(columns=["member"])
    b = alone.drop(columns=["member"])
    pd.testing.assert_frame_equal(a, b, rtol=1e-4, atol=1e-5)


def test_member_chunking_does_not_change_results(tmp_path):
    one, _ = _curves(tiny_config(seeds=[0, 1, 2], training__member_chunk=1), tmp_path, "c1")
    all_, _ = _curves(tiny_config(seeds=[0, 1, 2], training__member_chunk=3), tmp_path, "c3")
    pd.testing.assert_frame_equal(one, all_, rtol=1e-4, atol=1e-5)


def test_per_member_hyperparameters(tmp_path):
    cfg = tiny_config(members=[{"seed": 0, "lr": 0.003}, {"seed": 1, "lr": 0.01, "train_fraction": 0.3}])
    del cfg["seeds"]
    mixed, _ = _curves(cfg, tmp_path, "mixed")
    alone, _ = _curves(tiny_config(seeds=[1], optimizer__lr=0.01, task__train_fraction=0.3), tmp_path, "alone")
    pd.testing.assert_frame_equal(mixed[mixed.seed == 1].reset_index(drop=True).drop(columns=["member"]),
                                  alone.drop(columns=["member"]), rtol=1e-4, atol=1e-5)


TRANSFORMS = [[{"name": "grokfast_ema"}], [{"name": "grokfast_ma", "window": 7}], [{"name": "orthogonal_grad"}]]


@pytest.mark.parametrize("transforms", TRANSFORMS, ids=lambda t: t[0]["name"])
def test_resume_after_interruption_equals_uninterrupted_run(tmp_path, monkeypatch, transforms):
    cfg = parse_config(tiny_config(training__batch_size=32, optimizer__transforms=transforms))
    full = run(cfg, tmp_path / "full", progress=False)

    run_killed(cfg, tmp_path / "killed", monkeypatch)  # last checkpoint at step 40
    assert (tmp_path / "killed" / "checkpoint.safetensors").exists()
    assert not (tmp_path / "killed" / "summary.json").exists()
    resumed = run(cfg, tmp_path / "killed", progress=False)
    a = pd.read_csv(tmp_path / "full" / "metrics.csv")
    b = pd.read_csv(tmp_path / "killed" / "metrics.csv")
    pd.testing.assert_frame_equal(a, b)
    assert [m["final_test_acc"] for m in full["members"]] == [m["final_test_acc"] for m in resumed["members"]]
    assert not (tmp_path / "killed" / "checkpoint.safetensors").exists()


def test_nan_member_is_marked_failed_and_the_others_go_on(tmp_path):
    logs = []
    cfg = parse_config(tiny_config(seeds=[0, 1, 2]))
    setup = prepare(cfg)
    with torch.no_grad():
        setup.model.blocks[0].mlp.W_in[1, 0, 0] = float("nan")
    trainer = Trainer(cfg, setup.model, setup.train, setup.test, setup.objective, log=logs.append)
    result = trainer.fit()
    assert result.members[1].failed and result.members[1].failed_step == 0
    assert not result.members[0].failed and not result.members[2].failed
    assert any("seed 1" in m and "failed at step 0" in m for m in logs)
    clean = parse_config(tiny_config(seeds=[0, 2]))
    s2 = prepare(clean)
    ref = Trainer(clean, s2.model, s2.train, s2.test, s2.objective, log=lambda m: None).fit()
    ours = [r for r in result.rows if r["seed"] != 1]
    assert len(ours) == len(ref.rows)
    for a, b in zip(ours, ref.rows):
        assert a["test_acc"] == pytest.approx(b["test_acc"], abs=1e-6)
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)


def test_early_stop_and_steps_to_generalize(tmp_path):
    cfg = tiny_config(seeds=[1], task__modulus=31, task__train_fraction=0.5, optimizer__lr=0.01,
                      model={"d_model": 64, "n_heads": 4, "d_head": 16, "d_mlp": 256},
                      training__steps=3000, training__eval_every=25, training__early_stop=True)
    metrics, summary = _curves(cfg, tmp_path, "es")
    stg = summary["members"][0]["steps_to_generalize"]
    assert stg is not None
    first = metrics[metrics.test_acc >= 0.99].step.min()
    assert stg == first
    # it stops once the member has held at the threshold for the hold window (10% of 3,000 steps), not at once
    lasting = summary["members"][0]["steps_to_generalize_lasting"]
    assert lasting is not None and lasting >= stg
    assert summary["steps"] < 3000 and metrics.step.max() == lasting + 300


def test_atomic_writes_get_ordinary_file_permissions(tmp_path):
    import os

    from grokkit.checkpoint import _UMASK, atomic_write_text

    atomic_write_text(tmp_path / "x.txt", "hello")
    assert (tmp_path / "x.txt").stat().st_mode & 0o777 == 0o666 & ~_UMASK
    assert os.listdir(tmp_path) == ["x.txt"]


def test_lasting_generalisation_on_hand_made_curves():
    from grokkit.engine import lasting_step

    steps = [0, 100, 200, 300, 400, 500]
    assert lasting_step(steps, [0.1, 0.5, 0.995, 0.999, 1.0, 1.0], 0.99, 0) == 200  # crossed once, stayed
    assert lasting_step(steps, [0.1, 0.995, 0.7, 0.99, 1.0, 1.0], 0.99, 0) == 300  # dipped after the first crossing
    assert lasting_step(steps, [0.1, 0.995, 0.999, 1.0, 1.0, 0.69], 0.99, 0) is None  # crossed, then fell at the end
    assert lasting_step(steps, [0.0] * 6, 0.99, 0) is None and lasting_step([], [], 0.99, 0) is None


def test_the_hold_window_censors_a_crossing_too_close_to_the_end():
    from grokkit.engine import lasting_step

    steps = [0, 100, 200, 300, 400, 500]
    dip = [0.1, 0.995, 0.7, 0.99, 1.0, 1.0]  # lasting from 300: held 200 steps by the end (500)
    assert lasting_step(steps, dip, 0.99, 200) == 300 and lasting_step(steps, dip, 0.99, 201) is None
    late = [0.1, 0.2, 0.3, 0.4, 0.5, 1.0]  # first at or above the threshold at the last evaluation
    assert lasting_step(steps, late, 0.99, 0) == 500 and lasting_step(steps, late, 0.99, 1) is None
    assert lasting_step(steps, late, 0.99, 100, end=600) == 500  # the run went on to step 600: held 100 steps
    assert lasting_step(steps[:4], dip[:4], 0.99, 50, end=300) is None  # the curve cut at 300: not held yet


def _test_acc_from(step: int):
    """An ``evaluate_set`` whose test accuracy is 1.0 from ``step`` on and 0.0 before (train as computed)."""
    from grokkit import engine

    real = engine.Trainer.evaluate_set

    def fake(self, data):
        loss, acc = real(self, data)
        if data is self.test_set:
            acc = torch.full_like(acc, 1.0 if self.step >= step else 0.0)
        return loss, acc

    return fake


def test_a_member_that_first_crosses_at_the_last_evaluation_is_censored(tmp_path, monkeypatch):
    from grokkit import engine

    monkeypatch.setattr(engine.Trainer, "evaluate_set", _test_acc_from(100))
    summary = run(parse_config(tiny_config(seeds=[0], training__steps=100)), tmp_path / "r", progress=False)
    m = summary["members"][0]
    assert m["steps_to_generalize"] == 100 and m["steps_to_generalize_lasting"] is None
    held = run(parse_config(tiny_config(seeds=[0], training__steps=100, training__hold_window=0.0)),
               tmp_path / "r0", progress=False)
    assert held["members"][0]["steps_to_generalize_lasting"] == 100  # with no window it would count


def test_early_stop_with_every_member_crossed_still_runs_the_window(tmp_path, monkeypatch):
    from grokkit import engine

    monkeypatch.setattr(engine.Trainer, "evaluate_set", _test_acc_from(40))
    cfg = tiny_config(seeds=[0, 1], training__steps=1000, training__eval_every=20, training__early_stop=True)
    summary = run(parse_config(cfg), tmp_path / "es", progress=False, log=lambda _: None)
    # every member crossed at 40; the window is 100 steps (10% of 1,000): the run goes on to 140, not stopping at 40
    assert summary["steps"] == 140
    assert [m["steps_to_generalize_lasting"] for m in summary["members"]] == [40, 40]
    wide = run(parse_config({**cfg, "training": {**cfg["training"], "hold_window": 0.3}}), tmp_path / "wide",
               progress=False, log=lambda _: None)
    assert wide["steps"] == 340


def test_summary_and_results_store_carry_the_lasting_step(tmp_path, monkeypatch):
    from grokkit import engine

    real = engine.Trainer.evaluate_set

    def dipping(self, data):  # test accuracy 1.0 except at step 40: a dip after the first crossing at 0
        loss, acc = real(self, data)
        if data is self.test_set:
            acc = torch.full_like(acc, 0.5 if self.step == 40 else 1.0)
        return loss, acc

    monkeypatch.setattr(engine.Trainer, "evaluate_set", dipping)
    summary = run(parse_config(tiny_config(seeds=[0], training__steps=100)), tmp_path / "run", progress=False)
    m = summary["members"][0]
    assert m["steps_to_generalize"] == 0 and m["steps_to_generalize_lasting"] == 60


def test_softmax_collapse_is_logged_and_counts_rows_whose_float32_sum_is_exactly_one(tmp_path):
    """``training.softmax_collapse`` logs ``train_sc``: 0 for a fresh model (small logits), 1 once the logits are
    scaled so far that exp(z - max z) underflows for every other class (Prieto et al.'s softmax collapse)."""
    cfg = parse_config(tiny_config(training__steps=20, training__eval_every=10, training__softmax_collapse=True))
    run(cfg, tmp_path / "sc", progress=False, log=lambda _: None)
    metrics = pd.read_csv(tmp_path / "sc" / "metrics.csv")
    assert "train_sc" in metrics and metrics["train_sc"].between(0, 1).all()
    setup = prepare(cfg)
    trainer = Trainer(cfg, setup.model, setup.train, setup.test, setup.objective, log=lambda m: None)
    assert trainer.softmax_collapse(setup.train).max() == 0.0
    with torch.no_grad():
        setup.model.unembed.W_U.mul_(1e6)  # logits ~1e6 apart: every other class's exp underflows in float32
    assert trainer.softmax_collapse(setup.train).min() == 1.0
    off = parse_config(tiny_config(training__steps=10, training__eval_every=10))
    run(off, tmp_path / "off", progress=False, log=lambda _: None)
    assert "train_sc" not in pd.read_csv(tmp_path / "off" / "metrics.csv")


def test_with_a_validation_split_early_stop_reads_validation_not_test(tmp_path, monkeypatch):
    """A run with a validation split stops when validation accuracy has reached the threshold, whatever the test
    split says: with the test labels shuffled (test accuracy at chance) it still stops early, at the same step."""
    from grokkit.tasks import ModularTask
    from grokkit.tasks.base import Split

    cfg = tiny_config(seeds=[1], task__modulus=31, task__train_fraction=0.5, task__val_fraction=0.2,
                      optimizer__lr=0.01, model={"d_model": 64, "n_heads": 4, "d_head": 16, "d_mlp": 256},
                      training__steps=3000, training__eval_every=25, training__early_stop=True)
    metrics, summary = _curves(cfg, tmp_path, "clean")
    lasting = summary["members"][0]["val_steps_to_generalize_lasting"]
    assert summary["steps"] < 3000 and metrics.step.max() == lasting + 300  # held for the window (10% of 3,000)
    original = ModularTask.split

    def corrupted(self, vocab, train_fraction, seed, val_fraction=0.0):
        s = original(self, vocab, train_fraction, seed, val_fraction)
        bad = s.test.labels[torch.randperm(len(s.test.labels), generator=torch.Generator().manual_seed(0))]
        return Split(s.train, type(s.test)(s.test.tokens, bad, s.test.answer_range), s.val)

    monkeypatch.setattr(ModularTask, "split", corrupted)
    dirty, dirty_summary = _curves(cfg, tmp_path, "dirty")
    assert dirty.test_acc.max() < 0.5 and dirty_summary["steps"] == summary["steps"]
