"""Recipes: short compositions of tasks, models, losses and the engine. Each returns a :class:`Setup`."""

from grokkit.recipes.common import Setup, build_setup

__all__ = ["Setup", "build_setup"]
