"""Recipe ``distill``: the task loss plus KL to a frozen teacher at a chosen position (the paper's equation 4).

The teacher is frozen and training is over a fixed set of inputs, so its softened distributions are computed once,
before training, for every training row of every member.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import torch
from pydantic import Field

from grokkit.checkpoint import CheckpointError, load_model
from grokkit.engine import Objective
from grokkit.errors import InputError
from grokkit.losses import TeacherTargets, distillation_kl, distillation_loss, teacher_log_probs
from grokkit.models import EnsembleModel, same_model
from grokkit.recipes.common import INITIALISERS, Setup
from grokkit.recipes.registry import SECTIONS, Recipe, Section, register
from grokkit.recipes.scratch import task_objective_term
from grokkit.schema import Strict
from grokkit.tasks import POSITIONS, Vocabulary

if TYPE_CHECKING:
    from grokkit.config import RunConfig


class DistillSettings(Strict):
    """The distillation settings every recipe that distils shares (``distill:``, ``joint:``, ``continual:``): the
    weight of the KL term, the temperature of both softmaxes and the sequence position distilled at."""

    alpha: float = Field(0.5, ge=0, le=1, description="weight of the KL term: (1 - alpha) CE + alpha KL")
    temperature: float = Field(2.0, gt=0)
    position: Literal["operator", "final"] = "operator"


class DistillConfig(DistillSettings):
    """Recipe ``distill`` (and ``transfer.target_recipe: distill``): the task loss plus KL to a frozen teacher."""

    teacher: str = Field(..., description="teacher run directory or model .safetensors file")
    teacher_member: int | Literal["matched"] = Field(
        0, description="which member of the teacher's ensemble teaches every student member; `matched`: teacher "
        "member k teaches student member k (the teacher must have as many members)")
    class_alignment: Literal["shared", "student_range"] = Field(
        "shared",
        description="shared: KL over all of the shared output classes; student_range: both distributions restricted "
        "to the student's answers 0..P-1 and renormalised",
    )
    t2_scaling: bool = Field(False, description="multiply the KL term by T^2 (Hinton et al.)")
    alpha_decay_start: int | None = Field(
        None, ge=0, description="step from which alpha decays linearly to 0; None: constant alpha"
    )
    alpha_decay_steps: int = Field(0, ge=0, description="length of the linear decay of alpha (0: drop at once)")


class TeacherError(InputError):
    """A teacher that cannot teach this student (missing, corrupt or incompatible)."""


def check_compatible(teacher: EnsembleModel, teacher_vocab: Vocabulary, student: EnsembleModel,
                     student_vocab: Vocabulary, source: str) -> None:
    """Raise :class:`TeacherError` unless the teacher reads the student's inputs as the student does: the same token
    layout (the name of every token id, as stored in model files), the same sequence layout and output classes."""
    problems = []
    shared = range(min(student_vocab.d_vocab, teacher_vocab.d_vocab))
    mismatch = student_vocab.layout_mismatch(teacher_vocab, shared)
    if mismatch is not None or teacher_vocab.n_numbers != student_vocab.n_numbers:
        problems.append(
            f"vocabulary differs: teacher has n_numbers={teacher_vocab.n_numbers}, "
            f"moduli={list(teacher_vocab.moduli)}; "
            f"student has n_numbers={student_vocab.n_numbers}, moduli={list(student_vocab.moduli)} "
            f"({mismatch or 'the number tokens differ'}; set the student's `vocab:` to the teacher's)"
        )
    t, s = teacher.shape, student.shape
    if t.n_ctx != s.n_ctx:
        problems.append(f"sequence layout differs: teacher n_ctx={t.n_ctx}, student n_ctx={s.n_ctx}")
    if t.d_vocab_out != s.d_vocab_out:
        problems.append(f"output classes differ: teacher {t.d_vocab_out}, student {s.d_vocab_out}")
    if problems:
        raise TeacherError(f"teacher {source} is incompatible with this student:\n  - " + "\n  - ".join(problems))


def load_teacher(path: str, member: int | str, setup: Setup, field: str = "distill") -> EnsembleModel:
    """The frozen teacher at ``path``: its ``member`` alone, or (``"matched"``) all its members, one per student
    member. Raises :class:`TeacherError` naming ``field`` when it cannot teach this student."""
    try:
        teacher, vocab, _ = load_model(path)
    except CheckpointError as err:
        raise TeacherError(f"cannot load teacher: {err}") from None
    check_compatible(teacher, vocab, setup.model, setup.vocab, path)
    used = [setup.train.tokens, setup.test.tokens] + ([setup.val.tokens] if setup.val is not None else [])
    unknown = sorted({int(t) for t in torch.cat([u.flatten() for u in used]).unique() if int(t) >= vocab.d_vocab})
    if unknown:
        names = setup.vocab.token_names()
        raise TeacherError(f"teacher {path} has no token for {', '.join(names[i] for i in unknown)}, which the "
                           "student's data use")
    if member == "matched":
        if teacher.n_members != setup.model.n_members:
            raise TeacherError(f"{field}.teacher_member=matched but teacher {path} has {teacher.n_members} "
                               f"member(s) and the student {setup.model.n_members}")
        return teacher.eval()
    assert isinstance(member, int)
    if member >= teacher.n_members:
        raise TeacherError(f"{field}.teacher_member={member} but teacher {path} has {teacher.n_members} member(s)")
    single = same_model(teacher, [teacher.seeds[member]])
    single.load_state_dict({n: p[member : member + 1] for n, p in teacher.state_dict().items()})
    return single.eval()


@torch.no_grad()
def teacher_logits(teacher: EnsembleModel, tokens: torch.Tensor, position: int) -> torch.Tensor:
    """The teacher's logits at ``position`` for every member's rows: ``tokens [K, n, T]`` -> ``[K, n, C]``. A
    teacher of one member reads every member's rows; a teacher of K members reads member k's rows with member k."""
    k, n, t = tokens.shape
    if teacher.n_members == k and k > 1:
        return torch.cat([teacher(tokens[:, i : i + 16384], [position]) for i in range(0, n, 16384)], 1)[:, :, 0]
    flat = tokens.reshape(1, k * n, t)
    out = torch.cat([teacher(flat[:, i : i + 16384], [position]) for i in range(0, k * n, 16384)], 1)
    return out.view(k, n, -1)


def alpha_factor(d: DistillConfig, step: int) -> float:
    """The distillation weight's schedule: 1 until ``alpha_decay_start``, then linearly to 0 over
    ``alpha_decay_steps`` (so the task loss alone finishes the job once the teacher has shaped the representation)."""
    if d.alpha_decay_start is None or step < d.alpha_decay_start:
        return 1.0
    if d.alpha_decay_steps == 0:
        return 0.0
    return max(0.0, 1.0 - (step - d.alpha_decay_start) / d.alpha_decay_steps)


def prepare(setup: Setup) -> None:
    cfg, d = setup.cfg, setup.cfg.distill
    assert d is not None
    teacher = load_teacher(d.teacher, d.teacher_member, setup)
    dtype = getattr(torch, cfg.loss.dtype)
    alpha = torch.tensor(cfg.member_values("alpha"), dtype=dtype)
    temperature = torch.tensor(cfg.member_values("temperature"), dtype=dtype)
    # the answer's position: the modular tasks' final token, or the task's own (the last bit or pixel)
    final_pos = setup.task.final_position if not cfg.task.is_modular else POSITIONS["final"]
    position = final_pos if d.position == "final" else POSITIONS[d.position]
    train = setup.train
    # student_range: both distributions over the student's answers 0..P-1 only (one task, so a slice)
    n_aligned = setup.task.answer_range if d.class_alignment == "student_range" else setup.vocab.n_classes
    targets = teacher_log_probs(teacher_logits(teacher, train.tokens, position)[..., :n_aligned],
                                temperature.view(-1, 1), None, dtype)
    def agreement(at: int) -> float:  # how often the teacher's argmax at a position is the student's answer
        logits = teacher_logits(teacher, setup.test.tokens, at)[..., : setup.task.answer_range]
        hits = (logits.argmax(-1) == setup.test.labels).double() * setup.test.weight
        return float(hits.sum() / setup.test.weight.sum())

    # Diagnostics: the teacher's own answer (final position), and what the student is pulled towards at T -> 0
    setup.info["teacher_acc_on_student_test"] = agreement(final_pos)
    if position != final_pos:
        setup.info["teacher_kd_acc_on_student_test"] = agreement(position)
    device = torch.device(cfg.training.device)
    teacher_targets = TeacherTargets.from_log_probs(targets).to(device)
    alpha, temperature = alpha.to(device), temperature.to(device)
    positions = sorted({final_pos, position})
    final_i, kd_i = positions.index(final_pos), positions.index(position)

    def loss(logits: torch.Tensor, batch, rows: torch.Tensor | None, members_sl: slice, step: int) -> torch.Tensor:
        task = task_objective_term(setup, logits[:, :, final_i], batch)
        t = temperature[members_sl].view(-1, 1)
        kl = distillation_kl(logits[:, :, kd_i, :n_aligned], teacher_targets.select(members_sl, rows), t, None, dtype)
        a = alpha[members_sl].view(-1, 1) * alpha_factor(d, step)
        return distillation_loss(task, kl, a, t, d.t2_scaling)

    setup.objective = Objective(positions=positions, loss=loss, final=final_pos)


SECTIONS.add("distill", Section(DistillConfig, misplaced="set `recipe: distill` (or, with recipe transfer, "
                                "`transfer.target_recipe: distill`) or drop it"))


def _check(cfg: RunConfig) -> None:
    if cfg.distill is None:
        raise ValueError("recipe `distill` needs a `distill:` section with at least `teacher:`")
    if not cfg.task.is_modular and cfg.distill.position != "final":
        raise ValueError(f"task.kind={cfg.task.kind} has no operator position: set `distill.position: final`")


register(Recipe("distill", prepare=prepare, sections=("distill", *INITIALISERS), check=_check, bit_tasks=True,
                summary="the task loss plus KL to a frozen teacher at a chosen position"))
