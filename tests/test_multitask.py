"""Recipes over several tasks: joint (task loss / distillation only) and continual; per-task metric columns."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from grokkit.api import run
from grokkit.checkpoint import load_model
from grokkit.config import ConfigError, parse_config
from grokkit.engine import Outputs
from grokkit.recipes import build_setup
from grokkit.tasks import ModularTask, Vocabulary
from helpers import tiny_config

VOCAB = {"n_numbers": 17, "moduli": [11, 13, 17]}
TASKS = [{"op": "add", "modulus": 17, "train_fraction": 0.5}, {"op": "add", "modulus": 13, "train_fraction": 0.5}]


def quiet(_: str) -> None:
    pass


@pytest.fixture(scope="module")
def teachers(tmp_path_factory):
    root = tmp_path_factory.mktemp("teachers")
    out = {}
    for name, modulus in (("t17", 17), ("t13", 13)):
        cfg = parse_config(tiny_config(name=name, seeds=[0], vocab=VOCAB,
                                       task={"op": "add", "modulus": modulus, "train_fraction": 0.6},
                                       optimizer__lr=0.01, training__steps=80))
        run(cfg, root / name, progress=False, log=quiet)
        out[name] = root / name
    return out


def test_joint_task_loss_reports_every_task(tmp_path):
    cfg = parse_config(tiny_config(recipe="joint", tasks=TASKS, vocab=VOCAB, joint={"mode": "task_loss"}))
    summary = run(cfg, tmp_path / "j", progress=False, log=quiet)
    metrics = pd.read_csv(tmp_path / "j" / "metrics.csv")
    assert {"test_acc@add17", "test_acc@add13", "test_loss@add17", "test_loss@add13"} <= set(metrics.columns)
    assert summary["task"] == "add17+add13" and summary["train_fraction"] == [0.5, 0.5]
    m = summary["members"][1]
    assert set(m["tasks"]) == {"add17", "add13"}
    # the per-task column is the accuracy of the saved model on that task's held-out pairs
    model, vocab, _ = load_model(tmp_path / "j")
    split = ModularTask("add", 13).split(vocab, 0.5, seed=1)
    with torch.no_grad():
        logits = model(split.test.tokens.unsqueeze(0).expand(2, -1, -1), [3])[1, :, 0, :13]
    acc = (logits.argmax(-1) == split.test.labels).double().mean().item()
    assert acc == pytest.approx(m["tasks"]["add13"]["final_test_acc"], abs=1e-9)
    last = metrics[(metrics.member == 1)].iloc[-1]
    n17, n13 = 17 * 17 - round(0.5 * 17 * 17), 13 * 13 - round(0.5 * 13 * 13)
    pooled = (last["test_acc@add17"] * n17 + last["test_acc@add13"] * n13) / (n17 + n13)
    assert last["test_acc"] == pytest.approx(pooled, abs=1e-9)  # test_acc: all tasks' test pairs together


def test_joint_distillation_targets_come_from_each_examples_own_teacher(teachers):
    cfg = parse_config(tiny_config(
        recipe="joint", tasks=TASKS, vocab=VOCAB, seeds=[0],
        distill={"teacher": [str(teachers["t17"]), str(teachers["t13"])], "temperature": 2.0, "alpha": 1.0,
                 "position": "final"},
        init={"model": str(teachers["t13"])},  # a student that *is* the mod-13 teacher
    ))
    setup = build_setup(cfg)
    with torch.no_grad():
        logits = setup.model(setup.train.tokens, setup.objective.positions)
        per_example = setup.objective.loss(Outputs(logits), setup.train, slice(0, 1), 0, {})[0]
    is13 = setup.train.tokens[0, :, 3] == setup.vocab.modulus_token(13)
    real = setup.train.weight[0] > 0
    assert per_example[is13 & real].abs().max() < 1e-9  # KL to itself
    assert per_example[~is13 & real].mean() > 1e-3  # the mod-17 rows are taught by the other teacher
    assert set(setup.info["teacher_acc_on_task_test"]) == {"add17", "add13"}


def test_joint_distillation_trains_end_to_end(tmp_path, teachers):
    cfg = parse_config(tiny_config(recipe="joint", tasks=TASKS, vocab=VOCAB, joint={
        "mode": "distill", "teachers": [str(teachers["t17"]), str(teachers["t13"])]}))
    summary = run(cfg, tmp_path / "jd", progress=False, log=quiet)
    assert not any(m["failed"] for m in summary["members"])
    assert "test_acc@add13" in pd.read_csv(tmp_path / "jd" / "metrics.csv").columns


@pytest.mark.parametrize("distill, inputs, recipe", [(False, "current", "scratch"), (True, "current", "distill"),
                                                      (True, "previous", "joint")])
def test_continual_sequence_with_cl_measures(tmp_path, teachers, distill, inputs, recipe):
    tasks = [dict(TASKS[0], train_fraction=0.6), TASKS[1], {"op": "add", "modulus": 11, "train_fraction": 0.5}]
    cfg = parse_config(tiny_config(recipe="continual", tasks=tasks, vocab=VOCAB, seeds=[0, 1], continual={
        "init": str(teachers["t17"]), "steps_per_stage": 40, "distill_inputs": inputs},
        **({"distill": {"alpha": 0.5, "position": "final" if inputs == "previous" else "operator"}} if distill
           else {})))
    summary = run(cfg, tmp_path / "c", progress=False, log=quiet)
    stages = sorted(p.name for p in (tmp_path / "c" / "stages").iterdir())
    assert stages == ["01-add13", "02-add11"]
    for stage in stages:
        assert json.loads((tmp_path / "c" / "stages" / stage / "summary.json").read_text())["recipe"] == recipe
    if inputs == "previous":  # stage 2 replays the inputs of both earlier tasks, taught by stage 1's model
        stage2 = parse_config(__import__("yaml").safe_load((tmp_path / "c" / "stages" / "02-add11" / "config.yaml")
                                                          .read_text()))
        assert [t.name for t in stage2.tasks] == ["add17", "add13", "add11"]
        assert stage2.distill.teacher[2] is None and stage2.distill.teacher_member == "matched"
    metrics = pd.read_csv(tmp_path / "c" / "metrics.csv")
    assert {"stage", "global_step", "test_acc@add17", "test_acc@add13", "test_acc@add11"} <= set(metrics.columns)
    assert metrics.groupby("member").global_step.apply(lambda s: s.is_monotonic_increasing).all()
    assert metrics.global_step.max() == 80
    teacher_acc = json.loads((teachers["t17"] / "summary.json").read_text())["members"][0]["final_test_acc"]
    for m in summary["members"]:
        r = m["accuracy_matrix"]
        assert len(r) == 3 and all(len(row) == 3 for row in r)
        # row 0 is the initial model on its own held-out pairs (the split seed comes from the model file)
        assert r[0][0] == pytest.approx(teacher_acc, abs=1e-9)
        assert m["backward_transfer"] == pytest.approx(((r[2][0] - r[0][0]) + (r[2][1] - r[1][1])) / 2)
        assert m["average_accuracy"] == pytest.approx(sum(r[2]) / 3)
        assert m["forward_transfer"] == pytest.approx(((r[0][1] - 1 / 13) + (r[1][2] - 1 / 11)) / 2)
    assert (tmp_path / "c" / "curves.png").exists() and (tmp_path / "c" / "model.safetensors").exists()
    lines: list[str] = []
    again = run(cfg, tmp_path / "c", progress=False, log=lines.append)
    assert again == summary and "nothing to do" in lines[0]


@pytest.mark.parametrize("bad, message", [
    (tiny_config(recipe="joint", joint={}), "at least two tasks"),
    (tiny_config(recipe="joint", tasks=TASKS, vocab=VOCAB, joint={"mode": "distill"}), "needs a `distill:` section"),
    (tiny_config(recipe="joint", tasks=TASKS, vocab=VOCAB, joint={"mode": "distill"}), "one teacher per task"),
    (tiny_config(recipe="joint", tasks=TASKS, joint={}), "vocab.moduli"),
    (tiny_config(tasks=TASKS, vocab=VOCAB), "`tasks:` is for recipes joint and continual"),
    (tiny_config(recipe="continual", tasks=TASKS, vocab=VOCAB, continual={"steps_per_stage": 5}),
     "continual.init"),
])
def test_invalid_multitask_configs(bad, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(bad)


def test_continual_refuses_a_first_task_unlike_the_initial_models(tmp_path, teachers):
    from grokkit.api import RunError

    cfg = parse_config(tiny_config(recipe="continual", tasks=TASKS, vocab=VOCAB,
                                   continual={"init": str(teachers["t17"]), "steps_per_stage": 5}))
    with pytest.raises(RunError, match="train_fraction"):
        run(cfg, tmp_path / "c", progress=False, log=quiet)
    assert not (tmp_path / "c").exists()


def test_continual_with_a_missing_init_model_writes_nothing(tmp_path):
    from grokkit.api import RunError

    cfg = parse_config(tiny_config(recipe="continual", tasks=TASKS, vocab=VOCAB,
                                   continual={"init": str(tmp_path / "none"), "steps_per_stage": 5}))
    with pytest.raises(RunError, match="continual.init"):
        run(cfg, tmp_path / "c", progress=False, log=quiet)
    assert not (tmp_path / "c").exists()


def test_vocabulary_of_a_multitask_run():
    cfg = parse_config(tiny_config(recipe="joint", tasks=TASKS, vocab=VOCAB, joint={}))
    from grokkit.recipes.common import build_vocab

    assert build_vocab(cfg) == Vocabulary(17, (11, 13, 17))


def test_joint_task_without_teacher_learns_from_labels(teachers):
    from grokkit.losses import task_loss

    cfg = parse_config(tiny_config(recipe="joint", tasks=TASKS, vocab=VOCAB, seeds=[0],
                                   joint={"mode": "distill", "teachers": [str(teachers["t17"]), None]}))
    setup = build_setup(cfg)
    with torch.no_grad():
        logits = setup.model(setup.train.tokens, setup.objective.positions)
        per_example = setup.objective.loss(Outputs(logits), setup.train, slice(0, 1), 0, {})[0]
        final = logits[:, :, setup.objective.positions.index(3)]
        ce = task_loss(final, setup.train.labels, "cross_entropy", setup.train.answer_range, torch.float64)[0]
    is13 = setup.train.tokens[0, :, 3] == setup.vocab.modulus_token(13)
    assert torch.allclose(per_example[is13], ce[is13])
    assert not torch.allclose(per_example[~is13], ce[~is13])
