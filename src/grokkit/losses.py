"""Losses: cross-entropy, StableMax cross-entropy (Prieto et al. 2025) and knowledge distillation (Hinton et al.).

All functions return per-example losses (no reduction), so the engine can weight, mask and average them per member.
``answer_range`` restricts the classes an example may take: class ``c`` counts only if ``c < answer_range``, which lets
a model whose head covers numbers ``0..112`` be trained and scored on mod 107 answers ``0..106`` alone.
"""

from __future__ import annotations

import torch

TASK_LOSSES = ("cross_entropy", "stablemax")


def class_mask(answer_range: torch.Tensor | None, n_classes: int) -> torch.Tensor | None:
    """Boolean ``[..., n_classes]`` mask of the classes allowed for each example, or None for all classes."""
    if answer_range is None:
        return None
    return torch.arange(n_classes, device=answer_range.device) < answer_range.unsqueeze(-1)


def stablemax_s(x: torch.Tensor) -> torch.Tensor:
    """s(x) = x + 1 for x >= 0 and 1 / (1 - x) for x < 0. The clamps keep the branch not taken finite (and its
    gradient zero), so extreme logits give neither inf nor NaN."""
    return torch.where(x >= 0, x.clamp(min=0) + 1, 1 / (1 - x.clamp(max=0)))


def log_stablemax(logits: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """log StableMax(x)_i = log s(x_i) - log sum_j s(x_j), over the allowed classes only."""
    s = stablemax_s(logits)
    if mask is not None:
        s = s * mask
    return s.log() - s.sum(-1, keepdim=True).log()


def log_softmax(logits: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    if mask is not None:
        logits = logits.masked_fill(~mask, float("-inf"))
    return logits.log_softmax(-1)


def restrict(logits: torch.Tensor, answer_range: int | torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(logits, mask) for an answer range: an ``int`` (every example alike) slices the classes, which is cheaper
    than a per-example mask; a tensor ``[...]`` gives a mask."""
    if isinstance(answer_range, int):
        return logits[..., :answer_range], None
    return logits, class_mask(answer_range, logits.shape[-1])


def task_log_probs(
    logits: torch.Tensor, kind: str, answer_range: int | torch.Tensor | None = None,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """Log class probabilities under the task loss's normaliser (softmax or StableMax), computed in ``dtype``."""
    logits, mask = restrict(logits, answer_range)
    logits = logits.to(dtype)
    if kind == "cross_entropy":
        return log_softmax(logits, mask)
    if kind == "stablemax":
        return log_stablemax(logits, mask)
    raise ValueError(f"unknown task loss {kind!r}; allowed: {', '.join(TASK_LOSSES)}")


def task_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    kind: str,
    answer_range: int | torch.Tensor | None = None,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """Per-example negative log-likelihood ``[...]`` of ``labels`` under ``logits [..., C]``."""
    log_probs = task_log_probs(logits, kind, answer_range, dtype)
    return -log_probs.gather(-1, labels.unsqueeze(-1)).squeeze(-1)


def distillation_kl(
    student_logits: torch.Tensor,
    teacher_log_probs: torch.Tensor,
    temperature: torch.Tensor | float,
    mask: torch.Tensor | None = None,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """Per-example KL(q_T || q_S) with q_S = softmax(student / T) over the allowed classes.

    ``teacher_log_probs`` are log softmax(teacher / T) over the same classes, computed once before training since the
    teacher is frozen (:func:`teacher_log_probs`). ``temperature`` broadcasts against ``student_logits[..., 0]``."""
    t = torch.as_tensor(temperature, dtype=dtype, device=student_logits.device)
    student = log_softmax(student_logits.to(dtype) / t.unsqueeze(-1), mask)
    p_teacher = teacher_log_probs.exp()
    # 0 * log 0 terms are 0: masked classes have p_teacher == 0 and -inf log-probs on both sides.
    terms = torch.where(p_teacher > 0, p_teacher * (teacher_log_probs - student), torch.zeros_like(student))
    return terms.sum(-1)


def distillation_kl_fast(
    student_logits: torch.Tensor,
    teacher_probs: torch.Tensor,
    teacher_neg_entropy: torch.Tensor,
    temperature: torch.Tensor | float,
    mask: torch.Tensor | None = None,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """:func:`distillation_kl` from a frozen teacher's precomputed ``teacher_probs`` (q_T) and
    ``teacher_neg_entropy`` (sum q_T log q_T, :func:`teacher_entropy_terms`): KL = sum q_T log q_T - sum q_T log q_S,
    so a training step computes only the cross term (no exp of the teacher's log-probs, no 0 log 0 masking)."""
    t = torch.as_tensor(temperature, dtype=dtype, device=student_logits.device)
    student = log_softmax(student_logits.to(dtype) / t.unsqueeze(-1), mask)
    if mask is not None:  # masked classes: q_T = 0 and log q_S = -inf; their term is 0
        student = student.masked_fill(~mask, 0.0)
    return teacher_neg_entropy - (teacher_probs * student).sum(-1)


def teacher_entropy_terms(teacher_log_probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(q_T, sum q_T log q_T)`` from log q_T, for :func:`distillation_kl_fast`."""
    p = teacher_log_probs.exp()
    neg_entropy = torch.where(p > 0, p * teacher_log_probs, torch.zeros_like(p)).sum(-1)
    return p, neg_entropy


def teacher_log_probs(
    teacher_logits: torch.Tensor,
    temperature: torch.Tensor | float,
    mask: torch.Tensor | None = None,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    t = torch.as_tensor(temperature, dtype=dtype, device=teacher_logits.device)
    return log_softmax(teacher_logits.to(dtype) / t.unsqueeze(-1), mask)


def distillation_loss(
    task: torch.Tensor, kl: torch.Tensor, alpha: torch.Tensor | float, temperature: torch.Tensor | float,
    t2_scaling: bool = False,
) -> torch.Tensor:
    """The paper's equation (4): L = (1 - alpha) L_task + alpha KL, optionally with Hinton's T^2 factor on the KL
    (which keeps the KL gradient's scale independent of T)."""
    scale = torch.as_tensor(temperature, dtype=kl.dtype, device=kl.device) ** 2 if t2_scaling else 1.0
    return (1 - alpha) * task + alpha * scale * kl
