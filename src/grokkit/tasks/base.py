"""What every task shares: the vocabulary and its token layout, example sets, splits, the task registry and the base
of a task's config section.

A task kind is one module in this package: a config class (a :class:`TaskSpec` with ``kind: Literal["name"]``,
registered with ``@TASKS.register("name")``) whose ``build()`` returns the task object, which has ``name``,
``answer_range``, ``sequence_length``, ``final_position`` and ``split(...)``. ``grokkit.tasks`` imports every module
of the package, and the config's ``task:`` accepts every registered kind (a discriminated union on ``kind``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import torch
from pydantic import Field, model_validator

from grokkit.registry import Registry
from grokkit.schema import Strict

#: Sequence positions of the modular tasks by name; ``operator`` is where the paper distils, ``final`` is where the
#: answer is read.
POSITIONS: dict[str, int] = {"a": 0, "b": 1, "operator": 2, "final": 3}
SEQUENCE_LENGTH = len(POSITIONS)

#: The operations of token layout v1, in token order. Frozen: every model file written so far reads its operation
#: tokens so. Operations registered later get tokens after the moduli (see :class:`Vocabulary`).
LAYOUT_V1_OPERATIONS: tuple[str, ...] = ("add", "sub", "mul", "div", "quad")


@dataclass(frozen=True)
class Vocabulary:
    """The token layout shared by all tasks of a run::

        0 .. n_numbers-1            the numbers (and output classes)
        next 5                      the operations of layout v1: add, sub, mul, div, quad
        next len(moduli)            one token per modulus, in the order of ``moduli``
        next len(extra_operations)  operations registered after layout v1, in registration order

    Appending a modulus to ``moduli`` or registering a new operation never changes an existing token id of a
    layout-v1 vocabulary. Model files store :meth:`token_names` and the teacher check compares them by name.
    Output classes are the numbers, so a model has ``n_numbers`` output logits whatever its task's modulus.
    """

    n_numbers: int
    moduli: tuple[int, ...]
    extra_operations: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.n_numbers < 2:
            raise ValueError(f"vocab.n_numbers must be >= 2, got {self.n_numbers}")
        if len(set(self.moduli)) != len(self.moduli):
            raise ValueError(f"vocab.moduli has duplicates: {list(self.moduli)}")
        too_big = [m for m in self.moduli if m > self.n_numbers or m < 2]
        if too_big:
            raise ValueError(f"vocab.moduli {too_big} must lie in 2..n_numbers={self.n_numbers}")
        clash = sorted(set(self.extra_operations) & set(LAYOUT_V1_OPERATIONS))
        if clash or len(set(self.extra_operations)) != len(self.extra_operations):
            raise ValueError(f"extra_operations {list(self.extra_operations)} repeat an operation")

    @property
    def operations(self) -> tuple[str, ...]:
        return LAYOUT_V1_OPERATIONS + self.extra_operations

    @property
    def d_vocab(self) -> int:
        return self.n_numbers + len(LAYOUT_V1_OPERATIONS) + len(self.moduli) + len(self.extra_operations)

    @property
    def n_classes(self) -> int:
        return self.n_numbers

    def operation_token(self, op: str) -> int:
        if op in LAYOUT_V1_OPERATIONS:
            return self.n_numbers + LAYOUT_V1_OPERATIONS.index(op)
        if op in self.extra_operations:
            return self.n_numbers + len(LAYOUT_V1_OPERATIONS) + len(self.moduli) + self.extra_operations.index(op)
        raise ValueError(f"operation {op!r} has no token in this vocabulary (operations {list(self.operations)})")

    def modulus_token(self, modulus: int) -> int:
        if modulus not in self.moduli:
            raise ValueError(f"modulus {modulus} has no token in this vocabulary (moduli {list(self.moduli)})")
        return self.n_numbers + len(LAYOUT_V1_OPERATIONS) + self.moduli.index(modulus)

    def token_names(self) -> list[str]:
        """The name of every token id, in id order (stored in model files: the file's token layout)."""
        return ([str(i) for i in range(self.n_numbers)] + list(LAYOUT_V1_OPERATIONS) + [f"P={m}" for m in self.moduli]
                + list(self.extra_operations))

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"n_numbers": self.n_numbers, "moduli": list(self.moduli)}
        if self.extra_operations:
            out["extra_operations"] = list(self.extra_operations)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Vocabulary:
        return cls(int(d["n_numbers"]), tuple(int(m) for m in d["moduli"]),
                   tuple(str(o) for o in d.get("extra_operations", ())))

    def ids_in(self, other: Vocabulary) -> torch.Tensor:
        """``[d_vocab]``: the id in ``other`` of each of this vocabulary's tokens, matched by name (-1: ``other`` has
        no such token). How a model of another vocabulary (a teacher, an ``init:`` source) reads this one's inputs."""
        names = {name: i for i, name in enumerate(other.token_names())}
        return torch.tensor([names.get(name, -1) for name in self.token_names()], dtype=torch.long)

    def layout_mismatch(self, other: Vocabulary, used: Sequence[int]) -> str | None:
        """None when every token id in ``used`` names the same token in ``other`` (e.g. a teacher's vocabulary);
        otherwise a sentence naming the first id that differs."""
        mine, theirs = self.token_names(), other.token_names()
        for i in sorted(set(int(t) for t in used)):
            here = mine[i] if i < len(mine) else None
            there = theirs[i] if i < len(theirs) else "nothing (its vocabulary is smaller)"
            if here != there:
                return f"token id {i} is {here!r} here but {there!r} in the other model"
        return None


