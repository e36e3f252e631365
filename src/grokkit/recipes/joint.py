"""Recipe ``joint``: one model f_M on the union of several tasks (the paper's section 5, Figure 5).

``joint.mode: task_loss`` trains on the labels of every task's training set; ``joint.mode: distill`` distils each
training example from the teacher of its own task (one teacher per task, e.g. f_p1 and f_p2), with weight
``joint.alpha`` (1: distillation only, no labels, as in the paper). A task whose teacher is ``null`` is learnt from
its labels. Every evaluation reports each task's test accuracy
(``test_acc@<task>`` in metrics.csv) and ``summary.json`` gives each task's steps to generalise.

Distillation here defaults to the final position (``JointConfig.position = "final"``, unlike the ``distill``
recipe's operator position): with no labels, the position the answer is read from must be taught by someone;
``joint.position: operator`` is available for the mixed (alpha < 1) case.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import torch
from pydantic import Field

from grokkit.engine import Objective
from grokkit.losses import TeacherTargets, distillation_kl, distillation_loss, teacher_log_probs
from grokkit.recipes.common import Setup
from grokkit.recipes.distill import DistillSettings, load_teacher, teacher_logits
from grokkit.recipes.registry import SECTIONS, Recipe, Section, register
from grokkit.recipes.scratch import prepare as prepare_task_loss
from grokkit.recipes.scratch import task_objective_term
from grokkit.tasks import POSITIONS

if TYPE_CHECKING:
    from grokkit.config import RunConfig


class JointConfig(DistillSettings):
    """Recipe ``joint``: one model on the union of several tasks, by the task loss or by distillation only."""

    mode: Literal["task_loss", "distill"] = "task_loss"
    teachers: list[str | None] | None = Field(
        None, description="distill mode: one teacher per task, in the order of `tasks`; null: that task's examples "
        "are learnt from their labels")
    teacher_member: int | Literal["matched"] = Field(0, description="see distill.teacher_member")
    alpha: float = Field(1.0, ge=0, le=1, description="distill mode: 1 = distillation only (the paper's)")
    position: Literal["operator", "final"] = Field(
        "final", description="distill mode: the position the teachers' outputs are distilled at. final (the default): "
        "the answer's position, which with alpha = 1 (no labels) must be taught by someone; operator: the paper's "
        "choice for the distill recipe, for the mixed (alpha < 1) case")


def prepare(setup: Setup) -> None:
    cfg, j = setup.cfg, setup.cfg.joint
    assert j is not None
    if j.mode == "task_loss":
        prepare_task_loss(setup)
        return
    assert j.teachers is not None
    dtype = getattr(torch, cfg.loss.dtype)
    position = POSITIONS[j.position]
    tokens = setup.train.tokens
    targets = torch.zeros(*tokens.shape[:2], setup.vocab.n_classes, dtype=dtype)
    taught = torch.zeros(tokens.shape[:2], dtype=torch.bool)  # rows with a teacher; the others learn from labels
    agreement = {}
    for task, path in zip(setup.tasks, j.teachers):
        if path is None:
            continue
        teacher = load_teacher(path, j.teacher_member, setup, field="joint")
        mine = ((tokens[..., 2] == setup.vocab.operation_token(task.op))
                & (tokens[..., 3] == setup.vocab.modulus_token(task.modulus)))
        log_p = teacher_log_probs(teacher_logits(teacher, tokens, position), torch.tensor(j.temperature), None, dtype)
        targets = torch.where(mine.unsqueeze(-1), log_p, targets)
        taught |= mine
        test = setup.task_sets[task.name]
        final = teacher_logits(teacher, test.tokens, POSITIONS["final"])[..., : task.answer_range]
        agreement[task.name] = float(((final.argmax(-1) == test.labels).double() * test.weight).sum()
                                     / test.weight.sum())
    setup.info["teacher_acc_on_task_test"] = agreement
    device = torch.device(cfg.training.device)
    # rows without a teacher hold log q_T = 0 (q_T = 1 per class): their KL is finite and masked out below
    teacher_targets, taught = TeacherTargets.from_log_probs(targets).to(device), taught.to(device)
    all_taught = bool(taught.all())
    positions = sorted({POSITIONS["final"], position})
    final_i, kd_i = positions.index(POSITIONS["final"]), positions.index(position)
    temperature = torch.tensor(j.temperature, dtype=dtype, device=device)

    def loss(logits: torch.Tensor, batch, rows: torch.Tensor | None, members: slice, step: int) -> torch.Tensor:
        has_teacher = taught[members] if rows is None else torch.gather(taught[members], 1, rows)
        kl = distillation_kl(logits[:, :, kd_i], teacher_targets.select(members, rows), temperature, None, dtype)
        if j.alpha >= 1.0 and all_taught:
            return kl
        task = task_objective_term(setup, logits[:, :, final_i], batch)
        mixed = kl if j.alpha >= 1.0 else distillation_loss(
            task, kl, torch.tensor(j.alpha, dtype=dtype, device=device), temperature, False)
        return torch.where(has_teacher, mixed, task)

    setup.objective = Objective(positions=positions, loss=loss)


def _check(cfg: RunConfig) -> None:
    j = cfg.joint
    if j is None:
        raise ValueError("recipe `joint` needs a `joint:` section, and only that recipe takes one")
    if j.mode == "distill" and (not j.teachers or len(j.teachers) != len(cfg.tasks or [])):
        raise ValueError("joint.mode=distill needs `joint.teachers` with one teacher per task")


SECTIONS.add("joint", Section(JointConfig))
register(Recipe("joint", prepare=prepare, sections=("joint", "init"), required=("joint",), multi_task=True,
                check=_check, summary="one model on the union of several tasks, by the task loss or distillation"))
