"""TransformerLens export: the HookedTransformer computes our logits at every position."""

import sys

import pytest
import torch

from grokkit.models import EnsembleTransformer, TransformerShape


def _model(**shape):
    s = TransformerShape(**{"d_vocab": 24, "d_vocab_out": 19, "d_model": 16, "n_heads": 2, "d_head": 8, "d_mlp": 32,
                            **shape})
    model = EnsembleTransformer(s, [3, 4])
    with torch.no_grad():  # biases and LayerNorm weights start at 0 / 1: make them matter
        g = torch.Generator().manual_seed(0)
        for name, p in model.named_parameters():
            if not name.split(".")[-1].startswith("W_"):
                p.add_(0.3 * torch.randn(p.shape, generator=g))
    return model


@pytest.mark.parametrize("shape", [{}, {"layer_norm": True, "n_layers": 2, "activation": "gelu"}])
def test_hooked_transformer_logits_equal_ours(shape):
    pytest.importorskip("transformer_lens")
    from grokkit.export import to_hooked_transformer

    model = _model(**shape)
    tokens = torch.randint(0, model.shape.d_vocab, (64, model.shape.n_ctx), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours, _ = model.run_with_cache(tokens.unsqueeze(0).expand(2, -1, -1))
        for member in (0, 1):
            hooked = to_hooked_transformer(model, member=member)
            theirs = hooked(tokens)
            assert theirs.shape == ours[member].shape
            torch.testing.assert_close(theirs, ours[member], atol=1e-5, rtol=0)


def test_export_from_run_dir(tmp_path):
    pytest.importorskip("transformer_lens")
    from grokkit.checkpoint import save_model
    from grokkit.export import to_hooked_transformer
    from grokkit.tasks import Vocabulary

    vocab = Vocabulary(19, (17, 19))
    model = _model(d_vocab=vocab.d_vocab, d_vocab_out=vocab.n_classes)
    save_model(tmp_path / "model.safetensors", model, vocab)
    hooked = to_hooked_transformer(tmp_path, member=1)
    tokens = torch.tensor([[3, 5, vocab.operation_token("add"), vocab.modulus_token(17)]])
    with torch.no_grad():
        torch.testing.assert_close(hooked(tokens), model.run_with_cache(tokens.expand(2, -1, -1))[0][1],
                                   atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="member 2"):
        to_hooked_transformer(model, member=2)


def test_clear_error_without_transformer_lens(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformer_lens", None)  # import fails as if not installed
    from grokkit.export import to_hooked_transformer

    with pytest.raises(ImportError, match="pip install"):
        to_hooked_transformer(_model())
