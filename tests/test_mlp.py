"""The MLP ensemble: forward equals a per-member loop, factorised embedding, training, saving and loading."""

from __future__ import annotations

import pytest
import torch

from grokkit.api import run
from grokkit.checkpoint import load_model
from grokkit.config import ConfigError, parse_config
from grokkit.models import EnsembleMLP, MLPShape, unfactorised
from grokkit.tasks import ModularTask, Vocabulary, stack_members
from helpers import tiny_config


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)  # two threads on a busy 2-core machine are many times slower than one
    yield


def _tokens(vocab: Vocabulary, k: int, p: int = 13) -> torch.Tensor:
    return stack_members([ModularTask("add", p).split(vocab, 0.4, s).train for s in range(k)]).tokens


def _loop_reference(model: EnsembleMLP, tokens: torch.Tensor) -> torch.Tensor:
    """One member at a time, written as plainly as possible."""
    out = []
    for k in range(model.n_members):
        w = model.member_state(k)
        w_e = w["embed.W_E"] if "embed.W_E" in w else w["embed.W_E_A"] @ w["embed.W_E_B"]
        x = w_e[tokens[k]].flatten(1)  # N, T*d_embed
        for i in range(len(model.layers)):
            x = torch.relu(x @ w[f"layers.{i}.W"])
        out.append(x @ w["unembed.W_U"])
    return torch.stack(out)


