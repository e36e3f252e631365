"""The distillation component: the one ``distill:`` section and the objective term it builds, shared by every recipe
that distils (``distill``; ``joint``, where each task's examples have their own teacher; ``continual``, each stage
distilled from the model of the stage before; ``transfer``, a target distilled while its embedding is transferred).

What it does, in order:

1. **Teachers** (:func:`load_teachers`): each path of ``distill.teacher`` is a run directory or a model file; its
   ``teacher_member`` (one member for every student member, ``matched`` member k for student member k, or ``all``:
   every member a teacher of its own, an ensemble of seeds). A teacher reads the student's inputs by token *name*, not
   id (:func:`token_map`): a causal teacher (a transformer) needs a token for everything the student's inputs show up
   to the distilled position only — at the operator position the numbers and the operator, not the modulus — so a
   teacher trained on mod 31 alone teaches a mod-29 student there. Where it cannot teach, the error says the fix that
   works.
2. **Targets** (:meth:`Distiller.attach`): the frozen teachers' outputs at the distilled position — logits over the
   aligned classes, or the residual stream for hidden-state divergences — computed once for every training row,
   combined over several teachers (``combine``), turned into what the divergence needs
   (:class:`grokkit.losses.Divergence`), and attached to the training rows (``EnsembleExamples.extras``) so that the
   engine slices them with each batch.
3. **The term** (:meth:`Distiller.mix`): per example ``(1 - a) * task + a * s * D(student, teacher)`` with ``a`` the
   member's alpha times its schedule and ``s`` = T^2 where ``t2_scaling`` asks for it; rows no teacher teaches (a
   ``null`` teacher of ``combine: route``) learn from their labels. The divergence's own parameters (a projection of
   hidden states) train with the model.
4. **The teacher in plain view** (:func:`describe_teachers`): each teacher's own test accuracy (from its run's
   summary) and its accuracy on the student's test pairs at the final and the distilled position, printed at start-up
   and recorded in the run's summary (``teachers``), with a warning for a teacher that never generalised.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import torch
from pydantic import Field, field_validator, model_validator

from grokkit.checkpoint import CheckpointError, load_model, run_summary
from grokkit.errors import InputError
from grokkit.losses import DIVERGENCES, Divergence, distillation_loss, teacher_log_probs
from grokkit.models import EnsembleModel, same_model
from grokkit.recipes.registry import SECTIONS, Section
from grokkit.schema import Strict
from grokkit.tasks import EnsembleExamples, Vocabulary

if TYPE_CHECKING:
    from grokkit.engine import Outputs

#: several teachers: how their outputs are combined (``auto``: the divergence's natural choice, see
#: :meth:`DistillConfig.combine_for`)
Combine = Literal["auto", "mean_probs", "mean_logits", "mean_loss", "route"]
#: rows of teacher input per forward pass (bounded memory for large student sets)
_TEACHER_CHUNK = 16384


class TeacherError(InputError):
    """A teacher that cannot teach this student (missing, corrupt or incompatible); the message says the fix."""


class DistillConfig(Strict):
    """Knowledge distillation from frozen teachers: ``(1 - alpha) * task loss + alpha * D(student, teacher)`` at one
    position, ``D`` a registered divergence (``loss``). The one section of distillation settings: the ``distill``,
    ``joint``, ``continual`` and ``transfer`` recipes all read it."""

    teacher: str | list[str | None] | None = Field(
        None, description="teacher run directory or model .safetensors file, or a list of them (several teachers, "
        "combined by `combine`; with `combine: route`, one per task of `tasks`, null: that task learns from its "
        "labels). From Python also a RunResult or a model. Not given for `continual` (each stage's teacher is the "
        "model of the stage before)")
    teacher_member: int | Literal["matched", "all"] = Field(
        0, description="which member of each teacher's ensemble teaches: a member index (it teaches every student "
        "member); `matched`: teacher member k teaches student member k (as many members); `all`: every member is a "
        "teacher of its own (an ensemble of seeds, combined by `combine`)")
    combine: Combine = Field(
        "auto", description="several teachers: mean_probs (mean of the softened distributions), mean_logits (mean "
        "of the logits, or of the hidden states), mean_loss (mean of the divergence to each teacher; the only one "
        "for hidden states of different networks), route (each example distilled from the teacher of its own task; "
        "the joint recipe). auto: route for joint, else mean_probs for KL-type losses, mean_logits for logit_mse, "
        "mean_loss for hidden-state losses")
    loss: str = Field("forward_kl", description="the divergence, a registered distillation loss "
                      "(grokkit.losses.DIVERGENCES): forward_kl (KL(teacher || student), the paper's), reverse_kl, "
                      "logit_mse, hidden_mse (residual stream; a learned projection where the widths differ), "
                      "hidden_mse_proj (always a learned projection)")
    position: Literal["operator", "final"] = Field(
        "operator", description="the sequence position distilled at: operator (the paper's: before the modulus "
        "token, so the teacher needs no token for the student's modulus) or final (where the answer is read; with "
        "alpha = 1 and no labels someone must teach it)")
    alpha: float = Field(0.5, ge=0, le=1, description="weight of the distillation term: (1 - alpha) task + alpha D; "
                         "1: no labels at all")
    temperature: float = Field(2.0, gt=0, description="softmax temperature T of both distributions (KL-type losses)")
    t2_scaling: bool = Field(False, description="multiply the term by T^2 (Hinton et al.), keeping the gradient's "
                             "scale independent of T (KL-type losses)")
    alpha_decay_start: int | None = Field(
        None, ge=0, description="step from which alpha decays linearly to 0; None: constant alpha")
    alpha_decay_steps: int = Field(0, ge=0, description="length of the linear decay of alpha (0: drop at once)")
    permute_answers: int | None = Field(
        None, ge=0, description="an intervention: permute the teacher's outputs over the student's answers 0..P-1 by "
        "a fixed random permutation (this seed) before distilling, so its answers are wrong while the shape of its "
        "distributions is kept; None: no permutation (one task)")
    class_alignment: Literal["shared", "student_range"] = Field(
        "shared", description="shared: the divergence over every output class of the student (a teacher's classes "
        "are matched by number); student_range: both sides restricted to the student's answers 0..P-1 (one task)")

    @field_validator("loss")
    @classmethod
    def _known_loss(cls, v: str) -> str:
        if v not in DIVERGENCES:
            raise ValueError(f"unknown distillation loss {v!r}; allowed: {', '.join(DIVERGENCES.names())}")
        return v

    @field_validator("teacher")
    @classmethod
    def _teachers(cls, v: str | list[str | None] | None) -> str | list[str | None] | None:
        if isinstance(v, list) and (not v or all(t is None for t in v)):
            raise ValueError("teacher: give at least one teacher (a run directory or model file)")
        return v

    @model_validator(mode="after")
    def _combine_fits_loss(self) -> DistillConfig:
        reads = self.divergence().reads
        if self.combine == "mean_probs" and reads != "log_probs":
            raise ValueError(f"combine: mean_probs averages probabilities, but loss {self.loss} compares {reads}; use "
                             "mean_logits or mean_loss")
        if self.combine == "mean_logits" and reads == "hidden":
            raise ValueError(f"combine: mean_logits would average the residual streams of different networks "
                             f"(loss {self.loss}); use mean_loss")
        return self

    def divergence(self) -> Divergence:
        return DIVERGENCES.get(self.loss)

    def teacher_list(self) -> list[str | None]:
        """The teacher paths, in order (``null`` entries: rows of that task learn from labels)."""
        if self.teacher is None:
            return []
        return list(self.teacher) if isinstance(self.teacher, list) else [self.teacher]

    def combine_for(self, multi_task: bool) -> str:
        """The combination ``auto`` stands for: per task for a multi-task run with one teacher per task, else the
        divergence's natural mean."""
        if self.combine != "auto":
            return self.combine
        if multi_task:
            return "route"
        return {"log_probs": "mean_probs", "logits": "mean_logits"}.get(self.divergence().reads, "mean_loss")

    def alpha_factor(self, step: int) -> float:
        """The schedule of alpha: 1 until ``alpha_decay_start``, then linearly to 0 over ``alpha_decay_steps`` (so the
        task loss alone finishes the job once the teacher has shaped the representation)."""
        if self.alpha_decay_start is None or step < self.alpha_decay_start:
            return 1.0
        if self.alpha_decay_steps == 0:
            return 0.0
        return max(0.0, 1.0 - (step - self.alpha_decay_start) / self.alpha_decay_steps)


