"""Sweep specifications: a base config, axes over any dotted config key, cases and seeds -> a list of trials.

A trial is one fully resolved single-member :class:`~grokkit.config.RunConfig`. Its directory name is derived from
the settings that vary across the sweep (case, axis values, seed), so re-running or extending a sweep finds the trials
it has already finished.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from grokkit.config import (
    ConfigError,
    RunConfig,
    _format_validation_error,
    _set_dotted,
    drop_unused_sections,
    parse_config,
    read_yaml,
)
from grokkit.errors import InputError
from grokkit.yamlio import load_yaml_text


class SweepError(InputError):
    """A sweep that cannot run: the message says why."""


class RequiredRun(BaseModel):
    """A run the trials depend on (e.g. a teacher), trained once before them into ``DIR/requires/<name>``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    base: str | dict[str, Any] = Field(..., description="config file (relative to the sweep file) or inline mapping")
    overrides: dict[str, Any] = Field(default_factory=dict, description="dotted overrides applied to its base")


class Case(BaseModel):
    """A named variant (e.g. a method): dotted overrides applied on top of the base, crossed with the grid."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(..., description="the case's name: part of each trial's name, and the `case` column")
    overrides: dict[str, Any] = Field(default_factory=dict, description="dotted overrides of the base config")
    labels: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="extra columns of this case's rows in the results table (e.g. the "
        "operation, the modulus pair, the method a map reads); not part of the trial's name or config")

    @field_validator("name")
    @classmethod
    def _slug(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.+-]*", v):
            raise ValueError(f"case name {v!r} must be letters, digits, '_', '.', '+' or '-'")
        return v


class ThresholdSpec(BaseModel):
    """Fit P(generalise) against ``x`` for each value of ``by`` when the sweep ends."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    x: str = Field("task.train_fraction", description="the results column P(generalise) is fitted against")
    by: str = Field("case", description="one fit per value of this column")
    n_bootstrap: int = Field(1000, ge=0, description="bootstrap resamples (over seeds) for the interval")


