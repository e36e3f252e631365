"""Optimisers and gradient transforms for ensembles.

Every tensor carries a leading member axis K. Adam, AdamW and SGD are elementwise, so one update over the stacked
tensors is exactly K independent optimisers; we write the update rules out (following ``torch.optim`` to the
operation, tested against it) only because ``torch.optim`` takes one scalar learning rate and weight decay per
parameter group, while an ensemble member may have its own.

Gradient transforms sit between backward and the optimiser step, in the style of optax: small pure objects with an
explicit state, chained in order. ⊥Grad and Grokfast are transforms of this kind.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch

from grokkit.registry import Registry

OPTIMIZERS = ("adam", "adamw", "sgd")

State = dict[str, list[torch.Tensor]]


def _per_member(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Broadcast a ``[K]`` vector against a ``[K, ...]`` tensor."""
    return x.view(-1, *([1] * (like.dim() - 1)))


class EnsembleOptimizer:
    """Adam / AdamW / SGD (with momentum) over stacked member tensors with per-member ``lr`` and ``weight_decay``.

    ``warmup_steps`` scales the learning rate linearly from ``lr / warmup_steps`` to ``lr`` over the first steps.
    Members whose ``active`` flag is False are left untouched (a failed member stays as it failed)."""

    def __init__(
        self,
        params: Sequence[torch.Tensor],
        name: str,
        lr: torch.Tensor,
        weight_decay: torch.Tensor,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        momentum: float = 0.0,
        warmup_steps: int = 0,
    ) -> None:
        if name not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {name!r}; allowed: {', '.join(OPTIMIZERS)}")
        self.params = list(params)
        self.name = name
        self.lr, self.weight_decay = lr, weight_decay
        self.betas, self.eps, self.momentum, self.warmup_steps = betas, eps, momentum, warmup_steps
        self.step_count = 0
        #: Adam/AdamW steps of healthy ensembles as ``torch._foreach_*`` calls (False: one tensor at a time)
        self.foreach = True
        self.any_weight_decay = bool(weight_decay.any())  # decided once: no device sync per step
        n_buffers = 2 if name in ("adam", "adamw") else (1 if momentum else 0)
        self.buffers = [[torch.zeros_like(p) for p in self.params] for _ in range(n_buffers)]

    def learning_rate(self) -> torch.Tensor:
        """The per-member learning rate of the next step, ``[K]``."""
        if self.warmup_steps > 0:
            return self.lr * min(1.0, (self.step_count + 1) / self.warmup_steps)
        return self.lr

    @torch.no_grad()
    def step(self, grads: Sequence[torch.Tensor], active: torch.Tensor | None = None) -> None:
        lr = self.learning_rate()
        if active is not None:
            lr = torch.where(active, lr, torch.zeros_like(lr))
        self.step_count += 1
        if active is None and self.foreach and self.name in ("adam", "adamw"):
            self._adam_foreach(list(grads), lr)
            return
        for i, (p, g) in enumerate(zip(self.params, grads, strict=True)):
            if active is not None:
                g = torch.where(_per_member(active, g), g, torch.zeros_like(g))
            lr_p, wd_p = _per_member(lr, p), _per_member(self.weight_decay, p)
            if self.name == "adamw":
                p.mul_(1 - lr_p * wd_p)
            elif self.any_weight_decay:
                g = g + wd_p * p
            if self.name == "sgd":
                if self.momentum:
                    buf = self.buffers[0][i]
                    buf.mul_(self.momentum).add_(g) if self.step_count > 1 else buf.copy_(g)
                    g = buf
                p.sub_(lr_p * g)
                continue
            beta1, beta2 = self.betas
            exp_avg, exp_avg_sq = self.buffers[0][i], self.buffers[1][i]
            if active is not None:  # inactive members keep their moments
                keep = ~_per_member(active, g)
                exp_avg.copy_(torch.where(keep, exp_avg, exp_avg.lerp(g, 1 - beta1)))
                exp_avg_sq.copy_(torch.where(keep, exp_avg_sq, exp_avg_sq * beta2 + (1 - beta2) * g * g))
            else:
                exp_avg.lerp_(g, 1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(g, g, value=1 - beta2)
            bias1 = 1 - beta1**self.step_count
            bias2 = 1 - beta2**self.step_count
            # p -= lr / bias1 * exp_avg / (sqrt(exp_avg_sq / bias2) + eps), with a single temporary
            update = exp_avg_sq.sqrt().div_(bias2**0.5).add_(self.eps).reciprocal_().mul_(exp_avg)
            p.sub_(update.mul_(lr_p / bias1))

    def _adam_foreach(self, grads: list[torch.Tensor], lr: torch.Tensor) -> None:
        """The Adam / AdamW step of :meth:`step` for all tensors at once (``torch._foreach_*``: one call per operation
        instead of one per operation and tensor): the same operations in the same order, so the same values, bit for
        bit (tested)."""
        params, (exp_avgs, exp_avg_sqs) = self.params, self.buffers
        if len(grads) != len(params):
            raise ValueError(f"{len(grads)} gradients for {len(params)} parameters")

        def per_member(x: torch.Tensor) -> list[torch.Tensor]:
            return [_per_member(x, p) for p in params]

        if self.name == "adamw":
            torch._foreach_mul_(params, per_member(1 - lr * self.weight_decay))
        elif self.any_weight_decay:
            grads = torch._foreach_add(grads, torch._foreach_mul(params, per_member(self.weight_decay)))
        beta1, beta2 = self.betas
        torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)
        torch._foreach_mul_(exp_avg_sqs, beta2)
        torch._foreach_addcmul_(exp_avg_sqs, grads, grads, value=1 - beta2)
        bias1 = 1 - beta1**self.step_count
        bias2 = 1 - beta2**self.step_count
        update = torch._foreach_sqrt(exp_avg_sqs)
        torch._foreach_div_(update, bias2**0.5)
        torch._foreach_add_(update, self.eps)
        torch._foreach_reciprocal_(update)
        torch._foreach_mul_(update, exp_avgs)
        torch._foreach_mul_(update, per_member(lr / bias1))
        torch._foreach_sub_(params, update)

    def state_dict(self) -> dict[str, torch.Tensor]:
        out = {"step_count": torch.tensor(self.step_count)}
        for b, buffers in enumerate(self.buffers):
            for i, t in enumerate(buffers):
                out[f"buffer{b}.{i}"] = t
        return out

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.step_count = int(state["step_count"])
        for b, buffers in enumerate(self.buffers):
            for i, t in enumerate(buffers):
                t.copy_(state[f"buffer{b}.{i}"])


