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

Two options give Prieto et al.'s MLP (a one-hot input into ``nn.Linear`` layers with biases, PyTorch's default
initialisation): ``input: one_hot`` fixes ``W_E`` to the identity (a buffer, not trained; ``d_embed`` is then the
vocabulary size), so ``layers.0.W`` acts on the concatenated one-hot tokens; ``bias: true`` adds ``layers.i.b`` and
``unembed.b_U``; ``init: torch`` draws every weight and bias with the std of ``nn.Linear``'s default,
U(-1/sqrt(fan_in), 1/sqrt(fan_in)), i.e. std 1/sqrt(3 fan_in) (Gaussian here, as every grokkit initialisation).

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
    one_hot: bool = False
    bias: bool = False
    init: str = "he"

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


class _Layer(nn.Module):
    def __init__(self, k: int, d_in: int, d_out: int, bias: bool = False) -> None:
        super().__init__()
        self.W = nn.Parameter(torch.empty(k, d_in, d_out))
        self.b = nn.Parameter(torch.empty(k, d_out)) if bias else None


class _OneHot(nn.Module):
    """A fixed identity embedding: ``W_E [K, d_vocab, d_vocab]`` is a buffer (rebuilt, not stored)."""

    def __init__(self, k: int, d_vocab: int) -> None:
        super().__init__()
        self.register_buffer("W_E", torch.eye(d_vocab).expand(k, d_vocab, d_vocab).clone(), persistent=False)


