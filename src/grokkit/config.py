"""Run configuration: YAML <-> typed, validated objects. A run is fully described by its ``RunConfig``.

The config is assembled from the components' and the recipes' own sections: ``task:`` and ``model:`` are
discriminated unions over the registered task and model kinds (:mod:`grokkit.tasks`, :mod:`grokkit.models`), the
shared sections come from :mod:`grokkit.sections`, and every optional section a recipe owns (``distill:``,
``transfer:``, ...) is a field registered by that recipe (:mod:`grokkit.recipes.registry`). ``RunConfig`` checks only
what concerns several recipes; a recipe's own rules are its ``check``.

Member-level settings (one value per ensemble member: lr, weight decay, train fraction, alpha, temperature, init
scale) have one owner, :data:`MEMBER_SETTINGS`: each names the section value a member without its own falls back to,
:meth:`RunConfig.member_values` resolves them, and a sweep packs trials that differ only in these.

Unknown keys are errors (a misspelt option must never be silently ignored). Validation errors name the field, the bad
value and what is allowed; the CLI turns them into exit code 2 before anything is written.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, Field, Tag, ValidationError, create_model, field_validator, model_validator

import grokkit.recipes  # noqa: F401  (registers every recipe and the sections they own)
from grokkit.errors import InputError
from grokkit.models import MODELS, ModelConfig, ModelSpec
from grokkit.recipes.common import EmbeddingInitConfig, InitConfig  # noqa: F401  (re-exported)
from grokkit.recipes.continual import ContinualConfig  # noqa: F401  (re-exported)
from grokkit.recipes.distillation import DistillConfig  # noqa: F401  (re-exported)
from grokkit.recipes.joint import JointConfig  # noqa: F401  (re-exported)
from grokkit.recipes.registry import RECIPES, SECTIONS
from grokkit.recipes.transfer import TransferConfig  # noqa: F401  (re-exported)
from grokkit.schema import Strict
from grokkit.sections import (  # noqa: F401  (re-exported)
    LoggingConfig,
    LossConfig,
    OptimizerConfig,
    TrainingConfig,
    TransformConfig,
    VocabConfig,
)
from grokkit.tasks import TASKS, ModularTaskConfig, TaskConfig
from grokkit.yamlio import YAMLLimitError, load_yaml_text, read_yaml_file

_Strict = Strict


class ConfigError(InputError):
    """A configuration that cannot be run; the message says what was wrong and what is allowed."""


@dataclass(frozen=True)
class MemberSetting:
    """A setting a member may have of its own: the dotted section key it falls back to, the config class that owns
    that key (its type, bounds and description are the member field's), and when it applies."""

    default: str
    owner: type[BaseModel]
    #: a sentence for the error when a member sets it where it does not apply
    applies: str


#: Every member-level setting, with the section value a member without its own value takes. The one place that
#: answers "what is member k's lr / alpha / ...": :meth:`RunConfig.member_values`. ``MemberConfig``'s fields are made
#: from these (never declared twice).
MEMBER_SETTINGS: dict[str, MemberSetting] = {
    "lr": MemberSetting("optimizer.lr", OptimizerConfig, "always"),
    "weight_decay": MemberSetting("optimizer.weight_decay", OptimizerConfig, "always"),
    "train_fraction": MemberSetting("task.train_fraction", ModularTaskConfig, "single modular task"),
    "alpha": MemberSetting("distill.alpha", DistillConfig, "distillation"),
    "temperature": MemberSetting("distill.temperature", DistillConfig, "distillation"),
    "init_scale": MemberSetting("model.init_scale", ModelSpec, "always"),
}


def _member_field(name: str, setting: MemberSetting) -> tuple[Any, Any]:
    """A member's own value of a setting: optional, with the owning field's type and bounds."""
    owner = setting.owner.model_fields[name.split(".")[-1]]
    inner = Annotated[(owner.annotation, *owner.metadata)] if owner.metadata else owner.annotation
    return (inner | None, Field(None, description=f"this member's `{setting.default}` (default: the section's)"))


class _MemberBase(Strict):
    seed: int = Field(..., description="seed of this member's initial weights (and of its split, unless `split_seed`)")
    split_seed: int | None = Field(
        None, description="seed of this member's train/test split; default: `seed` (a task's split_seed wins)")


#: One ensemble member: its seed and any hyper-parameters of its own (the rest come from the run config, see
#: :data:`MEMBER_SETTINGS`, from which its fields are made).
MemberConfig = create_model(  # type: ignore[call-overload]
    "MemberConfig", __base__=_MemberBase, __module__=__name__,
    **{name: _member_field(name, s) for name, s in MEMBER_SETTINGS.items()},
)
MemberConfig.__doc__ = ("One ensemble member: its seed and any hyper-parameters of its own (the rest come from the run "
                        "config, see MEMBER_SETTINGS).")


def _get_dotted(obj: Any, key: str) -> Any:
    for part in key.split("."):
        obj = getattr(obj, part) if obj is not None else None
    return obj


class _RunConfigBase(Strict):
    recipe: str = Field("scratch", description="a registered recipe (grokkit.recipes.RECIPES)")
    name: str = Field("run", description="the run's name, shown in captions and summaries")
    seeds: list[int] | None = Field(None, description="one member per seed (shorthand for `members`)")
    members: list[MemberConfig] | None = Field(
        None, description="the ensemble's members, each a seed and optionally its own member-level settings; "
        "default: one member per entry of `seeds` (seed 0 when neither is given)")
    task: TaskConfig = Field(  # type: ignore[valid-type]
        default_factory=lambda: TASKS.get("modular")(), description="the task trained on (single-task recipes); "
        "its `kind` picks one of the task kinds")
    tasks: list[TaskConfig] | None = Field(  # type: ignore[valid-type]
        None, description="multi-task recipes (joint, continual): the tasks, in order")
    eval_tasks: list[TaskConfig] | None = Field(  # type: ignore[valid-type]
        None, description="further tasks evaluated at every evaluation (test_acc@<task> columns), not trained on")
    vocab: VocabConfig = Field(default_factory=VocabConfig, description="the token vocabulary of the modular tasks")
    model: ModelConfig = Field(  # type: ignore[valid-type]
        default_factory=lambda: MODELS.get("transformer")(), description="the model every member trains; its "
        "`kind` picks one of the model kinds")
    loss: LossConfig = Field(default_factory=LossConfig, description="the task loss")
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig, description="the optimiser, shared by "
                                       "every member (lr and weight decay may be set per member)")
    training: TrainingConfig = Field(default_factory=TrainingConfig, description="steps, evaluation, stopping, "
                                     "checkpoints, device")
    logging: LoggingConfig = Field(default_factory=LoggingConfig, description="metric streams besides metrics.csv")

    @field_validator("recipe")
    @classmethod
    def _known_recipe(cls, v: str) -> str:
        RECIPES.get(v)
        return v

    @model_validator(mode="before")
    @classmethod
    def _legacy(cls, data: Any) -> Any:
        return migrate_legacy(data)

    @model_validator(mode="after")
    def _consistent(self) -> _RunConfigBase:
        if self.seeds is not None and self.members is not None:
            raise ValueError("give either `seeds` or `members`, not both")
        members = self.member_list()
        if not members:
            raise ValueError("a run needs at least one member: set `seeds: [0]`")
        seen = [m.model_dump() for m in members]
        duplicates = [m["seed"] for i, m in enumerate(seen) if m in seen[:i]]
        if duplicates:  # the same member twice is a mistake; one seed with other settings is a sweep
            raise ValueError(f"members must be distinct; seeds {duplicates} are listed twice with the same settings")
        recipe = RECIPES.get(self.recipe)
        for name, section in SECTIONS.items():
            given = getattr(self, name) is not None
            if given and name not in recipe.sections:
                takers = [r for r, rec in RECIPES.items() if name in rec.sections]
                hint = section.misplaced or ("only that recipe takes one" if len(takers) == 1
                                             else f"recipes {', '.join(takers)} take one")
                raise ValueError(f"`{name}:` is set but recipe is {self.recipe!r}; " + (
                    f"recipe `{takers[0]}` needs a `{name}:` section, and {hint}" if len(takers) == 1 and
                    section.misplaced is None else hint))
            if not given and name in recipe.required:
                raise ValueError(f"recipe `{self.recipe}` needs a `{name}:` section, and only that recipe takes one "
                                 f"(recipe is {self.recipe!r})")
        self._check_members(members)
        if recipe.multi_task:
            if not self.tasks or len(self.tasks) < 2:
                raise ValueError(f"recipe `{self.recipe}` needs `tasks:` with at least two tasks")
            names = [t.name for t in self.tasks]
            if len(set(names)) != len(names):
                raise ValueError(f"tasks must be distinct, got {names}")
        elif self.tasks is not None:
            multi = [r for r, rec in RECIPES.items() if rec.multi_task]
            raise ValueError(f"`tasks:` is for recipes {' and '.join(multi)}, not {self.recipe!r}; use `task:`")
        if self.init is not None and self.embedding_init is not None:  # type: ignore[attr-defined]
            raise ValueError("give either `init:` (all weights) or `embedding_init:`, not both")
        missing = recipe.needs - self.task.capabilities
        if missing:
            takers = [r for r, rec in RECIPES.items() if not rec.needs - self.task.capabilities]
            raise ValueError(f"recipe {self.recipe!r} needs tasks with {', '.join(sorted(missing))}, which "
                             f"task.kind={self.task.kind} lacks; it runs with recipes {', '.join(takers)}")
        if recipe.check is not None:
            recipe.check(self)  # type: ignore[arg-type]
        if "shared_vocabulary" not in self.task.capabilities:
            if self.eval_tasks or self.vocab != VocabConfig():
                raise ValueError(f"task.kind={self.task.kind} has its own vocabulary and no eval_tasks: drop `vocab:` "
                                 "and `eval_tasks:`")
            return self
        own = [t.name for t in (self.tasks or []) + list(self.eval_tasks or [])
               if "shared_vocabulary" not in t.capabilities]
        if own:
            raise ValueError(f"tasks {own} have vocabularies of their own: `tasks:` and `eval_tasks:` take tasks "
                             "that share the run's `vocab:` (kind modular)")
        moduli = [t.modulus for t in self.all_tasks() + list(self.eval_tasks or [])]
        n = self.vocab.n_numbers
        if n is not None and n < max(moduli):
            raise ValueError(f"vocab.n_numbers={n} is smaller than the largest task modulus {max(moduli)}")
        if self.vocab.moduli is not None:
            missing = sorted(set(moduli) - set(self.vocab.moduli))
            if missing:
                raise ValueError(f"task moduli {missing} are not in vocab.moduli={self.vocab.moduli}")
        elif len(set(moduli)) > 1:
            raise ValueError(f"tasks use moduli {sorted(set(moduli))}: list them all in `vocab.moduli`")
        return self

    def member_applies(self, name: str) -> bool:
        """Whether the member-level setting ``name`` means something for this run."""
        applies = MEMBER_SETTINGS[name].applies
        if applies == "distillation":
            return self.distill is not None  # type: ignore[attr-defined]
        if applies == "single modular task":
            return not RECIPES.get(self.recipe).multi_task and self.task.member_fraction
        return True

    def _check_members(self, members: list[MemberConfig]) -> None:
        """A member's own value of a setting that does not apply to this run is an error, not silently unused."""
        used = {name for m in members for name in MEMBER_SETTINGS if getattr(m, name) is not None}
        if used & {"alpha", "temperature"} and not self.member_applies("alpha"):
            raise ValueError("member `alpha`/`temperature` only apply to distillation")
        if "train_fraction" in used and not self.member_applies("train_fraction"):
            if RECIPES.get(self.recipe).multi_task:
                raise ValueError("member `train_fraction` does not apply to multi-task recipes; set it per task")
            raise ValueError(f"task.kind={self.task.kind} sets n_train/n_test, not member train_fraction")

    def all_tasks(self) -> list[Any]:
        """The tasks of the run: ``tasks`` for multi-task recipes, else ``[task]``."""
        return list(self.tasks) if self.tasks else [self.task]

    def member_list(self) -> list[MemberConfig]:
        if self.members is not None:
            return list(self.members)
        return [MemberConfig(seed=s) for s in (self.seeds if self.seeds is not None else [0])]

    def member_values(self, name: str) -> list[Any]:
        """Member k's value of the member-level setting ``name`` (:data:`MEMBER_SETTINGS`): its own, else the
        section value it falls back to."""
        default = _get_dotted(self, MEMBER_SETTINGS[name].default)
        return [getattr(m, name) if getattr(m, name) is not None else default for m in self.member_list()]

    def same_run(self, other: _RunConfigBase) -> bool:
        """Whether ``other`` describes the same training run: equal configs up to the settings that change how a
        run is executed but not what it computes (:data:`RUNTIME_SETTINGS`: CPU threads, the progress bar, the extra
        metric streams), so a run may resume with another thread count."""
        return _without_runtime(self) == _without_runtime(other)

    def differences(self, other: _RunConfigBase) -> list[tuple[str, Any, Any]]:
        """The settings in which ``other`` is another run than this one: (dotted key, this value, other's value),
        in the config's order, runtime settings left out (as :meth:`same_run` does). A refusal names them, so a
        person sees which edit made the directory another run's."""
        mine, theirs = _flat(_without_runtime(self)), _flat(_without_runtime(other))
        keys = list(mine) + [k for k in theirs if k not in mine]
        missing = object()
        return [(k, mine.get(k), theirs.get(k)) for k in keys if mine.get(k, missing) != theirs.get(k, missing)]

    def to_yaml(self) -> str:
        data = self.model_dump(mode="json")
        return yaml.safe_dump(data, sort_keys=False)


