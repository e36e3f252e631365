"""The three-way split: validation pairs drawn from the held-out pairs, disjoint from the test pairs."""

import pandas as pd
import pytest
import torch

from grokkit.api import run
from grokkit.config import ConfigError, parse_config
from grokkit.tasks import ModularTask, SparseParityTask, Vocabulary, XorTask
from helpers import tiny_config


def _rows(examples):
    return {tuple(r) for r in examples.tokens.tolist()}


def test_modular_three_way_split_is_disjoint_sized_seeded_and_keeps_the_training_set():
    vocab = Vocabulary(31, (31,))
    task = ModularTask("add", 31)
    plain = task.split(vocab, 0.2, seed=4)
    split = task.split(vocab, 0.2, seed=4, val_fraction=0.1)
    n = 31 * 31
    assert len(split.train) == round(0.2 * n) and len(split.val) == round(0.1 * n)
    assert len(split.train) + len(split.val) + len(split.test) == n
    train, val, test = _rows(split.train), _rows(split.val), _rows(split.test)
    assert not (train & val) and not (train & test) and not (val & test)
    assert torch.equal(split.train.tokens, plain.train.tokens)  # val_fraction does not change the training set
    assert val | test == _rows(plain.test)  # validation comes out of the held-out pairs
    again = task.split(vocab, 0.2, seed=4, val_fraction=0.1)
    other = task.split(vocab, 0.2, seed=5, val_fraction=0.1)
    assert torch.equal(again.val.tokens, split.val.tokens) and not torch.equal(other.val.tokens, split.val.tokens)
    assert plain.val is None
    with pytest.raises(ValueError, match="empty"):
        task.split(vocab, 0.6, seed=0, val_fraction=0.4)


@pytest.mark.parametrize("task", [SparseParityTask(12, 3, 200, 100), SparseParityTask(40, 3, 200, 100),
                                  XorTask(30, 100, 50, label_noise=0.1)], ids=["parity12", "parity40", "xor30"])
def test_bit_task_validation_sample_is_distinct_and_leaves_train_and_test_alone(task):
    plain = task.split(None, None, seed=2)
    split = task.split(None, None, seed=2, n_val=60)
    assert len(split.val) == 60 and len(_rows(split.val)) == 60
    assert not (_rows(split.val) & (_rows(split.train) | _rows(split.test)))
    for a, b in ((plain.train, split.train), (plain.test, split.test)):
        assert torch.equal(a.tokens, b.tokens) and torch.equal(a.labels, b.labels)
    assert torch.equal(split.val.labels, task.labels(split.val.tokens))  # clean labels


def test_a_run_with_validation_writes_val_columns_and_the_summary_its_outcome(tmp_path):
    summary = run(parse_config(tiny_config(task={"op": "add", "modulus": 17, "train_fraction": 0.5,
                                                 "val_fraction": 0.2})), tmp_path / "run", progress=False)
    metrics = pd.read_csv(tmp_path / "run" / "metrics.csv")
    assert {"val_loss", "val_acc"} <= set(metrics.columns) and metrics.val_acc.between(0, 1).all()
    m = summary["members"][0]
    assert m["final_val_acc"] == pytest.approx(metrics[metrics.member == 0].val_acc.iloc[-1])
    plain = run(parse_config(tiny_config()), tmp_path / "plain", progress=False)
    assert "val_acc" not in pd.read_csv(tmp_path / "plain" / "metrics.csv").columns
    assert plain["members"][0]["final_val_acc"] is None
    # the training set, hence the whole training trajectory, is the same with and without a validation split
    a = pd.read_csv(tmp_path / "plain" / "metrics.csv")
    pd.testing.assert_series_equal(a.train_loss, metrics.train_loss)


def test_val_settings_of_the_other_task_kind_are_rejected():
    with pytest.raises(ConfigError, match="does not use n_val"):
        parse_config(tiny_config(task={"op": "add", "modulus": 17, "n_val": 10}))
    with pytest.raises(ConfigError, match="does not use val_fraction"):
        parse_config(tiny_config(task={"kind": "sparse_parity", "n_bits": 10, "k": 3, "n_train": 50, "n_test": 50,
                                       "val_fraction": 0.1}, model={"kind": "mlp", "d_embed": 8}))
