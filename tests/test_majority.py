"""The worked example of a new task kind (src/grokkit/tasks/majority.py): config, data, and a run end to end."""

from __future__ import annotations

import pytest
import torch

from grokkit.api import run
from grokkit.config import ConfigError, parse_config
from grokkit.recipes import build_setup
from helpers import tiny_config

MAJORITY = {"kind": "majority", "n_bits": 9, "n_train": 200, "n_test": 100}


def test_majority_config_and_labels():
    cfg = parse_config(tiny_config(task=MAJORITY))
    assert cfg.task.name == "majority9"
    with pytest.raises(ConfigError, match="odd n_bits"):
        parse_config(tiny_config(task=dict(MAJORITY, n_bits=10)))
    with pytest.raises(ConfigError, match="task.kind=majority does not use modulus"):
        parse_config(tiny_config(task=dict(MAJORITY, modulus=7)))
    setup = build_setup(cfg)
    bits = setup.train.tokens[0]
    assert torch.equal(setup.train.labels[0], (bits.sum(1) > 4).long())  # majority of 9 bits
    assert setup.train.tokens.shape == (2, 200, 9) and setup.test.tokens.shape == (2, 100, 9)
    inputs = {tuple(r) for r in bits.tolist()} | {tuple(r) for r in setup.test.tokens[0].tolist()}
    assert len(inputs) == 300  # train and test inputs are distinct


def test_majority_trains_with_the_mlp(tmp_path):
    cfg = parse_config(tiny_config(task=dict(MAJORITY, positional_tokens=True), seeds=[0],
                                   model={"kind": "mlp", "d_embed": 8, "d_mlp": 32},
                                   optimizer={"name": "adamw", "lr": 0.01, "weight_decay": 0.01},
                                   training={"steps": 150, "eval_every": 50, "checkpoint_every": 0, "progress": False}))
    summary = run(cfg, tmp_path / "maj", progress=False, log=lambda _: None)
    assert summary["task"] == "majority9" and summary["members"][0]["final_test_acc"] > 0.8
