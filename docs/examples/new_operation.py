"""A new operation, (a - b)^2 mod p, registered from outside the package and trained on like a built-in one."""

import torch

import grokkit


def squared_difference(a: torch.Tensor, b: torch.Tensor, p: int) -> tuple[torch.Tensor, torch.Tensor]:
    """All pairs (a, b) -> (answer, valid): every pair has an answer here."""
    return (a - b) ** 2 % p, torch.ones_like(a, dtype=torch.bool)


grokkit.OPS.add("sqdiff", squared_difference)  # its token joins the vocabulary of the runs that use it only

result = grokkit.run({
    "task": {"op": "sqdiff", "modulus": 13, "train_fraction": 0.6},
    "model": {"d_model": 32, "n_heads": 2, "d_head": 16, "d_mlp": 64},
    "optimizer": {"lr": 0.01},
    "seeds": [0, 1],
    "training": {"steps": 100, "eval_every": 50, "progress": False},
})
print(result.to_frame()[["seed", "final_train_acc", "final_test_acc"]])
assert len(result.members) == 2
