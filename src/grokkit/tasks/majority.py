"""``kind: majority``: the majority bit of ``n_bits`` random bits (``n_bits`` odd, so there are no ties). A dense
function of every input bit, where sparse parity depends on ``k`` of them: the easy end of the bit tasks, and the
worked example of adding a task kind (this file and its test are all it took; see docs/architecture.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from pydantic import model_validator

from grokkit.tasks.base import TASKS, Split, Vocabulary
from grokkit.tasks.bits import _bit_split, _BitTask, _BitTaskConfig, disjoint_bit_rows, distinct_bit_rows


@dataclass(frozen=True)
class MajorityTask(_BitTask):
    """Label 1 where more than half of the ``n_bits`` bits are 1; ``n_train``/``n_test`` distinct inputs per member."""

    n_bits: int
    n_train: int
    n_test: int
    positional_tokens: bool = False

    @property
    def name(self) -> str:
        return f"majority{self.n_bits}"

    def labels(self, rows: torch.Tensor) -> torch.Tensor:
        return (2 * rows.sum(1) > self.n_bits).long()

    def split(self, vocab: Vocabulary, train_fraction: float | None, seed: int, n_val: int = 0) -> Split:
        g = torch.Generator().manual_seed(seed)
        rows = distinct_bit_rows(self.n_bits, self.n_train + self.n_test, g)
        val_rows = disjoint_bit_rows(self.n_bits, n_val, rows, g)
        return _bit_split(rows, self.labels(rows), self.n_train, positional_tokens=self.positional_tokens,
                          val=(val_rows, self.labels(val_rows)))


@TASKS.register("majority")
class MajorityConfig(_BitTaskConfig):
    """``kind: majority``: n_bits (odd), n_train, n_test, n_val, positional_tokens."""

    kind: Literal["majority"]

    @model_validator(mode="after")
    def _odd(self) -> MajorityConfig:
        if self.n_bits % 2 == 0:
            raise ValueError(f"majority needs an odd n_bits (no ties), got {self.n_bits}")
        return self

    @property
    def name(self) -> str:
        return f"majority{self.n_bits}"

    def build(self) -> MajorityTask:
        return MajorityTask(self.n_bits, self.n_train, self.n_test, self.positional_tokens)
