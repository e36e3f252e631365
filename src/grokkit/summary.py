"""The schema of a run's summary: ``summary.json`` is the JSON dump of :class:`Summary`, and the members of a
:class:`grokkit.RunResult` are its :class:`MemberResult` objects — one typed model for the file and the object.

Recipes add fields of their own (a continual run's accuracy matrix, a transfer run's weak stage): the models keep
unknown fields (``extra="allow"``), so every summary written by earlier versions reads back unchanged.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class MemberResult(_Open):
    """One ensemble member's outcome (one seed): final accuracies and losses, when it generalised, whether it failed
    and why. Steps are optimiser steps; None: it did not happen within the run."""

    seed: int
    final_train_acc: float | None = Field(None, description="training accuracy at the last evaluation")
    final_test_acc: float | None = Field(None, description="test accuracy at the last evaluation")
    final_train_loss: float | None = Field(None, description="training loss (the task loss) at the last evaluation")
    final_test_loss: float | None = Field(None, description="test loss at the last evaluation")
    final_val_acc: float | None = Field(None, description="validation accuracy at the last evaluation (with a "
                                        "validation split)")
    final_val_loss: float | None = None
    steps_to_generalize: int | None = Field(
        None, description="the first evaluated step with test accuracy >= the threshold (a first crossing)")
    steps_to_generalize_lasting: int | None = Field(
        None, description="the first evaluated step from which test accuracy stays >= the threshold to the end of the "
        "run (and, where the run has a hold window, for at least that window); None: it did not generalise for good")
    val_steps_to_generalize_lasting: int | None = Field(None, description="the same on validation accuracy")
    failed: bool = Field(False, description="its loss became NaN or inf; it was frozen there")
    failed_step: int | None = None
    error: str | None = Field(None, description="why it failed")
    tasks: dict[str, dict[str, Any]] | None = Field(
        None, description="per evaluated task (multi-task recipes, eval_tasks): final_test_acc, steps_to_generalize, "
        "steps_to_generalize_lasting")


class TeacherRecord(_Open):
    """A distillation teacher as the student saw it: its own test accuracy and whether it generalised (from its
    run's summary; None for a bare model file), and how often its argmax is the student's answer on the student's
    test pairs at each position (None: it cannot read the student's tokens up to that position)."""

    source: str
    member: str
    own_test_acc: float | None = None
    own_threshold: float | None = None
    generalized: bool | None = None
    acc_on_student_test: dict[str, float | None] = Field(default_factory=dict)
    task: str | None = Field(None, description="multi-task runs: the task this teacher teaches")


class Summary(_Open):
    """A finished run: what it was, how long it took, and each member's outcome."""

    name: str
    recipe: str
    task: str
    train_fraction: float | list[float | None] | None = None
    steps: int = Field(..., description="optimiser steps taken (fewer than training.steps after an early stop)")
    generalization_threshold: float | None = None
    wall_seconds: float = 0.0
    members: list[MemberResult]
    teachers: list[TeacherRecord] | None = Field(None, description="distilled runs: each teacher's record")
    versions: dict[str, Any] | None = None

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)
