"""Bit tasks: a sequence of ``n_bits`` tokens 0/1, answer class 0 or 1 at the last position: sparse parity and
high-dimensional XOR (GrokTransfer's theory setting).

They use the vocabulary ``Vocabulary(2, (2,))``: the bits are the number tokens 0 and 1 (the operation and modulus
tokens exist but never occur), so both the transformer and the MLP read them through ``W_E`` and the model file
format is unchanged; with ``positional_tokens`` one token per (position, bit).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from pydantic import Field, model_validator

from grokkit.tasks.base import TASKS, Examples, Split, TaskSpec, Vocabulary

#: the vocabulary of the bit tasks: tokens 0 and 1 are the bits, classes 0 and 1 the answers
BIT_VOCABULARY = Vocabulary(2, (2,))


def bit_vocabulary(n_bits: int, positional_tokens: bool) -> Vocabulary:
    """``BIT_VOCABULARY``, or with positional tokens one token per (position, bit): ``2 * i + bit``, so that ``W_E``
    is a linear map of the whole input (the paper's embedding of a bit vector) rather than two shared rows; the
    answers are then classes 0 and 1 of ``2 * n_bits`` (the others are never scored: answer_range is 2)."""
    return Vocabulary(2 * n_bits, (2,)) if positional_tokens else BIT_VOCABULARY


def distinct_bit_rows(n_bits: int, count: int, generator: torch.Generator) -> torch.Tensor:
    """``count`` distinct uniformly random rows of ``{0, 1}^n_bits`` ``[count, n_bits]``, in random order."""
    if n_bits < 63 and count > 2**n_bits:
        raise ValueError(f"cannot draw {count} distinct inputs of {n_bits} bits (only {2**n_bits} exist)")
    if n_bits <= 16:  # enumerate: exact sampling without replacement even when count is close to 2^n_bits
        codes = torch.randperm(2**n_bits, generator=generator)[:count]
        return (codes.unsqueeze(1) >> torch.arange(n_bits)) & 1
    rows = torch.empty(0, n_bits, dtype=torch.long)
    while len(rows) < count:
        rows = torch.cat([rows, torch.randint(0, 2, (count - len(rows) + 16, n_bits), generator=generator)])
        _, inverse = torch.unique(rows, dim=0, return_inverse=True)
        first = torch.full((int(inverse.max()) + 1,), len(rows)).scatter_reduce(
            0, inverse, torch.arange(len(rows)), reduce="amin")
        rows = rows[first.sort().values]  # first occurrences, in the order drawn
    return rows[:count]


def disjoint_bit_rows(n_bits: int, count: int, exclude: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """``count`` distinct random rows of ``{0, 1}^n_bits`` none of which is a row of ``exclude``."""
    weights = 2 ** torch.arange(n_bits)
    if n_bits <= 16:
        free = torch.ones(2**n_bits, dtype=torch.bool)
        free[(exclude * weights).sum(1)] = False
        codes = torch.nonzero(free).flatten()
        if count > len(codes):
            raise ValueError(f"cannot draw {count} more distinct inputs of {n_bits} bits")
        codes = codes[torch.randperm(len(codes), generator=generator)[:count]]
        return (codes.unsqueeze(1) >> torch.arange(n_bits)) & 1
    taken = {tuple(r) for r in exclude.tolist()}
    out: list[list[int]] = []
    while len(out) < count:
        for r in torch.randint(0, 2, (count - len(out) + 16, n_bits), generator=generator).tolist():
            if tuple(r) not in taken and len(out) < count:
                taken.add(tuple(r))
                out.append(r)
    return torch.tensor(out, dtype=torch.long).view(-1, n_bits)


def _bit_split(rows: torch.Tensor, labels: torch.Tensor, n_train: int, train_labels: torch.Tensor | None = None,
               positional_tokens: bool = False, val: tuple[torch.Tensor, torch.Tensor] | None = None) -> Split:
    answer_range = torch.full_like(labels, 2)
    shift = 2 * torch.arange(rows.shape[1]) if positional_tokens else 0
    train_y = labels[:n_train] if train_labels is None else train_labels
    val_set = None
    if val is not None and len(val[1]):
        val_set = Examples(val[0] + shift, val[1], torch.full_like(val[1], 2))
    return Split(Examples(rows[:n_train] + shift, train_y, answer_range[:n_train]),
                 Examples(rows[n_train:] + shift, labels[n_train:], answer_range[n_train:]), val_set)


class _BitTask:
    """What bit-string tasks share: two classes, one token per bit, the answer read at the last bit."""

    n_bits: int

    @property
    def answer_range(self) -> int:
        return 2

    @property
    def sequence_length(self) -> int:
        return self.n_bits

    @property
    def final_position(self) -> int:
        return self.n_bits - 1


@dataclass(frozen=True)
class SparseParityTask(_BitTask):
    """(n, k)-sparse parity: ``n_bits`` random bits, the label is the parity of ``k`` secret bits. The secret is fixed
    by ``secret_seed`` (the same for every member); each member's ``n_train`` training and ``n_test`` test inputs
    are distinct draws from its split seed. Tokens are the bits (0/1), or with ``positional_tokens`` ``2 * i + bit``
    (see :func:`bit_vocabulary`)."""

    n_bits: int
    k: int
    n_train: int
    n_test: int
    secret_seed: int = 0
    positional_tokens: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.k <= self.n_bits:
            raise ValueError(f"sparse parity needs 1 <= k <= n_bits, got k={self.k}, n_bits={self.n_bits}")

    @property
    def name(self) -> str:
        return f"parity{self.n_bits}_{self.k}"

    @property
    def secret(self) -> list[int]:
        """The ``k`` positions whose parity is the label, ascending."""
        order = torch.randperm(self.n_bits, generator=torch.Generator().manual_seed(self.secret_seed))
        return sorted(order[: self.k].tolist())

    def labels(self, rows: torch.Tensor) -> torch.Tensor:
        return rows[:, self.secret].sum(1) % 2

    def split(self, vocab: Vocabulary, train_fraction: float | None, seed: int, n_val: int = 0) -> Split:
        """``train_fraction`` is unused: the sizes are ``n_train`` and ``n_test``; ``n_val`` validation inputs are
        drawn after them, distinct from both (train and test do not depend on ``n_val``)."""
        g = torch.Generator().manual_seed(seed)
        rows = distinct_bit_rows(self.n_bits, self.n_train + self.n_test, g)
        val_rows = disjoint_bit_rows(self.n_bits, n_val, rows, g)
        return _bit_split(rows, self.labels(rows), self.n_train, positional_tokens=self.positional_tokens,
                          val=(val_rows, self.labels(val_rows)))


@dataclass(frozen=True)
class XorTask(_BitTask):
    """High-dimensional XOR, the setting of GrokTransfer's theory scaled to a CPU, in token form.

    An input is ``x in {-1, +1}^n_bits`` (token 0 is -1, token 1 is +1). The signal lives in two coordinates,
    ``x_0`` and ``x_1``, the clusters ``(+-1, +-1)``; the other ``n_bits - 2`` coordinates are noise, and
    ``n_bits`` is large against the number of samples (high-dimensional). The label is the XOR,
    ``y = x_0 * x_1`` (class 1 for ``+1``: the two signal bits agree). A fraction ``label_noise`` of the *training*
    labels is flipped (the theory's label-flip noise, drawn from the split seed); test labels are clean."""

    n_bits: int
    n_train: int
    n_test: int
    label_noise: float = 0.0
    positional_tokens: bool = False

    def __post_init__(self) -> None:
        if self.n_bits < 2:
            raise ValueError(f"XOR needs n_bits >= 2, got {self.n_bits}")
        if not 0.0 <= self.label_noise < 0.5:
            raise ValueError(f"label_noise must lie in [0, 0.5), got {self.label_noise}")

    @property
    def name(self) -> str:
        return f"xor{self.n_bits}"

    @staticmethod
    def labels(rows: torch.Tensor) -> torch.Tensor:
        return (rows[:, 0] == rows[:, 1]).long()

    def split(self, vocab: Vocabulary, train_fraction: float | None, seed: int, n_val: int = 0) -> Split:
        """``train_fraction`` is unused: the sizes are ``n_train`` and ``n_test``; ``n_val`` validation inputs
        (clean labels, like the test set) are drawn last, distinct from both."""
        g = torch.Generator().manual_seed(seed)
        rows = distinct_bit_rows(self.n_bits, self.n_train + self.n_test, g)
        labels = self.labels(rows)
        flip = torch.rand(self.n_train, generator=g) < self.label_noise
        train_labels = torch.where(flip, 1 - labels[: self.n_train], labels[: self.n_train])
        val_rows = disjoint_bit_rows(self.n_bits, n_val, rows, g)
        return _bit_split(rows, labels, self.n_train, train_labels, self.positional_tokens,
                          val=(val_rows, self.labels(val_rows)))


class _BitTaskConfig(TaskSpec):
    """What the bit tasks' configs share: sizes per member and the token form."""

    n_bits: int = Field(..., ge=2, description="input length")
    n_train: int = Field(..., ge=1, description="training inputs per member")
    n_test: int = Field(..., ge=1, description="test inputs per member")
    n_val: int = Field(0, ge=0, description="validation inputs per member, distinct from train and test")
    positional_tokens: bool = Field(False, description="token 2*i+bit (one W_E row per position and bit, the "
                                    "paper's linear embedding of the bit vector) instead of the bit itself")

    @model_validator(mode="after")
    def _enough_inputs(self) -> _BitTaskConfig:
        if self.n_bits < 63 and self.n_train + self.n_test > 2**self.n_bits:
            raise ValueError(f"n_train + n_test = {self.n_train + self.n_test} distinct inputs do not exist "
                             f"among the {2**self.n_bits} inputs of {self.n_bits} bits")
        return self

    def own_vocabulary(self) -> Vocabulary:
        return bit_vocabulary(self.n_bits, self.positional_tokens)

    def split(self, vocab: Vocabulary, seed: int, train_fraction: float | None = None) -> Split:
        return self.build().split(vocab, None, seed, n_val=self.n_val)

    def describe_data(self) -> str:
        return f"{self.n_train} training inputs"

    def example_counts(self, train_fraction: float | None = None) -> tuple[int, int, int]:
        return self.n_train, self.n_test, self.n_val


@TASKS.register("sparse_parity")
class SparseParityConfig(_BitTaskConfig):
    """``kind: sparse_parity``: ``n_bits`` random bits, label = parity of ``k`` secret bits (secret fixed by
    ``secret_seed``), ``n_train``/``n_test`` distinct inputs per member."""

    kind: Literal["sparse_parity"]
    k: int = Field(..., ge=1, description="number of secret bits")
    secret_seed: int = Field(0, description="seed choosing the secret bits (shared by all members)")

    @model_validator(mode="after")
    def _k_fits(self) -> SparseParityConfig:
        if self.k > self.n_bits:
            raise ValueError(f"sparse parity needs k <= n_bits, got k={self.k}, n_bits={self.n_bits}")
        return self

    @property
    def name(self) -> str:
        return f"parity{self.n_bits}_{self.k}"

    def build(self) -> SparseParityTask:
        return SparseParityTask(self.n_bits, self.k, self.n_train, self.n_test, self.secret_seed,
                                self.positional_tokens)


@TASKS.register("xor")
class XorConfig(_BitTaskConfig):
    """``kind: xor``: high-dimensional XOR, label = XOR of bits 0 and 1 of ``n_bits``, ``label_noise`` of the
    training labels flipped."""

    kind: Literal["xor"]
    label_noise: float = Field(0.0, ge=0.0, lt=0.5, description="fraction of training labels flipped")

    @property
    def name(self) -> str:
        return f"xor{self.n_bits}"

    def build(self) -> XorTask:
        return XorTask(self.n_bits, self.n_train, self.n_test, self.label_noise, self.positional_tokens)
