"""The training engine: one loop for every recipe, training an ensemble of K members in one batched computation.

A recipe supplies the data (one train and test set per member) and an :class:`Objective` (which positions to score,
how per-example losses are formed and, optionally, what an evaluation measures). The engine takes only the settings
it needs (:class:`EngineSettings`, made from a run config by :meth:`EngineSettings.from_config`) and does the rest:
optimiser and gradient transforms, evaluation, per-member metrics and ``steps_to_generalize``, NaN isolation, early
stopping, checkpoints and resume.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch.func import functional_call

from grokkit.checkpoint import CHECKPOINT_FILE, load_checkpoint, save_checkpoint
from grokkit.losses import collapsed_rows, task_loss
from grokkit.losses import restrict as restrict_classes
from grokkit.models import EnsembleModel
from grokkit.optim import EnsembleOptimizer, build_transform
from grokkit.runtime import tune_allocator
from grokkit.sections import LossConfig, OptimizerConfig, TrainingConfig
from grokkit.tasks import POSITIONS, EnsembleExamples

FINAL = POSITIONS["final"]
#: the names of an objective's own parameters among the trained ones (and in checkpoints)
OBJECTIVE_PREFIX = "objective."
#: Rows (examples x scored positions) per member chunk on CPU: the activations of a chunk stay in cache.
CPU_CHUNK_ROWS = 8192


class Outputs(NamedTuple):
    """What the model computes at the scored positions for a batch: ``logits [K, n, len(positions), C]`` and, when
    the objective asks for it (``Objective.hidden``), the residual stream the unembedding reads, ``hidden [K, n,
    len(positions), d_hidden]`` (else None)."""

    logits: torch.Tensor
    hidden: torch.Tensor | None = None


#: ``loss(out, batch, members, step, params) -> [K, n]`` (see :class:`Objective`)
ObjectiveLoss = Callable[[Outputs, EnsembleExamples, slice, int, dict[str, torch.Tensor]], torch.Tensor]


@dataclass
class Objective:
    """What a recipe trains for.

    ``positions``: the sequence positions the model must score (the final position must be among them).
    ``loss(out, batch, members, step, params)``: per-example losses ``[K, n]`` from the model's :class:`Outputs` at
    ``positions``; ``batch`` holds the rows being trained on, with any per-row targets the recipe attached
    (``EnsembleExamples.extras``, sliced with the rows); ``members`` is the member slice being computed; ``step`` the
    number of optimiser steps taken so far (for schedules); ``params`` the member slice of the objective's own
    trained parameters (below), with gradients.
    ``final``: the position the answer is read from (evaluation, accuracy); the modular tasks' final token by
    default, the last bit for bit tasks.
    ``hidden``: the loss reads the residual stream (``out.hidden``).
    ``parameters``: tensors ``[K, ...]`` the loss itself trains (e.g. a projection of hidden-state distillation),
    optimised with the model's parameters by the same optimiser and checkpointed with them; not part of the model.
    ``evaluate(model, data) -> (loss [K], accuracy [K])``: what an evaluation measures on a data set (train, test,
    validation, each watched task); None: the task loss and accuracy at ``final`` (:meth:`Trainer.task_metrics`).
    ``positions_at(step)``: the positions a training step needs, a subset of ``positions`` in the same order (e.g.
    only the final one once a schedule has switched the other terms off: no work for terms weighted zero); None:
    always ``positions``. ``loss`` then receives outputs at those positions only."""

    positions: list[int]
    loss: ObjectiveLoss
    final: int = FINAL
    evaluate: Callable[[Any, EnsembleExamples], tuple[torch.Tensor, torch.Tensor]] | None = None
    hidden: bool = False
    parameters: dict[str, torch.Tensor] = field(default_factory=dict)
    positions_at: Callable[[int], list[int]] | None = None

    def step_positions(self, step: int) -> list[int]:
        """The positions training step ``step`` scores (:attr:`positions_at`, or all of :attr:`positions`)."""
        return self.positions if self.positions_at is None else self.positions_at(step)


@dataclass(frozen=True)
class EngineSettings:
    """Everything the engine reads of a run: the members' seeds and their own learning rates and weight decays, the
    optimiser, the training loop and the loss (kind, dtype, answer-range restriction)."""

    seeds: list[int]
    lr: list[float]
    weight_decay: list[float]
    optimizer: OptimizerConfig
    training: TrainingConfig
    loss: LossConfig

    @classmethod
    def from_config(cls, cfg: Any) -> EngineSettings:
        """From a :class:`~grokkit.config.RunConfig` (member values resolved by ``cfg.member_values``)."""
        return cls([m.seed for m in cfg.member_list()], cfg.member_values("lr"), cfg.member_values("weight_decay"),
                   cfg.optimizer, cfg.training, cfg.loss)


@dataclass
class MemberResult:
    seed: int
    final_train_acc: float | None = None
    final_test_acc: float | None = None
    final_train_loss: float | None = None
    final_test_loss: float | None = None
    steps_to_generalize: int | None = None
    #: the first evaluated step from which test accuracy stays >= the threshold at every later evaluation, provided the
    #: run went on for at least the hold window (``training.hold_window`` of the budget) after it (a dip after the
    #: first crossing moves it later; None if the last evaluation is below, or if the accuracy was above the
    #: threshold for less than the window at the end: censored); see :func:`lasting_step`
    steps_to_generalize_lasting: int | None = None
    #: with a validation split: the same on validation accuracy, and the last validation accuracy
    val_steps_to_generalize_lasting: int | None = None
    final_val_acc: float | None = None
    final_val_loss: float | None = None
    failed: bool = False
    failed_step: int | None = None
    error: str | None = None
    #: per evaluated task (multi-task recipes, eval_tasks): final_test_acc and steps_to_generalize
    tasks: dict[str, dict[str, Any]] | None = None


def lasting_step(steps: list[int], accs: list[float], threshold: float, window: float,
                 end: float | None = None) -> int | None:
    """Lasting generalisation, the one definition every summary, early stop and table uses: the first of ``steps``
    from which ``accs`` stays >= ``threshold`` at every later evaluation (the start of the final unbroken run at or
    above it), provided it was seen to hold for at least ``window`` steps, ``end - start >= window`` (``end``: the
    step the run ended at, by default the last of ``steps``). None if the last value is below, if there is none, or
    if the run ended less than ``window`` steps after the start: a crossing inside the window is censored (the run
    ended before it could show the accuracy lasts). ``window`` is ``training.hold_steps()`` for a run's own curve."""
    start = None
    for step, acc in zip(steps, accs):
        if acc >= threshold:
            start = step if start is None else start
        else:
            start = None
    if start is None:
        return None
    last = steps[-1] if end is None else end
    return start if last - start >= window else None


