"""What every recipe shares: vocabulary, per-member data, the model and its initialisation (the ``init:`` and
``embedding_init:`` sections, owned here); and :func:`build_setup`, which builds a single run through the recipe
registry."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch
from pydantic import Field, NonNegativeInt

from grokkit.engine import Objective
from grokkit.models import EnsembleModel, FactorisedEmbed
from grokkit.recipes.registry import RECIPES, SECTIONS, RunConfig, Section
from grokkit.schema import Strict
from grokkit.tasks import (
    LAYOUT_V1_OPERATIONS,
    OPS,
    EnsembleExamples,
    Examples,
    Split,
    Task,
    TaskSpec,
    Vocabulary,
    stack_members,
)


class InitConfig(Strict):
    """Start from a trained model's weights instead of a random initialisation (fine-tuning, continual training)."""

    model: str = Field(..., description="run directory or model .safetensors file")
    member: int | None = Field(
        None, ge=0, description="which member to copy into every member; None: member k into member k (the model "
        "must have as many members) or its only member into all")


class EmbeddingInitConfig(Strict):
    """Start the embedding as ``W_E = A @ B`` (GrokTransfer's E_T = A B): ``A`` (``embed.W_E_A``, d_vocab x d_W) is
    a trained model's ``W_E``, ``B`` (``embed.W_E_B``, d_W x d_model) random; the rest of the model is initialised
    as usual."""

    model: str = Field(..., description="run directory or model file whose W_E becomes A")
    member: NonNegativeInt | list[NonNegativeInt] | None = Field(
        None, description="which member's W_E seeds every member, or a list: the source member of each member in "
        "turn; None: member k seeds member k (the model must have as many members) or its only member all")
    freeze_A: bool = Field(False, description="keep A at the source's W_E (no gradient, no weight decay)")
    freeze_B: bool = Field(False, description="keep B at its random initialisation")
    b_init_std: float | None = Field(
        None, gt=0, description="std of B's entries; None: chosen so that A @ B has the RMS entry of the model's "
        "usual W_E initialisation (std_usual / RMS row norm of A), keeping the rest of the init calibrated")


#: the sections that initialise a model from a trained one, taken by the single-run recipes
INITIALISERS = ("init", "embedding_init")
SECTIONS.add("init", Section(InitConfig))
SECTIONS.add("embedding_init", Section(EmbeddingInitConfig))



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
    #: lines to print before training (what the recipe set up, e.g. its teachers, and warnings)
    notes: list[str] = field(default_factory=list)

    @property
    def multi_task(self) -> bool:
        return len(self.tasks) > 1

    @property
    def task_name(self) -> str:
        return "+".join(t.name for t in self.tasks) if self.tasks else self.task.name


def make_task(tc: TaskSpec) -> Task:
    return tc.build()


def build_vocab(cfg: RunConfig) -> Vocabulary:
    """The task kind's own vocabulary, or the shared modular one: ``vocab.n_numbers`` (default: the largest modulus)
    numbers, every operation and ``vocab.moduli`` (default: the task's modulus); see :class:`Vocabulary`."""
    own = cfg.task.own_vocabulary()
    if own is not None:
        return own
    tasks = cfg.all_tasks() + list(cfg.eval_tasks or [])
    moduli_used = [t.modulus for t in tasks]
    n = cfg.vocab.n_numbers if cfg.vocab.n_numbers is not None else max(moduli_used)
    moduli = tuple(cfg.vocab.moduli) if cfg.vocab.moduli is not None else (cfg.task.modulus,)
    # an operation registered after layout v1 has a token only in the vocabularies of runs that use it (so
    # registering one changes no other run's vocabulary), in registration order
    used = {t.op for t in tasks}
    return Vocabulary(n, moduli, tuple(op for op in OPS.names() if op not in LAYOUT_V1_OPERATIONS and op in used))


