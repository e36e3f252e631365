"""What every recipe shares: vocabulary, per-member data, the model; and the recipe registry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from grokkit.config import RunConfig
from grokkit.engine import Objective
from grokkit.models import EnsembleTransformer, TransformerShape
from grokkit.tasks import SEQUENCE_LENGTH, EnsembleExamples, ModularTask, Vocabulary, stack_members


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


def build_vocab(cfg: RunConfig) -> Vocabulary:
    n = cfg.vocab.n_numbers if cfg.vocab.n_numbers is not None else cfg.task.modulus
    moduli = tuple(cfg.vocab.moduli) if cfg.vocab.moduli is not None else (cfg.task.modulus,)
    return Vocabulary(n, moduli)


def build_data(cfg: RunConfig, vocab: Vocabulary, task: ModularTask) -> tuple[EnsembleExamples, EnsembleExamples]:
    splits = []
    for m in cfg.member_list():
        fraction = m.train_fraction if m.train_fraction is not None else cfg.task.train_fraction
        split_seed = cfg.task.split_seed if cfg.task.split_seed is not None else m.seed
        splits.append(task.split(vocab, fraction, split_seed))
    return stack_members([s.train for s in splits]), stack_members([s.test for s in splits])


def build_model(cfg: RunConfig, vocab: Vocabulary) -> EnsembleTransformer:
    m = cfg.model
    shape = TransformerShape(
        d_vocab=vocab.d_vocab, d_vocab_out=vocab.n_classes, n_ctx=SEQUENCE_LENGTH, n_layers=m.n_layers,
        d_model=m.d_model, n_heads=m.n_heads, d_head=m.d_head, d_mlp=m.d_mlp, activation=m.activation,
        layer_norm=m.layer_norm,
    )
    return EnsembleTransformer(shape, [mem.seed for mem in cfg.member_list()])


def build_setup(cfg: RunConfig) -> Setup:
    from grokkit.recipes import distill, scratch

    recipes: dict[str, Callable[[Setup], None]] = {"scratch": scratch.prepare, "distill": distill.prepare}
    vocab = build_vocab(cfg)
    task = ModularTask(cfg.task.op, cfg.task.modulus)
    train, test = build_data(cfg, vocab, task)
    setup = Setup(cfg, vocab, task, build_model(cfg, vocab), train, test, Objective([], lambda *a: None))
    recipes[cfg.recipe](setup)
    return setup