SECTIONS.add("distill", Section(DistillConfig, misplaced="the recipes that distil are distill, joint, continual and "
                                "transfer; set one of them or drop `distill:`"))


def alpha_factor(d: DistillConfig, step: int) -> float:
    """:meth:`DistillConfig.alpha_factor` (kept as a function for callers of earlier versions)."""
    return d.alpha_factor(step)


# --- teachers -------------------------------------------------------------------------------------------------------


@dataclass
class Teacher:
    """One frozen teacher: a model of one member (it reads every student member's rows) or of as many members as the
    student (member k reads student member k's rows), its vocabulary, and where it came from."""

    source: str
    label: str  # which member(s): "member 0", "members matched", "member 2 of all"
    model: EnsembleModel
    vocab: Vocabulary
    #: the member index in the source's ensemble of each of this teacher's members
    members: list[int]
    summary: dict[str, Any] | None = None

    def own_record(self) -> dict[str, Any]:
        """Its own test accuracy and whether it generalised (lasting), from the run's summary (None: unknown)."""
        if self.summary is None:
            return {"own_test_acc": None, "own_threshold": None, "generalized": None}
        members = self.summary.get("members") or []
        own = [members[m] for m in self.members if m < len(members)]
        accs = [m.get("final_test_acc") for m in own if m.get("final_test_acc") is not None]
        threshold = self.summary.get("generalization_threshold")
        lasting = [m.get("steps_to_generalize_lasting") for m in own]
        generalized = None
        if own and threshold is not None:
            generalized = all(v is not None for v in lasting) if "steps_to_generalize_lasting" in own[0] else all(
                a >= threshold for a in accs)
        return {"own_test_acc": min(accs) if accs else None, "own_threshold": threshold, "generalized": generalized}


