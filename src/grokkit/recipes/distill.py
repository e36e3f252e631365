"""Recipe ``distill``: the task loss plus a divergence to frozen teachers at a chosen position (the paper's equation
4, with the KL of Hinton et al. by default). Everything about distillation — the section, the teachers, the
divergences, several teachers — is the distillation component's (:mod:`grokkit.recipes.distillation`); this recipe
only composes it with the task loss.

The teachers are frozen and training is over a fixed set of inputs, so their outputs are computed once, before
training, for every training row of every member, and travel with the rows.
"""

from __future__ import annotations

import torch

from grokkit.engine import Objective, Outputs
from grokkit.recipes.common import INITIALISERS, Setup
from grokkit.recipes.distillation import (  # noqa: F401  (re-exported: the component's names, where they used to be)
    DistillConfig,
    Distiller,
    StudentView,
    TeacherError,
    alpha_factor,
    describe_teachers,
    load_teachers,
)
from grokkit.recipes.registry import Recipe, RunConfig, register
from grokkit.recipes.scratch import task_objective_term
from grokkit.tasks import EnsembleExamples


def student_view(setup: Setup, position_name: str, tasks: list | None = None) -> StudentView:
    """What the distillation component reads of this run (see :class:`StudentView`)."""
    cfg = setup.cfg
    positions = cfg.task.positions()
    return StudentView(
        vocab=setup.vocab, train=setup.train, test=setup.test, seeds=[m.seed for m in cfg.member_list()],
        position=positions[position_name], position_name=position_name, final=positions["final"],
        n_classes=setup.vocab.n_classes,
        answer_range=None if setup.multi_task else setup.task.answer_range, d_hidden=setup.model.d_hidden,
        alpha=cfg.member_values("alpha"), temperature=cfg.member_values("temperature"),
        dtype=getattr(torch, cfg.loss.dtype), device=torch.device(cfg.training.device), tasks=tasks or [])


def distill_objective(setup: Setup, distiller: Distiller) -> Objective:
    """The objective ``(1 - a) task + a D`` of a run whose training rows carry the distiller's targets."""
    s = distiller.student
    positions = sorted({s.final, s.position})
    final_i, kd_i = positions.index(s.final), positions.index(s.position)

    # Once alpha's schedule has reached 0 the divergence weighs nothing: the steps after it score the final position
    # alone (the same loss and gradients, without the distilled position's MLP and unembedding). Not where the
    # divergence trains parameters of its own (their gradients must exist) or where the positions coincide.
    switch_off = len(positions) > 1 and not distiller.parameters and distiller.d.alpha_decay_start is not None

    def positions_at(step: int) -> list[int]:
        return [s.final] if distiller.d.alpha_factor(step) == 0.0 else positions

    def loss(out: Outputs, batch: EnsembleExamples, members: slice, step: int,
             params: dict[str, torch.Tensor]) -> torch.Tensor:
        if out.logits.shape[2] < len(positions):  # positions_at: the final position only, alpha 0
            return task_objective_term(setup, out.logits[:, :, 0], batch)
        return distiller.mix(None, out, kd_i, batch, members, step, params,
                             lambda: task_objective_term(setup, out.logits[:, :, final_i], batch))

    return Objective(positions=positions, loss=loss, final=s.final, hidden=distiller.divergence.reads == "hidden",
                     parameters=distiller.parameters, positions_at=positions_at if switch_off else None)


def attach_distiller(setup: Setup, tasks: list | None = None) -> Distiller:
    """Load the run's teachers, attach their targets to the training rows, record and announce them."""
    d = setup.cfg.distill
    assert d is not None
    teachers = load_teachers(d, len(setup.cfg.member_list()))
    distiller = Distiller(d, student_view(setup, d.position, tasks), teachers)
    setup.train = distiller.attach(setup.train)
    records, lines = describe_teachers(distiller)
    setup.info["teachers"] = records
    # the single-teacher diagnostics of earlier versions (sweep tables read them): means over the teachers
    for key, where in (("teacher_acc_on_student_test", "final"), ("teacher_kd_acc_on_student_test", d.position)):
        values = [r["acc_on_student_test"][where] for r in records if r["acc_on_student_test"].get(where) is not None]
        if values and (where != "final" or key == "teacher_acc_on_student_test") and not (
                key == "teacher_kd_acc_on_student_test" and d.position == "final"):
            setup.info[key] = sum(values) / len(values)
    setup.notes.extend(lines)
    return distiller


def prepare(setup: Setup) -> None:
    setup.objective = distill_objective(setup, attach_distiller(setup))


def _check(cfg: RunConfig) -> None:
    d = cfg.distill
    if d is None or not d.teacher_list():
        raise ValueError("recipe `distill` needs a `distill:` section with at least `teacher:`")
    if d.position not in cfg.task.positions():
        raise ValueError(f"task.kind={cfg.task.kind} has no {d.position} position (it has "
                         f"{', '.join(cfg.task.positions())}): set `distill.position: final`")
    if d.combine == "route" or None in d.teacher_list():
        raise ValueError("recipe `distill` trains one task: `combine: route` and null teachers are for recipe joint")


register(Recipe("distill", prepare=prepare, sections=("distill", *INITIALISERS), check=_check,
                summary="the task loss plus a divergence to frozen teachers at a chosen position"))
