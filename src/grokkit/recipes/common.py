"""What every recipe shares: vocabulary, per-member data, the model; and the recipe registry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from grokkit.config import RunConfig, TaskConfig
from grokkit.engine import Objective
from grokkit.models import EnsembleTransformer, TransformerShape
from grokkit.tasks import SEQUENCE_LENGTH, EnsembleExamples, Examples, ModularTask, Split, Vocabulary, stack_members


@dataclass
class Setup:
    """Everything the engine needs for a run, built and validated before anything is written."""

    cfg: RunConfig
    vocab: Vocabulary
    task: ModularTask
    model: EnsembleTransformer
    train: EnsembleExamples
    test: EnsembleExamples
    objective: Objective
    info: dict[str, Any] = field(default_factory=dict)
    #: test sets evaluated besides ``test``, by task name (multi-task recipes, ``eval_tasks``): test_acc@<name>
    task_sets: dict[str, EnsembleExamples] = field(default_factory=dict)
    tasks: list[ModularTask] = field(default_factory=list)

    @property
    def multi_task(self) -> bool:
        return len(self.tasks) > 1

    @property
    def task_name(self) -> str:
        return "+".join(t.name for t in self.tasks) if self.tasks else self.task.name


def build_vocab(cfg: RunConfig) -> Vocabulary:
    moduli_used = [t.modulus for t in cfg.all_tasks() + list(cfg.eval_tasks or [])]
    n = cfg.vocab.n_numbers if cfg.vocab.n_numbers is not None else max(moduli_used)
    moduli = tuple(cfg.vocab.moduli) if cfg.vocab.moduli is not None else (cfg.task.modulus,)
    return Vocabulary(n, moduli)


def member_splits(cfg: RunConfig, vocab: Vocabulary, tc: TaskConfig, use_member_fraction: bool = True) -> list[Split]:
    """One seeded split of task ``tc`` per member (the member's seed unless the task fixes ``split_seed``)."""
    task = ModularTask(tc.op, tc.modulus)
    splits = []
    for m in cfg.member_list():
        fraction = m.train_fraction if (use_member_fraction and m.train_fraction is not None) else tc.train_fraction
        split_seed = tc.split_seed if tc.split_seed is not None else m.seed
        splits.append(task.split(vocab, fraction, split_seed))
    return splits


def build_data(cfg: RunConfig, vocab: Vocabulary
               ) -> tuple[EnsembleExamples, EnsembleExamples, dict[str, EnsembleExamples]]:
    """Train and test sets (the union over tasks for multi-task recipes) and per-task test sets."""
    tasks = cfg.all_tasks()
    per_task = [member_splits(cfg, vocab, tc) for tc in tasks]
    k = len(cfg.member_list())
    train = stack_members([Examples.concat([splits[i].train for splits in per_task]) for i in range(k)])
    test = stack_members([Examples.concat([splits[i].test for splits in per_task]) for i in range(k)])
    task_sets = {}
    if len(tasks) > 1:
        task_sets = {tc.name: stack_members([s.test for s in splits]) for tc, splits in zip(tasks, per_task)}
    for tc in cfg.eval_tasks or []:  # other tasks watched during training (e.g. forgetting): their test splits
        if tc.name not in task_sets:
            task_sets[tc.name] = stack_members([s.test for s in member_splits(cfg, vocab, tc, False)])
    return train, test, task_sets


def init_from(cfg: RunConfig, model: EnsembleTransformer, vocab: Vocabulary) -> None:
    """Copy a trained model's weights into ``model`` (``cfg.init``); raises ValueError if they do not fit."""
    from grokkit.checkpoint import CheckpointError, load_model

    assert cfg.init is not None
    try:
        source, source_vocab, _ = load_model(cfg.init.model)
    except CheckpointError as err:
        raise ValueError(f"init.model: {err}") from None
    if source_vocab != vocab or source.shape != model.shape:
        raise ValueError(f"init.model {cfg.init.model} does not fit this run: its shape {source.shape} and vocabulary "
                         f"{source_vocab} vs {model.shape} and {vocab}")
    k, member = model.n_members, cfg.init.member
    if member is None and source.n_members not in (1, k):
        raise ValueError(f"init.model has {source.n_members} members and this run {k}: set init.member")
    if member is not None and member >= source.n_members:
        raise ValueError(f"init.member={member} but init.model has {source.n_members} member(s)")
    state = source.state_dict()
    with torch.no_grad():
        for name, p in model.named_parameters():
            w = state[name]
            if member is not None:
                w = w[member:member + 1]
            p.copy_(w.expand_as(p) if w.shape[0] == 1 else w)


def build_model(cfg: RunConfig, vocab: Vocabulary) -> EnsembleTransformer:
    m = cfg.model
    shape = TransformerShape(
        d_vocab=vocab.d_vocab, d_vocab_out=vocab.n_classes, n_ctx=SEQUENCE_LENGTH, n_layers=m.n_layers,
        d_model=m.d_model, n_heads=m.n_heads, d_head=m.d_head, d_mlp=m.d_mlp, activation=m.activation,
        layer_norm=m.layer_norm,
    )
    return EnsembleTransformer(shape, [mem.seed for mem in cfg.member_list()])


def build_setup(cfg: RunConfig) -> Setup:
    from grokkit.recipes import distill, joint, scratch

    recipes: dict[str, Callable[[Setup], None]] = {"scratch": scratch.prepare, "distill": distill.prepare,
                                                   "joint": joint.prepare}
    if cfg.recipe not in recipes:
        raise ValueError(f"recipe {cfg.recipe!r} is not a single training run (use grokkit.api.run)")
    vocab = build_vocab(cfg)
    tasks = [ModularTask(tc.op, tc.modulus) for tc in cfg.all_tasks()]
    train, test, task_sets = build_data(cfg, vocab)
    model = build_model(cfg, vocab)
    if cfg.init is not None:
        init_from(cfg, model, vocab)
    setup = Setup(cfg, vocab, tasks[0], model, train, test, Objective([], lambda *a: None), task_sets=task_sets,
                  tasks=tasks)
    recipes[cfg.recipe](setup)
    return setup
