"""The model registry and the base of a model kind's config section (``model:``).

A model kind is one module in this package: the ensemble module, its shape dataclass and a config class (a
:class:`ModelSpec` with ``kind: Literal["name"]``, registered with ``@MODELS.register("name")``) whose ``build``
makes a freshly initialised ensemble. ``grokkit.models`` imports every module of the package, and ``model:`` accepts
every registered kind (a discriminated union on ``kind``, default ``transformer``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from pydantic import Field, model_validator

from grokkit.registry import Registry
from grokkit.schema import Strict

#: Fields of the one flat model section of grokkit <= 0.x and their defaults (config.yaml files written then list them
#: all); a field of another kind at this default is dropped when such a file is read.
LEGACY_MODEL_DEFAULTS: dict[str, Any] = {"d_embed": None, "d_model": 128, "n_heads": 4, "d_head": 32,
                                         "activation": "relu", "layer_norm": False}


class ModelSpec(Strict):
    """What every model kind's config has; a kind adds its own fields."""

    #: the ensemble module and its shape dataclass (model files store ``kind`` and the shape)
    model_class: ClassVar[type]
    shape_class: ClassVar[type]

    kind: str
    n_layers: int = Field(1, ge=1, description="transformer blocks")
    d_mlp: int = Field(512, ge=1, description="width of the MLP's hidden layer")
    init_scale: float = Field(
        1.0, gt=0, description="every weight matrix (W_*) of the fresh initialisation multiplied by this factor "
        "(Omnigrok's alpha; GrokTransfer A.3); biases start at 0 and LayerNorm at 1 whatever the factor")

    @model_validator(mode="before")
    @classmethod
    def _legacy(cls, data: Any) -> Any:
        from grokkit.tasks.base import drop_legacy_defaults

        return drop_legacy_defaults(cls, data, LEGACY_MODEL_DEFAULTS)

    @property
    def embed_width(self) -> int:
        """Width of one token's embedding (the inner dimension A of a transferred embedding has)."""
        raise NotImplementedError

    def shape(self, d_vocab: int, d_vocab_out: int, n_ctx: int, embed_rank: int | None) -> Any:
        raise NotImplementedError

    def build(self, d_vocab: int, d_vocab_out: int, n_ctx: int, seeds: Sequence[int],
              embed_rank: int | None = None) -> Any:
        """A freshly initialised ensemble, one member per seed (before ``init_scale``, which the recipe applies per
        member)."""
        return self.model_class(self.shape(d_vocab, d_vocab_out, n_ctx, embed_rank), seeds)


#: model kinds (``model.kind``) -> their config class
MODELS: Registry[type[ModelSpec]] = Registry("model kind")
