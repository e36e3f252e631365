"""Export one ensemble member to a TransformerLens ``HookedTransformer`` (the optional ``tl`` extra).

Our weight names and per-member shapes already follow TransformerLens, so the export is a copy: member ``k``'s
``W_E, W_pos, W_Q, W_K, W_V, W_O, W_in, b_in, W_out, b_out, W_U`` (and LayerNorm ``w, b``) go to the same names.
Our attention has no biases and our unembedding none, so TransformerLens's ``b_Q, b_K, b_V, b_O`` and ``b_U`` are
zeros. Attention scores are scaled by ``1/sqrt(d_head)`` in both, LayerNorm eps is 1e-5 in both, positional
embeddings are learned ("standard"). The exported model's logits equal ours at every position (up to float rounding).

``HookedTransformer`` was removed in TransformerLens 4.0 (replaced by ``TransformerBridge``, which boots Hugging Face
models), so the extra pins ``transformer-lens>=2,<4``.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch

from grokkit.models import EnsembleTransformer

_ACT_FN = {"relu": "relu", "gelu": "gelu"}


def _require_transformer_lens() -> Any:
    try:
        import transformer_lens
        from transformer_lens import HookedTransformer  # noqa: F401  (removed in TransformerLens 4)
    except ImportError as err:
        raise ImportError(
            "grokkit.export needs TransformerLens 2.x or 3.x (HookedTransformer): pip install 'grokkit[tl]' "
            f"or pip install 'transformer-lens>=2,<4' ({err})") from None
    return transformer_lens


def hooked_transformer_config(model: EnsembleTransformer, device: str | torch.device = "cpu") -> Any:
    """The ``HookedTransformerConfig`` of our model's shape."""
    tl = _require_transformer_lens()
    s = model.shape
    if s.activation not in _ACT_FN:
        raise ValueError(f"activation {s.activation!r} has no TransformerLens equivalent")
    return tl.HookedTransformerConfig(
        n_layers=s.n_layers, d_model=s.d_model, d_head=s.d_head, n_heads=s.n_heads, d_mlp=s.d_mlp,
        d_vocab=s.d_vocab, d_vocab_out=s.d_vocab_out, n_ctx=s.n_ctx, act_fn=_ACT_FN[s.activation],
        normalization_type="LN" if s.layer_norm else None, attn_only=False, positional_embedding_type="standard",
        default_prepend_bos=False, device=str(device), dtype=torch.float32,
    )


def to_hooked_transformer(model_or_run_dir: EnsembleTransformer | str | Path, member: int = 0) -> Any:
    """Member ``member`` of a model (or of the model in a run directory / model file) as a
    ``transformer_lens.HookedTransformer`` whose logits equal ours. Feed it token tensors ``[batch, pos]`` in our
    vocabulary (``[a, b, op, P]``); it has no tokenizer."""
    tl = _require_transformer_lens()
    if isinstance(model_or_run_dir, EnsembleTransformer):
        model = model_or_run_dir
    else:
        from grokkit.checkpoint import load_model

        model, _, _ = load_model(model_or_run_dir)
    if not 0 <= member < model.n_members:
        raise ValueError(f"member {member} out of range: the model has {model.n_members} member(s)")
    device = next(model.parameters()).device
    with warnings.catch_warnings():  # TransformerLens 3 flags HookedTransformer as going away in 4; we pin < 4
        warnings.filterwarnings("ignore", message="HookedTransformer is deprecated", category=DeprecationWarning)
        hooked = tl.HookedTransformer(hooked_transformer_config(model, device))
    state = hooked.state_dict()
    ours = {name: p[member].detach().to(torch.float32) for name, p in model.named_parameters()}
    mapped: dict[str, torch.Tensor] = {}
    for name, w in ours.items():  # same names, LayerNorms included (ln1, ln2, ln_final: w, b)
        if name not in state or state[name].shape != w.shape:
            raise KeyError(f"no TransformerLens weight {name} of shape {list(w.shape)}")
        mapped[name] = w
    for name, w in state.items():
        if name.split(".")[-1].startswith("b_") and name not in mapped:
            mapped[name] = torch.zeros_like(w)  # biases we do not have
    missing = [n for n in state if n not in mapped and n.split(".")[-1] not in ("mask", "IGNORE")]
    if missing:
        raise KeyError(f"TransformerLens weights with no grokkit counterpart: {missing}")
    state.update(mapped)
    hooked.load_state_dict(state)
    hooked.eval()
    return hooked
