"""The protocol of recipes made of stages (``continual``, ``transfer``).

Such a recipe never trains anything itself, and never reads or writes a run directory: it says which ordinary runs
(its stages) to make, as config mappings, and how to stitch their results into its own. A staged recipe module has

* ``stages(cfg, out, context) -> Generator[Stage, StageResult, None]``: yields the stages in order; the driver parses
  each stage's config, runs it into the stage's directory and sends back its :class:`StageResult`. Everything before
  the first ``yield`` validates (every stage's config through ``context.parse``, the files the recipe starts from)
  and writes nothing: the driver runs it before it takes the lock or writes anything, and reports a ``ValueError``
  raised there as a :class:`grokkit.rundir.RunError`;
* ``finish(cfg, results) -> Stitched``: the recipe's own metrics, summary, model and curves from the stages' results
  (in the order of the stages); the driver writes them, the summary last.

The driver (:func:`grokkit.api.run`) owns parsing, resume and skip: a finished sequence is not run again, a finished
stage is skipped, a killed stage resumes from its checkpoint, and the whole sequence holds the run directory's lock.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from grokkit.recipes.registry import RunConfig

if TYPE_CHECKING:
    import pandas as pd



@dataclass(frozen=True)
class Stage:
    """One stage of a staged recipe: an ordinary run of the config ``config`` (a mapping, parsed by the driver) into
    ``directory``."""

    name: str
    config: dict[str, Any]
    directory: Path
    #: lines the driver logs before it runs the stage
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class StageResult:
    """A finished stage: its directory, summary and metrics (long format, as in its ``metrics.csv``)."""

    name: str
    directory: Path
    summary: dict[str, Any]
    metrics: pd.DataFrame


@dataclass(frozen=True)
class Stitched:
    """What a staged recipe's ``finish`` gives the driver to write: ``metrics`` (its ``metrics.csv``), ``summary``;
    the model as a file to copy (``model_from``) or as ``(model, vocabulary, metadata)`` (``model``); and the curves
    as a figure of its own (``figure``) or as run curves of ``curves = (metrics, title)``."""

    summary: dict[str, Any]
    metrics: pd.DataFrame
    model_from: Path | None = None
    model: tuple[Any, Any, dict[str, Any]] | None = None
    figure: Any = None
    curves: tuple[pd.DataFrame, str] | None = None


@dataclass(frozen=True)
class StageContext:
    """What the driver lends a staged recipe: ``parse(data, source)`` validates a stage's config mapping into a run
    config (raising ``ValueError`` naming the problem); ``read_config(path)`` the config of the run directory at
    ``path`` (None for a bare model file or a folder without one; ``ValueError`` if unreadable)."""

    parse: Callable[[dict[str, Any], str], RunConfig]
    read_config: Callable[[Path], RunConfig | None]


Stages = Generator[Stage, StageResult, None]


class StagedRecipe(Protocol):
    """What :func:`grokkit.api.run` needs of a recipe made of stages."""

    def stages(self, cfg: RunConfig, out: Path, context: StageContext) -> Stages: ...

    def finish(self, cfg: RunConfig, results: list[StageResult]) -> Stitched: ...