def _load(path: str) -> tuple[EnsembleModel, Vocabulary]:
    try:
        model, vocab, _ = load_model(path)
    except CheckpointError as err:
        raise TeacherError(f"cannot load teacher: {err}") from None
    return model, vocab


def _member_model(model: EnsembleModel, members: list[int]) -> EnsembleModel:
    if members == list(range(model.n_members)):
        return model.eval()
    single = same_model(model, [model.seeds[m] for m in members])
    single.load_state_dict({n: p[members] for n, p in model.state_dict().items()})
    return single.eval()


def load_teachers(d: DistillConfig, n_students: int, field_name: str = "distill") -> list[list[Teacher] | None]:
    """For each entry of ``d.teacher``: its teachers (several for ``teacher_member: all``), or None (a ``null``
    entry). Raises :class:`TeacherError` naming the field and the fix."""
    out: list[list[Teacher] | None] = []
    for path in d.teacher_list():
        if path is None:
            out.append(None)
            continue
        model, vocab = _load(path)
        summary = run_summary(path)
        m = d.teacher_member
        if m == "matched":
            if model.n_members != n_students:
                raise TeacherError(f"{field_name}.teacher_member=matched but teacher {path} has {model.n_members} "
                                   f"member(s) and the student {n_students}: give a member index, or `all`")
            out.append([Teacher(path, "members matched", model.eval(), vocab, list(range(n_students)), summary)])
        elif m == "all":
            out.append([Teacher(path, f"member {j} of {model.n_members}", _member_model(model, [j]), vocab, [j],
                                summary) for j in range(model.n_members)])
        else:
            assert isinstance(m, int)
            if m >= model.n_members:
                raise TeacherError(f"{field_name}.teacher_member={m} but teacher {path} has {model.n_members} "
                                   "member(s)")
            out.append([Teacher(path, f"member {m}", _member_model(model, [m]), vocab, [m], summary)])
    return out


def token_map(student: Vocabulary, teacher: Vocabulary) -> torch.Tensor:
    """``lut [student d_vocab]``: the teacher's id of each student token, matched by name (-1: the teacher has no
    such token)."""
    return student.ids_in(teacher)


