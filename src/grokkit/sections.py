"""The config sections of the components every recipe shares: vocabulary, loss, optimiser (and its gradient
transforms), training loop, logging. Allowed values come from the components' registries."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from grokkit.losses import TASK_LOSSES
from grokkit.optim import OPTIMIZERS, TRANSFORMS
from grokkit.schema import Strict as _Strict


def _registered(value: str, names: tuple[str, ...], what: str) -> str:
    if value not in names:
        raise ValueError(f"unknown {what} {value!r}; allowed: {', '.join(names)}")
    return value


class VocabConfig(_Strict):
    """The shared vocabulary. Teacher and student must agree on it, so paper configs spell it out."""

    n_numbers: int | None = Field(None, ge=2, description="number tokens 0..n_numbers-1; default: the task modulus")
    moduli: list[int] | None = Field(None, description="moduli with a token; default: the task modulus")


class LossConfig(_Strict):
    kind: str = Field("cross_entropy", description="a registered task loss (grokkit.losses.TASK_LOSSES)")
    dtype: Literal["float64", "float32"] = Field("float64", description="floating-point type the loss is computed "
                                                 "in (recorded in summary.json)")
    restrict_to_answer_range: bool = Field(
        True, description="score only classes 0..P-1 of each example's modulus P (losses and accuracy)"
    )

    @field_validator("kind")
    @classmethod
    def _known(cls, v: str) -> str:
        return _registered(v, TASK_LOSSES.names(), "task loss")


class TransformConfig(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)
    name: str = Field(..., description="a registered gradient transform (grokkit.optim.TRANSFORMS)")

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        return _registered(v, TRANSFORMS.names(), "gradient transform")


class OptimizerConfig(_Strict):
    name: str = Field("adamw", description=f"one of {', '.join(OPTIMIZERS)}")
    lr: float = Field(1e-3, gt=0, description="learning rate (after warm-up); a member may have its own")
    betas: tuple[float, float] = Field((0.9, 0.98), description="Adam/AdamW moment decay rates")
    eps: float = Field(1e-8, gt=0, description="Adam/AdamW denominator term")
    weight_decay: float = Field(1.0, ge=0, description="AdamW: decoupled weight decay; Adam and SGD: L2 term "
                                "added to the gradient; a member may have its own")
    momentum: float = Field(0.0, ge=0, lt=1, description="SGD momentum")
    warmup_steps: int = Field(10, ge=0, description="steps over which the lr rises linearly from 0")
    transforms: list[TransformConfig] = Field(default_factory=list, description="applied in order before each step")

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        return _registered(v, OPTIMIZERS, "optimizer")

    @model_validator(mode="after")
    def _transforms_build(self) -> OptimizerConfig:
        from grokkit.optim import build_transform

        try:
            build_transform([t.model_dump() for t in self.transforms])
        except TypeError as err:  # an unknown or missing parameter of a transform
            raise ValueError(f"bad gradient transform settings: {err}") from None
        return self


class TrainingConfig(_Strict):
    steps: int = Field(10_000, ge=1, description="the step budget: optimiser steps per member")
    batch_size: int | None = Field(None, ge=1, description="None: full batch")
    eval_every: int = Field(100, ge=1, description="steps between evaluations (a row of metrics.csv per member)")
    generalization_threshold: float = Field(0.99, gt=0, le=1, description="test (or validation) accuracy at "
                                            "which a member counts as generalised")
    early_stop: bool = Field(False, description="stop once every member has generalised and held there for the "
                             "hold window (then after `patience` evals): on validation accuracy with a validation "
                             "split, else on test")
    patience: int = Field(0, ge=0, description="evaluations to continue after every member generalised and held "
                          "for the hold window")
    hold_window: float = Field(
        0.1, ge=0, le=1, description="lasting generalisation must be seen to hold: a member counts as generalised "
        "(steps_to_generalize_lasting) only if its accuracy stays >= the threshold from that step to the end of the "
        "run AND the run goes on for at least hold_window * steps after it (a fraction of the step budget; 0.1: the "
        "last 10%); a crossing inside the window is censored. Early stop waits until every member has held for it")
    softmax_collapse: bool = Field(
        False, description="log train_sc at every evaluation: the share of training rows whose float32 softmax "
        "sum over the scored classes is exactly 1 (Prieto et al.'s softmax collapse); one more forward pass")
    checkpoint_every: int = Field(1000, ge=0, description="steps between checkpoints; 0: none")
    snapshot_every: int = Field(0, ge=0, description="steps between weight snapshots of every member "
                                "(DIR/snapshots/step_NNNNNNN.safetensors, step 0 included); 0: none")
    snapshot_steps: list[int] = Field(default_factory=list, description="further steps to snapshot (e.g. "
                                      "log-spaced: [0, 10, 30, 100, 300, 1000])")

    @field_validator("snapshot_steps")
    @classmethod
    def _steps(cls, v: list[int]) -> list[int]:
        if any(s < 0 for s in v):
            raise ValueError(f"snapshot_steps must be >= 0, got {v}")
        return sorted(set(v))
    device: str = Field("cpu", description="torch device the run trains on")
    threads: int | None = Field(None, ge=1, description="torch CPU threads; default: torch's choice")
    member_chunk: int | None = Field(
        None, ge=1, description="members per forward/backward pass; default: all on CUDA, cache-sized chunks on CPU"
    )
    progress: bool = Field(True, description="show a progress bar")

    def hold_steps(self) -> int:
        """The hold window in steps (:func:`hold_steps`)."""
        return hold_steps(self.hold_window, self.steps)

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if not (v == "cpu" or v == "cuda" or v.startswith("cuda:") or v == "mps"):
            raise ValueError(f"device {v!r} unknown; allowed: cpu, cuda, cuda:N, mps")
        return v


def hold_steps(hold_window: float, steps: int) -> int:
    """The hold window of ``training.hold_window`` (a fraction) over a budget of ``steps``, in steps (rounded to the
    nearest step). Tables that read a run's recorded settings (a sweep's results, a tune's final runs) use this too."""
    return round(hold_window * steps)


class LoggingConfig(_Strict):
    """Optional metric streams besides metrics.csv (which is always written)."""

    tensorboard: bool = Field(False, description="write TensorBoard events to <run dir>/tensorboard")
    wandb: bool = Field(False, description="log to Weights & Biases")
    wandb_project: str = Field("grokkit", description="Weights & Biases project")
    wandb_mode: Literal["offline", "online", "disabled"] = Field("offline", description="offline: no network")