class _UnembedBias(_Unembed):
    def __init__(self, k: int, d_model: int, d_vocab_out: int) -> None:
        super().__init__(k, d_model, d_vocab_out)
        self.b_U = nn.Parameter(torch.empty(k, d_vocab_out))


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
        if shape.one_hot and (shape.embed_rank is not None or shape.d_embed != shape.d_vocab):
            raise ValueError("a one-hot MLP input has d_embed = d_vocab and no factorised embedding")
        self.shape = shape
        self.seeds = list(seeds)
        k = len(self.seeds)
        s = shape
        self.embed: nn.Module
        if s.one_hot:
            self.embed = _OneHot(k, s.d_vocab)
        elif s.embed_rank is None:
            self.embed = _Embed(k, s.d_vocab, s.d_embed)
        else:
            self.embed = FactorisedEmbed(k, s.d_vocab, s.embed_rank, s.d_embed)
        widths = [s.n_ctx * s.d_embed] + [s.d_mlp] * (s.n_layers - 1)
        self.layers = nn.ModuleList(_Layer(k, widths[i], widths[i + 1], s.bias) for i in range(s.n_layers - 1))
        self.unembed = (_UnembedBias if s.bias else _Unembed)(k, widths[-1], s.d_vocab_out)
        self.reset_parameters()

    def plain_embed_std(self) -> float:
        """The std of a plain ``W_E``'s entries at initialisation."""
        return 1.0

    def _fan_in(self, name: str) -> int:
        """The input width of the layer a weight or bias belongs to."""
        if name.startswith("unembed."):
            return self.unembed.W_U.shape[1]
        return self.layers[int(name.split(".")[1])].W.shape[1]

    def _init_std(self, name: str, p: torch.Tensor) -> float:
        if self.shape.init == "torch" and not name.startswith("embed."):
            return 1.0 / math.sqrt(3.0 * self._fan_in(name))
        if name.endswith(".b") or name == "unembed.b_U":
            return 0.0
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
        first = self.layers[0] if len(self.layers) else self.unembed
        w_in = first.W if len(self.layers) else self.unembed.W_U
        d_out = w_in.shape[-1]
        if s.one_hot:  # W_E is the identity: the table is layers.0.W itself
            table = w_in.reshape(k, t, s.d_vocab, d_out)
        else:  # table[k, t, v] = W_E[k, v] @ W_in[k, t*d:(t+1)*d]
            table = torch.matmul(self.embed.W_E.unsqueeze(1), w_in.view(k, t, s.d_embed, d_out))  # K T V o
        index = ((torch.arange(k, device=tokens.device).view(k, 1, 1) * t
                  + torch.arange(t, device=tokens.device).view(1, 1, t)) * s.d_vocab + tokens)
        out = F.embedding_bag(index.view(k * n, t), table.reshape(k * t * s.d_vocab, d_out), mode="sum")
        out = out.view(k, n, d_out)
        bias = first.b if len(self.layers) else getattr(self.unembed, "b_U", None)
        return out if bias is None else out + bias.unsqueeze(1)

    @staticmethod
    def _linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
        return torch.bmm(x, w) if b is None else torch.baddbmm(b.unsqueeze(1), x, w)

    #: the output reads every input position (a teacher needs a token for each)
    causal: ClassVar[bool] = False

    @property
    def d_hidden(self) -> int:
        """Width of the last hidden layer, what the unembedding reads (the concatenated embedding without one)."""
        return self.unembed.W_U.shape[1]

    def logits_and_hidden(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``tokens [K, N, n_ctx]`` -> (logits ``[K, N, d_vocab_out]``, what the unembedding reads, ``[K, N,
        d_hidden]``)."""
        if not len(self.layers):  # the unembedding reads the concatenated embedding itself
            k, n, t = tokens.shape
            members = torch.arange(k, device=tokens.device).view(-1, 1, 1)
            x = self.embed.W_E[members, tokens].reshape(k, n, t * self.shape.d_embed)
            return self._first_layer(tokens), x
        x = self._first_layer(tokens)
        for layer in self.layers[1:]:
            x = self._linear(torch.relu(x), layer.W, layer.b)
        h = torch.relu(x)
        return self._linear(h, self.unembed.W_U, getattr(self.unembed, "b_U", None)), h

    def logits(self, tokens: torch.Tensor) -> torch.Tensor:
        """``tokens [K, N, n_ctx]`` -> logits ``[K, N, d_vocab_out]``."""
        x = self._first_layer(tokens)
        if not len(self.layers):
            return x
        for layer in self.layers[1:]:
            x = self._linear(torch.relu(x), layer.W, layer.b)
        return self._linear(torch.relu(x), self.unembed.W_U, getattr(self.unembed, "b_U", None))

    def forward(self, tokens: torch.Tensor, positions: Sequence[int], hidden: bool = False
                ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """The interface the engine uses: ``[K, N, len(positions), d_vocab_out]``, the one output at every position;
        with ``hidden``, ``(logits, h)`` with ``h [K, N, len(positions), d_hidden]`` what the unembedding reads."""
        if hidden:
            out, h = self.logits_and_hidden(tokens)
            return (out.unsqueeze(2).expand(*out.shape[:2], len(positions), out.shape[-1]),
                    h.unsqueeze(2).expand(*h.shape[:2], len(positions), h.shape[-1]))
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
            x = torch.einsum("kni,kio->kno", x, layer.W)
            x = torch.relu(x if layer.b is None else x + layer.b.unsqueeze(1))
            cache[f"layers.{i}.hook_post"] = x
        out = torch.einsum("kni,kio->kno", x, self.unembed.W_U)
        b_u = getattr(self.unembed, "b_U", None)
        return (out if b_u is None else out + b_u.unsqueeze(1)), cache


@MODELS.register("mlp")
class MLPConfig(ModelSpec):
    """``kind: mlp``: GrokTransfer's bias-free ReLU MLP over concatenated token embeddings: d_embed, d_mlp = width
    (default 4 * d_embed), n_layers = weight matrices after the embedding, the unembedding included (default 2)."""

    model_class: ClassVar[type] = EnsembleMLP
    shape_class: ClassVar[type] = MLPShape

    kind: Literal["mlp"]
    n_layers: int = Field(2, ge=1, description="weight matrices after the embedding, the unembedding included")
    d_embed: int = Field(128, ge=1, description="embedding width per token (ignored with input: one_hot)")
    input: Literal["embed", "one_hot"] = Field(
        "embed", description="embed: a learned W_E; one_hot: W_E fixed to the identity (Prieto et al.'s MLP)")
    bias: bool = Field(False, description="biases on every layer (layers.i.b, unembed.b_U)")
    init: Literal["he", "torch"] = Field(
        "he", description="he: the stds of EnsembleMLP's docstring, biases 0; torch: nn.Linear's default std "
        "1/sqrt(3 fan_in) for weights and biases")

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
        if self.input == "one_hot" and embed_rank is not None:
            raise ValueError("model.input=one_hot has no embedding to transfer (embedding_init / recipe transfer)")
        return MLPShape(d_vocab=d_vocab, d_vocab_out=d_vocab_out, n_ctx=n_ctx, n_layers=self.n_layers,
                        d_embed=d_vocab if self.input == "one_hot" else self.d_embed, d_mlp=self.d_mlp,
                        embed_rank=embed_rank, one_hot=self.input == "one_hot", bias=self.bias, init=self.init)
