"""An ensemble of K decoder-only transformers that train in one batched computation.

Every weight carries a leading member axis ``K``; member ``k`` is an ordinary transformer with weights ``W[k]``.
Weight names and per-member shapes follow TransformerLens (``embed.W_E [d_vocab, d_model]``,
``blocks.0.attn.W_Q [n_heads, d_model, d_head]``, ``unembed.W_U [d_model, d_vocab_out]``, ...).

Two forward passes compute the same function:

* :meth:`EnsembleTransformer.forward` — the fast path used for training. The first layer's inputs depend only on
  (token, position), so its queries, keys and values are computed once per vocabulary entry and position and then
  gathered, instead of once per example. The last layer runs attention queries, the MLP and the unembedding only for
  the positions some loss reads.
* :meth:`EnsembleTransformer.run_with_cache` — the straightforward computation over every position, returning every
  activation, for analysis and as the yardstick the fast path is tested against.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from grokkit.models.base import EnsembleMembers
from grokkit.models.kernels import ValueCache, gather_rows, relu_mlp, weighted_row_sum
from grokkit.models.spec import MODELS, ModelSpec


@dataclass(frozen=True)
class TransformerShape:
    """Everything that fixes the shapes of a transformer (the nanoGPT ``GPTConfig`` idea)."""

    d_vocab: int
    d_vocab_out: int
    n_ctx: int = 4
    n_layers: int = 1
    d_model: int = 128
    n_heads: int = 4
    d_head: int = 32
    d_mlp: int = 512
    activation: str = "relu"
    layer_norm: bool = False
    #: factorised embedding ``W_E = W_E_A @ W_E_B`` of this inner dimension (GrokTransfer); None: a plain ``W_E``
    embed_rank: int | None = None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


_ACTIVATIONS = {"relu": torch.relu, "gelu": F.gelu}


def _layer_norm(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """LayerNorm over the last axis with per-member ``w, b [K, d_model]`` broadcast over the middle axes."""
    shape = (w.shape[0],) + (1,) * (x.dim() - 2) + (w.shape[1],)
    return F.layer_norm(x, x.shape[-1:]) * w.view(shape) + b.view(shape)


def _bmm(x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """Per-member matmul: ``x [K, ..., i] @ w [K, i, o] (+ bias [K, o])`` -> ``[K, ..., o]``."""
    k, i = x.shape[0], x.shape[-1]
    flat = x.reshape(k, -1, i)
    out = torch.bmm(flat, w) if bias is None else torch.baddbmm(bias.unsqueeze(1), flat, w)
    return out.view(*x.shape[:-1], w.shape[-1])


class Attention(nn.Module):
    def __init__(self, k: int, s: TransformerShape) -> None:
        super().__init__()
        self.W_Q = nn.Parameter(torch.empty(k, s.n_heads, s.d_model, s.d_head))
        self.W_K = nn.Parameter(torch.empty(k, s.n_heads, s.d_model, s.d_head))
        self.W_V = nn.Parameter(torch.empty(k, s.n_heads, s.d_model, s.d_head))
        self.W_O = nn.Parameter(torch.empty(k, s.n_heads, s.d_head, s.d_model))

    def qkv_weight(self) -> torch.Tensor:
        """``[K, d_model, 3 * n_heads * d_head]``: queries, keys and values of all heads in one matmul."""
        k, h, d, e = self.W_Q.shape
        w = torch.stack([self.W_Q, self.W_K, self.W_V], 1)  # K 3 H d e
        return w.permute(0, 3, 1, 2, 4).reshape(k, d, 3 * h * e)

    def mix(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Attention of queries ``q [K, N, S, H, e]`` over keys/values ``[K, N, T, H, e]``; ``mask [S, T]`` is True
        where a query may look. Returns the attention output in the residual stream, ``[K, N, S, d_model]``.

        Sequences are a handful of tokens long, so scores are products summed over ``e`` rather than tiny matmuls."""
        scale = 1.0 / math.sqrt(q.shape[-1])
        scores = (q.unsqueeze(3) * k.unsqueeze(2)).sum(-1) * scale  # K N S T H
        scores = scores.masked_fill(~mask.view(1, 1, *mask.shape, 1), float("-inf"))
        pattern = scores.softmax(dim=3)
        z = (pattern.unsqueeze(-1) * v.unsqueeze(2)).sum(3)  # K N S H e
        kk, n, s_, h, e = z.shape
        return _bmm(z.reshape(kk, n, s_, h * e), self.W_O.reshape(kk, h * e, -1))