@dataclass
class TrainResult:
    members: list[MemberResult]
    rows: list[dict[str, Any]]
    steps_done: int
    wall_seconds: float
    extra: dict[str, Any] = field(default_factory=dict)


def member_chunk_size(training: TrainingConfig, n_members: int, rows_per_member: int, device: torch.device) -> int:
    if training.member_chunk is not None:
        return min(training.member_chunk, n_members)
    if device.type != "cpu":
        return n_members
    return max(1, min(n_members, CPU_CHUNK_ROWS // max(1, rows_per_member)))


class Trainer:
    def __init__(
        self,
        cfg: Any,
        model: EnsembleModel,
        train: EnsembleExamples,
        test: EnsembleExamples,
        objective: Objective,
        checkpoint_dir: Path | None = None,
        log: Callable[[str], None] = print,
        task_sets: dict[str, EnsembleExamples] | None = None,
        frozen: list[str] | None = None,
        val: EnsembleExamples | None = None,
    ) -> None:
        """``cfg``: the :class:`EngineSettings` (or a run config, from which they are taken)."""
        self.settings = cfg if isinstance(cfg, EngineSettings) else EngineSettings.from_config(cfg)
        settings = self.settings
        self.device = torch.device(settings.training.device)
        if self.device.type == "cpu":
            tune_allocator()
        self.model = model.to(self.device)
        self.train_set, self.test_set = train.to(self.device), test.to(self.device)
        self.task_sets = {name: t.to(self.device) for name, t in (task_sets or {}).items()}
        self.val_set = val.to(self.device) if val is not None else None
        self.objective = objective
        self.final_index = objective.positions.index(objective.final)
        self.checkpoint_dir = checkpoint_dir
        self.log = log
        self.seeds = list(settings.seeds)
        k = len(self.seeds)
        opt = settings.optimizer
        lr = torch.tensor(settings.lr, device=self.device)
        wd = torch.tensor(settings.weight_decay, device=self.device)
        for p in self.model.parameters():
            p.requires_grad_(False)
        # frozen parameters stay in the model (the forward pass reads them) but are never optimised
        self.frozen = list(frozen or [])
        unknown = sorted(set(self.frozen) - {n for n, _ in self.model.named_parameters()})
        if unknown:
            raise ValueError(f"cannot freeze {unknown}: the model has no such parameters")
        self.param_names = [n for n, _ in self.model.named_parameters() if n not in self.frozen]
        self.params = [p for n, p in self.model.named_parameters() if n not in self.frozen]
        # the objective's own parameters (e.g. a projection) train with the model's, after them
        self.objective_params = {n: p.detach().to(self.device).clone() for n, p in objective.parameters.items()}
        bad = [n for n, p in self.objective_params.items() if p.shape[0] != k]
        if bad:
            raise ValueError(f"objective parameters {bad} need a leading member axis of {k}")
        self.n_model_params = len(self.params)
        self.param_names += [OBJECTIVE_PREFIX + n for n in self.objective_params]
        self.params += list(self.objective_params.values())
        self.optimizer = EnsembleOptimizer(
            self.params, opt.name, lr, wd, tuple(opt.betas), opt.eps, opt.momentum, opt.warmup_steps
        )
        self.transform = build_transform([t.model_dump() for t in opt.transforms])
        self.transform_state = self.transform.init(self.params)
        self.loss_dtype = getattr(torch, settings.loss.dtype)
        self.active = torch.ones(k, dtype=torch.bool, device=self.device)
        self.failed_step = torch.full((k,), -1, dtype=torch.long, device=self.device)
        n_train = self.train_set.tokens.shape[1]
        batch = settings.training.batch_size
        self.batch_size = batch if batch and batch < n_train else None
        rows = (self.batch_size or n_train) * len(objective.positions)
        self.chunk = member_chunk_size(settings.training, k, rows, self.device)
        self.generators = [torch.Generator().manual_seed(s + 1_000_003) for s in self.seeds]
        self.n_valid = self.train_set.weight.sum(1).long().tolist()  # real (unpadded) training rows per member
        self._grad_buffers: list[torch.Tensor] | None = None
        self.step = 0
        self.rows: list[dict[str, Any]] = []
        self.steps_to_generalize: list[int | None] = [None] * k
        self.task_steps: list[dict[str, int | None]] = [{name: None for name in self.task_sets} for _ in range(k)]
        self.last_eval_step = -1
        self.evals_since_all_generalized = 0
        self.elapsed_before = 0.0
        #: called after each checkpoint is saved (e.g. to write the metrics so far next to it)
        self.on_checkpoint: Callable[[Trainer], None] | None = None
        #: called at every step ``training.snapshot_every`` / ``snapshot_steps`` name, before that step's update (the
        #: run directory writes the weights there); None: no snapshots
        self.on_snapshot: Callable[[Trainer], None] | None = None
        self._last_snapshot = -1

    # ------------------------------------------------------------------------------------------------ one step
    def _batch(self) -> EnsembleExamples:
        """The batch: the full training set, or each member's random rows (their extras with them)."""
        if self.batch_size is None:
            return self.train_set
        picks = []
        for g, n_valid in zip(self.generators, self.n_valid):
            idx = torch.randperm(n_valid, generator=g)[: self.batch_size]
            if len(idx) < self.batch_size:  # tiny member set: fill with its weight-0 padding rows
                idx = torch.cat([idx, torch.arange(n_valid, n_valid + self.batch_size - len(idx))])
            picks.append(idx)
        rows = torch.stack(picks).to(self.device)
        return self.train_set.select(rows)

    def _member_losses(self, params: dict[str, torch.Tensor], batch: EnsembleExamples, members: slice) -> torch.Tensor:
        sub = batch.members(members)
        model_params = {n: p for n, p in params.items() if not n.startswith(OBJECTIVE_PREFIX)}
        own = {n[len(OBJECTIVE_PREFIX):]: p for n, p in params.items() if n.startswith(OBJECTIVE_PREFIX)}
        positions = self.objective.step_positions(self.step)
        if self.objective.hidden:
            logits, hidden = functional_call(self.model, model_params, (sub.tokens, positions), {"hidden": True})
            out = Outputs(logits, hidden)
        else:
            out = Outputs(functional_call(self.model, model_params, (sub.tokens, positions)))
        per_example = self.objective.loss(out, sub, members, self.step, own)
        w = sub.weight.to(per_example.dtype)
        return (per_example * w).sum(1) / w.sum(1)

    def train_step(self) -> torch.Tensor:
        """One optimiser step for every member; returns the per-member objective ``[K]`` before the step."""
        batch = self._batch()
        k = len(self.seeds)
        if self.chunk < k and self._grad_buffers is None:  # chunks write their gradients here; allocated once
            self._grad_buffers = [torch.empty_like(p) for p in self.params]
        grads = self._grad_buffers if self.chunk < k else None
        losses = []
        for start in range(0, k, self.chunk):
            members = slice(start, min(k, start + self.chunk))
            leaves = {n: p[members].detach().requires_grad_() for n, p in zip(self.param_names, self.params)}
            loss = self._member_losses(leaves, batch, members)
            finite = torch.isfinite(loss)
            torch.where(finite, loss, torch.zeros_like(loss)).sum().backward()
            losses.append(loss.detach())
            if grads is None:
                grads = [leaves[n].grad for n in self.param_names]
            else:
                for g, n in zip(grads, self.param_names):
                    g[members] = leaves[n].grad
        loss = torch.cat(losses)
        newly_failed = self.active & ~torch.isfinite(loss)
        self.failed_step = torch.where(newly_failed, torch.full_like(self.failed_step, self.step), self.failed_step)
        self.active &= ~newly_failed
        assert grads is not None
        grads, self.transform_state = self.transform.update(grads, self.params, self.transform_state)
        # Masking failed members costs a few full-size copies; on CPU skip it while every member is healthy (reading
        # the flag is free there), on accelerators always mask rather than synchronise every step.
        all_ok = self.device.type == "cpu" and bool(self.active.all())
        self.optimizer.step(grads, None if all_ok else self.active)
        self.step += 1
        return loss

    # ------------------------------------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def evaluate_set(self, data: EnsembleExamples) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-member loss and accuracy on ``data``, ``([K], [K])``: the objective's ``evaluate``, by default
        :meth:`task_metrics`."""
        if self.objective.evaluate is not None:
            return self.objective.evaluate(self.model, data)
        return self.task_metrics(data)

    def _eval_chunk_rows(self, k: int) -> int:
        """Rows per member chunk of an evaluation's forward pass (activations stay in cache on CPU)."""
        return max(1, (CPU_CHUNK_ROWS * 4 if self.device.type == "cpu" else 1 << 20) // max(1, k))

    @torch.no_grad()
    def task_metrics(self, data: EnsembleExamples) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-member task loss and accuracy at the objective's final position, ``([K], [K])``."""
        k, n = data.labels.shape
        chunk_rows = self._eval_chunk_rows(k)
        loss_sum = torch.zeros(k, dtype=torch.float64, device=self.device)
        correct = torch.zeros(k, dtype=torch.float64, device=self.device)
        restrict = self.settings.loss.restrict_to_answer_range
        uniform = int(data.answer_range.max()) if bool((data.answer_range == data.answer_range.max()).all()) else None
        for start in range(0, n, chunk_rows):
            sl = slice(start, start + chunk_rows)
            logits = self.model(data.tokens[:, sl], [self.objective.final])[:, :, 0]
            labels, w = data.labels[:, sl], data.weight[:, sl].double()
            answer_range = (uniform or data.answer_range[:, sl]) if restrict else None
            loss = task_loss(logits, labels, self.settings.loss.kind, answer_range, self.loss_dtype)
            logits, mask = restrict_classes(logits, answer_range)
            if mask is not None:
                logits = logits.masked_fill(~mask, float("-inf"))
            loss_sum += (loss.double() * w).sum(1)
            correct += ((logits.argmax(-1) == labels).double() * w).sum(1)
        total = data.weight.double().sum(1)
        return loss_sum / total, correct / total

    @torch.no_grad()
    def softmax_collapse(self, data: EnsembleExamples) -> torch.Tensor:
        """Per member ``[K]``: the share of ``data``'s rows whose float32 ``sum_c exp(z_c - max z)`` over the scored
        classes (the answer range when the loss is restricted to it) equals exactly 1: the rows whose loss, and so
        gradient, has underflowed to zero (Prieto et al.'s softmax collapse)."""
        k, n = data.labels.shape
        chunk_rows = self._eval_chunk_rows(k)
        collapsed = torch.zeros(k, dtype=torch.float64, device=self.device)
        restrict = self.settings.loss.restrict_to_answer_range
        for start in range(0, n, chunk_rows):
            sl = slice(start, start + chunk_rows)
            logits = self.model(data.tokens[:, sl], [self.objective.final])[:, :, 0]
            logits, mask = restrict_classes(logits, data.answer_range[:, sl] if restrict else None)
            if mask is not None:
                logits = logits.masked_fill(~mask, float("-inf"))
            collapsed += (collapsed_rows(logits).double() * data.weight[:, sl].double()).sum(1)
        return collapsed / data.weight.double().sum(1)

    def evaluate(self) -> None:
        train_loss, train_acc = self.evaluate_set(self.train_set)
        test_loss, test_acc = self.evaluate_set(self.test_set)
        norms = self.model.weight_norm()
        per_task = {name: self.evaluate_set(data) for name, data in self.task_sets.items()}
        collapse = (self.softmax_collapse(self.train_set).cpu().tolist()
                    if self.settings.training.softmax_collapse else None)
        val = None
        if self.val_set is not None:
            val_loss, val_acc = self.evaluate_set(self.val_set)
            val = (val_loss.cpu().tolist(), val_acc.cpu().tolist())
        active = self.active.tolist()
        threshold = self.settings.training.generalization_threshold
        values = torch.stack([train_loss, train_acc, test_loss, test_acc, norms.double()]).cpu().tolist()
        task_values = {name: (loss.cpu().tolist(), acc.cpu().tolist()) for name, (loss, acc) in per_task.items()}
        for k, seed in enumerate(self.seeds):
            if not active[k]:
                continue
            trl, tra, tel, tea, wn = (v[k] for v in values)
            if not all(math.isfinite(x) for x in (trl, tel, wn)):
                self._fail(k, "non-finite metrics at evaluation")
                continue
            row = dict(step=self.step, member=k, seed=seed, train_loss=trl, train_acc=tra,
                       test_loss=tel, test_acc=tea, weight_norm=wn)
            if val is not None:
                row["val_loss"], row["val_acc"] = val[0][k], val[1][k]
            if collapse is not None:
                row["train_sc"] = collapse[k]
            for name, (losses, accs) in task_values.items():
                row[f"test_loss@{name}"], row[f"test_acc@{name}"] = losses[k], accs[k]
                if self.task_steps[k][name] is None and accs[k] >= threshold:
                    self.task_steps[k][name] = self.step
            self.rows.append(row)
            if self.steps_to_generalize[k] is None and tea >= threshold:
                self.steps_to_generalize[k] = self.step
        self.last_eval_step = self.step

    def _fail(self, k: int, why: str) -> None:
        self.active[k] = False
        if int(self.failed_step[k]) < 0:
            self.failed_step[k] = self.step
        self.log(f"member {k} (seed {self.seeds[k]}) failed at step {int(self.failed_step[k])}: {why}; "
                 "the other members go on")

    def _report_new_failures(self, reported: set[int]) -> None:
        for k in (~self.active).nonzero().flatten().tolist():
            if k not in reported:
                reported.add(k)
                self.log(f"member {k} (seed {self.seeds[k]}) failed at step {int(self.failed_step[k])}: "
                         "loss is NaN or inf; it is frozen there and the other members go on")

    # ------------------------------------------------------------------------------------------------ checkpoints
    def state_tensors(self) -> dict[str, torch.Tensor]:
        out = {f"model.{n}": p for n, p in self.model.named_parameters()}
        out.update({OBJECTIVE_PREFIX + n: p for n, p in self.objective_params.items()})
        out.update({f"optim.{k}": v for k, v in self.optimizer.state_dict().items()})
        for key, tensors in self.transform_state.items():
            for i, t in enumerate(tensors):
                out[f"transform.{key}.{i}"] = t
        for i, g in enumerate(self.generators):
            out[f"rng.{i}"] = g.get_state()
        out["engine.active"] = self.active
        out["engine.failed_step"] = self.failed_step
        return out

    def save_checkpoint(self, elapsed: float) -> None:
        assert self.checkpoint_dir is not None
        state = {"step": self.step, "rows": self.rows, "steps_to_generalize": self.steps_to_generalize,
                 "task_steps": self.task_steps,
                 "last_eval_step": self.last_eval_step, "evals_since_all_generalized": self.evals_since_all_generalized,
                 "elapsed": elapsed}
        save_checkpoint(self.checkpoint_dir / CHECKPOINT_FILE, self.state_tensors(), state)

    def load_checkpoint(self, path: Path) -> None:
        tensors, state = load_checkpoint(path)
        with torch.no_grad():
            for n, p in self.model.named_parameters():
                p.copy_(tensors[f"model.{n}"])
            for n, p in self.objective_params.items():
                p.copy_(tensors[OBJECTIVE_PREFIX + n])
        self.optimizer.load_state_dict({k[len("optim."):]: v for k, v in tensors.items() if k.startswith("optim.")})
        for key, ts in self.transform_state.items():
            self.transform_state[key] = [tensors[f"transform.{key}.{i}"].to(t.device) for i, t in enumerate(ts)]
        for i, g in enumerate(self.generators):
            g.set_state(tensors[f"rng.{i}"])
        self.active = tensors["engine.active"].to(self.device)
        self.failed_step = tensors["engine.failed_step"].to(self.device)
        self.step = state["step"]
        self.rows = state["rows"]
        self.steps_to_generalize = state["steps_to_generalize"]
        self.task_steps = state.get("task_steps", self.task_steps)
        self.last_eval_step = state["last_eval_step"]
        self.evals_since_all_generalized = state["evals_since_all_generalized"]
        self.elapsed_before = state["elapsed"]

    # ------------------------------------------------------------------------------------------------ the loop
    def fit(self, progress: Any = None) -> TrainResult:
        tc = self.settings.training
        t0 = time.perf_counter()
        reported: set[int] = set((~self.active).nonzero().flatten().tolist())
        resumed_at = self.step
        any_active = bool(self.active.any())
        while True:
            if self.on_snapshot is not None and self._last_snapshot != self.step and self.snapshot_due(self.step):
                self.on_snapshot(self)
                self._last_snapshot = self.step
            if (self.step % tc.eval_every == 0 or self.step == tc.steps) and self.last_eval_step != self.step:
                self._report_new_failures(reported)
                self.evaluate()
                any_active = bool(self.active.any())  # read at evaluations only: no device sync per step
                if progress is not None:
                    progress(self)
                if tc.early_stop and self._all_generalized():
                    self.evals_since_all_generalized += 1
                    # never stop on a dip: every member must be at the threshold at the stopping evaluation too
                    if self.evals_since_all_generalized > tc.patience and self._all_at_threshold_now():
                        self.log(f"every member generalised and held for the hold window; early stop at step "
                                 f"{self.step}")
                        break
            if self.step >= tc.steps or not any_active:
                break
            if (self.checkpoint_dir is not None and tc.checkpoint_every and self.step % tc.checkpoint_every == 0
                    and self.step != resumed_at):
                self.save_checkpoint(self.elapsed_before + time.perf_counter() - t0)
                if self.on_checkpoint is not None:
                    self.on_checkpoint(self)
            self.train_step()
        self._report_new_failures(reported)
        return self._result(self.elapsed_before + time.perf_counter() - t0)

    def snapshot_due(self, step: int) -> bool:
        tc = self.settings.training
        return bool(tc.snapshot_every and step % tc.snapshot_every == 0) or step in tc.snapshot_steps

    def _all_generalized(self) -> bool:
        """Has every active member generalised for good, up to now: at or above the threshold from some evaluation
        to this one, and for at least the hold window (:func:`lasting_step` with ``end`` = this step)? So an early
        stop never ends a member's run before its window is seen. On validation accuracy when the run has a
        validation split (so an early stop, e.g. GrokTransfer's weak stage inside a tune, never reads the test
        split), else on test."""
        tc = self.settings.training
        column = "val_acc" if self.val_set is not None else "test_acc"
        curves: dict[int, list[dict[str, Any]]] = {}
        for r in self.rows:
            curves.setdefault(r["member"], []).append(r)
        window, threshold = tc.hold_steps(), tc.generalization_threshold

        def held(k: int) -> bool:
            rows = curves.get(k, [])
            steps, accs = [r["step"] for r in rows], [r.get(column, -1.0) for r in rows]
            return lasting_step(steps, accs, threshold, window, self.step) is not None

        return all(held(k) for k, a in enumerate(self.active.tolist()) if a)

    def _all_at_threshold_now(self) -> bool:
        """Is every active member at or above the threshold at the latest evaluation (validation accuracy with a
        validation split, else test)?"""
        threshold = self.settings.training.generalization_threshold
        column = "val_acc" if self.val_set is not None else "test_acc"
        now = {r["member"]: r.get(column, -1.0) for r in self.rows[-len(self.seeds):] if r["step"] == self.step}
        return all(now.get(k, -1.0) >= threshold for k, a in enumerate(self.active.tolist()) if a)

    def _result(self, wall: float) -> TrainResult:
        members = []
        failed_step = self.failed_step.tolist()
        last = {r["member"]: r for r in self.rows}  # each member's last evaluation
        threshold = self.settings.training.generalization_threshold
        window = self.settings.training.hold_steps()
        curves: dict[int, list[dict[str, Any]]] = {}
        for r in self.rows:
            curves.setdefault(r["member"], []).append(r)

        def lasting(k: int, column: str) -> int | None:
            rows = [r for r in curves.get(k, []) if column in r]
            return lasting_step([r["step"] for r in rows], [r[column] for r in rows], threshold, window, self.step)

        for k, seed in enumerate(self.seeds):
            failed = failed_step[k] >= 0
            members.append(MemberResult(
                seed=seed,
                final_train_acc=last[k]["train_acc"] if k in last else None,
                final_test_acc=last[k]["test_acc"] if k in last else None,
                final_train_loss=last[k]["train_loss"] if k in last else None,
                final_test_loss=last[k]["test_loss"] if k in last else None,
                steps_to_generalize=self.steps_to_generalize[k],
                steps_to_generalize_lasting=None if failed else lasting(k, "test_acc"),
                val_steps_to_generalize_lasting=None if failed or self.val_set is None else lasting(k, "val_acc"),
                final_val_acc=last[k].get("val_acc") if k in last else None,
                final_val_loss=last[k].get("val_loss") if k in last else None,
                failed=failed,
                failed_step=failed_step[k] if failed else None,
                error="loss became NaN or inf" if failed else None,
                tasks={name: {"final_test_acc": last[k].get(f"test_acc@{name}") if k in last else None,
                              "steps_to_generalize": self.task_steps[k][name],
                              "steps_to_generalize_lasting": None if failed else lasting(k, f"test_acc@{name}")}
                       for name in self.task_sets} or None,
            ))
        return TrainResult(members, self.rows, self.step, wall)