#: distillation settings that ``joint:`` and ``continual:`` carried before the one ``distill:`` section, with the
#: defaults those sections gave them
_LEGACY_JOINT = {"teachers": None, "teacher_member": 0, "alpha": 1.0, "temperature": 2.0, "position": "final"}
_LEGACY_CONTINUAL = {"distill": False, "alpha": 0.5, "temperature": 2.0, "position": "operator"}


def migrate_legacy(data: Any) -> Any:
    """A config mapping written before distillation had one section, rewritten to today's: ``joint: {mode: distill,
    teachers, alpha, ...}`` becomes ``distill: {teacher, combine: route, ...}`` and ``continual: {distill: true,
    alpha, ...}`` becomes a ``distill:`` section (with the defaults those sections had). Run directories and sweeps
    written then read as the same runs."""
    if not isinstance(data, dict):
        return data
    joint = data.get("joint")
    if isinstance(joint, dict) and set(joint) & set(_LEGACY_JOINT):
        joint = dict(joint)
        old = {k: joint.pop(k) for k in list(joint) if k in _LEGACY_JOINT}
        data = dict(data, joint=joint)
        if joint.get("mode", "task_loss") == "distill":
            if "distill" in data:
                raise ValueError("`joint:` carries distillation settings (teachers, alpha, ...) of an earlier version "
                                 "and `distill:` is set too: move them into `distill:`")
            settings = {**_LEGACY_JOINT, **old}
            data["distill"] = {"teacher": settings.pop("teachers"), "combine": "route", **settings}
    continual = data.get("continual")
    if isinstance(continual, dict) and set(continual) & set(_LEGACY_CONTINUAL):
        continual = dict(continual)
        old = {k: continual.pop(k) for k in list(continual) if k in _LEGACY_CONTINUAL}
        data = dict(data, continual=continual)
        settings = {**_LEGACY_CONTINUAL, **old}
        if settings.pop("distill"):
            if "distill" in data:
                raise ValueError("`continual:` carries distillation settings (distill, alpha, ...) of an earlier "
                                 "version and `distill:` is set too: move them into `distill:`")
            data["distill"] = settings
    return data


