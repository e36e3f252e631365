"""Losses: cross-entropy, StableMax cross-entropy (Prieto et al. 2025) and knowledge distillation (Hinton et al.).

All functions return per-example losses (no reduction), so the engine can weight, mask and average them per member.
``answer_range`` restricts the classes an example may take: class ``c`` counts only if ``c < answer_range``, which lets
a model whose head covers numbers ``0..112`` be trained and scored on mod 107 answers ``0..106`` alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from grokkit.registry import Registry


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


#: task losses (``loss.kind``) -> log class probabilities ``f(logits, mask)``; a new normaliser is one entry here
TASK_LOSSES: Registry = Registry("task loss")
TASK_LOSSES.add("cross_entropy", log_softmax)
TASK_LOSSES.add("stablemax", log_stablemax)


def restrict(logits: torch.Tensor, answer_range: int | torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(logits, mask) for an answer range: an ``int`` (every example alike) slices the classes, which is cheaper
    than a per-example mask; a tensor ``[...]`` gives a mask."""
    if isinstance(answer_range, int):
        return logits[..., :answer_range], None
    return logits, class_mask(answer_range, logits.shape[-1])


def collapsed_rows(logits: torch.Tensor) -> torch.Tensor:
    """Per row of ``logits [..., C]`` (masked classes at -inf): does its float32 ``sum_c exp(z_c - max z)`` equal
    exactly 1, i.e. has the softmax loss of that row, and so its gradient, underflowed to zero (Prieto et al.'s
    softmax collapse)? Bool ``[...]``."""
    z = logits.float()
    return torch.exp(z - z.max(dim=-1, keepdim=True).values).sum(-1) == 1.0


