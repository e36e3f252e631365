"""A new recipe: label smoothing, the task loss against targets mixed with the uniform distribution. A recipe
registers a name and a ``prepare(setup)`` that gives the run its objective; the engine does the rest."""

import torch

import grokkit
from grokkit.engine import Objective
from grokkit.recipes.registry import Recipe, register

EPSILON = 0.1  # a recipe in the package would take this from a config section of its own (SECTIONS)


def prepare(setup) -> None:
    task = setup.task

    def loss(out, batch, members, step, params) -> torch.Tensor:
        logits = out.logits[:, :, 0, : task.answer_range].double()  # [K, n, P]: the final position's answers
        log_probs = logits.log_softmax(-1)
        nll = -log_probs.gather(-1, batch.labels.unsqueeze(-1)).squeeze(-1)
        return (1 - EPSILON) * nll - EPSILON * log_probs.mean(-1)  # per-example loss [K, n]

    setup.objective = Objective(positions=[task.final_position], loss=loss, final=task.final_position)


register(Recipe("label_smoothing", prepare=prepare, summary="cross-entropy against smoothed labels"))

result = grokkit.run({"recipe": "label_smoothing", "task": {"modulus": 13, "train_fraction": 0.5},
                      "model": {"d_model": 32, "n_heads": 2, "d_head": 16, "d_mlp": 64}, "seeds": [0],
                      "optimizer": {"lr": 0.01}, "training": {"steps": 100, "eval_every": 50, "progress": False}})
print(result.to_frame()[["seed", "final_train_acc", "final_test_acc"]])
assert result.to_frame()["final_train_acc"].iloc[0] > 0.1