def _fix(student: Vocabulary, teacher: Vocabulary) -> str:
    """The vocabulary a teacher retrained to teach this student would need."""
    n = max(student.n_numbers, teacher.n_numbers)
    moduli = sorted(set(student.moduli) | set(teacher.moduli))
    return f"vocab: {{n_numbers: {n}, moduli: [{', '.join(map(str, moduli))}]}}"


def teacher_tokens(teacher: Teacher, student_vocab: Vocabulary, tokens: torch.Tensor, reads: int,
                   position_name: str, field_name: str = "distill") -> torch.Tensor:
    """The student's ``tokens [K, n, T]`` in the teacher's ids, for a teacher that reads positions ``0..reads-1`` (a
    causal teacher at position p: ``p + 1``); later positions are filled with a token the teacher has. Raises
    :class:`TeacherError` naming the tokens it lacks and the fix."""
    lut = token_map(student_vocab, teacher.vocab)
    t = tokens.shape[-1]
    n_ctx = teacher.model.shape.n_ctx
    if n_ctx < reads or (not teacher.model.causal and n_ctx != t):
        raise TeacherError(f"teacher {teacher.source} reads sequences of {n_ctx} tokens; the student's are {t}")
    read = tokens[..., :reads]
    mapped = lut.to(tokens.device)[read]
    missing = sorted({int(s) for s in read[mapped < 0].unique().tolist()})
    if missing:
        names = student_vocab.token_names()
        lacks = ", ".join(names[i] for i in missing)
        where = (f"at or before the {position_name} position" if teacher.model.causal
                 else "anywhere (it reads every position)")
        hint = ""
        if teacher.model.causal and position_name == "final" and all(names[i].startswith("P=") for i in missing):
            hint = ("distil at the operator position (`distill.position: operator`, where a causal teacher reads only "
                    "the numbers and the operator), or ")
        raise TeacherError(
            f"teacher {teacher.source} has no token for {lacks}, which the student's inputs show {where}: {hint}"
            f"retrain the teacher with `{_fix(student_vocab, teacher.vocab)}` (both moduli, the larger number range)")
    out = torch.zeros_like(tokens)
    out[..., :reads] = mapped
    return out


@torch.no_grad()
def teacher_outputs(teacher: Teacher, tokens: torch.Tensor, position: int, hidden: bool) -> torch.Tensor:
    """The teacher's output at ``position`` for every student member's rows (``tokens [K, n, T]`` in its ids):
    logits ``[K, n, C_teacher]`` or, with ``hidden``, its residual stream ``[K, n, d_hidden]``. A teacher of one member
    reads every member's rows; a teacher of K members reads member k's rows with member k."""
    k, n, t = tokens.shape
    model = teacher.model

    def run(x: torch.Tensor) -> torch.Tensor:
        out = model(x, [position], hidden=True)[1] if hidden else model(x, [position])
        return out[:, :, 0]

    if model.n_members == k and k > 1:
        return torch.cat([run(tokens[:, i : i + _TEACHER_CHUNK]) for i in range(0, n, _TEACHER_CHUNK)], 1)
    flat = tokens.reshape(1, k * n, t)
    out = torch.cat([run(flat[:, i : i + _TEACHER_CHUNK]) for i in range(0, k * n, _TEACHER_CHUNK)], 1)
    return out.view(k, n, -1)


def aligned(logits: torch.Tensor, n_classes: int) -> torch.Tensor:
    """A teacher's logits over the student's first ``n_classes`` classes (classes are numbers: class c is c in both):
    its extra classes dropped, the ones it lacks at -inf (probability 0)."""
    c = logits.shape[-1]
    if c >= n_classes:
        return logits[..., :n_classes]
    pad = logits.new_full((*logits.shape[:-1], n_classes - c), -math.inf)
    return torch.cat([logits, pad], -1)


# --- the objective term ----------------------------------------------------------------------------------------------


