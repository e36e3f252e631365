import pytest
import torch

from grokkit.models import EnsembleTransformer, TransformerShape
from grokkit.tasks import ModularTask, Vocabulary, stack_members


def _data(vocab, k, p=23):
    return stack_members([ModularTask("add", p).split(vocab, 0.3, s).train for s in range(k)])


@pytest.mark.parametrize("n_layers,layer_norm", [(1, False), (1, True), (2, False), (3, True)])
def test_fast_forward_equals_full_computation(n_layers, layer_norm):
    vocab = Vocabulary(29, (23, 29))
    shape = TransformerShape(vocab.d_vocab, vocab.n_classes, n_layers=n_layers, d_model=32, n_heads=2, d_head=16,
                             d_mlp=64, layer_norm=layer_norm)
    model = EnsembleTransformer(shape, [0, 1, 2]).double()
    with torch.no_grad():  # move away from the initial point so that LayerNorm/biases matter
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    tokens = _data(vocab, 3).tokens
    full, cache = model.run_with_cache(tokens)
    for positions in ([3], [2, 3], [1], [0, 2]):
        torch.testing.assert_close(model(tokens, positions), full[:, :, positions], rtol=1e-10, atol=1e-10)
    assert "blocks.0.attn.hook_pattern" in cache
    # TransformerLens's names: hook_embed is W_E alone, hook_pos_embed W_pos, their sum enters block 0
    torch.testing.assert_close(cache["hook_embed"][1, 5], model.embed.W_E[1, tokens[1, 5]])
    torch.testing.assert_close(cache["hook_pos_embed"][1, 5], model.pos_embed.W_pos[1, :4])
    torch.testing.assert_close(cache["blocks.0.hook_resid_pre"], cache["hook_embed"] + cache["hook_pos_embed"])


def test_gradients_of_fast_and_full_paths_agree():
    vocab = Vocabulary(23, (23,))
    shape = TransformerShape(vocab.d_vocab, vocab.n_classes, d_model=32, n_heads=4, d_head=8, d_mlp=64)
    model = EnsembleTransformer(shape, [5, 6]).double()
    tokens = _data(vocab, 2).tokens
    grads = []
    for fn in (lambda: model(tokens, [2, 3]), lambda: model.run_with_cache(tokens)[0][:, :, [2, 3]]):
        model.zero_grad()
        (fn() ** 2).sum().backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


def test_member_initialisation_does_not_depend_on_the_ensemble():
    shape = TransformerShape(40, 31, d_model=16, n_heads=2, d_head=8, d_mlp=32)
    alone = EnsembleTransformer(shape, [7])
    ensemble = EnsembleTransformer(shape, [3, 7, 11])
    for (name, a), (_, e) in zip(alone.named_parameters(), ensemble.named_parameters()):
        assert torch.equal(a[0], e[1]), name
    assert not torch.equal(ensemble.embed.W_E[0], ensemble.embed.W_E[1])


def test_weight_names_follow_the_interpretability_convention():
    shape = TransformerShape(40, 31, n_layers=2)
    names = dict(EnsembleTransformer(shape, [0]).named_parameters())
    for n in ["embed.W_E", "pos_embed.W_pos", "blocks.1.attn.W_Q", "blocks.1.attn.W_K", "blocks.1.attn.W_V",
              "blocks.1.attn.W_O", "blocks.0.mlp.W_in", "blocks.0.mlp.W_out", "unembed.W_U"]:
        assert n in names
    assert names["blocks.0.attn.W_Q"].shape == (1, 4, 128, 32)


def test_compact_tables_match_the_full_computation_across_members_and_alternating_batches():
    """The one-layer path's tables hold only the (position, token) pairs present, cached by the tokens' values:
    members with different moduli, operator tokens and padding rows, and batches that alternate (member chunks,
    train and test sets) must each get their own rows, values and gradients."""
    vocab = Vocabulary(29, (23, 29))
    shape = TransformerShape(vocab.d_vocab, vocab.n_classes, d_model=32, n_heads=2, d_head=16, d_mlp=64)
    model = EnsembleTransformer(shape, [0, 1, 2]).double()
    g = torch.Generator().manual_seed(0)

    def batch(n: int, modulus_of: list[int]) -> torch.Tensor:
        tokens = torch.zeros(3, n, 4, dtype=torch.long)
        for k, m in enumerate(modulus_of):
            tokens[k, :, :2] = torch.randint(0, m, (n, 2), generator=g)
            tokens[k, :, 2] = vocab.operation_token(("add", "sub")[k % 2])  # two operator tokens
            tokens[k, :, 3] = vocab.modulus_token(m)
        tokens[0, -4:] = 0  # padding rows
        return tokens

    a, b = batch(40, [23, 29, 23]), batch(40, [29, 29, 23])  # same shape: told apart by value
    for tokens in (a, b, a, b.clone()):  # misses, then hits by value
        for positions in ([3], [2, 3]):
            model.zero_grad()
            out = model(tokens, positions)
            weight = torch.randn(out.shape, generator=g, dtype=out.dtype)
            (out * weight).sum().backward()
            fast = [p.grad.clone() for p in model.parameters()]
            model.zero_grad()
            full = model.run_with_cache(tokens)[0][:, :, positions]
            (full * weight).sum().backward()
            torch.testing.assert_close(out, full, rtol=1e-10, atol=1e-10)
            for x, y in zip(fast, (p.grad for p in model.parameters())):
                torch.testing.assert_close(x, y, rtol=1e-9, atol=1e-9)


def test_full_tables_off_the_cpu_match_and_need_no_data_dependent_sizes(monkeypatch):
    """Off the CPU the one-layer path keeps every (position, token) row (``compact=False``): finding the pairs that
    occur would synchronise with the device every step. Same values and gradients as the full computation; and the
    forward pass runs on the ``meta`` device (which has no data, so any data-dependent size would fail there)."""
    from grokkit.models import transformer

    vocab = Vocabulary(29, (23, 29))
    shape = TransformerShape(vocab.d_vocab, vocab.n_classes, d_model=32, n_heads=2, d_head=16, d_mlp=64)
    model = EnsembleTransformer(shape, [0, 1]).double()
    tokens = _data(vocab, 2).tokens
    monkeypatch.setattr(transformer.EnsembleTransformer, "_table_rows", lambda self, tok, pos: transformer._TableRows(
        tok, pos, self.shape.d_vocab, self.shape.n_heads, compact=False))
    for positions in ([3], [2, 3]):
        outs, grads = [], []
        for fn in (lambda: model(tokens, positions), lambda: model.run_with_cache(tokens)[0][:, :, positions]):
            model.zero_grad()
            out = fn()
            (out ** 2).sum().backward()
            outs.append(out.detach())
            grads.append([p.grad.clone() for p in model.parameters()])
        torch.testing.assert_close(outs[0], outs[1], rtol=1e-10, atol=1e-10)
        for a, b in zip(*grads):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)
    monkeypatch.undo()
    on_meta = EnsembleTransformer(shape, [0, 1]).to("meta")
    out = on_meta(tokens.to("meta"), [2, 3])
    assert out.device.type == "meta" and out.shape == (2, tokens.shape[1], 2, vocab.n_classes)
