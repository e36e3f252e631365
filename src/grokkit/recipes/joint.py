"""Recipe ``joint``: one model f_M on the union of several tasks (the paper's section 5, Figure 5).

Without a ``distill:`` section the model trains on the labels of every task's training set. With one, each training
example is distilled from the teacher of its own task (``distill.teacher``: one per task, in the order of ``tasks``;
``null``: that task's examples learn from their labels), with weight ``distill.alpha`` (1: distillation only, no
labels, as in the paper; then ``distill.position: final``, the answer's position, must be what is taught). The
distillation settings are the distillation component's (:mod:`grokkit.recipes.distillation`), with ``combine:
route`` (each example to its task's teacher). Every evaluation reports each task's test accuracy
(``test_acc@<task>`` in metrics.csv) and ``summary.json`` gives each task's steps to generalise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import torch
from pydantic import Field

from grokkit.recipes.common import Setup
from grokkit.recipes.distill import attach_distiller, distill_objective
from grokkit.recipes.registry import SECTIONS, Recipe, RunConfig, Section, register
from grokkit.recipes.scratch import prepare as prepare_task_loss
from grokkit.schema import Strict
from grokkit.tasks import POSITIONS


class JointConfig(Strict):
    """Recipe ``joint``: one model on the union of several tasks; by the task loss, or, with a ``distill:`` section,
    each task's examples distilled from that task's teacher."""

    mode: Literal["task_loss", "distill"] | None = Field(
        None, description="task_loss: train on the labels; distill: needs a `distill:` section (one teacher per "
        "task). Default: distill when the run has a `distill:` section")


def _rows_of(setup: Setup, op: str, modulus: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """The mask ``[K, n]`` of a task's rows among the union's (by its operator and modulus tokens)."""
    op_token, mod_token = setup.vocab.operation_token(op), setup.vocab.modulus_token(modulus)
    return lambda tokens: (tokens[..., POSITIONS["operator"]] == op_token) & (tokens[..., POSITIONS["final"]]
                                                                               == mod_token)


def prepare(setup: Setup) -> None:
    cfg = setup.cfg
    if cfg.distill is None:
        prepare_task_loss(setup)
        return
    tasks = [(task.name, _rows_of(setup, task.op, task.modulus), setup.task_sets[task.name]) for task in setup.tasks]
    distiller = attach_distiller(setup, tasks)
    setup.info["teacher_acc_on_task_test"] = {
        r["task"]: r["acc_on_student_test"]["final"] for r in setup.info.get("teachers", []) if "task" in r}
    setup.objective = distill_objective(setup, distiller)


def _check(cfg: RunConfig) -> None:
    j, d = cfg.joint, cfg.distill
    if j is not None and j.mode == "distill" and d is None:
        raise ValueError("joint.mode=distill needs a `distill:` section with one teacher per task")
    if j is not None and j.mode == "task_loss" and d is not None:
        raise ValueError("joint.mode=task_loss trains on labels: drop `distill:` (or set joint.mode: distill)")
    if d is None:
        return
    teachers = d.teacher_list()
    combine = d.combine_for(True)
    if combine == "route" and len(teachers) != len(cfg.tasks or []):
        raise ValueError(f"recipe joint distils each task from its own teacher: `distill.teacher` needs one entry per "
                         f"task ({len(cfg.tasks or [])}; null: that task learns from its labels), got {len(teachers)}")
    if d.alpha >= 1.0 and d.position != "final" and d.alpha_decay_start is None:
        raise ValueError("distill.alpha = 1 trains on no labels, so the answer's position must be taught: set "
                         "`distill.position: final` (or alpha < 1)")


def _takes(data: dict[str, Any]) -> tuple[str, ...]:
    """A joint run reads ``distill:`` unless it trains on labels (``joint.mode: task_loss``)."""
    mode = (data.get("joint") or {}).get("mode")
    return ("joint", "init") if mode == "task_loss" else ("joint", "distill", "init")


SECTIONS.add("joint", Section(JointConfig))
register(Recipe("joint", prepare=prepare, sections=("joint", "distill", "init"), multi_task=True, takes=_takes,
                needs=frozenset({"shared_vocabulary"}), check=_check,
                summary="one model on the union of several tasks, by the task loss or distillation"))
