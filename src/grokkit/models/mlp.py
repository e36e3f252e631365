"""An ensemble of K bias-free MLPs over concatenated token embeddings (GrokTransfer's fully-connected models).

Member ``k`` computes, for a sequence of ``n_ctx`` tokens::

    x      = concat(W_E[tok_0], ..., W_E[tok_{n_ctx-1}])          # [n_ctx * d_embed]
    h_1    = relu(x @ layers.0.W)                                 # [d_mlp]
    h_i+1  = relu(h_i @ layers.i.W)          for i = 1 .. n_layers-2
    logits = h_{n_layers-1} @ unembed.W_U                         # [d_vocab_out]

``n_layers`` counts the weight matrices after the embedding, the unembedding included (the usual "L-layer network"):
GrokTransfer's weak model is a 2-layer MLP (one hidden layer, ``d_embed`` 4, width 16), its target a 3-layer MLP
(two hidden layers, ``d_embed`` 128, width 512). ``n_layers = 1`` is a linear model of the concatenated embeddings.

Weight names follow the interpretability convention: ``embed.W_E [d_vocab, d_embed]``, ``layers.i.W [d_in, d_mlp]``,
``unembed.W_U [d_mlp, d_vocab_out]``, each with a leading member axis K. With ``embed_rank`` set, the embedding is
factorised (GrokTransfer's ``E_T = A B``): parameters ``embed.W_E_A [d_vocab, embed_rank]`` and
``embed.W_E_B [embed_rank, d_embed]``, and ``embed.W_E`` is computed as their product.

The model reads a whole sequence and has one output; ``forward(tokens, positions)`` returns that output at every
requested position, so the engine and the recipes treat it exactly like the transformer.

Speed: the first layer is linear in the one-hot tokens, so ``x @ layers.0.W`` is a sum over positions of rows of a
table ``W_E @ layers.0.W[position block]`` of shape ``[n_ctx, d_vocab, d_mlp]``, computed once per step and summed with
one ``embedding_bag``; only the hidden layers and the unembedding are per-example matmuls (``torch.bmm`` over
members).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn

from grokkit.models.base import EnsembleMembers
from grokkit.models.spec import MODELS, ModelSpec
from grokkit.models.transformer import FactorisedEmbed, _Embed, _Unembed


@dataclass(frozen=True)
class MLPShape:
    """Everything that fixes the shapes of an MLP."""

    d_vocab: int
    d_vocab_out: int
    n_ctx: int = 4
    n_layers: int = 2
    d_embed: int = 128
    d_mlp: int = 512
    embed_rank: int | None = None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


class _Layer(nn.Module):
    def __init__(self, k: int, d_in: int, d_out: int) -> None:
        super().__init__()
        self.W = nn.Parameter(torch.empty(k, d_in, d_out))


class EnsembleMLP(EnsembleMembers, nn.Module):
    """K independent MLPs of one shape. ``seeds[k]`` fixes member k's initial weights, so a member built inside an
    ensemble starts from exactly the weights it would have alone.

    Initialisation (Gaussian): ``W_E`` std 1 (``nn.Embedding``'s), hidden layers std ``sqrt(2 / d_in)`` (He, for ReLU),
    ``W_U`` std ``1 / sqrt(d_mlp)``; a factorised embedding's ``W_E_A`` std 1 and ``W_E_B`` std
    ``1 / sqrt(embed_rank)``, so that ``A @ B`` has the scale of a plain ``W_E``."""

    kind = "mlp"

    def __init__(self, shape: MLPShape, seeds: Sequence[int]) -> None:
        super().__init__()
        if shape.n_layers < 1:
            raise ValueError(f"model.n_layers must be >= 1, got {shape.n_layers}")
        self.shape = shape
        self.seeds = list(seeds)
        k = len(self.seeds)
        s = shape
        self.embed = (_Embed(k, s.d_vocab, s.d_embed) if s.embed_rank is None
                      else FactorisedEmbed(k, s.d_vocab, s.embed_rank, s.d_embed))
        widths = [s.n_ctx * s.d_embed] + [s.d_mlp] * (s.n_layers - 1)
        self.layers = nn.ModuleList(_Layer(k, widths[i], widths[i + 1]) for i in range(s.n_layers - 1))
        self.unembed = _Unembed(k, widths[-1], s.d_vocab_out)
        self.reset_parameters()

    def plain_embed_std(self) -> float:
        """The std of a plain ``W_E``'s entries at initialisation."""
        return 1.0

    def _init_std(self, name: str, p: torch.Tensor) -> float:
        if name == "embed.W_E" or name == "embed.W_E_A":
            return 1.0
        if name == "embed.W_E_B":
            return 1.0 / math.sqrt(p.shape[1])
        if name == "unembed.W_U":
            return 1.0 / math.sqrt(p.shape[1])
        return math.sqrt(2.0 / p.shape[1])

    # ------------------------------------------------------------------------------------------------ forward
    def _first_layer(self, tokens: torch.Tensor) -> torch.Tensor:
        """``tokens [K, N, T]`` -> pre-activations of the first layer ``[K, N, d_out]`` via the (position, token)
        table."""
        k, n, t = tokens.shape
        s = self.shape
        w_in = self.layers[0].W if len(self.layers) else self.unembed.W_U
        d_out = w_in.shape[-1]
        # table[k, t, v] = W_E[k, v] @ W_in[k, t*d:(t+1)*d]
        table = torch.matmul(self.embed.W_E.unsqueeze(1), w_in.view(k, t, s.d_embed, d_out))  # K T V o
        index = ((torch.arange(k, device=tokens.device).view(k, 1, 1) * t
                  + torch.arange(t, device=tokens.device).view(1, 1, t)) * s.d_vocab + tokens)
        out = F.embedding_bag(index.view(k * n, t), table.reshape(k * t * s.d_vocab, d_out), mode="sum")
        return out.view(k, n, d_out)

    def logits(self, tokens: torch.Tensor) -> torch.Tensor:
        """``tokens [K, N, n_ctx]`` -> logits ``[K, N, d_vocab_out]``."""
        x = self._first_layer(tokens)
        if not len(self.layers):
            return x
        for layer in self.layers[1:]:
            x = torch.bmm(torch.relu(x), layer.W)
        return torch.bmm(torch.relu(x), self.unembed.W_U)

    def forward(self, tokens: torch.Tensor, positions: Sequence[int]) -> torch.Tensor:
        """The interface the engine uses: ``[K, N, len(positions), d_vocab_out]``, the one output at every position."""
        out = self.logits(tokens)
        return out.unsqueeze(2).expand(*out.shape[:2], len(positions), out.shape[-1])

    def run_with_cache(self, tokens: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The straightforward computation with every activation: ``tokens [K, N, T]`` -> (logits ``[K, N, C]``,
        cache with ``hook_embed [K, N, T*d_embed]`` and ``layers.i.hook_post [K, N, d_mlp]``)."""
        cache: dict[str, torch.Tensor] = {}
        k, n, t = tokens.shape
        members = torch.arange(k, device=tokens.device).view(-1, 1, 1)
        x = self.embed.W_E[members, tokens].reshape(k, n, t * self.shape.d_embed)
        cache["hook_embed"] = x
        for i, layer in enumerate(self.layers):
            x = torch.relu(torch.einsum("kni,kio->kno", x, layer.W))
            cache[f"layers.{i}.hook_post"] = x
        return torch.einsum("kni,kio->kno", x, self.unembed.W_U), cache


@MODELS.register("mlp")
class MLPConfig(ModelSpec):
    """``kind: mlp``: GrokTransfer's bias-free ReLU MLP over concatenated token embeddings: d_embed, d_mlp = width
    (default 4 * d_embed), n_layers = weight matrices after the embedding, the unembedding included (default 2)."""

    model_class: ClassVar[type] = EnsembleMLP
    shape_class: ClassVar[type] = MLPShape

    kind: Literal["mlp"]
    n_layers: int = Field(2, ge=1)
    d_embed: int = Field(128, ge=1, description="embedding width per token")

    @model_validator(mode="before")
    @classmethod
    def _width_default(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("d_mlp") is None:
            data = {k: v for k, v in data.items() if v is not None or k != "d_embed"}
            d_embed = data.get("d_embed") if data.get("d_embed") is not None else 128
            data["d_mlp"] = 4 * d_embed if isinstance(d_embed, int) else d_embed  # a bad d_embed fails on its own
        return data

    @property
    def embed_width(self) -> int:
        return self.d_embed

    def shape(self, d_vocab: int, d_vocab_out: int, n_ctx: int, embed_rank: int | None) -> MLPShape:
        return MLPShape(d_vocab=d_vocab, d_vocab_out=d_vocab_out, n_ctx=n_ctx, n_layers=self.n_layers,
                        d_embed=self.d_embed, d_mlp=self.d_mlp, embed_rank=embed_rank)
