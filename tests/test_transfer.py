"""Recipe transfer (GrokTransfer): stages, A @ B initialisation from the weak model, freezing, resume, validation."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
import yaml

from grokkit.api import run
from grokkit.checkpoint import load_model
from grokkit.config import ConfigError, parse_config
from grokkit.recipes import build_setup
from grokkit.recipes.transfer import target_config
from helpers import tiny_config


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)  # two threads on a busy 2-core machine are many times slower than one
    yield


def quiet(_: str) -> None:
    pass


def transfer_config(**overrides):
    base = tiny_config(recipe="transfer", model={"kind": "mlp", "d_embed": 16, "d_mlp": 32, "n_layers": 3},
                       optimizer__lr=0.01, training__steps=30, training__eval_every=10,
                       transfer={"weak_model": {"kind": "mlp", "d_embed": 4, "d_mlp": 16}, "weak_steps": 20,
                                 "weak_threshold": 0.99, "weak_eval_every": 10})
    base.update(overrides)
    return base


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("transfer") / "t"
    cfg = parse_config(transfer_config())
    return cfg, out, run(cfg, out, progress=False, log=quiet)


def test_stages_are_run_directories_and_summary_counts_both(finished):
    cfg, out, summary = finished
    assert (out / "weak" / "summary.json").exists() and (out / "target" / "summary.json").exists()
    weak = json.loads((out / "weak" / "summary.json").read_text())
    target = json.loads((out / "target" / "summary.json").read_text())
    assert summary["recipe"] == "transfer" and summary["weak_steps"] == weak["steps"] == 20
    assert summary["steps"] == target["steps"] == 30
    assert summary["wall_seconds"] == pytest.approx(weak["wall_seconds"] + target["wall_seconds"], abs=1e-3)
    assert [m["seed"] for m in summary["members"]] == [0, 1]
    assert {"weak_steps_to_threshold", "weak_final_test_acc", "total_steps_to_generalize"} <= set(
        summary["members"][0])
    metrics = pd.read_csv(out / "metrics.csv")
    assert set(metrics.stage) == {"weak", "target"}
    assert metrics[metrics.stage == "target"].global_step.min() == 20
    exported, _, _ = load_model(out)  # OUT/model.safetensors: the target with a plain W_E = A @ B
    factorised, _, _ = load_model(out / "target")
    assert "embed.W_E" in dict(exported.named_parameters())
    assert {"embed.W_E_A", "embed.W_E_B"} <= set(dict(factorised.named_parameters()))
    torch.testing.assert_close(exported.embed.W_E, factorised.embed.W_E)


def test_target_starts_from_a_times_b_with_a_the_weak_embedding(finished):
    cfg, out, _ = finished
    weak, _, _ = load_model(out / "weak")
    setup = build_setup(parse_config(target_config(cfg, str(out / "weak"))))
    embed = setup.model.embed
    torch.testing.assert_close(embed.W_E_A, weak.embed.W_E)  # member k's A is member k's weak W_E
    assert not torch.equal(weak.embed.W_E[0], weak.embed.W_E[1])
    torch.testing.assert_close(embed.W_E, embed.W_E_A @ embed.W_E_B)
    assert embed.W_E_B.shape == (2, 4, 16)
    # default B scale: rows of A @ B have about the RMS norm of a plain MLP embedding row (std 1, d_embed 16)
    row_rms = embed.W_E.pow(2).sum(-1).mean().sqrt().item()
    assert 2.0 < row_rms < 8.0


@pytest.mark.parametrize("freeze", ["freeze_A", "freeze_B"])
def test_freeze_keeps_the_factor_fixed(tmp_path, freeze):
    cfg = parse_config(transfer_config(training={"steps": 15, "eval_every": 5, "progress": False},
                                       transfer={"weak_model": {"kind": "mlp", "d_embed": 4, "d_mlp": 16},
                                                 "weak_steps": 10, freeze: True}))
    out = tmp_path / "f"
    run(cfg, out, progress=False, log=quiet)
    start = build_setup(parse_config(target_config(cfg, str(out / "weak")))).model.embed
    end, _, _ = load_model(out / "target")
    frozen, trained = ("W_E_A", "W_E_B") if freeze == "freeze_A" else ("W_E_B", "W_E_A")
    assert torch.equal(getattr(end.embed, frozen), getattr(start, frozen))
    assert not torch.equal(getattr(end.embed, trained), getattr(start, trained))


def test_transformer_target_and_resume(tmp_path):
    cfg = parse_config(transfer_config(model={"d_model": 16, "n_heads": 2, "d_head": 8, "d_mlp": 32},
                                       training={"steps": 20, "eval_every": 10, "checkpoint_every": 10,
                                                 "progress": False}))
    out = tmp_path / "tt"
    first = run(cfg, out, progress=False, log=quiet)
    model, _, _ = load_model(out / "target")
    assert model.kind == "transformer" and model.shape.embed_rank == 4
    again = run(cfg, out, progress=False, log=quiet)  # finished: nothing is retrained
    assert again == first
    (out / "summary.json").unlink()  # killed after the stages: the finished stages are skipped
    third = run(cfg, out, progress=False, log=quiet)
    assert third["members"] == first["members"]


def test_transfer_then_distill_composes_and_reports_the_weak_cost(tmp_path):
    teacher = tiny_config(name="teacher", seeds=[0], task={"op": "add", "modulus": 19, "train_fraction": 0.5},
                          vocab={"n_numbers": 19, "moduli": [17, 19]}, training__steps=20)
    run(parse_config(teacher), tmp_path / "teacher", progress=False, log=quiet)
    tr = transfer_config(model={"d_model": 16, "n_heads": 2, "d_head": 8, "d_mlp": 32},
                         vocab={"n_numbers": 19, "moduli": [17, 19]},
                         distill={"teacher": str(tmp_path / "teacher"), "alpha": 0.7, "temperature": 3.0},
                         members=[{"seed": 0, "alpha": 0.5}, {"seed": 1}])
    tr.pop("seeds")
    tr["transfer"]["target_recipe"] = "distill"
    cfg = parse_config(tr)
    target = parse_config(target_config(cfg, str(tmp_path / "weak")))
    assert target.recipe == "distill" and target.distill == cfg.distill
    assert target.member_list()[0].alpha == 0.5  # the member's own alpha reaches the distilled target
    out = tmp_path / "t"
    summary = run(cfg, out, progress=False, log=quiet)
    assert json.loads((out / "target" / "summary.json").read_text())["recipe"] == "distill"
    weak_wall = json.loads((out / "weak" / "summary.json").read_text())["wall_seconds"]
    assert sum(m["weak_wall_seconds"] for m in summary["members"]) == pytest.approx(weak_wall, abs=2e-3)
    with pytest.raises(ConfigError, match="target_recipe=distill needs a `distill:` section"):
        parse_config(dict(transfer_config(), transfer={"target_recipe": "distill"}))
    with pytest.raises(ConfigError, match="transfer.target_recipe: distill"):
        parse_config(transfer_config(distill={"teacher": "x"}))


def test_weak_optimizer_beats_member_settings_meant_for_the_target():
    from grokkit.recipes.transfer import weak_config

    cfg = parse_config(transfer_config(seeds=None, members=[{"seed": 0, "lr": 0.001, "weight_decay": 1.0},
                                                            {"seed": 1, "lr": 0.002}],
                                       optimizer={"name": "adamw", "lr": 0.001, "weight_decay": 1.0}))
    weak = parse_config(weak_config(cfg))
    assert [(m.lr, m.weight_decay) for m in weak.member_list()] == [(0.001, 1.0), (0.002, None)]
    tuned = transfer_config(seeds=None, members=[{"seed": 0, "lr": 0.001, "weight_decay": 1.0}])
    tuned["transfer"]["weak_optimizer"] = {"name": "adamw", "lr": 0.03, "weight_decay": 0.3}
    weak = parse_config(weak_config(parse_config(tuned)))
    assert [(m.lr, m.weight_decay) for m in weak.member_list()] == [(None, None)]
    assert (weak.optimizer.lr, weak.optimizer.weight_decay) == (0.03, 0.3)
    target = parse_config(target_config(parse_config(tuned), "w"))
    assert (target.member_list()[0].lr, target.member_list()[0].weight_decay) == (0.001, 1.0)


def test_transfer_config_errors():
    with pytest.raises(ConfigError, match="recipe `transfer` needs a `transfer:` section"):
        parse_config(tiny_config(recipe="transfer"))
    with pytest.raises(ConfigError, match="only that recipe"):
        parse_config(tiny_config(transfer={}))
    with pytest.raises(ConfigError, match="weak_threshold"):
        parse_config(transfer_config(transfer={"weak_threshold": 1.5}))
    with pytest.raises(ConfigError, match="freeze_a"):
        parse_config(transfer_config(transfer={"freeze_a": True}))
    with pytest.raises(ConfigError, match="embedding_init"):
        parse_config(tiny_config(embedding_init={"model": "x"}, init={"model": "y"}))


def test_factorised_transformer_fast_path_and_export():
    from grokkit.models import EnsembleTransformer, TransformerShape, unfactorised
    from grokkit.tasks import ModularTask, Vocabulary, stack_members

    vocab = Vocabulary(13, (13,))
    shape = TransformerShape(vocab.d_vocab, vocab.n_classes, d_model=16, n_heads=2, d_head=8, d_mlp=32, embed_rank=3)
    model = EnsembleTransformer(shape, [0, 1]).double()
    tokens = stack_members([ModularTask("add", 13).split(vocab, 0.4, s).train for s in range(2)]).tokens
    full, _ = model.run_with_cache(tokens)
    torch.testing.assert_close(model(tokens, [3]), full[:, :, [3]], rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(unfactorised(model)(tokens, [3]), full[:, :, [3]], rtol=1e-10, atol=1e-10)
    # A @ B starts with the variance of a plain W_E (1 / d_model)
    big = EnsembleTransformer(TransformerShape(200, 13, d_model=64, n_heads=2, d_head=8, d_mlp=32, embed_rank=8), [0])
    assert big.embed.W_E.std().item() == pytest.approx(1 / 8, rel=0.1)


def test_weak_candidates_share_the_member_split_and_the_best_by_train_accuracy_seeds_the_target(tmp_path):
    cfg = parse_config(transfer_config(training={"steps": 10, "eval_every": 5, "progress": False},
                                       transfer={"weak_model": {"kind": "mlp", "d_embed": 4, "d_mlp": 16},
                                                 "weak_steps": 40, "weak_threshold": 0.99, "weak_eval_every": 20,
                                                 "weak_candidates": 3}))
    out = tmp_path / "c"
    summary = run(cfg, out, progress=False, log=quiet)
    weak = json.loads((out / "weak" / "summary.json").read_text())
    assert [m["seed"] for m in weak["members"]] == [0, 100_003, 200_006, 1, 100_004, 200_007]
    weak_cfg = parse_config(yaml.safe_load((out / "weak" / "config.yaml").read_text()))
    setup = build_setup(weak_cfg)
    for member in (0, 3):  # every candidate of a target member trains on that member's split
        for j in (1, 2):
            assert torch.equal(setup.train.tokens[member + j], setup.train.tokens[member])
    assert not torch.equal(setup.train.tokens[0], setup.train.tokens[3])
    train_accs = [m["final_train_acc"] for m in weak["members"]]
    chosen = [max(range(3 * i, 3 * i + 3), key=lambda j: (train_accs[j], -j)) for i in range(2)]
    target_cfg = parse_config(yaml.safe_load((out / "target" / "config.yaml").read_text()))
    assert target_cfg.embedding_init.member == chosen
    weak_model, _, _ = load_model(out / "weak")
    start = build_setup(target_cfg).model.embed
    torch.testing.assert_close(start.W_E_A, weak_model.embed.W_E[chosen])
    assert [m["weak_seed"] for m in summary["members"]] == [weak["members"][j]["seed"] for j in chosen]
    assert [len(m["weak_candidate_test_accs"]) for m in summary["members"]] == [3, 3]
    assert summary["members"][0]["weak_wall_seconds"] == pytest.approx(weak["wall_seconds"] / 2, abs=1e-3)


def test_embedding_init_member_list_is_checked(tmp_path, finished):
    cfg, out, _ = finished
    bad = parse_config(target_config(cfg, str(out / "weak"), [0, 5]))
    with pytest.raises(ValueError, match="one per member"):
        build_setup(bad)


def test_a_members_init_scale_is_the_targets_not_the_weak_models():
    from grokkit.recipes.transfer import weak_config

    data = transfer_config(seeds=None, members=[{"seed": 0, "init_scale": 0.1}], model={
        "kind": "mlp", "d_embed": 16, "d_mlp": 32, "n_layers": 3, "init_scale": 0.2})
    data["transfer"]["weak_model"] = {"kind": "mlp", "d_embed": 4, "d_mlp": 16, "init_scale": 0.3}
    cfg = parse_config(data)
    weak = parse_config(weak_config(cfg))
    assert [m.init_scale for m in weak.member_list()] == [None] and weak.model.init_scale == 0.3
    target = parse_config(target_config(cfg, "w"))
    assert target.member_list()[0].init_scale == 0.1 and target.model.init_scale == 0.2


def test_packed_arms_with_one_weak_setting_share_one_weak_model(tmp_path):
    """Two packed arms (same seeds, the target's lr / weight decay / init scale differ) need the same weak models:
    the weak stage trains each once and both targets start from it."""
    from grokkit.recipes.transfer import weak_config, weak_members

    members = [{"seed": s, "lr": lr, "weight_decay": wd, "init_scale": scale}
               for lr, wd, scale in ((0.001, 1.0, 0.3), (0.005, 3.0, 0.3)) for s in (0, 1)]
    data = transfer_config(seeds=None, members=members, training={"steps": 10, "eval_every": 5, "progress": False})
    data["transfer"].update(weak_optimizer={"name": "adamw", "lr": 0.03, "weight_decay": 0.3}, weak_steps=20,
                            weak_eval_every=10)
    cfg = parse_config(data)
    unique, groups = weak_members(cfg)
    assert [m["seed"] for m in unique] == [0, 1] and groups == [[0], [1], [0], [1]]
    assert [m.seed for m in parse_config(weak_config(cfg)).member_list()] == [0, 1]
    out = tmp_path / "shared"
    summary = run(cfg, out, progress=False, log=quiet)
    target_cfg = parse_config(yaml.safe_load((out / "target" / "config.yaml").read_text()))
    assert target_cfg.embedding_init.member == [0, 1, 0, 1]
    weak_model, _, _ = load_model(out / "weak")
    torch.testing.assert_close(build_setup(target_cfg).model.embed.W_E_A, weak_model.embed.W_E[[0, 1, 0, 1]])
    assert [m["weak_seed"] for m in summary["members"]] == [0, 1, 0, 1]
