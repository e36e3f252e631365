"""Algorithmic tasks: binary operations modulo P over one vocabulary shared by every task of a run; and bit tasks
(sparse parity, high-dimensional XOR).

A sequence is ``[a, b, op, P]``: two number tokens, one token naming the operation and one naming the modulus. The
vocabulary lists every number, *every* operation and a fixed list of moduli, so the token ids of a task do not depend
on which other tasks a run contains: a model trained on mod 113 reads the inputs of mod 107 unchanged, which is what
distillation across distributions needs.

Bit tasks (:class:`SparseParityTask`, :class:`XorTask`) read a sequence of ``n_bits`` tokens 0/1 and answer class 0 or
1 at the last position. They use the vocabulary ``Vocabulary(2, (2,))``: the bits are the number tokens 0 and 1 (the
operation and modulus tokens exist but never occur), so both the transformer and the MLP read them through ``W_E``
and the model file format is unchanged.

Every task has ``name``, ``answer_range`` (answers lie in ``0..answer_range-1``), ``sequence_length``,
``final_position`` (where the answer is read) and ``split(vocab, train_fraction, seed)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

#: Every operation, in vocabulary order. The order is part of the checkpoint format: append, never reorder.
OPERATIONS: tuple[str, ...] = ("add", "sub", "mul", "div", "quad")

#: Sequence positions by name; ``operator`` is where the paper distils, ``final`` is where the answer is read.
POSITIONS: dict[str, int] = {"a": 0, "b": 1, "operator": 2, "final": 3}
SEQUENCE_LENGTH = len(POSITIONS)


def _answers(op: str, a: torch.Tensor, b: torch.Tensor, modulus: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(answer, valid) for all pairs; ``valid`` is False where the operation is undefined (division by a non-unit)."""
    if op == "add":
        return (a + b) % modulus, torch.ones_like(a, dtype=torch.bool)
    if op == "sub":
        return (a - b) % modulus, torch.ones_like(a, dtype=torch.bool)
    if op == "mul":
        return (a * b) % modulus, torch.ones_like(a, dtype=torch.bool)
    if op == "quad":
        return (a * a + a * b + b * b) % modulus, torch.ones_like(a, dtype=torch.bool)
    if op == "div":
        inverse = torch.tensor([pow(v, -1, modulus) if math.gcd(v, modulus) == 1 else -1 for v in range(modulus)])
        inv_b = inverse[b]
        valid = inv_b >= 0
        return (a * inv_b.clamp(min=0)) % modulus, valid
    raise ValueError(f"unknown operation {op!r}; allowed: {', '.join(OPERATIONS)}")


@dataclass(frozen=True)
class Vocabulary:
    """Token layout shared by all tasks of a run: numbers ``0..n_numbers-1``, the operations, then the moduli.

    Output classes are the numbers, so a model has ``n_numbers`` output logits whatever its task's modulus.
    """

    n_numbers: int
    moduli: tuple[int, ...]

    def __post_init__(self) -> None:
        if self.n_numbers < 2:
            raise ValueError(f"vocab.n_numbers must be >= 2, got {self.n_numbers}")
        if len(set(self.moduli)) != len(self.moduli):
            raise ValueError(f"vocab.moduli has duplicates: {list(self.moduli)}")
        too_big = [m for m in self.moduli if m > self.n_numbers or m < 2]
        if too_big:
            raise ValueError(f"vocab.moduli {too_big} must lie in 2..n_numbers={self.n_numbers}")

    @property
    def d_vocab(self) -> int:
        return self.n_numbers + len(OPERATIONS) + len(self.moduli)

    @property
    def n_classes(self) -> int:
        return self.n_numbers

    def operation_token(self, op: str) -> int:
        return self.n_numbers + OPERATIONS.index(op)

    def modulus_token(self, modulus: int) -> int:
        if modulus not in self.moduli:
            raise ValueError(f"modulus {modulus} has no token in this vocabulary (moduli {list(self.moduli)})")
        return self.n_numbers + len(OPERATIONS) + self.moduli.index(modulus)

    def token_names(self) -> list[str]:
        return [str(i) for i in range(self.n_numbers)] + list(OPERATIONS) + [f"P={m}" for m in self.moduli]

    def to_dict(self) -> dict[str, object]:
        return {"n_numbers": self.n_numbers, "moduli": list(self.moduli)}


@dataclass(frozen=True)
class ModularTask:
    """``(a op b) mod modulus`` over every valid pair ``0 <= a, b < modulus``."""

    op: str
    modulus: int

    def __post_init__(self) -> None:
        if self.op not in OPERATIONS:
            raise ValueError(f"unknown operation {self.op!r}; allowed: {', '.join(OPERATIONS)}")

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
        labels, valid = _answers(self.op, a, b, p)
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
    ``weight [K, n]`` (1 for real rows, 0 for padding)."""

    tokens: torch.Tensor
    labels: torch.Tensor
    answer_range: torch.Tensor
    weight: torch.Tensor

    def to(self, device: torch.device | str) -> EnsembleExamples:
        return EnsembleExamples(*(t.to(device) for t in (self.tokens, self.labels, self.answer_range, self.weight)))

    def select(self, index: torch.Tensor) -> EnsembleExamples:
        """Rows ``index [K, b]`` of each member (a minibatch)."""
        take: Callable[[torch.Tensor], torch.Tensor] = lambda t: torch.gather(  # noqa: E731
            t, 1, index.view(*index.shape, *([1] * (t.dim() - 2))).expand(*index.shape, *t.shape[2:])
        )
        return EnsembleExamples(take(self.tokens), take(self.labels), take(self.answer_range), take(self.weight))

    @property
    def n_members(self) -> int:
        return self.tokens.shape[0]


# --------------------------------------------------------------------------------------------- bit tasks
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


Task = ModularTask | SparseParityTask | XorTask