# --------------------------------------------------------------------------------------------- gradient transforms
class GradientTransform(Protocol):
    """``init`` builds the state from the parameters; ``update`` maps gradients to new gradients and a new state.
    Both are pure: nothing is modified in place, so a transform is easy to test against its formula."""

    def init(self, params: Sequence[torch.Tensor]) -> State: ...

    def update(
        self, grads: Sequence[torch.Tensor], params: Sequence[torch.Tensor], state: State
    ) -> tuple[list[torch.Tensor], State]: ...


def _member_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-member inner product over all but the member axis, shaped to broadcast against ``a``."""
    return _per_member((a * b).flatten(1).sum(1), a)


@dataclass(frozen=True)
class OrthogonalGrad:
    """⊥Grad (Prieto et al. 2025): drop the gradient's component along the weights, per tensor and member, then
    restore the gradient's norm: g⊥ = g - (w·g / w·w) w, g⊥ <- g⊥ ‖g‖ / ‖g⊥‖."""

    eps: float = 1e-30

    def init(self, params: Sequence[torch.Tensor]) -> State:
        return {}

    def update(
        self, grads: Sequence[torch.Tensor], params: Sequence[torch.Tensor], state: State
    ) -> tuple[list[torch.Tensor], State]:
        out = []
        for g, w in zip(grads, params, strict=True):
            w = w.detach()
            g_perp = g - _member_dot(w, g) / (_member_dot(w, w) + self.eps) * w
            scale = torch.sqrt(_member_dot(g, g)) / (torch.sqrt(_member_dot(g_perp, g_perp)) + self.eps)
            out.append(g_perp * scale)
        return out, state


