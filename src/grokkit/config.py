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

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import BaseModel, Field, ValidationError, create_model, field_validator, model_validator

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
            others = [k for k, _ in registry.items() if k != p and rest[0] in _kind_fields(registry, k)]
            hint = f" ({rest[0]} is for kind: {', '.join(others)})" if others else ""
            return where, (f"{label}.kind={p} does not use {rest[0]}{hint}; its settings are "
                           f"{', '.join(_kind_fields(registry, p))}")
        if rest and err_type == "missing":
            return where, f"{label}.kind={p} needs {rest[0]}"
        return ".".join(parts[:i] + rest), msg
    return ".".join(parts), msg


def _format_validation_error(err: ValidationError, source: str) -> str:
    lines = [f"invalid config {source}:"]
    for e in err.errors():
        value = e.get("input")
        shown = repr(value) if not isinstance(value, dict) else "{...}"
        loc, msg = _friendly(tuple(e["loc"]), e["type"], e["msg"].removeprefix("Value error, "))
        if e["type"] == "union_tag_invalid":  # an unknown task or model kind
            section = str(e["loc"][-1]) if e["loc"] else ""
            registry = MODELS if section in ("model", "weak_model") else TASKS
            loc, msg = f"{loc}.kind", (f"unknown {registry.kind} {e['ctx'].get('tag')!r}; allowed: "
                                       f"{', '.join(registry.names())}")
        lines.append(f"  - {loc or '(top level)'}: {msg} (got {shown})")
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
        raise error(_format_validation_error(e, str(path)).replace("invalid config", f"invalid {what}")) from None


def load_config(path: str | Path, overrides: list[str] | None = None) -> RunConfig:
    data = read_yaml(path)
    if data is None:
        raise ConfigError(f"config file {path} is empty (no YAML content): a config is a mapping of settings, "
                          "e.g. configs/smoke.yaml; nothing was run")
    if not isinstance(data, dict):
        raise ConfigError(f"invalid config {path}: the top level must be a mapping (`key: value` lines), "
                          f"got a {type(data).__name__}")
    return parse_config(apply_overrides(data, overrides or []), str(path))
