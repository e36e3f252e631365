"""Sparse parity and high-dimensional XOR: labels, seeds, disjoint splits, config validation, both models."""

from __future__ import annotations

import pytest
import torch

from grokkit.api import run
from grokkit.config import ConfigError, parse_config
from grokkit.recipes import build_setup
from grokkit.tasks import BIT_VOCABULARY, SparseParityTask, XorTask, distinct_bit_rows


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)  # two threads on a busy 2-core machine are many times slower than one
    yield


def _rows(split) -> tuple[set[tuple[int, ...]], set[tuple[int, ...]]]:
    return set(map(tuple, split.train.tokens.tolist())), set(map(tuple, split.test.tokens.tolist()))


def test_sparse_parity_labels_seed_and_disjoint_split():
    task = SparseParityTask(n_bits=40, k=3, n_train=300, n_test=200, secret_seed=5)
    split = task.split(BIT_VOCABULARY, None, seed=1)
    secret = task.secret
    assert len(secret) == 3 and secret == sorted(set(secret))
    for s in (split.train, split.test):
        assert s.tokens.shape[1] == 40 and set(s.tokens.unique().tolist()) <= {0, 1}
        assert torch.equal(s.labels, s.tokens[:, secret].sum(1) % 2)
    train, test = _rows(split)
    assert len(train) == 300 and len(test) == 200 and train.isdisjoint(test)
    again, other = task.split(BIT_VOCABULARY, None, seed=1), task.split(BIT_VOCABULARY, None, seed=2)
    assert torch.equal(again.train.tokens, split.train.tokens)
    assert not torch.equal(other.train.tokens, split.train.tokens)
    assert SparseParityTask(40, 3, 10, 10, secret_seed=5).secret == secret
    assert 0.3 < split.train.labels.double().mean() < 0.7


def test_xor_labels_noise_and_split():
    clean = XorTask(n_bits=64, n_train=400, n_test=300).split(BIT_VOCABULARY, None, seed=0)
    for s in (clean.train, clean.test):
        x = 2 * s.tokens - 1  # tokens 0/1 are the coordinates -1/+1
        assert torch.equal(s.labels, (x[:, 0] * x[:, 1] == 1).long())
    train, test = _rows(clean)
    assert train.isdisjoint(test)
    noisy = XorTask(n_bits=64, n_train=400, n_test=300, label_noise=0.2).split(BIT_VOCABULARY, None, seed=0)
    assert torch.equal(noisy.train.tokens, clean.train.tokens) and torch.equal(noisy.test.labels, clean.test.labels)
    flipped = (noisy.train.labels != clean.train.labels).double().mean().item()
    assert 0.12 < flipped < 0.28


def test_distinct_rows_small_and_large():
    g = torch.Generator().manual_seed(0)
    rows = distinct_bit_rows(4, 16, g)
    assert len(set(map(tuple, rows.tolist()))) == 16
    with pytest.raises(ValueError, match="distinct"):
        distinct_bit_rows(3, 9, g)
    big = distinct_bit_rows(20, 3000, g)
    assert len(set(map(tuple, big.tolist()))) == 3000


PARITY = {"kind": "sparse_parity", "n_bits": 12, "k": 2, "n_train": 300, "n_test": 200}


def test_bit_task_configs_validate():
    cfg = parse_config({"task": PARITY})
    assert cfg.task.name == "parity12_2"
    with pytest.raises(ConfigError, match="needs k"):
        parse_config({"task": {"kind": "sparse_parity", "n_bits": 12, "n_train": 10, "n_test": 10}})
    with pytest.raises(ConfigError, match="does not use modulus"):
        parse_config({"task": dict(PARITY, modulus=7)})
    with pytest.raises(ConfigError, match="does not use label_noise"):
        parse_config({"task": dict(PARITY, label_noise=0.1)})
    with pytest.raises(ConfigError, match="does not use n_bits"):
        parse_config({"task": {"op": "add", "modulus": 7, "n_bits": 5}})
    with pytest.raises(ConfigError, match="k <= n_bits"):
        parse_config({"task": dict(PARITY, k=13)})
    with pytest.raises(ConfigError, match="distinct inputs"):
        parse_config({"task": dict(PARITY, n_bits=8, n_train=200, n_test=100)})
    with pytest.raises(ConfigError, match="label_noise"):
        parse_config({"task": {"kind": "xor", "n_bits": 8, "n_train": 10, "n_test": 10, "label_noise": 0.5}})
    with pytest.raises(ConfigError, match="distill.position: final"):  # bit tasks distil at their answer position
        parse_config({"recipe": "distill", "task": PARITY, "distill": {"teacher": "x"}})
    with pytest.raises(ConfigError, match="own vocabulary"):
        parse_config({"task": PARITY, "vocab": {"n_numbers": 5}})