@dataclass(frozen=True)
class GrokfastEMA:
    """Grokfast-EMA (Lee et al. 2024): mu <- alpha mu + (1 - alpha) g; g <- g + lamb mu. The first step starts the
    average at g, as the authors' code does."""

    alpha: float = 0.98
    lamb: float = 2.0

    def init(self, params: Sequence[torch.Tensor]) -> State:
        return {"mu": [torch.zeros_like(p) for p in params], "started": [torch.zeros(())]}

    def update(
        self, grads: Sequence[torch.Tensor], params: Sequence[torch.Tensor], state: State
    ) -> tuple[list[torch.Tensor], State]:
        started = bool(state["started"][0])
        mu = [m * self.alpha + g * (1 - self.alpha) if started else g.clone() for m, g in zip(state["mu"], grads)]
        return [g + self.lamb * m for g, m in zip(grads, mu)], {"mu": mu, "started": [torch.ones(())]}


@dataclass(frozen=True)
class GrokfastMA:
    """Grokfast-MA: g <- g + lamb * mean of the last ``window`` gradients, applied once the window is full.

    Unlike the other transforms, this one updates its state in place: the history is a ring buffer of ``window``
    gradients on the parameters' device, with their running sum (refreshed exactly once per window, so rounding does
    not drift). Copying the window every step, as a pure update would, costs ``window`` times the parameters."""

    window: int = 100
    lamb: float = 5.0

    def init(self, params: Sequence[torch.Tensor]) -> State:
        return {"history": [torch.zeros(self.window, *p.shape, dtype=p.dtype, device=p.device) for p in params],
                "sum": [torch.zeros_like(p) for p in params],
                "count": [torch.zeros((), dtype=torch.long)]}

    def update(
        self, grads: Sequence[torch.Tensor], params: Sequence[torch.Tensor], state: State
    ) -> tuple[list[torch.Tensor], State]:
        count = int(state["count"][0])
        slot = count % self.window
        history, sums = state["history"], state["sum"]
        for h, total, g in zip(history, sums, grads):
            if slot == 0:  # a new lap: the exact sum of the window so far, then the oldest gradient leaves
                torch.sum(h, 0, out=total)
            total.sub_(h[slot]).add_(g)
            h[slot].copy_(g)
        count += 1
        new_state: State = {"history": history, "sum": sums, "count": [torch.tensor(count)]}
        if count < self.window:
            return list(grads), new_state
        return [g + (self.lamb / self.window) * total for g, total in zip(grads, sums)], new_state


@dataclass(frozen=True)
class Chain:
    """Apply transforms in order (optax.chain)."""

    transforms: tuple[GradientTransform, ...]

    def init(self, params: Sequence[torch.Tensor]) -> State:
        return {f"{i}.{k}": v for i, t in enumerate(self.transforms) for k, v in t.init(params).items()}

    def update(
        self, grads: Sequence[torch.Tensor], params: Sequence[torch.Tensor], state: State
    ) -> tuple[list[torch.Tensor], State]:
        new_state: State = {}
        out = list(grads)
        for i, t in enumerate(self.transforms):
            prefix = f"{i}."
            sub = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
            out, sub = t.update(out, params, sub)
            new_state.update({prefix + k: v for k, v in sub.items()})
        return out, new_state


#: gradient transforms (``optimizer.transforms[].name``) -> their class; a new transform is one entry here
TRANSFORMS: Registry[type] = Registry("gradient transform")
for _name, _cls in (("orthogonal_grad", OrthogonalGrad), ("grokfast_ema", GrokfastEMA), ("grokfast_ma", GrokfastMA)):
    TRANSFORMS.add(_name, _cls)


def build_transform(specs: Sequence[dict[str, object]]) -> Chain:
    """``[{"name": "grokfast_ema", "alpha": 0.98}, ...]`` -> a :class:`Chain`."""
    transforms = []
    for spec in specs:
        kwargs = dict(spec)
        name = str(kwargs.pop("name"))
        transforms.append(TRANSFORMS.get(name)(**kwargs))
    return Chain(tuple(transforms))