def drop_unused_sections(data: dict[str, Any]) -> dict[str, Any]:
    """A config mapping without the optional sections its recipe does not read (``Recipe.sections_taken``): a sweep's
    or a tune's base may carry a section (e.g. ``distill:``) that only some trials read. Nothing else is dropped, and
    a single run's config is never passed through this (there an unused section is an error)."""
    data = migrate_legacy(data)
    recipe = RECIPES.get(data.get("recipe", "scratch")) if data.get("recipe", "scratch") in RECIPES else None
    if recipe is None:
        return data
    taken = recipe.sections_taken(data)
    return {k: v for k, v in data.items() if k not in SECTIONS or k in taken}


#: Settings that change how a run executes, not what it computes: a run resumes when only these differ.
RUNTIME_SETTINGS: tuple[str, ...] = ("training.threads", "training.progress", "logging")


def _flat(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as dotted keys (lists stay values: a list of seeds is one setting)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and value:
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def describe_differences(differences: Sequence[tuple[str, Any, Any]], limit: int = 4) -> str:
    """``training.steps: 60 → 40, optimizer.lr: 0.003 → 0.01 (and 2 more)``: the first ``limit`` differences of
    :meth:`RunConfig.differences`, old value → new value."""
    def show(value: Any) -> str:
        text = "(unset)" if value is None else json.dumps(value) if isinstance(value, list | dict) else str(value)
        return text if len(text) <= 40 else text[:37] + "..."

    shown = ", ".join(f"{k}: {show(a)} → {show(b)}" for k, a, b in differences[:limit])
    return shown + (f" (and {len(differences) - limit} more)" if len(differences) > limit else "")


def _without_runtime(cfg: _RunConfigBase) -> dict[str, Any]:
    data = cfg.model_dump()
    for dotted in RUNTIME_SETTINGS:
        *parents, leaf = dotted.split(".")
        node = data
        for part in parents:
            node = node[part]
        node.pop(leaf, None)
    return data


#: The run config: the shared fields above plus one optional field per section a recipe registered.
RunConfig = create_model(  # type: ignore[call-overload]
    "RunConfig", __base__=_RunConfigBase, __module__=__name__,
    **{name: (section.model | None, Field(None, description="optional section of the recipes " + ", ".join(
        r for r, recipe in RECIPES.items() if name in recipe.sections))) for name, section in SECTIONS.items()},
)


def _kind_fields(registry: Any, kind: str) -> list[str]:
    return [f for f in registry.get(kind).model_fields if f != "kind"]


#: What people write for a key, by the key grokkit calls it (looked up lower-cased, ``-`` read as ``_``): an unknown
#: key that is one of these is answered with grokkit's name when that name is allowed where the key was written.
SYNONYMS: dict[str, str] = {
    "learning_rate": "lr", "learningrate": "lr", "lr_rate": "lr", "step_size": "lr",
    "wd": "weight_decay", "weightdecay": "weight_decay", "decay": "weight_decay", "l2": "weight_decay",
    "epochs": "steps", "num_epochs": "steps", "n_epochs": "steps", "num_steps": "steps", "n_steps": "steps",
    "max_steps": "steps", "total_steps": "steps", "iterations": "steps", "iters": "steps", "n_iters": "steps",
    "temp": "temperature", "tau": "temperature", "t": "temperature",
    "seed": "seeds", "random_seed": "seeds",
    "optimiser": "optimizer", "optim": "optimizer", "opt": "optimizer", "train": "training",
    "batch": "batch_size", "bs": "batch_size", "warmup": "warmup_steps",
    "mod": "modulus", "p": "modulus", "prime": "modulus", "operation": "op", "operator": "op",
    "frac": "train_fraction", "fraction": "train_fraction", "train_frac": "train_fraction",
    "data_fraction": "train_fraction", "training_fraction": "train_fraction",
    "heads": "n_heads", "num_heads": "n_heads", "layers": "n_layers", "num_layers": "n_layers", "d_ff": "d_mlp",
    "teachers": "teacher", "teacher_path": "teacher", "kd_alpha": "alpha",
}


def _config_classes(tp: Any) -> tuple[dict[str, type[BaseModel]], int]:
    """The config classes a field's type holds, keyed by their union tag (their class name where untagged), and how
    many container layers (list, dict) sit above them: each adds one part (an index or a key) to an error's loc."""
    origin, args = get_origin(tp), get_args(tp)
    if origin is Annotated:
        found, depth = _config_classes(args[0])
        tag = next((m.tag for m in args[1:] if isinstance(m, Tag)), None)
        return ({tag: next(iter(found.values()))} if tag is not None and len(found) == 1 else found), depth
    if origin in (list, tuple, set, frozenset, dict):
        found, depth = _config_classes(args[-1]) if args else ({}, 0)
        return found, depth + 1
    if origin in (Union, UnionType):
        found, depth = {}, 0
        for arg in args:
            more, d = _config_classes(arg)
            found.update(more)
            depth = max(depth, d)
        return found, depth
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return {tp.__name__: tp}, 0
    return {}, 0


def _model_at(root: type[BaseModel], loc: Sequence[Any]) -> type[BaseModel] | None:
    """The config class at ``loc`` (a pydantic error location below ``root``: field names, list indices, dict keys
    and union tags), or None where it cannot be told."""
    options, skip = {root.__name__: root}, 0
    for part in loc:
        if skip:
            skip -= 1
            continue
        if len(options) > 1:  # a tagged union: the loc names the tag
            if part not in options:
                return None
            options = {part: options[part]}
            continue
        model = next(iter(options.values()))
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        options, skip = _config_classes(field.annotation)
        if not options:
            return None
    return next(iter(options.values())) if len(options) == 1 else None


def _nearest(key: str, allowed: Sequence[str]) -> str | None:
    """The allowed key ``key`` was most likely meant to be: its usual synonym (:data:`SYNONYMS`), the same key
    spelt with ``_`` or another case, or the closest spelling (difflib); None if nothing is close."""
    norm = key.lower().replace("-", "_").replace(" ", "_")
    for candidate in (SYNONYMS.get(norm), norm):
        if candidate in allowed:
            return candidate
    close = difflib.get_close_matches(norm, list(allowed), n=1, cutoff=0.6)
    return close[0] if close else None


def _home_of(key: str, root: type[BaseModel], here: type[BaseModel] | None) -> str | None:
    """The section of ``root`` (other than ``here``) whose keys include ``key`` or its usual synonym: "`lr` belongs
    in `optimizer:`" for a key written in the wrong place."""
    norm = key.lower().replace("-", "_")
    wanted = {norm, SYNONYMS.get(norm, norm)}
    for name, field in root.model_fields.items():
        classes, depth = _config_classes(field.annotation)
        for cls in classes.values() if depth == 0 else ():  # sections, not lists (a member's `lr` is its own)
            if cls is not here and wanted & set(cls.model_fields):
                return f"`{(wanted & set(cls.model_fields)).pop()}` belongs in `{name}:`"
    return None


def _describe(value: Any) -> str:
    """A value as an error shows it: a mapping by its keys, a long list by its length, anything else as written."""
    if isinstance(value, dict):
        keys = [str(k) for k in value]
        shown = ", ".join(keys[:8]) + (f" and {len(keys) - 8} more" if len(keys) > 8 else "")
        return f"a mapping with keys {shown}" if keys else "an empty mapping"
    text = repr(value)
    if isinstance(value, list | tuple) and len(text) > 60:
        return f"a list of {len(value)} items"
    return text if len(text) <= 60 else text[:57] + "..."


_UNKNOWN_VALUE = re.compile(
    r"unknown (?P<what>[\w. ]+?) '(?P<name>[^']*)'; allowed: (?P<allowed>[\w.+-]+(, [\w.+-]+)*)")


def _suggest_value(msg: str) -> str:
    """"unknown optimizer 'adam_w'; allowed: adam, adamw, sgd" with the nearest allowed name added ("did you mean
    `adamw`?"), for the checks of every section that name what is allowed."""
    found = _UNKNOWN_VALUE.search(msg)
    if found is None or "did you mean" in msg:
        return msg
    near = difflib.get_close_matches(found["name"], found["allowed"].split(", "), n=1, cutoff=0.6)
    if not near:
        return msg
    return msg[:found.start("allowed") - len("allowed: ")] + f"did you mean `{near[0]}`? " + msg[
        found.start("allowed") - len("allowed: "):]


def _unknown_key(loc: tuple[Any, ...], root: type[BaseModel], what: str) -> tuple[str, str]:
    """An unknown key: where it was, the key it was most likely meant to be (or the section it belongs in), and the
    keys allowed there."""
    key, parent = str(loc[-1]), loc[:-1]
    model = _model_at(root, parent)
    where = ".".join(str(p) for p in loc)
    section = ".".join(str(p) for p in parent)
    if model is None:
        return where, "unknown key"
    allowed = [name for name in model.model_fields]
    near = _nearest(key, allowed)
    hint = f"did you mean `{near}`?" if near else _home_of(key, root, model) if root is RunConfig else None
    place = f"`{section}`" if section else f"the {what}'s top level"
    text = "unknown key" + (f" at the {what}'s top level" if not section else "") + (f"; {hint}" if hint else "")
    return where, f"{text} ({place} takes: {', '.join(allowed)})"


def _friendly(loc: tuple[Any, ...], err_type: str, msg: str) -> tuple[str, str]:
    """Errors inside a tagged union (``task.xor.modulus``) read as the kind's: "task.kind=xor does not use modulus"."""
    parts = [str(p) for p in loc]
    for i, p in enumerate(parts):
        section = parts[i - 1] if i else ""
        head = section.split(".")[0]
        registry = TASKS if head in ("task", "tasks", "eval_tasks") or (i >= 2 and parts[i - 2] in ("tasks",
                   "eval_tasks")) else MODELS if section in ("model", "weak_model") else None
        if registry is None or p not in registry.names():
            continue
        where = ".".join(parts[:i])
        rest = parts[i + 1:]
        label = "task" if registry is TASKS else "model"
        if rest and err_type == "extra_forbidden":
            fields = _kind_fields(registry, p)
            others = [k for k, _ in registry.items() if k != p and rest[0] in _kind_fields(registry, k)]
            near = None if others else _nearest(rest[0], fields)
            hint = (f" ({rest[0]} is for kind: {', '.join(others)}); its" if others else
                    f": did you mean `{near}`? Its" if near else "; its")
            return (".".join([*parts[:i], *rest]), f"{label}.kind={p} does not use {rest[0]}{hint} settings are "
                    f"{', '.join(fields)}")
        if rest and err_type == "missing":
            return where, f"{label}.kind={p} needs {rest[0]}"
        return ".".join(parts[:i] + rest), msg
    return ".".join(parts), msg


def _format_validation_error(err: ValidationError, source: str, root: type[BaseModel] | None = None,
                             what: str = "config") -> str:
    """A pydantic error as a person reads it: one line per problem, naming where it is (the dotted key, or "the
    config's top level"), what is wrong and what to write instead (the nearest valid key and the keys allowed
    there); a value is shown as written, a mapping by its keys. ``root``: the class validated (default: the run
    config); ``what``: what the file is ("config", "sweep")."""
    root = root or RunConfig
    lines = [f"invalid config {source}:"]
    for e in err.errors():
        loc_parts = tuple(e["loc"])
        if e["type"] == "extra_forbidden" and not any(
                str(p) in TASKS.names() or str(p) in MODELS.names() for p in loc_parts[1:]):
            loc, msg = _unknown_key(loc_parts, root, what)
            lines.append(f"  - {loc}: {msg}")
            continue
        loc, msg = _friendly(loc_parts, e["type"], _suggest_value(e["msg"].removeprefix("Value error, ")))
        if e["type"] == "extra_forbidden":  # a key of another task or model kind: the message says what to use
            lines.append(f"  - {loc}: {msg}")
            continue
        if e["type"] == "union_tag_invalid":  # an unknown task or model kind
            section = str(e["loc"][-1]) if e["loc"] else ""
            registry = MODELS if section in ("model", "weak_model") else TASKS
            tag = e["ctx"].get("tag")
            near = _nearest(str(tag), registry.names())
            loc, msg = f"{loc}.kind", (f"unknown {registry.kind} {tag!r}; " + (f"did you mean `{near}`? " if near
                                       else "") + f"allowed: {', '.join(registry.names())}")
            lines.append(f"  - {loc}: {msg}")
            continue
        if not loc_parts:  # a rule over several sections: the message names them, the value is the whole file
            lines.append(f"  - the {what}'s top level: {msg}")
            continue
        lines.append(f"  - {loc}: {msg} (got {_describe(e.get('input'))})")
    return "\n".join(lines)


def _set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    """Set ``a.b.c`` in nested mappings; a numeric part indexes a list (``tasks.1.train_fraction``)."""
    parts = key.split(".")
    node: Any = data
    for i, p in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            if not p.isdigit() or int(p) >= len(node):
                raise ConfigError(f"override {key}: {p!r} is not an index of a list of {len(node)}")
            if last:
                node[int(p)] = value
                return
            node = node[int(p)]
            continue
        if not isinstance(node, dict):
            raise ConfigError(f"override {key}: {'.'.join(parts[:i])!r} is not a section")
        if last:
            node[p] = value
            return
        child = node.get(p)
        if child is None:
            child = node[p] = {}
        node = child


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """``["training.steps=500", "task.train_fraction=0.2"]``: values are parsed as YAML scalars/lists."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like dotted.key=value")
        key, raw = item.split("=", 1)
        try:
            value = load_yaml_text(raw)
        except yaml.YAMLError as err:
            raise ConfigError(f"override {item!r}: the value is not valid YAML: {err}") from None
        _set_dotted(data, key.strip(), value)
    return data


def parse_config(data: Any, source: str = "<dict>") -> RunConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"invalid config {source}: the top level must be a mapping, got {type(data).__name__}")
    try:
        return RunConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err, source)) from None


def read_yaml(path: str | Path, what: str = "config file", error: type[ValueError] = ConfigError) -> Any:
    """A YAML file's content, read with the bounds of :mod:`grokkit.yamlio` (size, alias expansion; the one way
    grokkit reads YAML); a missing, unreadable, malformed or oversized file raises ``error`` naming ``what`` and the
    path."""
    path = Path(path)
    try:
        return read_yaml_file(path)
    except FileNotFoundError:
        raise error(f"{what} {path} does not exist") from None
    except YAMLLimitError as err:
        raise error(f"{what} {path} is refused: {err}") from None
    except yaml.YAMLError as err:
        raise error(f"{what} {path} is not valid YAML: {err}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise error(f"{what} {path} cannot be read: {err}") from None


_M = TypeVar("_M", bound=BaseModel)


def load_spec(path: str | Path, model: type[_M], what: str, error: type[ValueError]) -> tuple[_M, Path]:
    """A YAML file validated as ``model`` (a figure, a comparison, ...) and the folder its relative paths start from;
    a missing, malformed or invalid file raises ``error`` naming ``what``."""
    path = Path(path)
    data = read_yaml(path, what, error)
    if not isinstance(data, dict):
        raise error(f"{what} {path} must hold a mapping")
    try:
        return model.model_validate(data), path.resolve().parent
    except ValidationError as e:
        raise error(_format_validation_error(e, str(path), model, what).replace("invalid config", f"invalid {what}")
                    ) from None


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The mapping a config file holds; a clear error for an empty file or one whose top level is not a mapping."""
    data = read_yaml(path)
    if data is None:
        raise ConfigError(f"config file {path} is empty (no YAML content): a config is a mapping of settings, "
                          "e.g. configs/smoke.yaml; nothing was run")
    if not isinstance(data, dict):
        raise ConfigError(f"invalid config {path}: the top level must be a mapping (`key: value` lines), "
                          f"got a {type(data).__name__}")
    return data


def load_config(path: str | Path, overrides: list[str] | None = None) -> RunConfig:
    return parse_config(apply_overrides(read_config_file(path), overrides or []), str(path))
