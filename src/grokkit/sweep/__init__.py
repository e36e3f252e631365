"""Sweeps: grids over any config key, packed into ensembles, run locally or on Ray, with a Parquet results store."""

from grokkit.sweep.runner import Group, SweepResult, plan, run_group, run_sweep
from grokkit.sweep.spec import SweepError, SweepSpec, Trial, expand, load_sweep, parse_sweep
from grokkit.sweep.store import current_table, read_table, summarize

__all__ = ["Group", "SweepError", "SweepResult", "SweepSpec", "Trial", "expand", "load_sweep", "parse_sweep", "plan",
           "current_table", "read_table", "run_group", "run_sweep", "summarize"]