class MapSpec(BaseModel):
    """A heat map over two result columns (e.g. operation x modulus pair) of a treatment arm against its control.

    Every row of the results table belongs to the arm named by its ``arm`` column (a case label, e.g. ``method``).
    A cell is a (``rows``, ``cols``) value of the treatment's trials; its control is the control arm's trials that
    agree with the cell's treatment trials on every ``match`` column (e.g. the student's operation, modulus and
    training fraction), so one from-scratch control can serve every teacher of the same student.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    rows: str = Field(..., description="results column whose values are the map's rows (e.g. a case label)")
    cols: str = Field(..., description="results column whose values are the map's columns")
    arm: str = Field("method", description="the case label that says which arm a trial belongs to")
    treatment: str = Field("distill", description="the arm drawn in the cells")
    control: str = Field("scratch", description="the arm each cell is compared with")
    match: list[str] = Field(default_factory=lambda: ["task.op", "task.modulus", "task.train_fraction"],
                             description="columns on which a cell's control trials agree with its treatment trials")
    title: str = Field("", description="the figure's title")


class SweepSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field("sweep", description="the sweep's name")
    base: str | dict[str, Any] = Field(..., description="config file (relative to the sweep file) or inline mapping")
    overrides: dict[str, Any] = Field(default_factory=dict, description="dotted overrides applied to the base")
    requires: dict[str, RequiredRun] = Field(default_factory=dict, description="runs the trials depend on (a "
                                             "teacher), by name; `{requires.NAME}` in an override is its directory")
    cases: list[Case] = Field(default_factory=list, description="named variants (e.g. methods), crossed with "
                              "the grid")
    grid: dict[str, list[Any]] = Field(default_factory=dict, description="cartesian product over dotted keys")
    zip: dict[str, list[Any]] = Field(default_factory=dict, description="lists of equal length, varied together")
    seeds: list[int] | None = Field(None, description="seeds of every setting (one trial each)")
    n_seeds: int | None = Field(None, ge=1, description="seeds 0..n_seeds-1 (default: seed 0)")
    pack: bool = Field(True, description="pack trials whose shapes agree into one ensemble")
    max_pack: int = Field(256, ge=1, description="most trials in one packed ensemble")
    max_padding: float | None = Field(
        None, ge=0, le=1, description="largest share of padded training rows in an ensemble whose members have "
        "different train fractions; default 0.25 on CPU, no limit on GPU")
    threshold: ThresholdSpec | None = Field(None, description="fit the critical threshold when the sweep ends")
    map: MapSpec | None = Field(None, description="draw a heat map of a treatment against its control")

    @model_validator(mode="after")
    def _check(self) -> SweepSpec:
        if self.seeds is not None and self.n_seeds is not None:
            raise ValueError("give either `seeds` or `n_seeds`, not both")
        names = [c.name for c in self.cases]
        if len(set(names)) != len(names):
            raise ValueError(f"case names must be distinct, got {names}")
        lengths = {k: len(v) for k, v in self.zip.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"`zip` lists must have equal lengths, got {lengths}")
        for key, values in {**self.grid, **self.zip}.items():
            if not values:
                raise ValueError(f"axis {key!r} has no values")
            if key in ("seeds", "members") or key.startswith("members."):
                raise ValueError(f"axis {key!r}: vary seeds with the sweep's `seeds`/`n_seeds`")
        for key in self.overrides:  # base overrides that every trial would replace: an error, not a silent no-op
            if key in ("seeds", "name", "members") or key.startswith("members."):
                hint = " (vary seeds with the sweep's `seeds`/`n_seeds`)" if key != "name" else ""
                raise ValueError(f"override {key!r}: the sweep sets each trial's {key.split('.')[0]} itself{hint}")
            if key in self.grid or key in self.zip:
                raise ValueError(f"override {key!r}: it is an axis of the sweep, whose values replace it")
        both = set(self.grid) & set(self.zip)
        if both:
            raise ValueError(f"keys {sorted(both)} are in both `grid` and `zip`")
        reserved = {"case", "seed", "trial", *self.grid, *self.zip}
        for case in self.cases:
            clash = sorted(set(case.labels) & reserved)
            if clash:
                raise ValueError(f"case {case.name!r}: labels {clash} would hide the sweep's own columns")
        if self.map is not None:
            unlabelled = [c.name for c in self.cases if self.map.arm not in c.labels]
            if not self.cases or unlabelled:
                raise ValueError(f"map: every case needs the label {self.map.arm!r} (treatment "
                                 f"{self.map.treatment!r} or control {self.map.control!r}); missing in "
                                 f"{unlabelled or ['(no cases)']}")
            arms = {c.labels[self.map.arm] for c in self.cases}
            for arm in (self.map.treatment, self.map.control):
                if arm not in arms:
                    raise ValueError(f"map: no case has {self.map.arm}={arm!r} (cases have {sorted(map(str, arms))})")
        return self

    def with_overrides(self, items: list[str]) -> SweepSpec:
        """The same sweep with ``dotted.key=value`` overrides added to the base config's."""
        extra = {}
        for item in items:
            if "=" not in item:
                raise SweepError(f"override {item!r} must look like dotted.key=value")
            key, raw = item.split("=", 1)
            try:
                extra[key.strip()] = load_yaml_text(raw)
            except yaml.YAMLError as err:
                raise SweepError(f"override {item!r}: the value is not valid YAML: {err}") from None
        return parse_sweep({**self.model_dump(mode="json"), "overrides": {**self.overrides, **extra}})

    def seed_list(self) -> list[int]:
        if self.seeds is not None:
            return list(self.seeds)
        return list(range(self.n_seeds or 1))

    def axes(self) -> list[str]:
        return list(self.grid) + list(self.zip)


@dataclass
class Trial:
    """One run of one member: its id (directory name), config, and the sweep coordinates that produced it."""

    id: str
    config: RunConfig
    coords: dict[str, Any] = field(default_factory=dict)  # case, axis values, seed
    labels: dict[str, Any] = field(default_factory=dict)  # the case's labels: extra result columns

    def config_json(self) -> str:
        return json.dumps(self.config.model_dump(mode="json"), sort_keys=True)


def _load_mapping(base: str | dict[str, Any], root: Path, what: str) -> dict[str, Any]:
    if isinstance(base, dict):
        return copy.deepcopy(base)
    path = Path(base)
    if not path.is_absolute():
        path = root / path
    data = read_yaml(path, f"{what}: config file", SweepError)
    if not isinstance(data, dict):
        raise SweepError(f"{what}: {path} must hold a mapping")
    return data


