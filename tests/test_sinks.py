"""Optional metric streams: TensorBoard event files and the W&B calls (offline)."""

from __future__ import annotations

import sys
import types

import pytest

from grokkit.api import run
from grokkit.config import parse_config
from helpers import tiny_config


def test_tensorboard_events_hold_every_member_and_metric(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = parse_config(tiny_config(logging={"tensorboard": True}))
    run(cfg, tmp_path / "r", progress=False, log=lambda m: None)
    acc = EventAccumulator(str(tmp_path / "r" / "tensorboard"))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert "test_acc/member0_seed0" in tags and "weight_norm/member1_seed1" in tags
    steps = [e.step for e in acc.Scalars("test_acc/member1_seed1")]
    assert steps == [0, 20, 40, 60]


def test_wandb_runs_offline_with_the_config_and_per_member_metrics(tmp_path, monkeypatch):
    calls: dict[str, list] = {"init": [], "log": [], "finish": []}

    class FakeRun:
        def log(self, data, step):
            calls["log"].append((step, data))

        def finish(self):
            calls["finish"].append(True)

    fake = types.ModuleType("wandb")
    fake.init = lambda **kw: calls["init"].append(kw) or FakeRun()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    cfg = parse_config(tiny_config(logging={"wandb": True}))
    run(cfg, tmp_path / "r", progress=False, log=lambda m: None)
    (init,) = calls["init"]
    assert init["mode"] == "offline" and init["config"]["task"]["modulus"] == 17
    assert [s for s, _ in calls["log"]] == [0, 20, 40, 60]
    assert {"test_acc/member0", "test_acc/member1", "train_loss/member1"} <= set(calls["log"][-1][1])
    assert calls["finish"] == [True]


def test_missing_logging_backend_is_a_clear_error_before_anything_is_written(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import fails
    from grokkit.api import RunError

    with pytest.raises(RunError, match="pip install 'grokkit\\[wandb\\]'"):
        run(parse_config(tiny_config(logging={"wandb": True})), tmp_path / "r", progress=False, log=lambda m: None)
    assert not (tmp_path / "r").exists()
