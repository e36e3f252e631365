"""The protocol of recipes made of stages (``continual``, ``transfer``).

Such a recipe never trains anything itself: it says which ordinary runs (its stages) to make, and how to stitch
their run directories into its own. A staged recipe module has

* ``stages(cfg, rundir) -> Generator[Stage, dict, None]``: yields the stages in order; the driver runs each one and
  sends back its summary. Everything before the first ``yield`` validates (every stage's config, the files the
  recipe starts from) and writes nothing: the driver runs it before it takes the lock or writes anything, and
  reports a ``ValueError`` raised there as a :class:`grokkit.rundir.RunError`;
* ``finish(cfg, rundir, summaries) -> dict``: writes the run directory's metrics, model, curves and, last, summary
  from the stages' directories and summaries (in the order of the stages), and returns the summary.

The driver (:func:`grokkit.api.run`) owns resume and skip: a finished sequence is not run again, a finished stage is
skipped, a killed stage resumes from its checkpoint, and the whole sequence holds the run directory's lock.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from grokkit.config import RunConfig
    from grokkit.rundir import RunDir


@dataclass(frozen=True)
class Stage:
    """One stage of a staged recipe: an ordinary run of ``config`` into ``directory``."""

    name: str
    config: RunConfig
    directory: Path
    #: lines the driver logs before it runs the stage
    notes: tuple[str, ...] = ()


Stages = Generator[Stage, dict[str, Any], None]


class StagedRecipe(Protocol):
    """What :func:`grokkit.api.run` needs of a recipe made of stages."""

    def stages(self, cfg: RunConfig, rundir: RunDir) -> Stages: ...

    def finish(self, cfg: RunConfig, rundir: RunDir, summaries: list[dict[str, Any]]) -> dict[str, Any]: ...
