"""CPU kernels for the models' fast paths: gathers and weighted row sums with fast backward passes, and the MLP.

The fast forward paths of the models read tables by index: a one-layer transformer's attention output is a sum of
rows of an OV table weighted by the attention pattern, its attention scores and residual stream are rows of tables
over (position, token). PyTorch's ``embedding`` / ``embedding_bag`` compute these well, but on the CPU their backward
passes sort the indices and scatter row by row every step, which costs more than the forward pass many times over.
The functions here compute the same values and gradients as

* :func:`gather_rows` — ``F.embedding(index, table)``,
* :func:`weighted_row_sum` — ``F.embedding_bag(index, table, mode="sum", per_sample_weights=weights)``,

with the table's gradient as one sparse-times-dense product (a CSR matrix of the weights, built from one sort of the
indices, times the output gradient) and the weights' gradient as a sampled dense product (``sampled_addmm``, the rows'
dot products with the output gradient only where the index points). Results agree with the built-in ops to float
rounding (tests). On other devices, and when the tensors need no gradient, the built-in ops are used.

:func:`relu_mlp` is a transformer block's MLP with oneDNN's fused bias + ReLU linear for the first layer (no separate
passes over the hidden activations for the bias and the ReLU; its backward applies the ReLU's mask in place); the
same values as the plain computation, bit for bit in the tests.

``GROKKIT_FAST_KERNELS=0`` in the environment turns these off (the built-in ops everywhere), for comparisons.
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F


def enabled(t: torch.Tensor) -> bool:
    """Whether the custom backward passes are used for tensors like ``t``."""
    return t.device.type == "cpu" and os.environ.get("GROKKIT_FAST_KERNELS", "1") != "0"


def _csr(rows: torch.Tensor, cols: torch.Tensor, values: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    with warnings.catch_warnings():  # "sparse CSR support is in beta": the two ops used here are long-standing
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(rows, cols, values, shape, check_invariants=False)


class _Structure:
    """The sparsity structures of one index ``[n_rows, per_row]`` (flattened: ``flat_index``) into a table of
    ``n_table`` rows, for the weighted row sum's backward pass:

    * ``crow, col, order``: CSR structure of the ``[n_table, n_rows]`` matrix with a one at (index[r, j], r),
      ``order`` sorting the entries by table row (stable, so sums run in row order);
    * :meth:`pattern`: the ``[n_rows, n_table]`` CSR matrix of the index itself (values zero), for
      ``sampled_addmm``."""

    def __init__(self, flat_index: torch.Tensor, n_table: int, per_row: int) -> None:
        self.order = torch.argsort(flat_index, stable=True)
        self.crow = torch.zeros(n_table + 1, dtype=torch.long, device=flat_index.device)
        self.crow[1:] = torch.bincount(flat_index, minlength=n_table).cumsum(0)
        self.col = torch.div(self.order, per_row, rounding_mode="floor")
        self.flat_index, self.n_table, self.per_row = flat_index.clone(), n_table, per_row
        self._patterns: dict[torch.dtype, torch.Tensor] = {}

    def pattern(self, dtype: torch.dtype) -> torch.Tensor:
        if dtype not in self._patterns:
            n = len(self.flat_index) // self.per_row
            crow = torch.arange(0, n * self.per_row + 1, self.per_row, device=self.flat_index.device)
            values = torch.zeros(len(self.flat_index), dtype=dtype, device=self.flat_index.device)
            self._patterns[dtype] = _csr(crow, self.flat_index, values, (n, self.n_table))
        return self._patterns[dtype]


class ValueCache:
    """What was built for the last few index tensors, found again by value (shape, device, extra key, then
    ``torch.equal``). Full-batch training reads the same indices every step, one tensor per member chunk, so a
    handful of entries serves every step; the least recently used entry goes first."""

    def __init__(self, max_entries: int = 8) -> None:
        self.max_entries = max_entries
        self.entries: list[tuple[torch.Tensor, Any, Any]] = []  # (index copy, extra key, value), most recent first

    def get(self, index: torch.Tensor, extra: Any, build: Callable[[], Any]) -> Any:
        for i, (key, key_extra, value) in enumerate(self.entries):
            if (key.shape == index.shape and key.device == index.device and key_extra == extra
                    and torch.equal(key, index)):
                if i:
                    self.entries.insert(0, self.entries.pop(i))
                return value
        value = build()
        self.entries.insert(0, (index.clone(), extra, value))
        del self.entries[self.max_entries:]
        return value


#: CSR structures of the weighted row sums' indices (one sort serves every full-batch step)
_structures = ValueCache()


def _structure(flat_index: torch.Tensor, n_table: int, per_row: int) -> _Structure:
    """:class:`_Structure` of the index, reused while the index (compared by value) and the sizes stay the same."""
    return _structures.get(flat_index, (n_table, per_row), lambda: _Structure(flat_index, n_table, per_row))


class _WeightedRowSum(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, table: torch.Tensor, index: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(table, index, weights)
        return F.embedding_bag(index, table, mode="sum", per_sample_weights=weights)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, None, torch.Tensor | None]:
        table, index, weights = ctx.saved_tensors
        n, j = index.shape
        flat = index.reshape(-1)
        grad = grad.contiguous()
        grad_table = grad_weights = None
        structure = _structure(flat, table.shape[0], j)
        if ctx.needs_input_grad[0]:
            values = weights.reshape(-1).index_select(0, structure.order)
            grad_table = _csr(structure.crow, structure.col, values, (table.shape[0], n)) @ grad
        if ctx.needs_input_grad[2]:
            pattern = structure.pattern(grad.dtype)
            grad_weights = torch.sparse.sampled_addmm(pattern, grad, table.t(), beta=0.0).values().view(n, j)
        return grad_table, None, grad_weights


class _GatherRows(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(index)
        ctx.n_table = table.shape[0]
        return F.embedding(index, table)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (index,) = ctx.saved_tensors
        d = grad.shape[-1]
        out = torch.zeros(ctx.n_table, d, dtype=grad.dtype, device=grad.device)
        return out.index_add_(0, index.reshape(-1), grad.reshape(-1, d)), None


def weighted_row_sum(table: torch.Tensor, index: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``out[n] = sum_j weights[n, j] * table[index[n, j]]``: ``table [R, d]``, ``index, weights [N, J]``
    -> ``[N, d]``."""
    if enabled(table) and (table.requires_grad or weights.requires_grad) and torch.is_grad_enabled():
        return _WeightedRowSum.apply(table, index, weights)
    return F.embedding_bag(index, table, mode="sum", per_sample_weights=weights)


