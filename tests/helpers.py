"""Small configs for fast tests."""

from __future__ import annotations

from typing import Any


def tiny_config(**overrides: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "recipe": "scratch",
        "name": "tiny",
        "seeds": [0, 1],
        "task": {"op": "add", "modulus": 17, "train_fraction": 0.5},
        "model": {"d_model": 32, "n_heads": 2, "d_head": 16, "d_mlp": 64},
        "optimizer": {"name": "adamw", "lr": 0.003, "weight_decay": 1.0},
        "training": {"steps": 60, "eval_every": 20, "checkpoint_every": 20, "progress": False},
    }
    for key, value in overrides.items():
        node = cfg
        parts = key.split("__")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return cfg