def task_log_probs(
    logits: torch.Tensor, kind: str, answer_range: int | torch.Tensor | None = None,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """Log class probabilities under the task loss's normaliser (softmax or StableMax), computed in ``dtype``."""
    logits, mask = restrict(logits, answer_range)
    logits = logits.to(dtype)
    return TASK_LOSSES.get(kind)(logits, mask)


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


@dataclass(frozen=True)
class TeacherTargets:
    """A frozen teacher's softened distribution q_T over a fixed set of rows, with what every step's KL needs computed
    once: ``probs`` (q_T, ``[..., C]``) and ``neg_entropy`` (sum q_T log q_T, ``[...]``)."""

    probs: torch.Tensor
    neg_entropy: torch.Tensor

    @classmethod
    def from_log_probs(cls, log_probs: torch.Tensor) -> TeacherTargets:
        """From log q_T (:func:`teacher_log_probs`); 0 log 0 terms (masked or underflowed classes) count 0."""
        p = log_probs.exp()
        return cls(p, torch.where(p > 0, p * log_probs, torch.zeros_like(p)).sum(-1))

    def to(self, device: torch.device | str) -> TeacherTargets:
        return TeacherTargets(self.probs.to(device), self.neg_entropy.to(device))

    def select(self, members: slice, rows: torch.Tensor | None = None) -> TeacherTargets:
        """Members ``members`` and, for a minibatch, their ``rows [k, b]``."""
        p, h = self.probs[members], self.neg_entropy[members]
        if rows is not None:
            p = torch.gather(p, 1, rows.unsqueeze(-1).expand(*rows.shape, p.shape[-1]))
            h = torch.gather(h, 1, rows)
        return TeacherTargets(p, h)


def distillation_kl(
    student_logits: torch.Tensor,
    teacher: TeacherTargets | torch.Tensor,
    temperature: torch.Tensor | float,
    mask: torch.Tensor | None = None,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """Per-example KL(q_T || q_S) with q_S = softmax(student / T) over the allowed classes.

    ``teacher``: log softmax(teacher / T) over the same classes (:func:`teacher_log_probs`), or better, since the
    teacher is frozen, its :class:`TeacherTargets` computed once before training; then a step computes only the cross
    term: KL = sum q_T log q_T - sum q_T log q_S. ``temperature`` broadcasts against ``student_logits[..., 0]``."""
    if not isinstance(teacher, TeacherTargets):
        teacher = TeacherTargets.from_log_probs(teacher)
    t = torch.as_tensor(temperature, dtype=dtype, device=student_logits.device)
    student = log_softmax(student_logits.to(dtype) / t.unsqueeze(-1), mask)
    if mask is not None:  # masked classes: q_T = 0 and log q_S = -inf; their term is 0
        student = student.masked_fill(~mask, 0.0)
    return teacher.neg_entropy - (teacher.probs * student).sum(-1)


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


# --- distillation divergences ------------------------------------------------------------------------------------
#
# A divergence compares the student's output at the distilled position with a frozen teacher's. What the teacher's
# side is made of, once, before training, for every training row (``targets``), and the per-example loss each step
# (``__call__``) are the divergence's own; the distillation component (grokkit.recipes.distillation) combines
# several teachers, mixes the term with the task loss by alpha and its schedule, and keeps the targets with the
# training rows so that the engine slices them with every batch. A new divergence is one class and one
# ``DIVERGENCES.add(name, instance)``.


class Divergence:
    """How a student's output is pulled towards a teacher's, per example.

    ``reads``: what it compares, ``"log_probs"`` (the teacher's softened distribution log softmax(teacher / T) over
    the aligned classes: KL-type divergences, which several teachers combine as a mean of probabilities or of logits),
    ``"logits"`` (the teacher's raw logits over the aligned classes) or ``"hidden"`` (the residual stream that feeds the
    unembedding, ``[..., d_model]``).
    ``targets(teacher, temperature)``: what every step needs of the teacher's side, from ``teacher [K, n, X]`` (X:
    classes or width) and ``temperature [K, 1]``: a dict of tensors ``[K, n, ...]`` (computed once; they travel with the
    training rows).
    ``__call__(student, targets, temperature, params)``: the per-example loss ``[K, n]`` from the student's output
    ``[K, n, X']`` (logits over the aligned classes, or its residual stream), the batch's targets, ``temperature
    [K, 1]`` and the divergence's own trained parameters (``params``, e.g. a projection, member axis first).
    ``parameters(student_width, teacher_width, seeds)``: those parameters' initial values, ``{name: [K, ...]}``.
    ``t2_scaling``: whether ``distill.t2_scaling`` (Hinton's T^2 factor) means something for it."""

    reads: str = "log_probs"
    t2_scaling: bool = True

    def targets(self, teacher: torch.Tensor, temperature: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def __call__(self, student: torch.Tensor, targets: dict[str, torch.Tensor], temperature: torch.Tensor,
                 params: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def parameters(self, student_width: int, teacher_width: int, seeds: list[int]) -> dict[str, torch.Tensor]:
        return {}


class ForwardKL(Divergence):
    """KL(q_T || q_S), q = softmax(logits / T) (Hinton et al.; the paper's equation 4): mass the teacher gives a class
    must be given by the student. Targets: q_T and sum q_T log q_T (:class:`TeacherTargets`), so a step computes only
    the cross term."""

    def targets(self, teacher: torch.Tensor, temperature: torch.Tensor) -> dict[str, torch.Tensor]:
        t = TeacherTargets.from_log_probs(teacher)
        return {"probs": t.probs, "neg_entropy": t.neg_entropy}

    def __call__(self, student: torch.Tensor, targets: dict[str, torch.Tensor], temperature: torch.Tensor,
                 params: dict[str, torch.Tensor]) -> torch.Tensor:
        teacher = TeacherTargets(targets["probs"], targets["neg_entropy"])
        return distillation_kl(student, teacher, temperature, None, targets["probs"].dtype)


class ReverseKL(Divergence):
    """KL(q_S || q_T): mode-seeking; the student is penalised for mass where the teacher has little."""

    def targets(self, teacher: torch.Tensor, temperature: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"log_probs": teacher}

    def __call__(self, student: torch.Tensor, targets: dict[str, torch.Tensor], temperature: torch.Tensor,
                 params: dict[str, torch.Tensor]) -> torch.Tensor:
        log_t = targets["log_probs"]
        log_s = log_softmax(student.to(log_t.dtype) / temperature.unsqueeze(-1))
        # classes the teacher gives exactly 0 (underflow) would make the term infinite: floor them at the dtype's tiny
        log_t = log_t.clamp(min=math.log(torch.finfo(log_t.dtype).tiny))
        return (log_s.exp() * (log_s - log_t)).sum(-1)


class LogitMSE(Divergence):
    """Mean squared difference of the logits over the aligned classes (Ba & Caruana's logit matching); the
    temperature plays no part."""

    reads = "logits"
    t2_scaling = False

    def targets(self, teacher: torch.Tensor, temperature: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"logits": teacher}

    def __call__(self, student: torch.Tensor, targets: dict[str, torch.Tensor], temperature: torch.Tensor,
                 params: dict[str, torch.Tensor]) -> torch.Tensor:
        t = targets["logits"]
        return (student.to(t.dtype) - t).pow(2).mean(-1)


class HiddenMSE(Divergence):
    """Feature distillation: mean squared difference between the teacher's residual stream at the distilled position
    and the student's. Where the widths differ the student's is mapped by a learned linear projection ``W_proj [K,
    d_student, d_teacher]`` (Gaussian, std 1/sqrt(d_student), seeded per member), which trains with the model (the
    engine optimises a loss's own parameters); where they agree the two are compared directly (``hidden_mse_proj``:
    a projection always)."""

    reads = "hidden"
    t2_scaling = False

    def __init__(self, always_project: bool = False) -> None:
        #: learn a projection even where the widths agree (``hidden_mse_proj``): residual bases of independently
        #: trained networks need not line up, and the projection lets the student keep its own
        self.always_project = always_project

    def targets(self, teacher: torch.Tensor, temperature: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"hidden": teacher}

    def parameters(self, student_width: int, teacher_width: int, seeds: list[int]) -> dict[str, torch.Tensor]:
        if not (self.always_project or student_width != teacher_width):
            return {}
        w = torch.stack([torch.randn(student_width, teacher_width, generator=torch.Generator().manual_seed(s + 7_331))
                         for s in seeds]) / math.sqrt(student_width)
        return {"W_proj": w}

    def __call__(self, student: torch.Tensor, targets: dict[str, torch.Tensor], temperature: torch.Tensor,
                 params: dict[str, torch.Tensor]) -> torch.Tensor:
        t = targets["hidden"]
        x = student
        if "W_proj" in params:
            k, n, d = x.shape
            x = torch.bmm(x, params["W_proj"].to(x.dtype)).view(k, n, -1)
        return (x.to(t.dtype) - t).pow(2).mean(-1)


#: distillation divergences (``distill.loss``) by name; a new one is one entry (an instance of a Divergence subclass)
DIVERGENCES: Registry[Divergence] = Registry("distillation loss")
DIVERGENCES.add("forward_kl", ForwardKL())
DIVERGENCES.add("reverse_kl", ReverseKL())
DIVERGENCES.add("logit_mse", LogitMSE())
DIVERGENCES.add("hidden_mse", HiddenMSE())
DIVERGENCES.add("hidden_mse_proj", HiddenMSE(always_project=True))
