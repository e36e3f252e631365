"""An ensemble of K ReLU MLPs over pixel intensities (Omnigrok's MNIST model), for image tasks such as ``digits``.

The task hands the model pixels as tokens (``tokens [K, N, n_ctx]``, one token per pixel); the model reads each token
back as its intensity, ``x_i = (token_i mod levels) / (levels - 1)`` in ``[0, 1]`` (the ``mod`` makes positional
tokens ``levels * i + v`` read as ``v`` too), so its first layer sees the image as floats, not as embeddings of
intensity symbols. Member ``k`` computes::

    h_1    = relu(x @ layers.0.W_in + layers.0.b_in)              # [d_mlp]
    h_i+1  = relu(h_i @ layers.i.W_in + layers.i.b_in)  for i = 1 .. n_layers-2
    logits = h_{n_layers-1} @ unembed.W_U + unembed.b_U            # [d_vocab_out]

``n_layers`` counts the weight matrices, the unembedding included (Omnigrok's MNIST MLP: 3, width 200). Weights are
named ``W_*`` so that ``model.init_scale`` (Omnigrok's alpha) multiplies all of them; biases start at 0 and stay so
under the scale. The model has one output; ``forward(tokens, positions)`` returns it at every requested position,
like :class:`~grokkit.models.mlp.EnsembleMLP`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import ClassVar, Literal

import torch
from pydantic import Field
from torch import nn

from grokkit.models.base import EnsembleMembers
from grokkit.models.spec import MODELS, ModelSpec


@dataclass(frozen=True)
class PixelMLPShape:
    """Everything that fixes the shapes of a pixel MLP (``d_vocab`` is kept for the model file's checks; the
    model has no embedding)."""

    d_vocab: int
    d_vocab_out: int
    n_ctx: int = 64
    n_layers: int = 3
    d_mlp: int = 200
    levels: int = 17
    embed_rank: None = None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


class _Dense(nn.Module):
    def __init__(self, k: int, d_in: int, d_out: int) -> None:
        super().__init__()
        self.W_in = nn.Parameter(torch.empty(k, d_in, d_out))
        self.b_in = nn.Parameter(torch.empty(k, d_out))


class _Out(nn.Module):
    def __init__(self, k: int, d_in: int, d_out: int) -> None:
        super().__init__()
        self.W_U = nn.Parameter(torch.empty(k, d_in, d_out))
        self.b_U = nn.Parameter(torch.empty(k, d_out))


class EnsemblePixelMLP(EnsembleMembers, nn.Module):
    """K independent pixel MLPs of one shape; ``seeds[k]`` fixes member k's initial weights (the same alone or in an
    ensemble). Initialisation (Gaussian): hidden layers std ``sqrt(2 / d_in)`` (He, for ReLU), ``W_U`` std
    ``1 / sqrt(d_in)``, biases 0."""

    kind = "pixel_mlp"

    def __init__(self, shape: PixelMLPShape, seeds: Sequence[int]) -> None:
        super().__init__()
        if shape.n_layers < 1:
            raise ValueError(f"model.n_layers must be >= 1, got {shape.n_layers}")
        if shape.levels < 2:
            raise ValueError(f"model.levels must be >= 2, got {shape.levels}")
        self.shape = shape
        self.seeds = list(seeds)
        k = len(self.seeds)
        widths = [shape.n_ctx] + [shape.d_mlp] * (shape.n_layers - 1)
        self.layers = nn.ModuleList(_Dense(k, widths[i], widths[i + 1]) for i in range(shape.n_layers - 1))
        self.unembed = _Out(k, widths[-1], shape.d_vocab_out)
        self.reset_parameters()

    def _init_std(self, name: str, p: torch.Tensor) -> float:  # biases: drawn and multiplied by 0 (same stream)
        if name.split(".")[-1].startswith("b_"):
            return 0.0
        if name == "unembed.W_U":
            return 1.0 / math.sqrt(p.shape[1])
        return math.sqrt(2.0 / p.shape[1])

    def pixels(self, tokens: torch.Tensor) -> torch.Tensor:
        """``tokens [K, N, n_ctx]`` -> intensities in [0, 1], ``[K, N, n_ctx]`` (the parameters' dtype)."""
        dtype = self.unembed.W_U.dtype
        return (tokens % self.shape.levels).to(dtype) / (self.shape.levels - 1)

    #: the output reads every pixel (a teacher needs a token for each)
    causal: ClassVar[bool] = False

    @property
    def d_hidden(self) -> int:
        """Width of the last hidden layer, what the unembedding reads."""
        return self.unembed.W_U.shape[1]

    def logits_and_hidden(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``tokens [K, N, n_ctx]`` -> (logits ``[K, N, d_vocab_out]``, last hidden layer ``[K, N, d_hidden]``)."""
        x = self.pixels(tokens)
        for layer in self.layers:
            x = torch.relu(torch.baddbmm(layer.b_in.unsqueeze(1), x, layer.W_in))
        return torch.baddbmm(self.unembed.b_U.unsqueeze(1), x, self.unembed.W_U), x

    def logits(self, tokens: torch.Tensor) -> torch.Tensor:
        """``tokens [K, N, n_ctx]`` -> logits ``[K, N, d_vocab_out]``."""
        return self.logits_and_hidden(tokens)[0]

    def forward(self, tokens: torch.Tensor, positions: Sequence[int], hidden: bool = False
                ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """The interface the engine uses: ``[K, N, len(positions), d_vocab_out]``, the one output at every position;
        with ``hidden``, ``(logits, h)`` with ``h [K, N, len(positions), d_hidden]`` the last hidden layer."""
        out, h = self.logits_and_hidden(tokens)
        out = out.unsqueeze(2).expand(*out.shape[:2], len(positions), out.shape[-1])
        return (out, h.unsqueeze(2).expand(*h.shape[:2], len(positions), h.shape[-1])) if hidden else out

    def run_with_cache(self, tokens: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The computation written out with every activation: (logits ``[K, N, C]``, cache with ``hook_pixels``
        and ``layers.i.hook_post``)."""
        cache: dict[str, torch.Tensor] = {}
        x = self.pixels(tokens)
        cache["hook_pixels"] = x
        for i, layer in enumerate(self.layers):
            x = torch.relu(torch.einsum("kni,kio->kno", x, layer.W_in) + layer.b_in.unsqueeze(1))
            cache[f"layers.{i}.hook_post"] = x
        return torch.einsum("kni,kio->kno", x, self.unembed.W_U) + self.unembed.b_U.unsqueeze(1), cache


@MODELS.register("pixel_mlp")
class PixelMLPConfig(ModelSpec):
    """``kind: pixel_mlp``: a ReLU MLP with biases over pixel intensities (token ``v`` read as ``(v mod levels) /
    (levels - 1)``), Omnigrok's MNIST model: n_layers weight matrices (default 3), width d_mlp (default 200)."""

    model_class: ClassVar[type] = EnsemblePixelMLP
    shape_class: ClassVar[type] = PixelMLPShape

    kind: Literal["pixel_mlp"]
    n_layers: int = Field(3, ge=1, description="weight matrices, the output layer included")
    d_mlp: int = Field(200, ge=1, description="width of the hidden layers")
    levels: int = Field(17, ge=2, description="intensity levels: token v is read as (v mod levels) / (levels - 1)")

    @property
    def embed_width(self) -> int:
        raise ValueError("model.kind=pixel_mlp has no token embedding (embedding_init does not apply)")

    def shape(self, d_vocab: int, d_vocab_out: int, n_ctx: int, embed_rank: int | None) -> PixelMLPShape:
        if embed_rank is not None:
            raise ValueError("model.kind=pixel_mlp has no token embedding to factorise (drop embedding_init)")
        return PixelMLPShape(d_vocab=d_vocab, d_vocab_out=d_vocab_out, n_ctx=n_ctx, n_layers=self.n_layers,
                             d_mlp=self.d_mlp, levels=self.levels)