@dataclass(frozen=True)
class Examples:
    """A set of examples: ``tokens [n, seq]``, ``labels [n]`` and each example's ``answer_range [n]``."""

    tokens: torch.Tensor
    labels: torch.Tensor
    answer_range: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    @staticmethod
    def concat(sets: Sequence[Examples]) -> Examples:
        return Examples(torch.cat([s.tokens for s in sets]), torch.cat([s.labels for s in sets]),
                        torch.cat([s.answer_range for s in sets]))


@dataclass(frozen=True)
class Split:
    train: Examples
    test: Examples
    #: validation examples, disjoint from train and test (None: no validation split)
    val: Examples | None = None


def stack_members(sets: Sequence[Examples]) -> EnsembleExamples:
    """Stack one example set per ensemble member, padding shorter sets; padded rows have weight 0."""
    n = max(len(s) for s in sets)
    k = len(sets)
    seq = sets[0].tokens.shape[1]
    tokens = torch.zeros(k, n, seq, dtype=torch.long)
    labels = torch.zeros(k, n, dtype=torch.long)
    answer_range = torch.ones(k, n, dtype=torch.long)
    weight = torch.zeros(k, n)
    for i, s in enumerate(sets):
        m = len(s)
        tokens[i, :m], labels[i, :m], answer_range[i, :m], weight[i, :m] = s.tokens, s.labels, s.answer_range, 1.0
        if m < n:  # pad with a copy of a real row so padded rows stay finite everywhere
            tokens[i, m:], answer_range[i, m:] = s.tokens[0], s.answer_range[0]
    return EnsembleExamples(tokens, labels, answer_range, weight)


@dataclass(frozen=True)
class EnsembleExamples:
    """One example set per member: ``tokens [K, n, seq]``, ``labels [K, n]``, ``answer_range [K, n]``,
    ``weight [K, n]`` (1 for real rows, 0 for padding), and ``extras``: further per-row tensors ``[K, n, ...]`` that
    travel with the rows (a frozen teacher's targets, computed once): a minibatch or a member slice takes the same
    rows of each."""

    tokens: torch.Tensor
    labels: torch.Tensor
    answer_range: torch.Tensor
    weight: torch.Tensor
    extras: dict[str, torch.Tensor] = field(default_factory=dict)

    def to(self, device: torch.device | str) -> EnsembleExamples:
        return EnsembleExamples(*(t.to(device) for t in (self.tokens, self.labels, self.answer_range, self.weight)),
                                extras={k: v.to(device) for k, v in self.extras.items()})

    def with_extras(self, extras: dict[str, torch.Tensor]) -> EnsembleExamples:
        """The same rows with ``extras`` added (each ``[K, n, ...]``)."""
        for name, v in extras.items():
            if tuple(v.shape[:2]) != tuple(self.labels.shape):
                raise ValueError(f"extra {name!r} has shape {list(v.shape)}; rows are {list(self.labels.shape)}")
        return EnsembleExamples(self.tokens, self.labels, self.answer_range, self.weight, {**self.extras, **extras})

    def select(self, index: torch.Tensor) -> EnsembleExamples:
        """Rows ``index [K, b]`` of each member (a minibatch)."""
        take: Callable[[torch.Tensor], torch.Tensor] = lambda t: torch.gather(  # noqa: E731
            t, 1, index.view(*index.shape, *([1] * (t.dim() - 2))).expand(*index.shape, *t.shape[2:])
        )
        return EnsembleExamples(take(self.tokens), take(self.labels), take(self.answer_range), take(self.weight),
                                {k: take(v) for k, v in self.extras.items()})

    def members(self, members: slice) -> EnsembleExamples:
        """Members ``members`` only (views, no copy)."""
        return EnsembleExamples(self.tokens[members], self.labels[members], self.answer_range[members],
                                self.weight[members], {k: v[members] for k, v in self.extras.items()})

    @property
    def n_members(self) -> int:
        return self.tokens.shape[0]