@dataclass
class StudentView:
    """What the distillation component reads of the student's run: its vocabulary, data, positions and the
    member-level alpha and temperature."""

    vocab: Vocabulary
    train: EnsembleExamples
    test: EnsembleExamples
    seeds: list[int]
    position: int  # the distilled position's index in the sequence
    position_name: str
    final: int  # where the answer is read
    n_classes: int
    #: one task's answer range (class_alignment: student_range), None for several tasks
    answer_range: int | None
    d_hidden: int
    alpha: list[float]  # each member's alpha
    temperature: list[float]  # each member's temperature
    dtype: torch.dtype
    device: torch.device
    #: multi-task runs (combine: route): for each task in order, (name, its rows' mask function, its test set)
    tasks: list[tuple[str, Callable[[torch.Tensor], torch.Tensor], EnsembleExamples]] = field(default_factory=list)


class Distiller:
    """The distillation term of one run: the teachers, their targets (attached to the training rows), the divergence
    and its parameters. Build it with :meth:`build`, attach the targets to the training set with :meth:`attach`, and
    mix the term into the per-example loss with :meth:`mix`."""

    PREFIX = "distill."

    def __init__(self, d: DistillConfig, student: StudentView, teachers: list[list[Teacher] | None],
                 field_name: str = "distill") -> None:
        self.d = d
        self.student = student
        self.teachers = teachers
        self.field_name = field_name
        self.divergence = d.divergence()
        self.combine = d.combine_for(len(student.tasks) > 1)
        if self.combine == "route":
            if len(teachers) != len(student.tasks):
                raise TeacherError(f"{field_name}.combine=route needs one teacher per task (null: labels), in the "
                                   f"order of `tasks`; got {len(teachers)} teacher(s) for {len(student.tasks)} tasks")
        elif any(t is None for t in teachers):
            raise TeacherError(f"{field_name}.teacher: a null teacher means 'this task learns from its labels', which "
                               "only `combine: route` (one teacher per task) reads")
        if d.permute_answers is not None and (student.answer_range is None or self.divergence.reads == "hidden"):
            raise TeacherError(f"{field_name}.permute_answers permutes a teacher's outputs over one task's answers: it "
                               "needs one task and a divergence over logits or probabilities")
        if d.class_alignment == "student_range" and student.answer_range is None:
            raise TeacherError(f"{field_name}.class_alignment=student_range needs one task (one answer range)")
        self.n_aligned = student.answer_range if d.class_alignment == "student_range" else student.n_classes
        #: the teachers' groups whose targets are kept apart (mean_loss: one per teacher; else one combined group)
        self.n_groups = 1
        self.parameters: dict[str, torch.Tensor] = {}
        self.all_taught = True
        self.alpha = torch.tensor(student.alpha, dtype=student.dtype, device=student.device)
        self.temperature = torch.tensor(student.temperature, dtype=student.dtype, device=student.device)

    # ------------------------------------------------------------------------------------------ targets
    def _flat(self) -> list[Teacher]:
        return [t for group in self.teachers if group is not None for t in group]

    def _teacher_side(self, teacher: Teacher, tokens: torch.Tensor) -> torch.Tensor:
        """One teacher's raw output at the distilled position for ``tokens``: aligned logits, or hidden states."""
        reads = self.student.position + 1 if teacher.model.causal else tokens.shape[-1]
        mapped = teacher_tokens(teacher, self.student.vocab, tokens, reads, self.student.position_name, self.field_name)
        hidden = self.divergence.reads == "hidden"
        out = teacher_outputs(teacher, mapped, self.student.position, hidden)
        if hidden:
            return out.to(self.student.dtype)
        if self.divergence.reads == "logits" and out.shape[-1] < self.n_aligned:
            raise TeacherError(f"teacher {teacher.source} has {out.shape[-1]} output classes; loss {self.d.loss} needs "
                               f"all {self.n_aligned} of the student's (set class_alignment: student_range)")
        out = aligned(out, self.n_aligned)
        if self.d.permute_answers is not None:
            p = self.student.answer_range
            assert p is not None  # checked in __init__
            order = torch.randperm(p, generator=torch.Generator().manual_seed(self.d.permute_answers))
            out = torch.cat([out[..., :p][..., order], out[..., p:]], -1)
        return out

    def _prepared(self, outputs: list[torch.Tensor]) -> list[torch.Tensor]:
        """Several teachers' outputs ``[K, n, X]`` -> the divergence's input(s) after ``combine`` (one tensor, or one
        per teacher for mean_loss)."""
        s = self.student
        reads = self.divergence.reads
        t = self.temperature.cpu().view(-1, 1)
        if reads == "log_probs":
            if len(outputs) == 1:
                return [teacher_log_probs(outputs[0], t, None, s.dtype)]
            if self.combine == "mean_probs":
                probs = torch.stack([teacher_log_probs(o, t, None, s.dtype).exp() for o in outputs]).mean(0)
                return [probs.log()]
            if self.combine == "mean_logits":
                return [teacher_log_probs(torch.stack([o.to(s.dtype) for o in outputs]).mean(0), t, None, s.dtype)]
            return [teacher_log_probs(o, t, None, s.dtype) for o in outputs]
        outputs = [o.to(s.dtype) for o in outputs]
        if len(outputs) == 1 or self.combine == "mean_loss":
            return outputs
        return [torch.stack(outputs).mean(0)]

    def attach(self, train: EnsembleExamples) -> EnsembleExamples:
        """``train`` with every row's targets attached (``distill.<group>.<name>`` extras, and ``distill.taught``
        for routed runs with a task that learns from labels); sets :attr:`parameters`."""
        s = self.student
        t = self.temperature.cpu().view(-1, 1)
        if self.combine == "route":
            shape = None
            routed: dict[str, torch.Tensor] = {}
            taught = torch.zeros(train.labels.shape, dtype=torch.bool)
            for (_, mine_fn, _), group in zip(s.tasks, self.teachers):
                if group is None:
                    continue
                mine = mine_fn(train.tokens)
                targets = self.divergence.targets(
                    self._prepared([self._teacher_side(tc, train.tokens) for tc in group])[0], t)
                for key, value in targets.items():
                    if key not in routed:
                        shape = value.shape
                        routed[key] = torch.zeros(shape, dtype=value.dtype)
                    m = mine.view(*mine.shape, *([1] * (value.dim() - 2)))
                    routed[key] = torch.where(m, value, routed[key])
                taught |= mine
            self.all_taught = bool(taught.all())
            extras = {f"{self.PREFIX}0.{k}": v for k, v in routed.items()}
            if not self.all_taught:
                extras[f"{self.PREFIX}taught"] = taught
            self._set_parameters(self._flat()[:1])
            return train.with_extras(extras)
        prepared = self._prepared([self._teacher_side(tc, train.tokens) for tc in self._flat()])
        self.n_groups = len(prepared)
        extras = {}
        for g, side in enumerate(prepared):
            for key, value in self.divergence.targets(side, t).items():
                extras[f"{self.PREFIX}{g}.{key}"] = value
        self._set_parameters(self._flat() if self.n_groups > 1 else self._flat()[:1])
        return train.with_extras(extras)

    def _set_parameters(self, teachers: list[Teacher]) -> None:
        self.parameters = {}
        for g, teacher in enumerate(teachers):
            for name, value in self.divergence.parameters(self.student.d_hidden, teacher.model.d_hidden,
                                                          self.student.seeds).items():
                self.parameters[f"{g}.{name}"] = value

    # ------------------------------------------------------------------------------------------ the term
    def term(self, student_out: torch.Tensor, batch: EnsembleExamples, members: slice,
             params: dict[str, torch.Tensor]) -> torch.Tensor:
        """Per-example divergence ``[K, n]`` (mean over teacher groups) of the student's output at the distilled
        position (``[K, n, C]`` logits, or ``[K, n, d]`` hidden states)."""
        t = self.temperature[members].view(-1, 1)
        if self.divergence.reads != "hidden":
            student_out = student_out[..., : self.n_aligned]
        total = None
        for g in range(self.n_groups):
            head = f"{self.PREFIX}{g}."
            targets = {k[len(head):]: v for k, v in batch.extras.items() if k.startswith(head)}
            own = {k[len(f"{g}."):]: v for k, v in params.items() if k.startswith(f"{g}.")}
            value = self.divergence(student_out, targets, t, own)
            total = value if total is None else total + value
        assert total is not None
        return total if self.n_groups == 1 else total / self.n_groups

    def mix(self, task: torch.Tensor | None, out: Outputs, index: int, batch: EnsembleExamples, members: slice,
            step: int, params: dict[str, torch.Tensor], task_term: Callable[[], torch.Tensor]) -> torch.Tensor:
        """The per-example loss: ``(1 - a) * task + a * s * D`` with ``a`` = each member's alpha times the schedule,
        ``s`` = T^2 where asked; rows without a teacher learn from the task loss alone. ``task`` may be None: then
        ``task_term()`` computes it only where it is needed (alpha 1 on fully taught rows needs none)."""
        student = out.hidden[:, :, index] if self.divergence.reads == "hidden" else out.logits[:, :, index]
        assert student is not None
        value = self.term(student, batch, members, params)
        d = self.d
        factor = d.alpha_factor(step)
        scaled = d.t2_scaling and self.divergence.t2_scaling
        if self.all_taught and not scaled and all(v * factor >= 1.0 for v in self.student.alpha[members]):
            return value  # no labels: the task loss is not even computed
        a = self.alpha[members].view(-1, 1) * factor
        t = self.temperature[members].view(-1, 1)
        task = task if task is not None else task_term()
        mixed = distillation_loss(task, value, a, t, scaled)
        if self.all_taught:
            return mixed
        return torch.where(batch.extras[f"{self.PREFIX}taught"], mixed, task)

    # ------------------------------------------------------------------------------------------ diagnostics
    @torch.no_grad()
    def agreement(self, teacher: Teacher, data: EnsembleExamples, position: int, position_name: str,
                  answer_range: int) -> float | None:
        """How often the teacher's argmax at ``position`` (over the answers 0..P-1) is the student's answer on
        ``data``; None where the teacher cannot read the student's inputs up to that position."""
        reads = position + 1 if teacher.model.causal else data.tokens.shape[-1]
        try:
            mapped = teacher_tokens(teacher, self.student.vocab, data.tokens, reads, position_name, self.field_name)
        except TeacherError:
            return None
        logits = aligned(teacher_outputs(teacher, mapped, position, False), answer_range)
        hits = (logits.argmax(-1) == data.labels).double() * data.weight
        return float(hits.sum() / data.weight.sum())


