import math

import pytest
import torch

from grokkit.losses import (
    TeacherTargets,
    distillation_kl,
    distillation_loss,
    log_stablemax,
    stablemax_s,
    task_loss,
    teacher_log_probs,
)


def _g(x: float) -> float:
    """The seed paper's form: StableMax(x) = softmax(g(x)), g(x) = log(1 + x) (x >= 0), -log(1 - x) (x < 0)."""
    return math.log1p(x) if x >= 0 else -math.log1p(-x)


LOGIT_ROWS = [
    [0.0, 1.0, -1.0, 2.5],
    [1e6, -1e6, 0.0, 3.0],
    [-1e12, -5e11, -3.0, -1e-9],
    [1e15, 1e15, 1e15, -1e15],
    [3.0, 3.0, 3.0, 3.0],
]


@pytest.mark.parametrize("row", LOGIT_ROWS)
def test_stablemax_matches_its_definition_in_both_forms(row):
    x = torch.tensor(row, dtype=torch.float64)
    got = log_stablemax(x).exp()
    s = [v + 1 if v >= 0 else 1 / (1 - v) for v in row]
    ratio = torch.tensor([v / sum(s) for v in s], dtype=torch.float64)
    g = torch.tensor([_g(v) for v in row], dtype=torch.float64)
    softmax_of_g = torch.softmax(g, -1)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, ratio, rtol=1e-12, atol=1e-300)
    torch.testing.assert_close(got, softmax_of_g, rtol=1e-12, atol=1e-300)


def test_stablemax_gradients_stay_finite_at_extreme_logits():
    x = torch.tensor([[1e30, -1e30, 0.0, 5.0]], dtype=torch.float64, requires_grad=True)
    loss = task_loss(x, torch.tensor([1]), "stablemax")
    loss.sum().backward()
    assert torch.isfinite(loss).all() and torch.isfinite(x.grad).all()
    assert loss.item() > 50  # log((1e30 + ...) * (1 + 1e30)) is huge but finite


def test_stablemax_s_branches():
    x = torch.tensor([-3.0, -0.0, 0.0, 2.0])
    torch.testing.assert_close(stablemax_s(x), torch.tensor([0.25, 1.0, 1.0, 3.0]))


def test_cross_entropy_restricted_to_answer_range_ignores_other_classes():
    logits = torch.tensor([[1.0, 2.0, 50.0]])
    full = task_loss(logits, torch.tensor([1]), "cross_entropy")
    restricted = task_loss(logits, torch.tensor([1]), "cross_entropy", answer_range=torch.tensor([2]))
    expected = -math.log(math.exp(2) / (math.exp(1) + math.exp(2)))
    assert restricted.item() == pytest.approx(expected, rel=1e-12)
    assert full.item() > 40


def test_kd_loss_against_hand_computation():
    student = torch.tensor([[1.0, 0.0, -1.0]], dtype=torch.float64)
    teacher = torch.tensor([[0.0, 2.0, 0.0]], dtype=torch.float64)
    temperature, alpha = 2.0, 0.3
    q_t = [math.exp(v / temperature) for v in (0.0, 2.0, 0.0)]
    q_t = [v / sum(q_t) for v in q_t]
    q_s = [math.exp(v / temperature) for v in (1.0, 0.0, -1.0)]
    q_s = [v / sum(q_s) for v in q_s]
    kl = sum(p * math.log(p / q) for p, q in zip(q_t, q_s))
    ce = -math.log(math.exp(1.0) / sum(math.exp(v) for v in (1.0, 0.0, -1.0)))  # label 0, plain softmax
    got_kl = distillation_kl(student, teacher_log_probs(teacher, temperature), temperature)
    assert got_kl.item() == pytest.approx(kl, rel=1e-12)
    task = task_loss(student, torch.tensor([0]), "cross_entropy")
    total = distillation_loss(task, got_kl, alpha, temperature)
    assert total.item() == pytest.approx((1 - alpha) * ce + alpha * kl, rel=1e-12)
    scaled = distillation_loss(task, got_kl, alpha, temperature, t2_scaling=True)
    assert scaled.item() == pytest.approx((1 - alpha) * ce + alpha * temperature**2 * kl, rel=1e-12)


def test_kd_student_range_alignment_renormalises_both_sides():
    student = torch.tensor([[0.5, -0.5, 9.0]], dtype=torch.float64)
    teacher = torch.tensor([[1.0, 0.0, 7.0]], dtype=torch.float64)
    mask = torch.tensor([[True, True, False]])
    kl = distillation_kl(student, teacher_log_probs(teacher, 1.0, mask), 1.0, mask)
    p = torch.softmax(teacher[:, :2], -1)
    q = torch.softmax(student[:, :2], -1)
    assert kl.item() == pytest.approx((p * (p / q).log()).sum().item(), rel=1e-12)


def test_kd_is_zero_when_student_equals_teacher():
    x = torch.randn(5, 7, dtype=torch.float64)
    assert distillation_kl(x, teacher_log_probs(x, 3.0), 3.0).abs().max().item() < 1e-12


@pytest.mark.parametrize("masked", [False, True])
def test_kd_from_precomputed_teacher_targets_equals_the_defining_sum(masked):
    g = torch.Generator().manual_seed(0)
    student = torch.randn(3, 50, 11, generator=g, dtype=torch.float64) * 4
    teacher = torch.randn(3, 50, 11, generator=g, dtype=torch.float64) * 4
    teacher[0, 0, 3] = -2000.0  # a teacher probability that underflows to exactly 0
    mask = (torch.arange(11) < 8).expand(3, 50, 11) if masked else None
    temperature = torch.tensor([1.0, 2.0, 32.0], dtype=torch.float64).view(3, 1)
    log_p = teacher_log_probs(teacher, temperature, mask)
    # the definition: sum over classes with q_T > 0 of q_T (log q_T - log q_S)
    log_q = torch.log_softmax((student / temperature.unsqueeze(-1)).masked_fill(
        ~mask if mask is not None else torch.zeros_like(student, dtype=torch.bool), float("-inf")), -1)
    reference = torch.where(log_p.exp() > 0, log_p.exp() * (log_p - log_q), torch.zeros_like(log_q)).sum(-1)
    fast = distillation_kl(student, TeacherTargets.from_log_probs(log_p), temperature, mask)
    assert torch.isfinite(fast).all()
    torch.testing.assert_close(fast, reference, rtol=1e-10, atol=1e-12)
    # a minibatch of rows selects the same targets as the full set
    rows = torch.tensor([[3, 0], [7, 7]])
    part = TeacherTargets.from_log_probs(log_p).select(slice(1, 3), rows)
    torch.testing.assert_close(part.probs, torch.stack([log_p[1, [3, 0]], log_p[2, [7, 7]]]).exp())