@pytest.mark.parametrize("model", [{"kind": "mlp", "d_embed": 8, "d_mlp": 32},
                                   {"d_model": 16, "n_heads": 2, "d_head": 8, "d_mlp": 32}])
def test_parity_runs_with_either_model(tmp_path, model):
    cfg = parse_config({"seeds": [0, 1], "task": PARITY, "model": model,
                        "optimizer": {"lr": 0.01, "weight_decay": 0.1},
                        "training": {"steps": 40, "eval_every": 20, "progress": False}})
    setup = build_setup(cfg)
    assert setup.vocab == BIT_VOCABULARY and setup.objective.final == 11 and setup.model.shape.n_ctx == 12
    assert setup.train.tokens.shape == (2, 300, 12)
    summary = run(cfg, tmp_path / "p", progress=False, log=lambda _: None)
    assert summary["task"] == "parity12_2" and summary["train_fraction"] is None
    assert all(m["final_test_acc"] is not None for m in summary["members"])


def test_positional_tokens_give_each_position_its_own_embedding_rows():
    cfg = parse_config({"seeds": [0], "task": dict(PARITY, positional_tokens=True),
                        "model": {"kind": "mlp", "d_embed": 4}})
    setup = build_setup(cfg)
    tokens = setup.train.tokens[0]
    assert torch.equal(tokens // 2, torch.arange(12).expand_as(tokens))  # token 2 i + bit
    secret = setup.task.secret
    assert torch.equal(setup.train.labels[0], (tokens[:, secret] % 2).sum(1) % 2)
    assert setup.vocab.d_vocab >= 24 and setup.model.embed.W_E.shape[1] == setup.vocab.d_vocab
    with pytest.raises(ConfigError, match="does not use positional_tokens"):
        parse_config({"task": {"op": "add", "modulus": 7, "positional_tokens": True}})


def test_bit_task_sweep_packs_seeds_and_methods(tmp_path):
    import pandas as pd

    from grokkit.sweep import parse_sweep, run_sweep

    base = {"recipe": "scratch", "task": {"kind": "sparse_parity", "n_bits": 8, "k": 2, "n_train": 64, "n_test": 64,
                                          "positional_tokens": True},
            "model": {"kind": "mlp", "d_embed": 8, "d_mlp": 32, "n_layers": 2},
            "optimizer": {"name": "adamw", "lr": 0.01, "weight_decay": 0.1},
            "training": {"steps": 20, "eval_every": 10, "checkpoint_every": 0, "progress": False}}
    spec = parse_sweep({"name": "bits", "base": base, "n_seeds": 3,
                        "cases": [{"name": "scratch"},
                                  {"name": "transfer", "overrides": {"recipe": "transfer", "transfer": {
                                      "weak_model": {"kind": "mlp", "d_embed": 2, "d_mlp": 8}, "weak_steps": 10}}}]})
    result = run_sweep(spec, tmp_path, tmp_path / "out", log=lambda _: None)
    assert sorted(len(g.trials) for g in result.groups) == [3, 3]  # the seeds of a method train as one ensemble
    table = pd.read_parquet(tmp_path / "out" / "results.parquet")
    assert len(table) == 6 and (table.status == "ok").all()
    assert table[table.case == "transfer"].weak_wall_seconds.notna().all()