def gather_rows(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``table[index]``: ``table [R, d]``, ``index [...]`` -> ``[..., d]``."""
    if enabled(table) and table.requires_grad and torch.is_grad_enabled():
        return _GatherRows.apply(table, index)
    return F.embedding(index, table)


@functools.cache
def fused_linear_available() -> bool:
    """Whether oneDNN's linear with a fused ReLU (``torch.ops.mkldnn._linear_pointwise``) runs in this build
    (probed once per process)."""
    try:
        x = torch.ones(1, 1)
        out = torch.ops.mkldnn._linear_pointwise(x, x * 2, x.view(1) * -3, "relu", [], "")
        plain = torch.ops.mkldnn._linear_pointwise(x, x * 2, None, "none", [], "")  # and without bias or ReLU
        return bool(out.item() == 0.0 and plain.item() == 2.0)  # relu(1 * 2 - 3) = 0: it fuses what it says
    except (AttributeError, RuntimeError, TypeError):  # a build without oneDNN, or a changed private signature
        return False


class _ReluMLP(torch.autograd.Function):
    """One member's ``relu(x @ w_in + b_in) @ w_out + b_out`` with oneDNN's fused bias + ReLU in the forward pass and
    the ReLU's mask applied in place in the backward pass. The products of the form ``rows @ weight`` (both layers'
    forward, both activation gradients) run as oneDNN linears: 10-25% faster than MKL's sgemm for these shapes on
    AVX-512 CPUs (``benchmarks/profile_step.py``); the weight gradients (a long reduction over rows) stay with MKL."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, w_in: torch.Tensor, b_in: torch.Tensor, w_out: torch.Tensor,
                b_out: torch.Tensor) -> torch.Tensor:
        hidden = _linear(x, w_in.t(), b_in, "relu")
        ctx.save_for_backward(x, w_in, w_out, hidden)
        return _linear(hidden, w_out.t(), b_out, "none")

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x, w_in, w_out, hidden = ctx.saved_tensors
        grad_hidden = _linear(grad, w_out, None, "none")  # grad @ w_out.t()
        grad_pre = torch.ops.aten.threshold_backward.grad_input(grad_hidden, hidden, 0, grad_input=grad_hidden)
        return (_linear(grad_pre, w_in, None, "none"), x.t() @ grad_pre, grad_pre.sum(0), hidden.t() @ grad,
                grad.sum(0))


def _linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, attr: str) -> torch.Tensor:
    """``x @ weight.t() (+ bias)``, then ``attr`` ("relu" or "none"), as one oneDNN call."""
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, attr, [], "")


def relu_mlp(x: torch.Tensor, w_in: torch.Tensor, b_in: torch.Tensor, w_out: torch.Tensor,
             b_out: torch.Tensor) -> torch.Tensor:
    """``relu(x @ w_in + b_in) @ w_out + b_out`` per member: ``x [K, N, d]``, ``w_in [K, d, m]``, ``b_in [K, m]``,
    ``w_out [K, m, d]``, ``b_out [K, d]`` -> ``[K, N, d]``. On the CPU in float32, each member's first layer is one
    oneDNN call with the bias and ReLU fused into the matrix product (no separate passes over the hidden layer)."""
    if enabled(x) and x.dtype == torch.float32 and fused_linear_available():
        outs = [_ReluMLP.apply(x[i], w_in[i], b_in[i], w_out[i], b_out[i]) for i in range(x.shape[0])]
        return outs[0].unsqueeze(0) if len(outs) == 1 else torch.stack(outs)
    hidden = torch.relu(torch.baddbmm(b_in.unsqueeze(1), x, w_in))
    return torch.baddbmm(b_out.unsqueeze(1), hidden, w_out)
