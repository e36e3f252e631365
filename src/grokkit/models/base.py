"""What every ensemble model kind shares: a member axis first on every parameter, one seed per member, member k's
weights as a plain state dict, the per-member weight norm, and a seeded Gaussian initialisation whose std per
parameter each kind gives (``_init_std``; ``None``: a constant, 1 for LayerNorm weights ``*.w``, else 0)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import nn


class EnsembleMembers:
    """Mixin for ``nn.Module`` ensembles with ``seeds`` and parameters shaped ``[K, ...]``."""

    seeds: list[int]
    named_parameters: Callable[..., Iterator[tuple[str, nn.Parameter]]]

    @property
    def n_members(self) -> int:
        return len(self.seeds)

    def _init_std(self, name: str, p: torch.Tensor) -> float | None:
        raise NotImplementedError

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Member k's parameters drawn from a generator seeded with ``seeds[k]``, in parameter order (so a member's
        initial weights do not depend on the other members)."""
        for k, seed in enumerate(self.seeds):
            g = torch.Generator().manual_seed(int(seed))
            for name, p in self.named_parameters():
                std = self._init_std(name, p)
                if std is not None:
                    p[k].copy_(torch.randn(p.shape[1:], generator=g) * std)
                elif name.endswith(".w"):
                    p[k].fill_(1.0)
                else:
                    p[k].zero_()

    def member_state(self, k: int) -> dict[str, torch.Tensor]:
        """Member k's weights as an ordinary state dict (no member axis)."""
        return {n: p[k].detach().clone() for n, p in self.named_parameters()}

    def weight_norm(self) -> torch.Tensor:
        """L2 norm of all of each member's parameters, ``[K]``."""
        return torch.sqrt(sum(p.detach().pow(2).flatten(1).sum(1) for _, p in self.named_parameters()))
