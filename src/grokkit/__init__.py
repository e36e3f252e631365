"""grokkit: study and induce grokking in small models — ensembles of small transformers trained in one batched
computation, and knowledge distillation across distributions.

The public interface (everything the ``grokkit`` command does, from Python)::

    import grokkit

    result = grokkit.run("configs/smoke.yaml")           # -> RunResult: members, metrics, model, plot(), to_frame()
    again = grokkit.load("runs/smoke")                   # a finished run directory
    swept = grokkit.sweep("configs/sweeps/smoke.yaml", "runs/sweep")   # -> SweepResult (DataFrames, plot())
    tuned = grokkit.tune("configs/tune/smoke.yaml", "runs/tune")       # -> TuneResult

Components: :mod:`grokkit.tasks`, :mod:`grokkit.models`, :mod:`grokkit.losses`, :mod:`grokkit.optim`,
:mod:`grokkit.engine`; recipes in :mod:`grokkit.recipes`. Names are imported on first use, so ``import grokkit`` is
quick.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

#: public name -> the module that defines it
_EXPORTS = {
    **{name: "grokkit.interface" for name in (
        "run", "load", "sweep", "tune", "results", "threshold", "draw_map", "inherit", "analyze", "report",
        "compare", "compare_markdown", "figures", "repro", "demo", "make_config", "plot_runs", "compare_runs",
        "markdown", "readable_results")},
    **{name: "grokkit.results" for name in ("RunResult", "SweepResult", "TuneResult", "SingleMember")},
    **{name: "grokkit.summary" for name in ("Summary", "MemberResult", "TeacherRecord")},
    **{name: "grokkit.errors" for name in ("GrokkitError", "InputError")},
    **{name: "grokkit.config" for name in ("RunConfig", "load_config", "parse_config", "ConfigError")},
    "RunError": "grokkit.rundir",
    "DistillConfig": "grokkit.recipes.distillation",
    "DIVERGENCES": "grokkit.losses",
    "Divergence": "grokkit.losses",
    "OPS": "grokkit.tasks",
    "TASKS": "grokkit.tasks",
    "MODELS": "grokkit.models",
    "RECIPES": "grokkit.recipes",
}
__all__ = [
    "ConfigError",
    "DIVERGENCES",
    "DistillConfig",
    "Divergence",
    "GrokkitError",
    "InputError",
    "MODELS",
    "MemberResult",
    "OPS",
    "RECIPES",
    "RunConfig",
    "RunError",
    "RunResult",
    "SingleMember",
    "Summary",
    "SweepResult",
    "TASKS",
    "TeacherRecord",
    "TuneResult",
    "analyze",
    "compare",
    "compare_markdown",
    "compare_runs",
    "demo",
    "draw_map",
    "figures",
    "inherit",
    "load",
    "load_config",
    "make_config",
    "markdown",
    "plot_runs",
    "readable_results",
    "parse_config",
    "report",
    "repro",
    "results",
    "run",
    "sweep",
    "threshold",
    "tune",
    "__version__",
]

if TYPE_CHECKING:
    from grokkit.config import ConfigError, RunConfig, load_config, parse_config
    from grokkit.errors import GrokkitError, InputError
    from grokkit.interface import (
        analyze,
        compare,
        compare_markdown,
        compare_runs,
        demo,
        draw_map,
        figures,
        inherit,
        load,
        make_config,
        markdown,
        plot_runs,
        readable_results,
        report,
        repro,
        results,
        run,
        sweep,
        threshold,
        tune,
    )
    from grokkit.losses import DIVERGENCES, Divergence
    from grokkit.models import MODELS
    from grokkit.recipes import RECIPES
    from grokkit.recipes.distillation import DistillConfig
    from grokkit.results import RunResult, SingleMember, SweepResult, TuneResult
    from grokkit.rundir import RunError
    from grokkit.summary import MemberResult, Summary, TeacherRecord
    from grokkit.tasks import OPS, TASKS


#: public functions named like a submodule (``grokkit.sweep`` the function, ``grokkit/sweep/`` the package that
#: implements it): the function keeps the name; the module is reached by importing from it
#: (``from grokkit.sweep import run_sweep``), never as an attribute
_SHADOWED = frozenset({"sweep", "tune", "report", "compare", "repro", "demo", "results"})


class _Package(types.ModuleType):
    """The package module: importing a submodule that shares a public function's name does not replace the
    function (Python sets the submodule as an attribute of its package after importing it)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _SHADOWED and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'grokkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