class MLP(nn.Module):
    def __init__(self, k: int, s: TransformerShape) -> None:
        super().__init__()
        self.W_in = nn.Parameter(torch.empty(k, s.d_model, s.d_mlp))
        self.b_in = nn.Parameter(torch.empty(k, s.d_mlp))
        self.W_out = nn.Parameter(torch.empty(k, s.d_mlp, s.d_model))
        self.b_out = nn.Parameter(torch.empty(k, s.d_model))
        self.act = _ACTIVATIONS[s.activation]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.act is torch.relu:
            k, i = x.shape[0], x.shape[-1]
            return relu_mlp(x.reshape(k, -1, i), self.W_in, self.b_in, self.W_out, self.b_out).view(x.shape)
        return _bmm(self.act(_bmm(x, self.W_in, self.b_in)), self.W_out, self.b_out)


class LayerNormParams(nn.Module):
    def __init__(self, k: int, d_model: int) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.empty(k, d_model))
        self.b = nn.Parameter(torch.empty(k, d_model))


class Block(nn.Module):
    def __init__(self, k: int, s: TransformerShape) -> None:
        super().__init__()
        self.attn = Attention(k, s)
        self.mlp = MLP(k, s)
        if s.layer_norm:
            self.ln1 = LayerNormParams(k, s.d_model)
            self.ln2 = LayerNormParams(k, s.d_model)

    def norm1(self, x: torch.Tensor) -> torch.Tensor:
        return _layer_norm(x, self.ln1.w, self.ln1.b) if hasattr(self, "ln1") else x

    def norm2(self, x: torch.Tensor) -> torch.Tensor:
        return _layer_norm(x, self.ln2.w, self.ln2.b) if hasattr(self, "ln2") else x


class _Embed(nn.Module):
    def __init__(self, k: int, d_vocab: int, d_model: int) -> None:
        super().__init__()
        self.W_E = nn.Parameter(torch.empty(k, d_vocab, d_model))


class FactorisedEmbed(nn.Module):
    """A low-rank embedding ``W_E = W_E_A @ W_E_B`` (GrokTransfer's ``E_T = A B``): ``W_E_A [K, d_vocab, rank]``,
    ``W_E_B [K, rank, d_model]``. ``W_E`` is computed, so every consumer of ``embed.W_E`` works unchanged."""

    def __init__(self, k: int, d_vocab: int, rank: int, d_model: int) -> None:
        super().__init__()
        self.W_E_A = nn.Parameter(torch.empty(k, d_vocab, rank))
        self.W_E_B = nn.Parameter(torch.empty(k, rank, d_model))

    @property
    def W_E(self) -> torch.Tensor:  # noqa: N802 - the interpretability name
        return torch.bmm(self.W_E_A, self.W_E_B)


class _PosEmbed(nn.Module):
    def __init__(self, k: int, n_ctx: int, d_model: int) -> None:
        super().__init__()
        self.W_pos = nn.Parameter(torch.empty(k, n_ctx, d_model))


class _Unembed(nn.Module):
    def __init__(self, k: int, d_model: int, d_vocab_out: int) -> None:
        super().__init__()
        self.W_U = nn.Parameter(torch.empty(k, d_model, d_vocab_out))