def describe_teachers(distiller: Distiller) -> tuple[list[dict[str, Any]], list[str]]:
    """Per teacher: its own test accuracy and threshold (from its run), whether it generalised, and its accuracy on
    the student's test pairs at the final and at the distilled position (the teacher's argmax over the student's
    answers); and the lines to print at start-up (warnings for a teacher that never generalised)."""
    s = distiller.student
    records, lines = [], []
    pairs = list(zip([name for name, _, _ in s.tasks], distiller.teachers)) if distiller.combine == "route" else [
        (None, g) for g in distiller.teachers]
    for task_name, group in pairs:
        if group is None:
            continue
        test = next(t for name, _, t in s.tasks if name == task_name) if task_name is not None else s.test
        answer_range = int(test.answer_range.max())
        for teacher in group:
            rec: dict[str, Any] = {"source": teacher.source, "member": teacher.label, **teacher.own_record()}
            if task_name is not None:
                rec["task"] = task_name
            rec["acc_on_student_test"] = {
                "final": distiller.agreement(teacher, test, s.final, "final", answer_range),
                s.position_name: distiller.agreement(teacher, test, s.position, s.position_name, answer_range)}
            records.append(rec)
            own = ("own test accuracy unknown (a bare model file: no run summary beside it)"
                   if rec["own_test_acc"] is None else f"own test accuracy {rec['own_test_acc']:.4f}")
            on = ", ".join(f"{v:.4f} at the {k} position" if v is not None else f"- at the {k} position (it cannot "
                           "read the student's tokens there)" for k, v in rec["acc_on_student_test"].items())
            lines.append(f"teacher {teacher.source} ({teacher.label}{', task ' + task_name if task_name else ''}): "
                         f"{own}; on the student's test pairs {on}")
            if rec["generalized"] is False:
                lines.append(f"warning: teacher {teacher.source} ({teacher.label}) never generalised on its own test "
                             f"split (final test accuracy {rec['own_test_acc']:.4f}, threshold "
                             f"{rec['own_threshold']}): it teaches anyway")
    return records, lines
