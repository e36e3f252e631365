"""Models. Every model is an ensemble: weights carry a leading member axis K.

Both kinds share one interface: ``model(tokens [K, N, T], positions) -> logits [K, N, len(positions), C]``, ``shape``
(a frozen dataclass with ``d_vocab``, ``d_vocab_out``, ``n_ctx`` and ``embed_rank``), ``seeds``, ``n_members``,
``weight_norm()``, ``member_state(k)``, ``run_with_cache(tokens)`` and ``embed.W_E``.

Every module of this package is imported here, so a new model kind is one new module: the ensemble module, its shape
and a :class:`ModelSpec` registered in :data:`MODELS`; ``model:`` (:data:`ModelConfig`) is the discriminated union
(on ``kind``, default ``transformer``) of every registered kind.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from collections.abc import Sequence
from typing import Any

import torch

from grokkit.models.mlp import EnsembleMLP, MLPConfig, MLPShape
from grokkit.models.spec import MODELS, ModelSpec
from grokkit.models.transformer import EnsembleTransformer, FactorisedEmbed, TransformerConfig, TransformerShape
from grokkit.registry import tagged_union

for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_") and _module.name not in ("spec", "kernels"):
        importlib.import_module(f"{__name__}.{_module.name}")

EnsembleModel = EnsembleTransformer | EnsembleMLP


#: the ``model:`` section: one config class per registered model kind, chosen by ``kind`` (default transformer)
ModelConfig = tagged_union(MODELS, default="transformer")


def build_model_from_shape(kind: str, shape: dict[str, Any], seeds: Sequence[int]) -> EnsembleModel:
    """A freshly initialised model of ``kind`` from a shape dictionary (as saved in model files)."""
    spec = MODELS.get(kind)
    return spec.model_class(spec.shape_class(**shape), seeds)


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


__all__ = ["MODELS", "EnsembleMLP", "EnsembleModel", "EnsembleTransformer", "FactorisedEmbed", "MLPConfig", "MLPShape",
           "ModelConfig", "ModelSpec", "TransformerConfig", "TransformerShape", "build_model_from_shape", "same_model",
           "unfactorised"]
