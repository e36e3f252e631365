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


def run_killed(cfg: Any, out: Any, monkeypatch: Any, at_step_call: int = 47, **run_kwargs: Any) -> None:
    """Run ``cfg`` into ``out`` as a process killed during its ``at_step_call``-th optimiser step would be (a
    KeyboardInterrupt there; with tiny_config's checkpoints every 20 steps, 47 leaves the last one at step 40), then
    restore the real step so that the caller can resume the run."""
    import pytest

    from grokkit.api import run
    from grokkit.engine import Trainer

    original = Trainer.train_step
    calls = {"n": 0}

    def crashing_step(self: Trainer) -> Any:
        calls["n"] += 1
        if calls["n"] == at_step_call:
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(Trainer, "train_step", crashing_step)
    with pytest.raises(KeyboardInterrupt):
        run(cfg, out, progress=False, **run_kwargs)
    monkeypatch.setattr(Trainer, "train_step", original)
