"""The recipe registry and the registry of the optional config sections recipes own.

A recipe is one module in this package that registers a :class:`Recipe` (and the config sections it owns, with
:data:`SECTIONS`). ``grokkit.recipes`` imports every module of the package; the run config gets one optional field
per registered section, and its ``recipe:`` accepts every registered recipe. Checks that only concern one recipe live
in that recipe's ``check``; :class:`~grokkit.config.RunConfig` runs the shared ones (a section given to a recipe that
does not take it, multi-task and bit-task rules) from the fields declared here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from grokkit.registry import Registry

#: The run config (:class:`grokkit.config.RunConfig`). It is assembled from the sections the recipes register, so it
#: sits above them: recipes name it in annotations through this alias and never import it.
RunConfig = Any


@dataclass(frozen=True)
class Section:
    """An optional top-level config section (``distill:``, ``transfer:``, ...): its model, and what to tell a user
    who gave it to a recipe that does not take it (None: name the recipes that do)."""

    model: type[BaseModel]
    misplaced: str | None = None


@dataclass(frozen=True)
class Recipe:
    """One way of training. Exactly one of ``prepare`` (a single run: sets ``setup.objective``) or ``stages`` with
    ``finish`` (a sequence of runs that :func:`grokkit.api.run` drives) is given.

    ``sections``: the optional sections it takes (``required`` ones it needs); ``multi_task``: it trains on
    ``tasks:`` (two or more tasks sharing one vocabulary) instead of ``task:``; ``needs``: the task capabilities it
    relies on (``TaskSpec.capabilities``, e.g. ``shared_vocabulary``), so a task kind without them is refused with
    the recipes that do run it; ``check``: its own consistency rules (raise ``ValueError``)."""

    name: str
    #: ``prepare(setup)`` with the run's :class:`grokkit.recipes.common.Setup` (built on this registry)
    prepare: Callable[[Any], None] | None = None
    #: staged recipes: ``stages(cfg, rundir)`` yields each stage's run and receives its summary; ``finish(cfg,
    #: rundir, summaries)`` stitches the stages into the recipe's own run directory (see grokkit.recipes.stages)
    stages: Callable[..., Any] | None = None
    finish: Callable[..., Any] | None = None
    sections: tuple[str, ...] = ()
    required: tuple[str, ...] = ()
    multi_task: bool = False
    needs: frozenset[str] = frozenset()
    check: Callable[[RunConfig], None] | None = None
    summary: str = ""
    #: the sections a run of this recipe reads, given its config mapping (default: all of ``sections``): a sweep or a
    #: tune whose base carries a section only some of its trials read drops it from the others
    takes: Callable[[dict[str, Any]], tuple[str, ...]] | None = None

    #: the tasks a run of this recipe trains on (for its summary's ``train_fraction``); None: all its tasks
    trained_tasks: Callable[[RunConfig], list[Any]] | None = None

    def sections_taken(self, data: dict[str, Any]) -> tuple[str, ...]:
        """The optional sections a run of this recipe with config ``data`` reads."""
        return self.takes(data) if self.takes is not None else self.sections


RECIPES: Registry[Recipe] = Registry("recipe")
SECTIONS: Registry[Section] = Registry("config section")


def register(recipe: Recipe) -> Recipe:
    return RECIPES.add(recipe.name, recipe)
