"""Recipes: short compositions of tasks, models, losses and the engine.

Every module of this package is imported here and registers its recipe (and the config sections it owns) in
:data:`RECIPES` / :data:`SECTIONS`, so a new recipe is one new module. A single-run recipe's ``prepare`` sets the
:class:`Setup`'s objective; a staged recipe (continual, transfer) describes its sequence of runs.
"""

from __future__ import annotations

import importlib
import pkgutil

from grokkit.recipes.common import Setup, build_setup
from grokkit.recipes.registry import RECIPES, SECTIONS, Recipe, Section

for _name in ("scratch", "distill", "joint", "continual", "transfer"):  # the order of `allowed:` lists
    importlib.import_module(f"{__name__}.{_name}")
for _module in pkgutil.iter_modules(__path__):
    if _module.name not in ("common", "registry") and not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["RECIPES", "SECTIONS", "Recipe", "Section", "Setup", "build_setup"]
