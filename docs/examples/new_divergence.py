"""A new distillation loss: the Jensen-Shannon divergence between the softened distributions of teacher and
student, registered in grokkit.DIVERGENCES and chosen with ``distill.loss``."""

import torch

import grokkit
from grokkit.losses import Divergence, log_softmax


class JensenShannon(Divergence):
    reads = "log_probs"  # the teacher's log softmax(teacher / T) over the aligned classes

    def targets(self, teacher: torch.Tensor, temperature: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"log_probs": teacher}  # computed once per training row

    def __call__(self, student: torch.Tensor, targets: dict[str, torch.Tensor], temperature: torch.Tensor,
                 params: dict[str, torch.Tensor]) -> torch.Tensor:
        log_t = targets["log_probs"]
        log_s = log_softmax(student.to(log_t.dtype) / temperature.unsqueeze(-1))
        log_m = torch.logaddexp(log_t, log_s) - torch.log(torch.tensor(2.0, dtype=log_t.dtype))
        return 0.5 * ((log_t.exp() * (log_t - log_m)).sum(-1) + (log_s.exp() * (log_s - log_m)).sum(-1))  # [K, n]


grokkit.DIVERGENCES.add("js", JensenShannon())

model = {"d_model": 32, "n_heads": 2, "d_head": 16, "d_mlp": 64}
teacher = grokkit.run({"task": {"modulus": 17, "train_fraction": 0.6}, "model": model, "seeds": [0],
                       "optimizer": {"lr": 0.01}, "training": {"steps": 100, "eval_every": 50, "progress": False}})
student = grokkit.run({"task": {"modulus": 13, "train_fraction": 0.4}, "model": model, "seeds": [0, 1],
                       "optimizer": {"lr": 0.01}, "training": {"steps": 60, "eval_every": 30, "progress": False}},
                      recipe="distill", distill={"teacher": teacher, "loss": "js", "alpha": 0.9, "temperature": 4.0})
print(student.to_frame()[["seed", "final_test_acc"]])
assert student.summary.teachers  # the run records the teacher it learned from
