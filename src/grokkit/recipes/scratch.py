"""Recipe ``scratch``: the task loss at the final position, nothing else."""

from __future__ import annotations

import torch

from grokkit.engine import Objective
from grokkit.losses import task_loss
from grokkit.recipes.common import INITIALISERS, Setup
from grokkit.recipes.registry import Recipe, register
from grokkit.tasks import EnsembleExamples


def task_objective_term(setup: Setup, logits: torch.Tensor, batch: EnsembleExamples) -> torch.Tensor:
    """Per-example task loss ``[K, n]`` from final-position logits ``[K, n, C]``."""
    cfg = setup.cfg
    # one task: its answer range is one number, and slicing the classes beats a per-example mask
    answer_range: int | torch.Tensor | None = None
    if cfg.loss.restrict_to_answer_range:
        answer_range = batch.answer_range if setup.multi_task else setup.task.answer_range
    return task_loss(logits, batch.labels, cfg.loss.kind, answer_range, getattr(torch, cfg.loss.dtype))


def prepare(setup: Setup) -> None:
    setup.objective = Objective(
        positions=[setup.task.final_position],
        loss=lambda out, batch, members, step, params: task_objective_term(setup, out.logits[:, :, 0], batch),
        final=setup.task.final_position,
    )


register(Recipe("scratch", prepare=prepare, sections=INITIALISERS,
                summary="the task loss at the final position, nothing else"))