def _apply(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    data = copy.deepcopy(data)
    for key, value in overrides.items():
        try:
            _set_dotted(data, key, copy.deepcopy(value))
        except ConfigError as err:
            raise SweepError(str(err)) from None
    return data


def _substitute(value: Any, refs: dict[str, str]) -> Any:
    """Replace ``{requires.NAME}`` inside string values by the required run's directory."""
    if isinstance(value, str):
        for key, target in refs.items():
            value = value.replace("{requires." + key + "}", target)
        return value
    if isinstance(value, dict):
        return {k: _substitute(v, refs) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, refs) for v in value]
    return value


def _format_value(v: Any) -> str:
    if isinstance(v, (list, dict)):  # long values (e.g. a list of teachers): a short digest keeps names readable
        return "h" + hashlib.sha1(json.dumps(v, sort_keys=True).encode()).hexdigest()[:8]
    text = json.dumps(v) if not isinstance(v, str) else v
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", text)


def trial_id(coords: dict[str, Any]) -> str:
    parts = [_format_value(v) if k == "case" else f"{k.split('.')[-1]}={_format_value(v)}" for k, v in coords.items()]
    name = "__".join(parts) or "trial"
    if len(name) > 120:  # keep file names short; the hash keeps them unique
        digest = hashlib.sha1(json.dumps(coords, sort_keys=True).encode()).hexdigest()[:10]
        name = f"{name[:100]}__{digest}"
    return name


def load_sweep(path: str | Path) -> tuple[SweepSpec, Path]:
    """Read and validate a sweep file; returns the spec and the folder relative paths are resolved against."""
    path = Path(path)
    return parse_sweep(read_yaml(path, "sweep file", SweepError), str(path)), path.resolve().parent


def parse_sweep(data: Any, source: str = "<dict>") -> SweepSpec:
    if not isinstance(data, dict):
        raise SweepError(f"invalid sweep {source}: the top level must be a mapping")
    try:
        return SweepSpec.model_validate(data)
    except ValidationError as err:
        message = _format_validation_error(err, source, SweepSpec, "sweep")
        raise SweepError(message.replace("invalid config", "invalid sweep")) from None


def required_configs(spec: SweepSpec, root: Path, dirs: dict[str, str] | None = None) -> dict[str, RunConfig]:
    """The required runs, in order; a later one may refer to an earlier one as ``{requires.NAME}``."""
    out = {}
    for name, req in spec.requires.items():
        data = _apply(_load_mapping(req.base, root, f"requires.{name}"), req.overrides)
        refs = {k: (dirs or {}).get(k, f"<requires.{k}>") for k in out}
        data = _substitute(data, refs)
        try:
            out[name] = parse_config(data, f"requires.{name}")
        except ConfigError as err:
            raise SweepError(str(err)) from None
    return out


def expand(spec: SweepSpec, root: Path, required_dirs: dict[str, str] | None = None) -> list[Trial]:
    """Every trial of the sweep, validated (a bad value anywhere is an error before anything runs)."""
    base = _apply(_load_mapping(spec.base, root, "base"), spec.overrides)
    cases = spec.cases or [Case(name="base")]
    grid_keys = list(spec.grid)
    grid_points = list(itertools.product(*spec.grid.values())) if grid_keys else [()]
    n_zip = len(next(iter(spec.zip.values()))) if spec.zip else 1
    refs = {k: str(v) for k, v in (required_dirs or {}).items()}
    if required_dirs is None:  # validation only: any path will do
        refs = {k: f"<requires.{k}>" for k in spec.requires}
    trials: list[Trial] = []
    for case in cases:
        for point in grid_points:
            for z in range(n_zip):
                axis_values = dict(zip(grid_keys, point))
                axis_values.update({k: v[z] for k, v in spec.zip.items()})
                data = _apply(base, case.overrides)
                data = _apply(data, axis_values)
                data = drop_unused_sections(data)  # a base section only some trials' recipes read
                data.pop("members", None)
                data = _substitute(data, refs)
                for seed in spec.seed_list():
                    coords: dict[str, Any] = {}
                    if spec.cases:
                        coords["case"] = case.name
                    coords.update(axis_values)
                    coords["seed"] = seed
                    tid = trial_id(coords)
                    try:
                        cfg = parse_config(dict(data, seeds=[seed], name=f"{spec.name}/{tid}"), f"trial {tid}")
                    except ConfigError as err:
                        raise SweepError(str(err)) from None
                    trials.append(Trial(tid, cfg, coords, dict(case.labels)))
    ids = [t.id for t in trials]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})
        raise SweepError(f"the sweep produces the same trial more than once: {dup[:5]}")
    return trials
