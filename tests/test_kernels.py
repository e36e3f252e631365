import pytest
import torch
import torch.nn.functional as F

from grokkit.models import kernels
from grokkit.runtime import tune_allocator


def _bag_inputs(seed, n=50, j=6, r=13, d=5, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    table = torch.randn(r, d, generator=g, dtype=dtype, requires_grad=True)
    index = torch.randint(0, r, (n, j), generator=g)
    index[:, 0] = 3  # repeated rows, as the constant tokens of a task give
    weights = torch.rand(n, j, generator=g, dtype=dtype, requires_grad=True)
    return table, index, weights, torch.randn(n, d, generator=g, dtype=dtype)


def test_weighted_row_sum_equals_embedding_bag_values_and_gradients():
    for seed in range(3):  # the second call with another index must not reuse the first one's cached structure
        table, index, weights, grad = _bag_inputs(seed)
        out = kernels.weighted_row_sum(table, index, weights)
        got = torch.autograd.grad(out, (table, weights), grad)
        ref_out = F.embedding_bag(index, table, mode="sum", per_sample_weights=weights)
        want = torch.autograd.grad(ref_out, (table, weights), grad)
        torch.testing.assert_close(out, ref_out, rtol=1e-12, atol=1e-12)
        for a, b in zip(got, want):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
        assert out.grad_fn is not None and "WeightedRowSum" in type(out.grad_fn).__name__


def test_weighted_row_sum_reuses_the_structure_only_for_the_same_index():
    table, index, weights, grad = _bag_inputs(0)
    torch.autograd.grad(kernels.weighted_row_sum(table, index, weights), (table,), grad)
    first = kernels._structures.entries[0][2]
    torch.autograd.grad(kernels.weighted_row_sum(table, index.clone(), weights), (table,), grad)
    assert kernels._structures.entries[0][2] is first  # same values: one sort serves every step
    other = index.flip(0)
    got = torch.autograd.grad(kernels.weighted_row_sum(table, other, weights), (table,), grad)[0]
    assert kernels._structures.entries[0][2] is not first
    torch.autograd.grad(kernels.weighted_row_sum(table, index, weights), (table,), grad)
    assert kernels._structures.entries[0][2] is first  # member chunks alternate: each keeps its own entry
    want = torch.autograd.grad(F.embedding_bag(other, table, mode="sum", per_sample_weights=weights), (table,), grad)
    torch.testing.assert_close(got, want[0], rtol=1e-12, atol=1e-12)


def test_value_cache_finds_entries_by_value_and_drops_the_least_recently_used():
    cache = kernels.ValueCache(max_entries=2)
    built = []

    def build(tag):
        return lambda: built.append(tag) or tag

    a, b, c = torch.arange(4), torch.arange(4) + 1, torch.arange(5)
    assert cache.get(a, 1, build("a")) == "a"
    assert cache.get(a.clone(), 1, build("x")) == "a"  # equal values: found, not rebuilt
    assert cache.get(a, 2, build("a2")) == "a2"  # another extra key: another entry
    assert cache.get(b, 1, build("b")) == "b"  # evicts (a, 1), the least recently used
    assert cache.get(a, 1, build("a again")) == "a again"
    assert cache.get(c, 1, build("c")) == "c"
    assert built == ["a", "a2", "b", "a again", "c"]
    assert len(cache.entries) == 2


def test_gather_rows_equals_embedding():
    g = torch.Generator().manual_seed(1)
    table = torch.randn(9, 4, generator=g, dtype=torch.float64, requires_grad=True)
    index = torch.randint(0, 9, (3, 7, 2), generator=g)
    grad = torch.randn(3, 7, 2, 4, generator=g, dtype=torch.float64)
    out = kernels.gather_rows(table, index)
    torch.testing.assert_close(out, F.embedding(index, table))
    got = torch.autograd.grad(out, table, grad)[0]
    want = torch.autograd.grad(F.embedding(index, table), table, grad)[0]
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_switched_off_or_without_gradients_the_builtin_ops_run(monkeypatch):
    table, index, weights, _ = _bag_inputs(0)
    monkeypatch.setenv("GROKKIT_FAST_KERNELS", "0")
    assert "EmbeddingBag" in type(kernels.weighted_row_sum(table, index, weights).grad_fn).__name__
    monkeypatch.delenv("GROKKIT_FAST_KERNELS")
    with torch.no_grad():
        assert kernels.weighted_row_sum(table, index, weights).grad_fn is None


def test_allocator_tuning_is_idempotent():
    first = tune_allocator()
    assert tune_allocator() is first


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_kernels_in_the_model_match_the_builtin_ops(monkeypatch, dtype):
    from grokkit.models import EnsembleTransformer, TransformerShape
    from grokkit.tasks import ModularTask, Vocabulary, stack_members

    vocab = Vocabulary(23, (23,))
    model = EnsembleTransformer(TransformerShape(vocab.d_vocab, vocab.n_classes, d_model=32, n_heads=4, d_head=8,
                                                 d_mlp=64), [0, 1]).to(dtype)
    tokens = stack_members([ModularTask("add", 23).split(vocab, 0.3, s).train for s in range(2)]).tokens
    grads = []
    for flag in ("1", "0"):
        monkeypatch.setenv("GROKKIT_FAST_KERNELS", flag)
        model.zero_grad()
        (model(tokens, [2, 3]) ** 2).sum().backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    tol = 1e-5 if dtype == torch.float32 else 1e-12  # float32: sums run in another order
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol * float(b.abs().max()))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("k", [1, 3])
def test_relu_mlp_equals_the_plain_computation(dtype, k):
    g = torch.Generator().manual_seed(k)
    n, d, m = 40, 8, 16

    def t(*shape):
        return torch.randn(*shape, generator=g, dtype=dtype, requires_grad=True)

    x, w_in, b_in, w_out, b_out = t(k, n, d), t(k, d, m), t(k, m), t(k, m, d), t(k, d)
    grad = torch.randn(k, n, d, generator=g, dtype=dtype)
    out = kernels.relu_mlp(x, w_in, b_in, w_out, b_out)
    ref = torch.baddbmm(b_out.unsqueeze(1), torch.relu(torch.baddbmm(b_in.unsqueeze(1), x, w_in)), w_out)
    torch.testing.assert_close(out, ref)
    for a, b in zip(torch.autograd.grad(out, (x, w_in, b_in, w_out, b_out), grad),
                    torch.autograd.grad(ref, (x, w_in, b_in, w_out, b_out), grad)):
        torch.testing.assert_close(a, b)
    members = [type(f).__name__ for f, _ in out.grad_fn.next_functions if f is not None]
    fused = dtype == torch.float32 and kernels.fused_linear_available()  # oneDNN's path: one call per member
    assert (members.count("_ReluMLPBackward") == k) == fused, members