class Task(Protocol):
    """What the engine and the recipes read of a task."""

    @property
    def name(self) -> str: ...

    @property
    def answer_range(self) -> int: ...

    @property
    def sequence_length(self) -> int: ...

    @property
    def final_position(self) -> int: ...


class TaskSpec(Strict):
    """The base of a task kind's config section (``task:``). A kind adds its own fields and implements ``build``
    and ``split``; ``modular`` kinds read the shared ``[a, b, op, P]`` vocabulary, the others bring their own."""

    #: What the task offers the recipes, by name; a recipe names what it needs (``Recipe.needs``). Known ones:
    #: ``shared_vocabulary``: the task reads the run's ``vocab:`` (numbers, operations, moduli), so several such tasks
    #: share one model (multi-task recipes, ``eval_tasks``).
    capabilities: ClassVar[frozenset[str]] = frozenset()
    #: settings a member may override (``members[].train_fraction``): the task's own field of that name
    member_fraction: ClassVar[bool] = False

    kind: str
    split_seed: int | None = Field(None, description="seed of the train/test split; default: each member's seed")

    @model_validator(mode="before")
    @classmethod
    def _legacy(cls, data: Any) -> Any:
        return drop_legacy_defaults(cls, data, LEGACY_TASK_DEFAULTS)

    @property
    def is_modular(self) -> bool:
        """Whether the task reads the shared vocabulary (the ``shared_vocabulary`` capability)."""
        return "shared_vocabulary" in self.capabilities

    def positions(self) -> dict[str, int]:
        """The sequence positions a recipe may name (e.g. ``distill.position``): ``final``, where the answer is read,
        and any the task defines besides (the modular tasks' ``operator``)."""
        return {"final": self.build().final_position}

    @property
    def name(self) -> str:
        raise NotImplementedError

    def build(self) -> Any:
        """The task object (see :class:`Task`)."""
        raise NotImplementedError

    def split(self, vocab: Vocabulary, seed: int, train_fraction: float | None = None) -> Split:
        """Member data: the seeded train/test (and validation) split; ``train_fraction`` overrides the task's own
        (a member's setting) where the kind has one."""
        raise NotImplementedError

    def own_vocabulary(self) -> Vocabulary | None:
        """The kind's own vocabulary, or None for the shared modular one (built from ``vocab:``)."""
        return None

    def example_counts(self, train_fraction: float | None = None) -> tuple[int, int, int]:
        """At most how many (train, test, validation) examples one member's :meth:`split` makes, computed from the
        settings alone (nothing is built): :mod:`grokkit.resources` estimates a run's memory from it before any data
        exists. ``train_fraction`` as in :meth:`split`."""
        raise NotImplementedError(f"task kind {self.kind!r} does not say how many examples it makes")

    def describe_data(self) -> str:
        """The training data in a few words, for figure captions ("20% of pairs")."""
        raise NotImplementedError


#: Fields of the one flat task section of grokkit <= 0.x and their defaults: config.yaml files written then list every
#: field of every kind; a field of another kind at this default is dropped when such a file is read.
LEGACY_TASK_DEFAULTS: dict[str, Any] = {
    "op": "add", "modulus": 113, "train_fraction": 0.3, "val_fraction": 0.0, "n_val": 0, "n_bits": None, "k": None,
    "n_train": None, "n_test": None, "secret_seed": 0, "label_noise": 0.0, "positional_tokens": False}


def drop_legacy_defaults(cls: type, data: Any, legacy: dict[str, Any]) -> Any:
    """``data`` without the keys that ``cls`` does not have and that hold their legacy default (see above)."""
    if not isinstance(data, dict):
        return data
    fields = cls.model_fields  # type: ignore[attr-defined]
    return {k: v for k, v in data.items() if k in fields or k not in legacy or v != legacy[k]}


#: task kinds (``task.kind``) -> their config class
TASKS: Registry[type[TaskSpec]] = Registry("task kind")