@pytest.mark.parametrize("n_layers,rank", [(1, None), (2, None), (3, None), (3, 3)])
def test_forward_equals_per_member_loop(n_layers, rank):
    vocab = Vocabulary(13, (13,))
    shape = MLPShape(vocab.d_vocab, vocab.n_classes, n_ctx=4, n_layers=n_layers, d_embed=8, d_mlp=24, embed_rank=rank)
    model = EnsembleMLP(shape, [0, 1, 2]).double()
    tokens = _tokens(vocab, 3)
    expected = _loop_reference(model, tokens)
    fast = model(tokens, [1, 3])
    assert fast.shape == (3, tokens.shape[1], 2, vocab.n_classes)
    torch.testing.assert_close(fast[:, :, 0], expected, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(fast[:, :, 1], expected, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(model.run_with_cache(tokens)[0], expected, rtol=1e-10, atol=1e-10)


def test_gradients_of_fast_and_reference_paths_agree():
    vocab = Vocabulary(13, (13,))
    model = EnsembleMLP(MLPShape(vocab.d_vocab, vocab.n_classes, n_layers=3, d_embed=8, d_mlp=16), [4, 5]).double()
    tokens = _tokens(vocab, 2)
    grads = []
    for fn in (lambda: model(tokens, [3])[:, :, 0], lambda: model.run_with_cache(tokens)[0]):
        model.zero_grad()
        (fn() ** 2).sum().backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


def test_names_shapes_and_member_independent_init():
    shape = MLPShape(20, 17, n_ctx=4, n_layers=3, d_embed=4, d_mlp=16)
    names = {n: tuple(p.shape) for n, p in EnsembleMLP(shape, [0]).named_parameters()}
    assert names == {"embed.W_E": (1, 20, 4), "layers.0.W": (1, 16, 16), "layers.1.W": (1, 16, 16),
                     "unembed.W_U": (1, 16, 17)}
    alone, ensemble = EnsembleMLP(shape, [7]), EnsembleMLP(shape, [3, 7])
    for (name, a), (_, e) in zip(alone.named_parameters(), ensemble.named_parameters()):
        assert torch.equal(a[0], e[1]), name


def test_unfactorised_export_computes_the_same_function():
    vocab = Vocabulary(13, (13,))
    model = EnsembleMLP(MLPShape(vocab.d_vocab, vocab.n_classes, n_layers=2, d_embed=8, d_mlp=16, embed_rank=2),
                        [0, 1])
    plain = unfactorised(model)
    assert "embed.W_E" in dict(plain.named_parameters()) and plain.shape.embed_rank is None
    torch.testing.assert_close(plain.embed.W_E, model.embed.W_E_A @ model.embed.W_E_B)
    tokens = _tokens(vocab, 2)
    torch.testing.assert_close(plain(tokens, [3]), model(tokens, [3]))


def test_mlp_trains_a_tiny_task_and_round_trips(tmp_path):
    cfg = parse_config(tiny_config(model={"kind": "mlp", "d_embed": 16, "d_mlp": 64}, optimizer__lr=0.01,
                                   training__steps=150, training__eval_every=50))
    assert cfg.model.n_layers == 2
    summary = run(cfg, tmp_path / "mlp", progress=False, log=lambda _: None)
    assert all(m["final_train_acc"] > 0.9 for m in summary["members"])
    model, _, meta = load_model(tmp_path / "mlp")
    assert isinstance(model, EnsembleMLP) and meta["model_kind"] == "mlp"
    assert model.shape.d_embed == 16 and model.shape.d_mlp == 64 and model.shape.n_ctx == 4


def test_mlp_config_defaults_and_errors():
    m = parse_config(tiny_config(model={"kind": "mlp", "d_embed": 4})).model
    assert (m.d_mlp, m.n_layers) == (16, 2)
    with pytest.raises(ConfigError, match="does not use n_heads"):
        parse_config(tiny_config(model={"kind": "mlp", "n_heads": 2}))
    with pytest.raises(ConfigError, match="d_embed is for kind: mlp"):
        parse_config(tiny_config(model={"d_embed": 4}))
    with pytest.raises(ConfigError, match="model.kind"):
        parse_config(tiny_config(model={"kind": "cnn"}))


def _prieto_reference(model: EnsembleMLP, tokens: torch.Tensor) -> torch.Tensor:
    """Prieto et al.'s MLP written plainly: one-hot tokens concatenated, then nn.Linear layers with biases."""
    out = []
    d_vocab = model.shape.d_vocab
    for k in range(model.n_members):
        w = model.member_state(k)
        x = torch.nn.functional.one_hot(tokens[k], d_vocab).to(w["unembed.W_U"].dtype).flatten(1)
        for i in range(len(model.layers)):
            x = torch.relu(x @ w[f"layers.{i}.W"] + w[f"layers.{i}.b"])
        out.append(x @ w["unembed.W_U"] + w["unembed.b_U"])
    return torch.stack(out)


def test_one_hot_input_with_biases_equals_linear_layers_on_one_hot_tokens():
    vocab = Vocabulary(13, (13,))
    shape = MLPShape(vocab.d_vocab, vocab.n_classes, n_ctx=4, n_layers=3, d_embed=vocab.d_vocab, d_mlp=24,
                     one_hot=True, bias=True, init="torch")
    model = EnsembleMLP(shape, [0, 1]).double()
    assert "embed.W_E" not in dict(model.named_parameters())  # fixed, not trained
    names = {n for n, _ in model.named_parameters()}
    assert names == {"layers.0.W", "layers.0.b", "layers.1.W", "layers.1.b", "unembed.W_U", "unembed.b_U"}
    tokens = _tokens(vocab, 2)
    expected = _prieto_reference(model, tokens)
    torch.testing.assert_close(model(tokens, [3])[:, :, 0], expected, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(model.run_with_cache(tokens)[0], expected, rtol=1e-10, atol=1e-10)
    # torch init: nn.Linear's std 1/sqrt(3 fan_in) for weights and biases alike (fan_in 4 * d_vocab for layer 0)
    big = EnsembleMLP(MLPShape(50, 50, n_ctx=4, n_layers=2, d_embed=50, d_mlp=400, one_hot=True, bias=True,
                               init="torch"), [0])
    for name, fan_in in (("layers.0.W", 200), ("layers.0.b", 200), ("unembed.W_U", 400), ("unembed.b_U", 400)):
        std = dict(big.named_parameters())[name].std().item()
        assert abs(std * (3 * fan_in) ** 0.5 - 1) < 0.15, (name, std)
    he = EnsembleMLP(MLPShape(20, 17, n_ctx=4, n_layers=2, d_embed=4, d_mlp=16, bias=True), [0])
    assert he.layers[0].b.abs().sum() == 0 and he.unembed.b_U.abs().sum() == 0  # he init: biases start at 0


def test_one_hot_mlp_config_trains_and_round_trips(tmp_path):
    cfg = parse_config(tiny_config(model={"kind": "mlp", "input": "one_hot", "bias": True, "init": "torch",
                                          "d_mlp": 64}, optimizer__lr=0.01, training__steps=100,
                                   training__eval_every=50))
    summary = run(cfg, tmp_path / "oh", progress=False, log=lambda _: None)
    assert all(m["final_train_acc"] > 0.9 for m in summary["members"])
    model, vocab, _ = load_model(tmp_path / "oh")
    assert model.shape.one_hot and model.shape.bias and model.shape.d_embed == vocab.d_vocab
    with pytest.raises(ConfigError, match="one_hot"):
        parse_config(tiny_config(model={"kind": "mlp", "input": "one_hot"}, recipe="transfer",
                                 transfer={"weak_steps": 10}))