def member_splits(cfg: RunConfig, vocab: Vocabulary, tc: TaskSpec, use_member_fraction: bool = True) -> list[Split]:
    """One seeded split of task ``tc`` per member: the task's ``split_seed`` if set, else the member's own
    ``split_seed``, else its seed; a member's ``train_fraction`` replaces the task's (``use_member_fraction``)."""
    own = use_member_fraction and tc.member_fraction and cfg.member_applies("train_fraction")
    splits = []
    for m in cfg.member_list():
        split_seed = tc.split_seed if tc.split_seed is not None else (
            m.split_seed if m.split_seed is not None else m.seed)
        splits.append(tc.split(vocab, split_seed, m.train_fraction if own else None))
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


#: parameters whose axis 1 (after the member axis) is the input vocabulary: their rows are matched by token name
TOKEN_ROWS = ("embed.W_E", "embed.W_E_A")
#: parameters whose last axis is the output classes (class c is the number c in every vocabulary)
CLASS_COLUMNS = ("unembed.W_U", "unembed.b_U")


def used_tokens(*sets: EnsembleExamples | None) -> set[int]:
    """The token ids the given example sets contain."""
    return {int(v) for s in sets if s is not None for v in s.tokens.unique().tolist()}


def token_rows(source_vocab: Vocabulary, vocab: Vocabulary, used: set[int], what: str) -> torch.Tensor:
    """``[d_vocab]``: for each of this run's tokens the source model's id of the same token (by name; -1: the source
    has none). Raises ValueError naming the tokens the run's data use and the source lacks."""
    index = vocab.ids_in(source_vocab)
    missing = sorted(i for i in used if i < len(index) and int(index[i]) < 0)
    if missing:
        names = vocab.token_names()
        raise ValueError(f"{what} has no token for {', '.join(names[i] for i in missing)}, which this run's data use "
                         f"(its vocabulary: n_numbers={source_vocab.n_numbers}, moduli={list(source_vocab.moduli)})")
    return index


@torch.no_grad()
def copy_matched(name: str, target: torch.Tensor, source: torch.Tensor, rows: torch.Tensor, n_classes: int) -> None:
    """Copy ``source`` into ``target`` (both with a member axis first; ``source``'s may be 1 and is broadcast),
    matching input-token rows by name (``rows``) and output classes by number; rows and classes the source lacks
    keep their fresh initialisation."""
    if name in TOKEN_ROWS:
        have = rows >= 0
        src = source[:, rows.clamp(min=0)]
        target[:, have] = src[:, have].expand(target.shape[0], -1, *src.shape[2:]).to(target.dtype)
        return
    if name in CLASS_COLUMNS and source.shape[-1] != target.shape[-1]:
        c = min(source.shape[-1], target.shape[-1], n_classes)
        target[..., :c] = source[..., :c].expand(target.shape[0], *source.shape[1:-1], c).to(target.dtype)
        return
    target.copy_(source.expand_as(target))


def init_from(cfg: RunConfig, model: EnsembleModel, vocab: Vocabulary, used: set[int], labels: set[int]) -> None:
    """Copy a trained model's weights into ``model`` (``cfg.init``), its input tokens matched by name and its output
    classes by number; raises ValueError if they do not fit (another shape, a token or class this run's data use and
    the source lacks)."""
    from grokkit.checkpoint import CheckpointError, load_model

    assert cfg.init is not None
    try:
        source, source_vocab, _ = load_model(cfg.init.model)
    except CheckpointError as err:
        raise ValueError(f"init.model: {err}") from None
    what = f"init.model {cfg.init.model}"
    same_but_vocab = {f.name: getattr(source.shape, f.name) == getattr(model.shape, f.name)
                      for f in dataclasses.fields(model.shape) if f.name not in ("d_vocab", "d_vocab_out")}
    if type(source) is not type(model) or not all(same_but_vocab.values()):
        differ = [k for k, same in same_but_vocab.items() if not same] or ["kind"]
        raise ValueError(f"{what} does not fit this run: its {', '.join(differ)} differ ({source.shape} vs "
                         f"{model.shape})")
    rows = token_rows(source_vocab, vocab, used, what)
    lacking = sorted(c for c in labels if c >= source.shape.d_vocab_out)
    if lacking:
        raise ValueError(f"{what} has {source.shape.d_vocab_out} output classes; this run's answers go up to "
                         f"{max(lacking)}")
    k, member = model.n_members, cfg.init.member
    if member is None and source.n_members not in (1, k):
        raise ValueError(f"init.model has {source.n_members} members and this run {k}: set init.member")
    if member is not None and member >= source.n_members:
        raise ValueError(f"init.member={member} but init.model has {source.n_members} member(s)")
    state = source.state_dict()
    for name, p in model.named_parameters():
        w = state[name]
        if member is not None:
            w = w[member:member + 1]
        copy_matched(name, p.data, w, rows, vocab.n_classes)