class _TableRows:
    """Rows and gather indices of a one-layer transformer's attention tables for one token tensor ``[K, N, T]``.

    ``key_rows [Rk]`` are the flattened (position, token) pairs ``position * d_vocab + token`` that occur in the
    tokens (over all members), ``query_rows [Rq]`` those at the scored positions. With ``compact=False`` they are
    every pair instead (no data-dependent sizes, so nothing waits for the device: the path for accelerators,
    where finding the pairs would synchronise every step and the full tables cost little). The score table is
    ``[K, Rq, Rk, H]`` and the OV table ``[K, Rk, H, d_model]``. ``score_index [K, N, S, T]`` and ``ov_index
    [K N S, T H]`` point into them, ``resid_index [K, N, S]`` into the full ``[K, T, V]`` embedding table, and
    ``masked [1, 1, S, T, 1]`` marks the keys after each query (causal)."""

    def __init__(self, tokens: torch.Tensor, positions: list[int], d_vocab: int, n_heads: int,
                 compact: bool = True) -> None:
        k, n, t = tokens.shape
        dev = tokens.device
        n_pos = len(positions)
        pos = torch.tensor(positions, device=dev)
        key_pos = torch.arange(t, device=dev)
        flat = key_pos * d_vocab + tokens  # K N T: (position, token) pairs
        if compact:
            self.key_rows, key_id = torch.unique(flat, return_inverse=True)
            self.query_rows, query_id = torch.unique(flat[:, :, positions], return_inverse=True)  # K N S
        else:
            self.key_rows, key_id = torch.arange(t * d_vocab, device=dev), flat
            self.query_rows = (pos.view(n_pos, 1) * d_vocab + torch.arange(d_vocab, device=dev)).reshape(-1)
            query_id = torch.arange(n_pos, device=dev).view(1, 1, n_pos) * d_vocab + tokens[:, :, positions]
        r_k, r_q = len(self.key_rows), len(self.query_rows)
        member = torch.arange(k, device=dev).view(k, 1, 1)
        self.score_index = ((member * r_q + query_id).unsqueeze(-1) * r_k + key_id.unsqueeze(2))  # K N S T
        ov = ((member * r_k + key_id).unsqueeze(2).unsqueeze(-1) * n_heads
              + torch.arange(n_heads, device=dev))  # K N 1 T H
        self.ov_index = ov.expand(k, n, n_pos, t, n_heads).reshape(k * n * n_pos, t * n_heads)
        self.resid_index = (member * t + pos.view(1, 1, n_pos)) * d_vocab + tokens[:, :, positions]  # K N S
        self.masked = ~(key_pos.view(1, t) <= pos.view(n_pos, 1)).view(1, 1, n_pos, t, 1)


