"""Binary operations modulo P: the sequence ``[a, b, op, P]`` over the vocabulary every modular task of a run shares
(every number, every operation, a list of moduli), so the token ids of a task do not depend on which other tasks a run
contains: a model trained on mod 113 reads the inputs of mod 107 unchanged, which is what distillation across
distributions needs.

An operation is one function registered in :data:`OPS` (``@OPS.register("name")``); it gets a token after the
layout-v1 ones (see :class:`~grokkit.tasks.base.Vocabulary`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from pydantic import Field, field_validator

from grokkit.registry import Registry
from grokkit.tasks.base import POSITIONS, SEQUENCE_LENGTH, TASKS, Examples, Split, TaskSpec, Vocabulary

#: ``op(a, b, P) -> (answer, valid)`` for all pairs; ``valid`` is False where the operation is undefined
Operation = Callable[[torch.Tensor, torch.Tensor, int], tuple[torch.Tensor, torch.Tensor]]
OPS: Registry[Operation] = Registry("operation")


def _all_valid(a: torch.Tensor) -> torch.Tensor:
    return torch.ones_like(a, dtype=torch.bool)


@OPS.register("add")
def _add(a: torch.Tensor, b: torch.Tensor, p: int) -> tuple[torch.Tensor, torch.Tensor]:
    return (a + b) % p, _all_valid(a)


@OPS.register("sub")
def _sub(a: torch.Tensor, b: torch.Tensor, p: int) -> tuple[torch.Tensor, torch.Tensor]:
    return (a - b) % p, _all_valid(a)


@OPS.register("mul")
def _mul(a: torch.Tensor, b: torch.Tensor, p: int) -> tuple[torch.Tensor, torch.Tensor]:
    return (a * b) % p, _all_valid(a)


@OPS.register("div")
def _div(a: torch.Tensor, b: torch.Tensor, p: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``a * b^-1``, defined where ``b`` is a unit mod p."""
    inverse = torch.tensor([pow(v, -1, p) if math.gcd(v, p) == 1 else -1 for v in range(p)])
    inv_b = inverse[b]
    return (a * inv_b.clamp(min=0)) % p, inv_b >= 0


@OPS.register("quad")
def _quad(a: torch.Tensor, b: torch.Tensor, p: int) -> tuple[torch.Tensor, torch.Tensor]:
    return (a * a + a * b + b * b) % p, _all_valid(a)


def operations() -> tuple[str, ...]:
    """Every registered operation, layout-v1 ones first."""
    return OPS.names()


@dataclass(frozen=True)
class ModularTask:
    """``(a op b) mod modulus`` over every valid pair ``0 <= a, b < modulus``."""

    op: str
    modulus: int

    def __post_init__(self) -> None:
        OPS.get(self.op)  # a clear error for an unknown operation

    @property
    def name(self) -> str:
        return f"{self.op}{self.modulus}"

    @property
    def answer_range(self) -> int:
        """Answers lie in ``0..answer_range-1``; losses and accuracies may be restricted to these classes."""
        return self.modulus

    @property
    def sequence_length(self) -> int:
        return SEQUENCE_LENGTH

    @property
    def final_position(self) -> int:
        return POSITIONS["final"]

    def all_examples(self, vocab: Vocabulary) -> tuple[torch.Tensor, torch.Tensor]:
        """Every valid pair as ``tokens [n_pairs, 4]`` and ``labels [n_pairs]``, in (a, b) row-major order."""
        if self.modulus > vocab.n_numbers:
            raise ValueError(f"task {self.name} needs numbers up to {self.modulus - 1}, vocab has {vocab.n_numbers}")
        p = self.modulus
        a = torch.arange(p).repeat_interleave(p)
        b = torch.arange(p).repeat(p)
        labels, valid = OPS.get(self.op)(a, b, p)
        a, b, labels = a[valid], b[valid], labels[valid]
        tokens = torch.stack(
            [a, b, torch.full_like(a, vocab.operation_token(self.op)), torch.full_like(a, vocab.modulus_token(p))], 1
        )
        return tokens, labels

    def split(self, vocab: Vocabulary, train_fraction: float, seed: int, val_fraction: float = 0.0) -> Split:
        """Seeded split: ``round(train_fraction * n_pairs)`` training pairs; of the pairs held out,
        ``round(val_fraction * n_pairs)`` for validation, the rest for testing. The training set does not depend on
        ``val_fraction`` (the validation pairs come from the held-out ones, the test set shrinks by as many)."""
        if not 0.0 < train_fraction < 1.0:
            raise ValueError(f"train_fraction must lie in (0, 1), got {train_fraction}")
        tokens, labels = self.all_examples(vocab)
        n_train = int(round(train_fraction * len(labels)))
        n_val = int(round(val_fraction * len(labels)))
        if n_train < 1 or n_train + n_val >= len(labels) or (val_fraction > 0 and n_val < 1):
            raise ValueError(f"train_fraction {train_fraction} with val_fraction {val_fraction} leaves an empty "
                             f"train, validation or test set for {self.name}")
        order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
        train, val, test = order[:n_train], order[n_train:n_train + n_val], order[n_train + n_val:]
        answer_range = torch.full_like(labels, self.answer_range)
        return Split(
            Examples(tokens[train], labels[train], answer_range[train]),
            Examples(tokens[test], labels[test], answer_range[test]),
            Examples(tokens[val], labels[val], answer_range[val]) if n_val else None,
        )


@TASKS.register("modular")
class ModularTaskConfig(TaskSpec):
    """``kind: modular`` (the default): ``(a op b) mod modulus`` on ``train_fraction`` of the pairs."""

    capabilities: ClassVar[frozenset[str]] = frozenset({"shared_vocabulary"})
    member_fraction: ClassVar[bool] = True

    kind: Literal["modular"] = "modular"
    op: str = Field("add", description="a registered operation (grokkit.OPS)")
    modulus: int = Field(113, ge=2, description="P: answers are taken mod P; the pairs are 0..P-1 x 0..P-1")
    train_fraction: float = Field(0.3, gt=0.0, lt=1.0, description="fraction of all pairs trained on (the rest "
                                  "are the test set); a member may have its own")
    val_fraction: float = Field(0.0, ge=0.0, lt=1.0, description="fraction of all pairs held out for validation, "
                                "drawn from the pairs not trained on (disjoint from the test pairs)")

    @field_validator("op")
    @classmethod
    def _known_op(cls, v: str) -> str:
        if v not in OPS:
            raise ValueError(f"unknown operation {v!r}; allowed: {', '.join(OPS.names())}")
        return v

    @property
    def name(self) -> str:
        return f"{self.op}{self.modulus}"

    def build(self) -> ModularTask:
        return ModularTask(self.op, self.modulus)

    def positions(self) -> dict[str, int]:
        return dict(POSITIONS)

    def split(self, vocab: Vocabulary, seed: int, train_fraction: float | None = None) -> Split:
        fraction = self.train_fraction if train_fraction is None else train_fraction
        return self.build().split(vocab, fraction, seed, val_fraction=self.val_fraction)

    def describe_data(self) -> str:
        return f"{self.train_fraction:.0%} of pairs"

    def example_counts(self, train_fraction: float | None = None) -> tuple[int, int, int]:
        """Of the ``modulus**2`` pairs (an upper bound: some operations leave pairs out), as :meth:`ModularTask.split`
        rounds them."""
        n = self.modulus**2
        n_train = int(round((self.train_fraction if train_fraction is None else train_fraction) * n))
        n_val = int(round(self.val_fraction * n))
        return n_train, max(0, n - n_train - n_val), n_val
