"""The distillation component: one section, a registry of divergences, several teachers, hidden-state distillation,
teachers matched by token name, the teacher in plain view."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

import grokkit
from grokkit.api import run
from grokkit.cli import app
from grokkit.config import DistillConfig, parse_config
from grokkit.engine import Outputs
from grokkit.losses import DIVERGENCES, Divergence, log_softmax, task_loss
from grokkit.recipes import build_setup
from grokkit.recipes.continual import stage_config
from grokkit.recipes.distillation import TeacherError
from helpers import run_killed, tiny_config

PACKAGE = Path(grokkit.__file__).parent
SMALL = {"d_model": 16, "n_heads": 2, "d_head": 8, "d_mlp": 32}


def quiet(_: str) -> None:
    pass


@pytest.fixture(scope="module")
def teachers(tmp_path_factory):
    """Teachers of (a + b) mod 17 (vocabulary n 17, moduli 13 and 17): two seeds, trained a little."""
    root = tmp_path_factory.mktemp("kd_teachers")
    cfg = parse_config(tiny_config(name="t", seeds=[0, 1], task={"op": "add", "modulus": 17, "train_fraction": 0.6},
                                   vocab={"n_numbers": 17, "moduli": [13, 17]}, optimizer__lr=0.01,
                                   training__steps=100))
    run(cfg, root / "t", progress=False, log=quiet)
    return root / "t"


def _student(teacher: Path | list, **distill) -> dict:
    return tiny_config(recipe="distill", seeds=[0, 1], task={"op": "add", "modulus": 13, "train_fraction": 0.5},
                       vocab={"n_numbers": 17, "moduli": [13, 17]}, training__steps=20,
                       distill={"teacher": [str(t) for t in teacher] if isinstance(teacher, list) else str(teacher),
                                "alpha": 0.7, "temperature": 3.0, **distill})


# ---------------------------------------------------------------------------------------------------- one section
def test_only_the_distillation_section_declares_alpha_or_temperature():
    """No config class but DistillConfig declares them in its source (a member's own values are made from its
    fields); Grokfast's EMA ``alpha`` is a gradient transform's, not a config field."""
    import importlib

    from pydantic import BaseModel

    declared = []
    for path in PACKAGE.rglob("*.py"):
        module = importlib.import_module("grokkit." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
                                         .removesuffix(".__init__"))
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and isinstance(getattr(module, node.name, None), type) \
                    and issubclass(getattr(module, node.name), BaseModel):
                for item in node.body:
                    if (isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)
                            and item.target.id in ("alpha", "temperature")):
                        declared.append(f"{path.relative_to(PACKAGE)}:{node.name}.{item.target.id}")
    assert sorted(declared) == ["recipes/distillation.py:DistillConfig.alpha",
                                "recipes/distillation.py:DistillConfig.temperature"]
    # a member's own alpha is made from the section's field: same bounds
    from grokkit.config import MemberConfig

    with pytest.raises(ValueError, match="less than or equal to 1"):
        MemberConfig(seed=0, alpha=1.5)


def test_a_continual_stage_keeps_every_distillation_field(teachers):
    settings = {"loss": "reverse_kl", "alpha": 0.3, "temperature": 5.0, "t2_scaling": True, "position": "final",
                "alpha_decay_start": 7, "alpha_decay_steps": 3, "class_alignment": "student_range",
                "combine": "mean_probs"}
    tasks = [{"op": "add", "modulus": 17, "train_fraction": 0.6}, {"op": "add", "modulus": 13, "train_fraction": 0.5}]
    cfg = parse_config(tiny_config(recipe="continual", tasks=tasks, vocab={"n_numbers": 17, "moduli": [13, 17]},
                                   seeds=[0], continual={"init": str(teachers), "init_member": 0},
                                   distill=settings))
    stage = parse_config(stage_config(cfg, 1, str(teachers), 2))
    assert stage.recipe == "distill" and stage.distill.teacher == str(teachers)
    assert stage.distill.model_dump(exclude={"teacher", "teacher_member"}) == cfg.distill.model_dump(
        exclude={"teacher", "teacher_member"})


def test_legacy_joint_and_continual_sections_read_as_the_distillation_section():
    joint = parse_config(tiny_config(recipe="joint", tasks=[{"op": "add", "modulus": 17, "train_fraction": 0.5},
                                                            {"op": "add", "modulus": 13, "train_fraction": 0.5}],
                                     vocab={"n_numbers": 17, "moduli": [13, 17]},
                                     joint={"mode": "distill", "teachers": ["a", None], "temperature": 4.0}))
    assert joint.distill == DistillConfig(teacher=["a", None], combine="route", alpha=1.0, temperature=4.0,
                                          position="final")
    cont = parse_config(tiny_config(recipe="continual", tasks=[{"op": "add", "modulus": 17, "train_fraction": 0.5},
                                                               {"op": "add", "modulus": 13, "train_fraction": 0.5}],
                                    vocab={"n_numbers": 17, "moduli": [13, 17]},
                                    continual={"init": "x", "distill": True, "alpha": 0.25}))
    assert cont.distill == DistillConfig(alpha=0.25, temperature=2.0, position="operator")


# ---------------------------------------------------------------------------------------------------- the objective
def test_forward_kl_objective_is_the_papers_equation(teachers):
    setup = build_setup(parse_config(_student(teachers, position="operator")))
    torch.manual_seed(0)
    logits = torch.randn(2, setup.train.tokens.shape[1], 2, 17, dtype=torch.float64)
    per_example = setup.objective.loss(Outputs(logits), setup.train, slice(0, 2), 0, {})
    from grokkit.recipes.distillation import _member_model

    teacher = _member_model(grokkit.checkpoint.load_model(teachers)[0], [0])  # teacher_member 0 teaches both
    with torch.no_grad():
        t_logits = teacher(setup.train.tokens[:, :, :3].reshape(1, -1, 3), [2])[0, :, 0].view(2, -1, 17)
    q_t = (t_logits.double() / 3.0).log_softmax(-1)
    kl = (q_t.exp() * (q_t - (logits[:, :, 0] / 3.0).log_softmax(-1))).sum(-1)
    ce = task_loss(logits[:, :, 1], setup.train.labels, "cross_entropy", 13, torch.float64)
    assert torch.allclose(per_example, 0.3 * ce + 0.7 * kl, atol=1e-10)


def test_two_teachers_average_their_probabilities(teachers):
    one = build_setup(parse_config(_student(teachers, teacher_member=0)))
    other = build_setup(parse_config(_student(teachers, teacher_member=1)))
    both = build_setup(parse_config(_student(teachers, teacher_member="all")))
    mean = (one.train.extras["distill.0.probs"] + other.train.extras["distill.0.probs"]) / 2
    assert torch.allclose(both.train.extras["distill.0.probs"], mean, atol=1e-12)
    assert [r["member"] for r in both.info["teachers"]] == ["member 0 of 2", "member 1 of 2"]
    two_paths = build_setup(parse_config(_student([teachers, teachers], teacher_member=1)))
    assert torch.allclose(two_paths.train.extras["distill.0.probs"], other.train.extras["distill.0.probs"])
    by_loss = build_setup(parse_config(_student(teachers, teacher_member="all", combine="mean_loss")))
    assert {"distill.0.probs", "distill.1.probs"} <= set(by_loss.train.extras)


def test_combine_must_fit_the_divergence():
    with pytest.raises(ValueError, match="mean_probs averages probabilities"):
        DistillConfig(teacher="x", loss="logit_mse", combine="mean_probs")
    with pytest.raises(ValueError, match="use mean_loss"):
        DistillConfig(teacher="x", loss="hidden_mse", combine="mean_logits")
    with pytest.raises(ValueError, match="unknown distillation loss 'nope'; allowed: forward_kl"):
        DistillConfig(teacher="x", loss="nope")


@pytest.mark.parametrize("loss", ["reverse_kl", "logit_mse"])
def test_other_divergences_vanish_for_a_student_equal_to_its_teacher(teachers, loss):
    cfg = parse_config(_student(teachers, loss=loss, alpha=1.0, teacher_member=0, position="final",
                                class_alignment="student_range") | {"seeds": [0], "init": {"model": str(teachers),
                                                                                           "member": 0}})
    setup = build_setup(cfg)
    with torch.no_grad():
        logits = setup.model(setup.train.tokens, setup.objective.positions)
    per_example = setup.objective.loss(Outputs(logits), setup.train, slice(0, 1), 0, {})
    assert per_example.abs().max() < 1e-5


def test_hidden_state_distillation_trains_a_projection_and_resumes_exactly(tmp_path, teachers, monkeypatch):
    cfg = parse_config(_student(teachers, loss="hidden_mse") | {"model": SMALL, "training": {
        "steps": 60, "eval_every": 20, "checkpoint_every": 20, "progress": False}})
    setup = build_setup(cfg)
    assert setup.objective.hidden and set(setup.objective.parameters) == {"0.W_proj"}
    assert setup.objective.parameters["0.W_proj"].shape == (2, 16, 32)  # student width 16 -> teacher width 32
    assert setup.train.extras["distill.0.hidden"].shape[-1] == 32
    whole = run(cfg, tmp_path / "whole", progress=False, log=quiet)
    run_killed(cfg, tmp_path / "killed", monkeypatch, log=quiet)
    resumed = run(cfg, tmp_path / "killed", progress=False, log=quiet)
    assert [m["final_test_acc"] for m in resumed["members"]] == [m["final_test_acc"] for m in whole["members"]]
    # the projection trains: the objective decreases on a model that starts far from the teacher
    metrics = grokkit.rundir.RunDir(tmp_path / "whole").read_metrics()
    assert metrics.train_loss.notna().all()
    same_width = build_setup(parse_config(_student(teachers, loss="hidden_mse")))
    assert same_width.objective.parameters == {}  # widths agree: compared directly
    assert set(build_setup(parse_config(_student(teachers, loss="hidden_mse_proj"))).objective.parameters) == {
        "0.W_proj"}


def test_hidden_states_are_what_the_unembedding_reads():
    from grokkit.models import TransformerConfig

    for layers, norm in ((1, False), (2, True)):
        model = TransformerConfig(n_layers=layers, layer_norm=norm, **SMALL).build(20, 17, 4, [0, 1])
        tokens = torch.randint(0, 17, (2, 9, 4))
        logits, hidden = model(tokens, [2, 3], hidden=True)
        full, cache = model.run_with_cache(tokens)
        resid = cache[f"blocks.{layers - 1}.hook_resid_post"][:, :, [2, 3]]
        if norm:
            from grokkit.models.transformer import _layer_norm

            resid = _layer_norm(resid, model.ln_final.w, model.ln_final.b)
        assert torch.allclose(hidden, resid, atol=1e-5) and torch.allclose(logits, full[:, :, [2, 3]], atol=1e-5)


# ---------------------------------------------------------------------------------------------------- teachers
def test_a_mod31_teacher_teaches_a_mod29_student_at_the_operator_position(tmp_path):
    teacher = parse_config(tiny_config(name="t31", seeds=[0], task={"op": "add", "modulus": 31, "train_fraction": 0.5},
                                       model=SMALL, training__steps=20))
    run(teacher, tmp_path / "t31", progress=False, log=quiet)
    student = tiny_config(recipe="distill", seeds=[0], task={"op": "add", "modulus": 29, "train_fraction": 0.3},
                          model=SMALL, training__steps=20,
                          distill={"teacher": str(tmp_path / "t31"), "position": "operator"})
    summary = run(parse_config(student), tmp_path / "s", progress=False, log=quiet)
    rec = summary["teachers"][0]
    assert rec["acc_on_student_test"]["final"] is None  # it cannot read P=29 there
    assert 0 <= rec["acc_on_student_test"]["operator"] <= 1
    student["distill"]["position"] = "final"
    with pytest.raises(TeacherError, match=r"no token for P=29.*`distill.position: operator`.*retrain the teacher "
                       r"with `vocab: \{n_numbers: 31, moduli: \[29, 31\]\}`"):
        build_setup(parse_config(student))


def test_the_teacher_in_plain_view(tmp_path, teachers):
    lines: list[str] = []
    summary = run(parse_config(_student(teachers)), tmp_path / "s", progress=False, log=lines.append)
    own = json.loads((teachers / "summary.json").read_text())["members"][0]
    rec = summary["teachers"][0]
    assert rec["source"] == str(teachers) and rec["own_test_acc"] == pytest.approx(own["final_test_acc"])
    assert rec["own_threshold"] == 0.99 and rec["generalized"] is False  # 100 tiny steps: it never generalised
    assert set(rec["acc_on_student_test"]) == {"final", "operator"}
    assert any(line.startswith(f"teacher {teachers} (member 0): own test accuracy") for line in lines)
    assert any(line.startswith("warning: teacher") and "never generalised" in line for line in lines)
    (tmp_path / "bare.safetensors").write_bytes((teachers / "model.safetensors").read_bytes())
    bare = run(parse_config(_student(tmp_path / "bare.safetensors")), tmp_path / "b", progress=False, log=quiet)
    assert bare["teachers"][0]["own_test_acc"] is None and bare["teachers"][0]["generalized"] is None


@pytest.mark.parametrize("kind", ["sweep", "missing", "unfinished"])
def test_a_teacher_path_that_is_no_finished_run_says_what_it_is(tmp_path, teachers, kind):
    path = tmp_path / "thing"
    if kind == "sweep":
        (path / "requires" / "teacher").mkdir(parents=True)
        (path / "sweep.yaml").write_text("name: s\n")
        (path / "requires" / "teacher" / "model.safetensors").write_bytes((teachers / "model.safetensors")
                                                                           .read_bytes())
        want = "is a sweep directory, not a run: give one of its runs; the runs it trained first"
    elif kind == "unfinished":
        path.mkdir()
        (path / "config.yaml").write_text((teachers / "config.yaml").read_text())
        want = f"is an unfinished run (no checkpoint yet), so it has no model.safetensors yet: finish it with " \
               f"`grokkit run {path / 'config.yaml'} --out {path}`"
    else:
        want = "does not exist"
    with pytest.raises(TeacherError, match="cannot load teacher") as err:
        build_setup(parse_config(_student(path)))
    assert want in str(err.value)


# ---------------------------------------------------------------------------------------------------- a new divergence
class TestJS(Divergence):
    """Jensen-Shannon divergence between the softened distributions: defined here, not in the package."""

    def targets(self, teacher, temperature):
        return {"log_probs": teacher}

    def __call__(self, student, targets, temperature, params):
        log_t = targets["log_probs"]
        log_s = log_softmax(student.to(log_t.dtype) / temperature.unsqueeze(-1))
        log_m = torch.logaddexp(log_t, log_s) - torch.log(torch.tensor(2.0, dtype=log_t.dtype))
        return 0.5 * ((log_t.exp() * (log_t - log_m)).sum(-1) + (log_s.exp() * (log_s - log_m)).sum(-1))


def test_a_divergence_defined_outside_the_package_runs_through_run_sweep_and_tune(tmp_path, teachers, monkeypatch):
    monkeypatch.setitem(DIVERGENCES._entries, "js_test", TestJS())
    runner = CliRunner()
    cfg = _student(teachers, loss="js_test")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    result = runner.invoke(app, ["run", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["distill"]["loss"] == "js_test"

    base = dict(cfg, seeds=None)
    base.pop("seeds")
    sweep = {"name": "s", "base": base, "cases": [{"name": "js", "overrides": {}},
                                                  {"name": "kl", "overrides": {"distill.loss": "forward_kl"}}],
             "seeds": [0, 1]}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(sweep))
    result = runner.invoke(app, ["sweep", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "sweep")])
    assert result.exit_code == 0, result.output
    trials = sorted(p.name for p in (tmp_path / "sweep" / "trials").iterdir())
    assert len(trials) == 4 and all((tmp_path / "sweep" / "trials" / t / "summary.json").is_file() for t in trials)

    base["task"] = dict(base["task"], val_fraction=0.1)
    tune = {"name": "t", "base": base,
            "arms": [{"name": "js", "overrides": {}, "space": {"optimizer.lr": {"low": 0.003, "high": 0.01}}}],
            "budget": {"candidates": 2, "per_round": 2, "seeds": [0], "steps": 20}, "final": {"seeds": [5]}}
    (tmp_path / "t.yaml").write_text(yaml.safe_dump(tune))
    result = runner.invoke(app, ["tune", str(tmp_path / "t.yaml"), "--out", str(tmp_path / "tune")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "tune" / "final.csv").is_file()


def test_permuted_answers_keep_the_distribution_shape_and_break_the_answers(teachers):
    plain = build_setup(parse_config(_student(teachers, class_alignment="student_range")))
    permuted = build_setup(parse_config(_student(teachers, class_alignment="student_range", permute_answers=3)))
    a, b = plain.train.extras["distill.0.probs"], permuted.train.extras["distill.0.probs"]
    assert a.shape == b.shape == (*plain.train.labels.shape, 13)
    assert torch.allclose(a.sort(-1).values, b.sort(-1).values) and not torch.allclose(a, b)
    order = torch.randperm(13, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(b, a[..., order])
    with pytest.raises(TeacherError, match="needs one task and a divergence over logits"):
        build_setup(parse_config(_student(teachers, loss="hidden_mse", permute_answers=1)))


def test_once_alpha_reaches_zero_steps_score_the_final_position_alone(tmp_path, teachers, monkeypatch):
    """After the schedule has switched the divergence off, a step computes the answer's position only; the run is the
    one that also computed the (zero-weighted) distilled position, to rounding."""
    cfg = parse_config(_student(teachers, position="operator", alpha_decay_start=10, alpha_decay_steps=10)
                       | {"training": {"steps": 40, "eval_every": 10, "progress": False}})
    objective = build_setup(cfg).objective
    assert objective.positions == [2, 3]
    assert [objective.step_positions(s) for s in (0, 19, 20, 39)] == [[2, 3], [2, 3], [3], [3]]
    logits = torch.randn(2, 5, 1, 17, dtype=torch.float64)
    labels = torch.randint(0, 13, (2, 5))
    batch = grokkit.tasks.EnsembleExamples(torch.zeros(2, 5, 4, dtype=torch.long), labels,
                                           torch.full((2, 5), 13), torch.ones(2, 5))
    assert torch.allclose(objective.loss(Outputs(logits), batch, slice(0, 2), 25, {}),
                          task_loss(logits[:, :, 0], labels, "cross_entropy", 13, torch.float64))
    switched = run(cfg, tmp_path / "switched", progress=False, log=quiet)
    monkeypatch.setattr(grokkit.engine.Objective, "step_positions", lambda self, step: self.positions)
    both = run(cfg, tmp_path / "both", progress=False, log=quiet)
    for a, b in zip(switched["members"], both["members"]):
        assert a["final_train_loss"] == pytest.approx(b["final_train_loss"], rel=1e-4)
        assert a["final_test_loss"] == pytest.approx(b["final_test_loss"], rel=1e-4)
    # no switch where the divergence trains parameters of its own, or without a schedule
    assert build_setup(parse_config(_student(teachers, loss="hidden_mse_proj", alpha_decay_start=10))
                       ).objective.positions_at is None
    assert build_setup(parse_config(_student(teachers, position="operator"))).objective.positions_at is None
