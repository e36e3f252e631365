"""Models. Every model is an ensemble: weights carry a leading member axis K.

Both kinds share one interface: ``model(tokens [K, N, T], positions) -> logits [K, N, len(positions), C]``, ``shape``
(a frozen dataclass with ``d_vocab``, ``d_vocab_out``, ``n_ctx`` and ``embed_rank``), ``seeds``, ``n_members``,
``weight_norm()``, ``member_state(k)``, ``run_with_cache(tokens)`` and ``embed.W_E``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import torch

from grokkit.models.mlp import EnsembleMLP, MLPShape
from grokkit.models.transformer import EnsembleTransformer, FactorisedEmbed, TransformerShape

EnsembleModel = EnsembleTransformer | EnsembleMLP

#: model kind (``model.kind`` in a config) -> (class, shape class)
MODEL_KINDS: dict[str, tuple[type, type]] = {
    "transformer": (EnsembleTransformer, TransformerShape),
    "mlp": (EnsembleMLP, MLPShape),
}


def build_model_from_shape(kind: str, shape: dict[str, Any], seeds: Sequence[int]) -> EnsembleModel:
    """A freshly initialised model of ``kind`` from a shape dictionary (as saved in model files)."""
    if kind not in MODEL_KINDS:
        raise ValueError(f"model kind {kind!r} unknown; allowed: {', '.join(MODEL_KINDS)}")
    cls, shape_cls = MODEL_KINDS[kind]
    return cls(shape_cls(**shape), seeds)


def same_model(model: EnsembleModel, seeds: Sequence[int]) -> EnsembleModel:
    """A model of ``model``'s kind and shape with other members (weights freshly initialised)."""
    return type(model)(model.shape, seeds)


@torch.no_grad()
def unfactorised(model: EnsembleModel) -> EnsembleModel:
    """The same function with a plain embedding ``embed.W_E = W_E_A @ W_E_B`` (for analysis and export); a model with
    a plain embedding is returned unchanged."""
    if not isinstance(model.embed, FactorisedEmbed):
        return model
    a = model.embed.W_E_A
    plain = type(model)(dataclasses.replace(model.shape, embed_rank=None), model.seeds).to(a.device, a.dtype)
    state = {n: p for n, p in model.named_parameters() if not n.startswith("embed.")}
    state["embed.W_E"] = model.embed.W_E
    plain.load_state_dict(state)
    return plain


__all__ = ["MODEL_KINDS", "EnsembleMLP", "EnsembleModel", "EnsembleTransformer", "FactorisedEmbed", "MLPShape",
           "TransformerShape", "build_model_from_shape", "same_model", "unfactorised"]
