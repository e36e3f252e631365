"""What every recipe shares: vocabulary, per-member data, the model; and the recipe registry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from grokkit.config import ModelConfig, RunConfig, TaskConfig
from grokkit.engine import Objective
from grokkit.models import EnsembleMLP, EnsembleModel, EnsembleTransformer, FactorisedEmbed, MLPShape, TransformerShape
from grokkit.tasks import (
    EnsembleExamples,
    Examples,
    ModularTask,
    SparseParityTask,
    Split,
    Task,
    Vocabulary,
    XorTask,
    bit_vocabulary,
    stack_members,
)


@dataclass
class Setup:
    """Everything the engine needs for a run, built and validated before anything is written."""

    cfg: RunConfig
    vocab: Vocabulary
    task: Task
    model: EnsembleModel
    train: EnsembleExamples
    test: EnsembleExamples
    objective: Objective
    info: dict[str, Any] = field(default_factory=dict)
    #: test sets evaluated besides ``test``, by task name (multi-task recipes, ``eval_tasks``): test_acc@<name>
    task_sets: dict[str, EnsembleExamples] = field(default_factory=dict)
    tasks: list[Task] = field(default_factory=list)
    #: parameters the optimiser leaves alone (``embedding_init.freeze_A/B``)
    frozen: list[str] = field(default_factory=list)
    #: the validation set (``task.val_fraction`` / ``task.n_val``): val_loss / val_acc columns; None without one
    val: EnsembleExamples | None = None

    @property
    def multi_task(self) -> bool:
        return len(self.tasks) > 1

    @property
    def task_name(self) -> str:
        return "+".join(t.name for t in self.tasks) if self.tasks else self.task.name


def make_task(tc: TaskConfig) -> Task:
    if tc.kind == "sparse_parity":
        assert tc.n_bits is not None and tc.k is not None and tc.n_train is not None and tc.n_test is not None
        return SparseParityTask(tc.n_bits, tc.k, tc.n_train, tc.n_test, tc.secret_seed, tc.positional_tokens)
    if tc.kind == "xor":
        assert tc.n_bits is not None and tc.n_train is not None and tc.n_test is not None
        return XorTask(tc.n_bits, tc.n_train, tc.n_test, tc.label_noise, tc.positional_tokens)
    return ModularTask(tc.op, tc.modulus)


def build_vocab(cfg: RunConfig) -> Vocabulary:
    if not cfg.task.is_modular:
        assert cfg.task.n_bits is not None
        return bit_vocabulary(cfg.task.n_bits, cfg.task.positional_tokens)
    moduli_used = [t.modulus for t in cfg.all_tasks() + list(cfg.eval_tasks or [])]
    n = cfg.vocab.n_numbers if cfg.vocab.n_numbers is not None else max(moduli_used)
    moduli = tuple(cfg.vocab.moduli) if cfg.vocab.moduli is not None else (cfg.task.modulus,)
    return Vocabulary(n, moduli)


def member_splits(cfg: RunConfig, vocab: Vocabulary, tc: TaskConfig, use_member_fraction: bool = True) -> list[Split]:
    """One seeded split of task ``tc`` per member: the task's ``split_seed`` if set, else the member's own
    ``split_seed``, else its seed."""
    task = make_task(tc)
    splits = []
    for m in cfg.member_list():
        fraction = m.train_fraction if (use_member_fraction and m.train_fraction is not None) else tc.train_fraction
        split_seed = tc.split_seed if tc.split_seed is not None else (
            m.split_seed if m.split_seed is not None else m.seed)
        if tc.is_modular:
            splits.append(task.split(vocab, fraction, split_seed, val_fraction=tc.val_fraction))
        else:
            splits.append(task.split(vocab, fraction, split_seed, n_val=tc.n_val))
    return splits


def build_data(cfg: RunConfig, vocab: Vocabulary
               ) -> tuple[EnsembleExamples, EnsembleExamples, dict[str, EnsembleExamples], EnsembleExamples | None]:
    """Train and test sets (the union over tasks for multi-task recipes), per-task test sets, and the validation
    set (the union of the tasks' validation splits; None when no task has one)."""
    tasks = cfg.all_tasks()
    per_task = [member_splits(cfg, vocab, tc) for tc in tasks]
    k = len(cfg.member_list())
    train = stack_members([Examples.concat([splits[i].train for splits in per_task]) for i in range(k)])
    test = stack_members([Examples.concat([splits[i].test for splits in per_task]) for i in range(k)])
    val = None
    if any(splits[0].val is not None for splits in per_task):
        val = stack_members([Examples.concat([splits[i].val for splits in per_task if splits[i].val is not None])
                             for i in range(k)])
    task_sets = {}
    if len(tasks) > 1:
        task_sets = {tc.name: stack_members([s.test for s in splits]) for tc, splits in zip(tasks, per_task)}
    for tc in cfg.eval_tasks or []:  # other tasks watched during training (e.g. forgetting): their test splits
        if tc.name not in task_sets:
            task_sets[tc.name] = stack_members([s.test for s in member_splits(cfg, vocab, tc, False)])
    return train, test, task_sets, val


def init_from(cfg: RunConfig, model: EnsembleModel, vocab: Vocabulary) -> None:
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


def build_model(cfg: RunConfig, vocab: Vocabulary, model_cfg: ModelConfig | None = None) -> EnsembleModel:
    m = model_cfg or cfg.model
    n_ctx = make_task(cfg.task).sequence_length
    rank = None
    if cfg.embedding_init is not None:
        rank = _source_model(cfg.embedding_init.model)[0].embed.W_E.shape[-1]
    members = cfg.member_list()
    seeds = [mem.seed for mem in members]
    model: EnsembleModel
    if m.kind == "mlp":
        assert m.d_embed is not None
        model = EnsembleMLP(MLPShape(d_vocab=vocab.d_vocab, d_vocab_out=vocab.n_classes, n_ctx=n_ctx,
                                     n_layers=m.n_layers, d_embed=m.d_embed, d_mlp=m.d_mlp, embed_rank=rank), seeds)
    else:
        model = EnsembleTransformer(TransformerShape(
            d_vocab=vocab.d_vocab, d_vocab_out=vocab.n_classes, n_ctx=n_ctx, n_layers=m.n_layers,
            d_model=m.d_model, n_heads=m.n_heads, d_head=m.d_head, d_mlp=m.d_mlp, activation=m.activation,
            layer_norm=m.layer_norm, embed_rank=rank,
        ), seeds)
    scale_init(model, [mem.init_scale if mem.init_scale is not None else m.init_scale for mem in members])
    return model


@torch.no_grad()
def scale_init(model: EnsembleModel, scales: list[float]) -> None:
    """Multiply member k's weight matrices (parameters named ``W_*``) by ``scales[k]`` (``model.init_scale``).
    Biases (zero) and LayerNorm parameters (one) are left as they are; all-ones scales change nothing."""
    if all(s == 1.0 for s in scales):
        return
    factor = torch.tensor(scales, dtype=torch.float64)
    for name, p in model.named_parameters():
        if name.split(".")[-1].startswith("W_"):
            p.mul_(factor.to(p.dtype).view(-1, *([1] * (p.dim() - 1))))


def _source_model(path: str) -> tuple[EnsembleModel, Vocabulary]:
    from grokkit.checkpoint import CheckpointError, load_model

    try:
        model, vocab, _ = load_model(path)
    except CheckpointError as err:
        raise ValueError(f"embedding_init.model: {err}") from None
    return model, vocab


@torch.no_grad()
def init_embedding(cfg: RunConfig, model: EnsembleModel, vocab: Vocabulary) -> list[str]:
    """GrokTransfer's initialisation ``W_E = A @ B``: ``A`` = the source model's ``W_E`` (member k's for member k),
    ``B`` random. Returns the names of the parameters to freeze.

    B's scale: by default its entries have std ``s / rms_row_norm(A)``, where ``s`` is the std this model gives a
    plain ``W_E``; then each row of ``A @ B`` has (in expectation) the norm of a usual embedding row, whatever scale
    the weak model's embedding grew to, so the layers after the embedding start as calibrated as from scratch."""
    e = cfg.embedding_init
    assert e is not None and isinstance(model.embed, FactorisedEmbed)
    source, source_vocab = _source_model(e.model)
    if source_vocab != vocab:
        raise ValueError(f"embedding_init.model {e.model} has vocabulary {source_vocab}, this run {vocab}")
    a = source.embed.W_E.detach()
    k = model.n_members
    if isinstance(e.member, list):
        if len(e.member) != k or max(e.member) >= source.n_members:
            raise ValueError(f"embedding_init.member={e.member}: needs {k} indices (one per member), each below "
                             f"{e.model}'s {source.n_members} member(s)")
        a = a[e.member]
    elif e.member is not None:
        if e.member >= source.n_members:
            raise ValueError(f"embedding_init.member={e.member} but {e.model} has {source.n_members} member(s)")
        a = a[e.member : e.member + 1]
    elif source.n_members not in (1, k):
        raise ValueError(f"embedding_init.model has {source.n_members} members and this run {k}: set "
                         "embedding_init.member")
    a = a.expand(k, *a.shape[1:]).to(model.embed.W_E_A.device)
    model.embed.W_E_A.copy_(a)
    usual_std = model.plain_embed_std()
    rank = a.shape[-1]
    for i, seed in enumerate(model.seeds):
        rms_row = float(a[i].pow(2).sum(-1).mean().sqrt())
        std = e.b_init_std if e.b_init_std is not None else usual_std / max(rms_row, 1e-12)
        g = torch.Generator().manual_seed(int(seed) + 7_919)
        model.embed.W_E_B[i].copy_(torch.randn(rank, model.embed.W_E_B.shape[-1], generator=g) * std)
    return [n for n, flag in (("embed.W_E_A", e.freeze_A), ("embed.W_E_B", e.freeze_B)) if flag]


def build_setup(cfg: RunConfig) -> Setup:
    from grokkit.recipes import distill, joint, scratch

    recipes: dict[str, Callable[[Setup], None]] = {"scratch": scratch.prepare, "distill": distill.prepare,
                                                   "joint": joint.prepare}
    if cfg.recipe not in recipes:
        raise ValueError(f"recipe {cfg.recipe!r} is not a single training run (use grokkit.api.run)")
    vocab = build_vocab(cfg)
    tasks = [make_task(tc) for tc in cfg.all_tasks()]
    train, test, task_sets, val = build_data(cfg, vocab)
    model = build_model(cfg, vocab)
    frozen: list[str] = []
    if cfg.init is not None:
        init_from(cfg, model, vocab)
    if cfg.embedding_init is not None:
        frozen = init_embedding(cfg, model, vocab)
    setup = Setup(cfg, vocab, tasks[0], model, train, test, Objective([], lambda *a: None), task_sets=task_sets,
                  tasks=tasks, frozen=frozen, val=val)
    recipes[cfg.recipe](setup)
    return setup