class EnsembleTransformer(EnsembleMembers, nn.Module):
    """K independent transformers of one shape. ``seeds[k]`` fixes member k's initial weights, so a member built
    inside an ensemble starts from exactly the weights it would have alone."""

    kind = "transformer"

    def __init__(self, shape: TransformerShape, seeds: Sequence[int]) -> None:
        super().__init__()
        if shape.activation not in _ACTIVATIONS:
            raise ValueError(f"model.activation {shape.activation!r} unknown; allowed: {', '.join(_ACTIVATIONS)}")
        self.shape = shape
        self.seeds = list(seeds)
        k = len(self.seeds)
        self.embed = (_Embed(k, shape.d_vocab, shape.d_model) if shape.embed_rank is None
                      else FactorisedEmbed(k, shape.d_vocab, shape.embed_rank, shape.d_model))
        self.pos_embed = _PosEmbed(k, shape.n_ctx, shape.d_model)
        self.blocks = nn.ModuleList(Block(k, shape) for _ in range(shape.n_layers))
        if shape.layer_norm:
            self.ln_final = LayerNormParams(k, shape.d_model)
        self.unembed = _Unembed(k, shape.d_model, shape.d_vocab_out)
        self.reset_parameters()

    # ------------------------------------------------------------------------------------------------ initialisation
    def plain_embed_std(self) -> float:
        """The std of a plain ``W_E``'s entries at initialisation."""
        return 1.0 / math.sqrt(self.shape.d_model)

    def _init_std(self, name: str, p: torch.Tensor) -> float | None:
        """Gaussian std of each weight (Nanda et al.'s scheme); None for biases/LayerNorm (constants)."""
        if name.endswith("W_U"):
            return 1.0 / math.sqrt(self.shape.d_vocab)
        if name == "embed.W_E_B":  # A @ B then has the variance of a plain W_E
            return 1.0 / math.sqrt(self.shape.embed_rank or 1)
        if name.split(".")[-1].startswith("W_"):
            return 1.0 / math.sqrt(self.shape.d_model)
        return None


    # ------------------------------------------------------------------------------------------------ fast forward
    def _embedding_table(self) -> torch.Tensor:
        """Residual stream after the embedding for every (position, token): ``[K, n_ctx, d_vocab, d_model]``."""
        return self.embed.W_E.unsqueeze(1) + self.pos_embed.W_pos.unsqueeze(2)

    #: position p's output reads tokens 0..p only (a teacher needs no token after the position it teaches at)
    causal: ClassVar[bool] = True

    @property
    def d_hidden(self) -> int:
        """Width of the residual stream the unembedding reads (``forward(..., hidden=True)``)."""
        return self.shape.d_model

    def forward(self, tokens: torch.Tensor, positions: Sequence[int], hidden: bool = False
                ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Logits at the scored ``positions`` only: ``tokens [K, N, T]`` -> ``[K, N, len(positions), d_vocab_out]``;
        with ``hidden``, also the residual stream there (after ``ln_final``, what ``W_U`` reads), ``[K, N, S,
        d_model]``, as ``(logits, resid)``.

        Work after the last attention (queries, attention output, MLP, unembedding) is done only for ``positions``."""
        k, n, t = tokens.shape
        s = self.shape
        positions = list(positions)
        needed_t = max(positions) + 1  # causal: later positions influence nothing that is read
        tokens = tokens[:, :, :needed_t]
        t = needed_t
        table = self._embedding_table()[:, :t]  # K T V d
        last = len(self.blocks) - 1
        block0 = self.blocks[0]
        if last == 0:
            return self._single_layer(tokens, positions, table, hidden)
        qkv_table = _bmm(block0.norm1(table), block0.attn.qkv_weight())  # K T V 3He
        he = s.n_heads * s.d_head
        flat_index = (
            torch.arange(k, device=tokens.device).view(k, 1, 1) * (t * s.d_vocab)
            + torch.arange(t, device=tokens.device).view(1, 1, t) * s.d_vocab
            + tokens
        )  # K N T, into the flattened (member, position, token) axis
        qkv = F.embedding(flat_index, qkv_table.reshape(k * t * s.d_vocab, 3 * he))
        resid = F.embedding(flat_index, table.reshape(k * t * s.d_vocab, s.d_model))
        all_positions = list(range(t))
        resid = resid + block0.attn.mix(*self._split_qkv(qkv), self._mask(all_positions, t, tokens.device))
        resid = resid + block0.mlp(block0.norm2(resid))
        for block in self.blocks[1:last]:
            qkv = _bmm(block.norm1(resid), block.attn.qkv_weight())
            resid = resid + block.attn.mix(*self._split_qkv(qkv), self._mask(all_positions, t, tokens.device))
            resid = resid + block.mlp(block.norm2(resid))
        block = self.blocks[last]
        normed = block.norm1(resid)
        kv = _bmm(normed, block.attn.qkv_weight()[..., he:])
        q = _bmm(normed[:, :, positions], block.attn.qkv_weight()[..., :he])
        return self._final_layer(block, resid[:, :, positions], q, kv, positions, t, hidden)

    def _single_layer(self, tokens: torch.Tensor, positions: list[int], table: torch.Tensor, hidden: bool = False
                      ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """One-layer model: nothing in the attention depends on an example except through its tokens, so

        * attention scores come from a table over (query position, query token, key position, key token, head),
        * the attention output is a sum of rows of an OV table over (key position, key token, head), weighted by the
          attention pattern: an ``embedding_bag`` with per-row weights, with no per-example keys or values at all.

        The tables hold only the (position, token) pairs that occur in ``tokens`` (:class:`_TableRows`: a task's
        fixed tokens, such as the operator and modulus, occur at one position each), so their cost follows the task,
        not the vocabulary. Per example, only the MLP and unembedding of the scored positions remain as dense work."""
        s = self.shape
        k, n, t = tokens.shape
        h, e = s.n_heads, s.d_head
        idx = self._table_rows(tokens, positions)
        attn = self.blocks[0].attn
        # Head-major layouts keep every matmul operand contiguous (strided operands take slow CPU kernels).
        normed = self.blocks[0].norm1(table).reshape(k, t * s.d_vocab, s.d_model)  # K TV d
        x_keys = normed[:, idx.key_rows].unsqueeze(1)  # K 1 Rk d
        x_queries = normed[:, idx.query_rows].unsqueeze(1)  # K 1 Rq d
        q_table = torch.matmul(x_queries, attn.W_Q)  # K H Rq e
        k_table = torch.matmul(x_keys, attn.W_K)  # K H Rk e
        v_table = torch.matmul(x_keys, attn.W_V)  # K H Rk e
        # scores_table[k, rq, rk, h] = q . k / sqrt(e)
        scores_table = (torch.matmul(q_table, k_table.transpose(-1, -2)) / math.sqrt(e)).permute(0, 2, 3, 1)
        scores_table = scores_table.contiguous()  # a strided table takes index_select's slow path
        ov_table = torch.matmul(v_table, attn.W_O).transpose(1, 2)  # K Rk H d
        scores = gather_rows(scores_table.view(-1, h), idx.score_index)  # K N S T H
        pattern = scores.masked_fill(idx.masked, float("-inf")).softmax(dim=3)
        n_pos = len(positions)
        attn_out = weighted_row_sum(ov_table.reshape(-1, s.d_model), idx.ov_index, pattern.reshape(k * n * n_pos, t * h)
                                    ).view(k, n, n_pos, s.d_model)
        resid = gather_rows(table.reshape(-1, s.d_model), idx.resid_index) + attn_out
        block = self.blocks[0]
        resid = resid + block.mlp(block.norm2(resid))
        return self._unembed(resid, hidden)

    def _unembed(self, resid: torch.Tensor, hidden: bool) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Logits from the final residual stream (after ``ln_final`` where the model has one), and that stream."""
        if hasattr(self, "ln_final"):
            resid = _layer_norm(resid, self.ln_final.w, self.ln_final.b)
        logits = _bmm(resid, self.unembed.W_U)
        return (logits, resid) if hidden else logits

    def _table_rows(self, tokens: torch.Tensor, positions: list[int]) -> _TableRows:
        """The one-layer fast path's table rows and gather indices for ``tokens``, reused while the tokens (compared
        by value) and positions are those of a recent call, as they are every step of full-batch training (one entry
        per member chunk)."""
        if tokens.device.type != "cpu":  # full tables, rebuilt each call: a lookup by value would synchronise
            return _TableRows(tokens, positions, self.shape.d_vocab, self.shape.n_heads, compact=False)
        cache = self.__dict__.setdefault("_rows_cache", ValueCache())  # a plain attribute: not saved, not moved
        return cache.get(tokens, tuple(positions),
                         lambda: _TableRows(tokens, positions, self.shape.d_vocab, self.shape.n_heads))

    def _final_layer(
        self, block: Block, resid: torch.Tensor, q: torch.Tensor, kv: torch.Tensor, positions: list[int], t: int,
        hidden: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Last block and unembedding for the scored positions: ``resid, q [K, N, S, .]``, ``kv [K, N, T, 2He]``."""
        s = self.shape
        k, n = resid.shape[:2]
        heads = (k, n, -1, s.n_heads, s.d_head)
        keys, values = kv.view(k, n, t, 2, s.n_heads, s.d_head).unbind(3)
        resid = resid + block.attn.mix(q.view(heads), keys, values, self._mask(positions, t, resid.device))
        resid = resid + block.mlp(block.norm2(resid))
        return self._unembed(resid, hidden)

    def _split_qkv(self, qkv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        k, n, t, _ = qkv.shape
        q, key, v = qkv.view(k, n, t, 3, self.shape.n_heads, self.shape.d_head).unbind(3)
        return q, key, v

    @staticmethod
    def _mask(query_positions: Sequence[int], t: int, device: torch.device) -> torch.Tensor:
        return torch.arange(t, device=device).view(1, t) <= torch.tensor(query_positions, device=device).view(-1, 1)

    # ------------------------------------------------------------------------------------------------ reference path
    def run_with_cache(self, tokens: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Every position, every activation: ``tokens [K, N, T]`` -> (logits ``[K, N, T, d_vocab_out]``, cache).

        Written straight from the maths (einsum attention), with no shortcut; cache names follow TransformerLens."""
        cache: dict[str, torch.Tensor] = {}
        t = tokens.shape[2]
        members = torch.arange(tokens.shape[0], device=tokens.device).view(-1, 1, 1)
        embed = self.embed.W_E[members, tokens]
        pos_embed = self.pos_embed.W_pos[:, :t].unsqueeze(1).expand_as(embed)
        cache["hook_embed"], cache["hook_pos_embed"] = embed, pos_embed  # as in TransformerLens: W_E alone, W_pos
        x = embed + pos_embed
        cache["blocks.0.hook_resid_pre"] = x
        mask = torch.tril(torch.ones(t, t, dtype=torch.bool, device=tokens.device))
        for i, block in enumerate(self.blocks):
            h = block.norm1(x)
            q = torch.einsum("kntd,khde->knhte", h, block.attn.W_Q)
            key = torch.einsum("kntd,khde->knhte", h, block.attn.W_K)
            v = torch.einsum("kntd,khde->knhte", h, block.attn.W_V)
            scores = torch.einsum("knhqe,knhse->knhqs", q, key) / math.sqrt(self.shape.d_head)
            pattern = scores.masked_fill(~mask, float("-inf")).softmax(-1)
            z = torch.einsum("knhqs,knhse->knhqe", pattern, v)
            attn_out = torch.einsum("knhqe,khed->knqd", z, block.attn.W_O)
            cache[f"blocks.{i}.attn.hook_pattern"] = pattern
            x = x + attn_out
            cache[f"blocks.{i}.hook_resid_mid"] = x
            pre = torch.einsum("kntd,kdm->kntm", block.norm2(x), block.mlp.W_in)
            pre = pre + block.mlp.b_in.view(-1, 1, 1, block.mlp.b_in.shape[-1])
            post = block.mlp.act(pre)
            cache[f"blocks.{i}.mlp.hook_post"] = post
            x = x + torch.einsum("kntm,kmd->kntd", post, block.mlp.W_out) + block.mlp.b_out.view(-1, 1, 1, x.shape[-1])
            cache[f"blocks.{i}.hook_resid_post"] = x
        if hasattr(self, "ln_final"):
            x = _layer_norm(x, self.ln_final.w, self.ln_final.b)
        logits = torch.einsum("kntd,kdv->kntv", x, self.unembed.W_U)
        return logits, cache


@MODELS.register("transformer")
class TransformerConfig(ModelSpec):
    """``kind: transformer`` (the default): d_model, n_heads, d_head, d_mlp, activation, layer_norm."""

    model_class: ClassVar[type] = EnsembleTransformer
    shape_class: ClassVar[type] = TransformerShape

    kind: Literal["transformer"] = "transformer"
    d_model: int = Field(128, ge=1, description="width of the residual stream")
    n_heads: int = Field(4, ge=1, description="attention heads per block")
    d_head: int = Field(32, ge=1, description="width of one head's queries, keys and values")
    activation: Literal["relu", "gelu"] = Field("relu", description="the MLP's non-linearity")
    layer_norm: bool = Field(False, description="LayerNorm before attention, the MLP and the unembedding")

    @property
    def embed_width(self) -> int:
        return self.d_model

    def shape(self, d_vocab: int, d_vocab_out: int, n_ctx: int, embed_rank: int | None) -> TransformerShape:
        return TransformerShape(d_vocab=d_vocab, d_vocab_out=d_vocab_out, n_ctx=n_ctx, n_layers=self.n_layers,
                                d_model=self.d_model, n_heads=self.n_heads, d_head=self.d_head, d_mlp=self.d_mlp,
                                activation=self.activation, layer_norm=self.layer_norm, embed_rank=embed_rank)