def build_model(cfg: RunConfig, vocab: Vocabulary) -> EnsembleModel:
    """The run's model, freshly initialised (one member per seed), each member's weight matrices scaled by its
    ``init_scale``."""
    m = cfg.model
    n_ctx = make_task(cfg.task).sequence_length
    rank = None
    if cfg.embedding_init is not None:
        rank = _source_model(cfg.embedding_init.model)[0].embed.W_E.shape[-1]
    model: EnsembleModel = m.build(vocab.d_vocab, vocab.n_classes, n_ctx, [mem.seed for mem in cfg.member_list()],
                                   rank)
    scale_init(model, cfg.member_values("init_scale"))
    return model


@torch.no_grad()
def scale_init(model: EnsembleModel, scales: list[float]) -> None:
    """Multiply member k's weight matrices (parameters named ``W_*``, and the MLP's hidden ``layers.i.W``) by
    ``scales[k]`` (``model.init_scale``). Biases (zero) and LayerNorm parameters (one) are left as they are; all-ones
    scales change nothing."""
    if all(s == 1.0 for s in scales):
        return
    factor = torch.tensor(scales, dtype=torch.float64)
    for name, p in model.named_parameters():
        last = name.split(".")[-1]
        if last == "W" or last.startswith("W_"):
            p.mul_(factor.to(p.dtype).view(-1, *([1] * (p.dim() - 1))))


def _source_model(path: str) -> tuple[EnsembleModel, Vocabulary]:
    from grokkit.checkpoint import CheckpointError, load_model

    try:
        model, vocab, _ = load_model(path)
    except CheckpointError as err:
        raise ValueError(f"embedding_init.model: {err}") from None
    return model, vocab


@torch.no_grad()
def init_embedding(cfg: RunConfig, model: EnsembleModel, vocab: Vocabulary, used: set[int]) -> list[str]:
    """GrokTransfer's initialisation ``W_E = A @ B``: ``A`` = the source model's ``W_E`` (member k's for member k),
    ``B`` random. Returns the names of the parameters to freeze.

    B's scale: by default its entries have std ``s / rms_row_norm(A)``, where ``s`` is the std this model gives a
    plain ``W_E``; then each row of ``A @ B`` has (in expectation) the norm of a usual embedding row, whatever scale
    the weak model's embedding grew to, so the layers after the embedding start as calibrated as from scratch."""
    e = cfg.embedding_init
    assert e is not None and isinstance(model.embed, FactorisedEmbed)
    source, source_vocab = _source_model(e.model)
    rows = token_rows(source_vocab, vocab, used, f"embedding_init.model {e.model}")
    a = source.embed.W_E.detach()[:, rows.clamp(min=0)] * (rows >= 0).view(1, -1, 1)  # by token name; absent: 0
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
    recipe = RECIPES.get(cfg.recipe)
    if recipe.prepare is None:
        raise ValueError(f"recipe {cfg.recipe!r} is not a single training run (use grokkit.api.run)")
    vocab = build_vocab(cfg)
    tasks = [make_task(tc) for tc in cfg.all_tasks()]
    train, test, task_sets, val = build_data(cfg, vocab)
    model = build_model(cfg, vocab)
    frozen: list[str] = []
    used = used_tokens(train, test, val, *task_sets.values())
    if cfg.init is not None:
        labels = {int(v) for s in (train, test, val) if s is not None for v in s.labels.unique().tolist()}
        init_from(cfg, model, vocab, used, labels)
    if cfg.embedding_init is not None:
        frozen = init_embedding(cfg, model, vocab, used)
    setup = Setup(cfg, vocab, tasks[0], model, train, test, Objective([], lambda *a: None), task_sets=task_sets,
                  tasks=tasks, frozen=frozen, val=val)
    recipe.prepare(setup)
    return setup
