"""Weight snapshots during training (training.snapshot_every / snapshot_steps) and progress measures over them."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from grokkit.analysis.progress import analyze_run, over_time, phases, write_analysis
from grokkit.api import run
from grokkit.checkpoint import load_model
from grokkit.config import ConfigError, parse_config
from grokkit.rundir import RunDir
from helpers import run_killed, tiny_config


def quiet(_: str) -> None:
    pass


def _cfg(**training: object) -> dict:
    return tiny_config(training={"steps": 60, "eval_every": 20, "checkpoint_every": 20, "progress": False,
                                 "snapshot_every": 20, "snapshot_steps": [5, 1], **training})


def _weights(path) -> dict[str, torch.Tensor]:
    return dict(load_model(path)[0].named_parameters())


def test_snapshots_at_the_configured_steps_hold_every_member(tmp_path):
    out = tmp_path / "run"
    run(parse_config(_cfg()), out, progress=False, log=quiet)
    snaps = RunDir(out).snapshots()
    assert [s for s, _ in snaps] == [0, 1, 5, 20, 40, 60]
    model, _, meta = load_model(snaps[-1][1])
    assert model.n_members == 2 and meta["step"] == 60 and meta["token_layout"]
    for name, w in _weights(out / "model.safetensors").items():  # the last snapshot is the final model
        torch.testing.assert_close(dict(model.named_parameters())[name], w, rtol=0, atol=0)
    first, second = _weights(snaps[0][1]), _weights(snaps[1][1])
    assert any(not torch.equal(first[n], second[n]) for n in first)  # step 0 is the initialisation, 1 after a step


def test_a_killed_run_resumes_to_the_same_snapshots(tmp_path, monkeypatch):
    cfg = parse_config(_cfg())
    run(cfg, tmp_path / "straight", progress=False, log=quiet)
    run_killed(cfg, tmp_path / "killed", monkeypatch, log=quiet)  # killed in step 47: last checkpoint at 40
    run(cfg, tmp_path / "killed", progress=False, log=quiet)
    a, b = RunDir(tmp_path / "straight").snapshots(), RunDir(tmp_path / "killed").snapshots()
    assert [s for s, _ in a] == [s for s, _ in b]
    for (_, pa), (_, pb) in zip(a, b):
        wa, wb = _weights(pa), _weights(pb)
        assert all(torch.equal(wa[n], wb[n]) for n in wa)


def test_snapshot_steps_must_be_steps():
    with pytest.raises(ConfigError, match="snapshot_steps"):
        parse_config(_cfg(snapshot_steps=[-1]))


def test_progress_measures_over_the_snapshots(tmp_path):
    out = tmp_path / "run"
    run(parse_config(_cfg()), out, progress=False, log=quiet)
    result = analyze_run(out)
    labels = [c["label"] for c in result["checkpoints"]]
    assert labels == ["snapshot"] * 6 + ["final"]
    final_freqs = {m["member"]: m["fourier"]["key_frequencies"] for m in result["checkpoints"][-1]["members"]}
    for ckpt in result["checkpoints"][:-1]:  # every snapshot decomposed on the final model's key frequencies
        assert {m["member"]: m["fourier"]["key_frequencies"] for m in ckpt["members"]} == final_freqs
    paths = write_analysis(result, tmp_path / "analysis")
    assert {p.name for p in paths} >= {"analysis_over_time.csv", "analysis_over_time.png"}
    frame = pd.read_csv(tmp_path / "analysis" / "analysis_over_time.csv")
    assert list(frame.step.unique()) == [0, 1, 5, 20, 40, 60] and len(frame) == 12  # the final = step 60, once
    assert {"restricted_loss", "excluded_loss", "gini", "key_energy_fraction", "weight_norm"} <= set(frame.columns)
    assert frame.gini.between(0, 1).all()


def test_phase_boundaries_on_a_hand_made_curve():
    steps = [0, 100, 200, 300, 400, 500, 600]
    train = [0.1, 0.995, 1.0, 1.0, 1.0, 1.0, 1.0]
    test = [0.0, 0.01, 0.02, 0.6, 0.995, 0.9, 0.999]  # crosses at 400, dips, lasts from 600
    frame = pd.DataFrame({"step": steps * 2, "member": [0] * 7 + [1] * 7, "train_acc": train * 2,
                          "test_acc": test * 2})
    assert phases(frame) == {"memorised": 100, "cleanup": 300, "generalised": 600}
    assert over_time({"checkpoints": []}).empty


def test_a_packed_sweep_gives_each_trial_its_own_snapshots(tmp_path):
    from grokkit.sweep import parse_sweep, run_sweep

    base = _cfg()
    base.pop("seeds")
    spec = parse_sweep({"name": "snap", "base": base, "seeds": [0, 1]})
    run_sweep(spec, tmp_path, tmp_path / "sw", log=quiet)
    single = tmp_path / "single"
    run(parse_config(dict(base, seeds=[1])), single, progress=False, log=quiet)
    trial = RunDir(tmp_path / "sw" / "trials" / "seed=1")
    assert [s for s, _ in trial.snapshots()] == [0, 1, 5, 20, 40, 60]
    for (_, pt), (_, ps) in zip(trial.snapshots(), RunDir(single).snapshots()):
        wt, ws = _weights(pt), _weights(ps)
        assert all(torch.allclose(wt[n], ws[n], atol=1e-6) for n in wt)
