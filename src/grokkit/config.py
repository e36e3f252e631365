"""Run configuration: YAML <-> typed, validated objects. A run is fully described by its ``RunConfig``.

Unknown keys are errors (a misspelt option must never be silently ignored). Validation errors name the field, the bad
value and what is allowed; the CLI turns them into exit code 2 before anything is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, ValidationError, field_validator, model_validator

from grokkit.tasks import OPERATIONS


class ConfigError(ValueError):
    """A configuration that cannot be run; the message says what was wrong and what is allowed."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TaskConfig(_Strict):
    """One task. ``kind: modular`` (the default): ``(a op b) mod modulus`` on ``train_fraction`` of the pairs.
    ``kind: sparse_parity``: ``n_bits`` random bits, label = parity of ``k`` secret bits (secret fixed by
    ``secret_seed``), ``n_train``/``n_test`` distinct inputs per member. ``kind: xor``: high-dimensional XOR, label
    = XOR of bits 0 and 1 of ``n_bits``, ``label_noise`` of the training labels flipped (see grokkit.tasks)."""

    kind: Literal["modular", "sparse_parity", "xor"] = "modular"
    op: str = "add"
    modulus: int = Field(113, ge=2)
    train_fraction: float = Field(0.3, gt=0.0, lt=1.0)
    split_seed: int | None = Field(None, description="seed of the train/test split; default: each member's seed")
    val_fraction: float = Field(0.0, ge=0.0, lt=1.0, description="modular: fraction of all pairs held out for "
                                "validation, drawn from the pairs not trained on (disjoint from the test pairs)")
    n_val: int = Field(0, ge=0, description="bit tasks: validation inputs per member, distinct from train and test")
    n_bits: int | None = Field(None, ge=2, description="bit tasks: input length")
    k: int | None = Field(None, ge=1, description="sparse_parity: number of secret bits")
    n_train: int | None = Field(None, ge=1, description="bit tasks: training inputs per member")
    n_test: int | None = Field(None, ge=1, description="bit tasks: test inputs per member")
    secret_seed: int = Field(0, description="sparse_parity: seed choosing the secret bits (shared by all members)")
    label_noise: float = Field(0.0, ge=0.0, lt=0.5, description="xor: fraction of training labels flipped")
    positional_tokens: bool = Field(False, description="bit tasks: token 2*i+bit (one W_E row per position and bit, "
                                    "the paper's linear embedding of the bit vector) instead of the bit itself")

    @field_validator("op")
    @classmethod
    def _known_op(cls, v: str) -> str:
        if v not in OPERATIONS:
            raise ValueError(f"unknown operation {v!r}; allowed: {', '.join(OPERATIONS)}")
        return v

    @model_validator(mode="after")
    def _fields_of_kind(self) -> TaskConfig:
        defaults = {name: f.default for name, f in type(self).model_fields.items()}
        used = {"modular": {"op", "modulus", "train_fraction", "val_fraction"},
                "sparse_parity": {"n_bits", "k", "n_train", "n_test", "n_val", "secret_seed", "positional_tokens"},
                "xor": {"n_bits", "n_train", "n_test", "n_val", "label_noise", "positional_tokens"}}
        foreign = sorted(f for kind, fields in used.items() if kind != self.kind for f in fields
                         if f not in used[self.kind] and getattr(self, f) != defaults[f])
        if foreign:
            raise ValueError(f"task.kind={self.kind} does not use {', '.join(foreign)}; its settings are "
                             f"{', '.join(sorted(used[self.kind]))}")
        if self.kind != "modular":
            missing = sorted(f for f in used[self.kind] if f not in ("secret_seed", "label_noise", "positional_tokens",
                                                                      "n_val")
                             and getattr(self, f) is None)
            if missing:
                raise ValueError(f"task.kind={self.kind} needs {', '.join(missing)}")
            assert self.n_bits is not None and self.n_train is not None and self.n_test is not None
            if self.kind == "sparse_parity" and self.k is not None and self.k > self.n_bits:
                raise ValueError(f"sparse parity needs k <= n_bits, got k={self.k}, n_bits={self.n_bits}")
            if self.n_bits < 63 and self.n_train + self.n_test > 2**self.n_bits:
                raise ValueError(f"n_train + n_test = {self.n_train + self.n_test} distinct inputs do not exist "
                                 f"among the {2**self.n_bits} inputs of {self.n_bits} bits")
        return self

    @property
    def is_modular(self) -> bool:
        return self.kind == "modular"

    @property
    def name(self) -> str:
        if self.kind == "sparse_parity":
            return f"parity{self.n_bits}_{self.k}"
        if self.kind == "xor":
            return f"xor{self.n_bits}"
        return f"{self.op}{self.modulus}"


class VocabConfig(_Strict):
    """The shared vocabulary. Teacher and student must agree on it, so paper configs spell it out."""

    n_numbers: int | None = Field(None, ge=2, description="number tokens 0..n_numbers-1; default: the task modulus")
    moduli: list[int] | None = Field(None, description="moduli with a token; default: the task modulus")


class ModelConfig(_Strict):
    """``kind: transformer`` (the default; d_model, n_heads, d_head, d_mlp, activation, layer_norm) or ``kind: mlp``
    (GrokTransfer's bias-free ReLU MLP over concatenated token embeddings: d_embed, d_mlp = width, default
    4 * d_embed, n_layers = weight matrices after the embedding, the unembedding included, default 2)."""

    kind: Literal["transformer", "mlp"] = "transformer"
    n_layers: int = Field(1, ge=1)
    d_model: int = Field(128, ge=1)
    n_heads: int = Field(4, ge=1)
    d_head: int = Field(32, ge=1)
    d_mlp: int = Field(512, ge=1)
    activation: Literal["relu", "gelu"] = "relu"
    layer_norm: bool = False
    d_embed: int | None = Field(None, ge=1, description="mlp: embedding width per token (default 128)")
    init_scale: float = Field(
        1.0, gt=0, description="every weight matrix (W_*) of the fresh initialisation multiplied by this factor "
        "(Omnigrok's alpha; GrokTransfer A.3); biases start at 0 and LayerNorm at 1 whatever the factor")

    @model_validator(mode="before")
    @classmethod
    def _mlp_defaults(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("kind") == "mlp":
            data = dict(data)
            if data.get("d_embed") is None:
                data["d_embed"] = 128
            if data.get("d_mlp") is None and isinstance(data["d_embed"], int):
                data["d_mlp"] = 4 * data["d_embed"]
            data.setdefault("n_layers", 2)
        return data

    @model_validator(mode="after")
    def _fields_of_kind(self) -> ModelConfig:
        defaults = {name: f.default for name, f in type(self).model_fields.items()}
        if self.kind == "mlp":
            foreign = [f for f in ("d_model", "n_heads", "d_head", "activation", "layer_norm")
                       if getattr(self, f) != defaults[f]]
            if foreign:
                raise ValueError(f"model.kind=mlp does not use {', '.join(foreign)} (set d_embed, d_mlp, n_layers)")
        elif self.d_embed is not None:
            raise ValueError("model.d_embed is for kind: mlp; a transformer's embedding width is d_model")
        return self

    @property
    def embed_width(self) -> int:
        """Width of one token's embedding (the inner dimension A of a transferred embedding has)."""
        return self.d_embed if self.kind == "mlp" and self.d_embed is not None else self.d_model


class LossConfig(_Strict):
    kind: Literal["cross_entropy", "stablemax"] = "cross_entropy"
    dtype: Literal["float64", "float32"] = "float64"
    restrict_to_answer_range: bool = Field(
        True, description="score only classes 0..P-1 of each example's modulus P (losses and accuracy)"
    )


class TransformConfig(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)
    name: Literal["orthogonal_grad", "grokfast_ema", "grokfast_ma"]


class OptimizerConfig(_Strict):
    name: Literal["adam", "adamw", "sgd"] = "adamw"
    lr: float = Field(1e-3, gt=0)
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = Field(1e-8, gt=0)
    weight_decay: float = Field(1.0, ge=0)
    momentum: float = Field(0.0, ge=0, lt=1)
    warmup_steps: int = Field(10, ge=0)
    transforms: list[TransformConfig] = Field(default_factory=list, description="applied in order before each step")

    @model_validator(mode="after")
    def _transforms_build(self) -> OptimizerConfig:
        from grokkit.optim import build_transform

        try:
            build_transform([t.model_dump() for t in self.transforms])
        except TypeError as err:  # an unknown or missing parameter of a transform
            raise ValueError(f"bad gradient transform settings: {err}") from None
        return self


class TrainingConfig(_Strict):
    steps: int = Field(10_000, ge=1)
    batch_size: int | None = Field(None, ge=1, description="None: full batch")
    eval_every: int = Field(100, ge=1)
    generalization_threshold: float = Field(0.99, gt=0, le=1)
    early_stop: bool = Field(False, description="stop once every member has generalised (after `patience` evals)")
    patience: int = Field(0, ge=0, description="evaluations to continue after every member generalised")
    checkpoint_every: int = Field(1000, ge=0, description="steps between checkpoints; 0: none")
    device: str = "cpu"
    threads: int | None = Field(None, ge=1, description="torch CPU threads; default: torch's choice")
    member_chunk: int | None = Field(
        None, ge=1, description="members per forward/backward pass; default: all on CUDA, cache-sized chunks on CPU"
    )
    progress: bool = True

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if not (v == "cpu" or v == "cuda" or v.startswith("cuda:") or v == "mps"):
            raise ValueError(f"device {v!r} unknown; allowed: cpu, cuda, cuda:N, mps")
        return v


class DistillConfig(_Strict):
    teacher: str = Field(..., description="teacher run directory or model .safetensors file")
    teacher_member: int | Literal["matched"] = Field(
        0, description="which member of the teacher's ensemble teaches every student member; `matched`: teacher "
        "member k teaches student member k (the teacher must have as many members)")
    alpha: float = Field(0.5, ge=0, le=1)
    temperature: float = Field(2.0, gt=0)
    position: Literal["operator", "final"] = "operator"
    class_alignment: Literal["shared", "student_range"] = Field(
        "shared",
        description="shared: KL over all of the shared output classes; student_range: both distributions restricted "
        "to the student's answers 0..P-1 and renormalised",
    )
    t2_scaling: bool = Field(False, description="multiply the KL term by T^2 (Hinton et al.)")
    alpha_decay_start: int | None = Field(
        None, ge=0, description="step from which alpha decays linearly to 0; None: constant alpha"
    )
    alpha_decay_steps: int = Field(0, ge=0, description="length of the linear decay of alpha (0: drop at once)")


class InitConfig(_Strict):
    """Start from a trained model's weights instead of a random initialisation (fine-tuning, continual training)."""

    model: str = Field(..., description="run directory or model .safetensors file")
    member: int | None = Field(
        None, ge=0, description="which member to copy into every member; None: member k into member k (the model "
        "must have as many members) or its only member into all")


class JointConfig(_Strict):
    """Recipe ``joint``: one model on the union of several tasks, by the task loss or by distillation only."""

    mode: Literal["task_loss", "distill"] = "task_loss"
    teachers: list[str | None] | None = Field(
        None, description="distill mode: one teacher per task, in the order of `tasks`; null: that task's examples "
        "are learnt from their labels")
    teacher_member: int | Literal["matched"] = Field(0, description="see distill.teacher_member")
    alpha: float = Field(1.0, ge=0, le=1, description="distill mode: 1 = distillation only (the paper's)")
    temperature: float = Field(2.0, gt=0)
    position: Literal["operator", "final"] = Field(
        "final", description="distill mode: the position the teachers' outputs are distilled at. final (the default): "
        "the answer's position, which with alpha = 1 (no labels) must be taught by someone; operator: the paper's "
        "choice for the distill recipe, for the mixed (alpha < 1) case")


class ContinualConfig(_Strict):
    """Recipe ``continual``: start from a model grokked on ``tasks[0]``, then train on ``tasks[1]``, ``tasks[2]``, ...
    in turn, each stage optionally distilled from the frozen model of the stage before."""

    init: str = Field(..., description="run directory or model file of the model grokked on tasks[0]")
    init_member: int | None = Field(None, ge=0, description="see init.member")
    steps_per_stage: int = Field(2000, ge=1)
    distill: bool = False
    alpha: float = Field(0.5, ge=0, le=1)
    temperature: float = Field(2.0, gt=0)
    position: Literal["operator", "final"] = "operator"
    distill_inputs: Literal["current", "previous"] = Field(
        "current", description="current: distil on the new task's inputs (the paper's reading); previous: distil the "
        "previous model's answers on the earlier tasks' training inputs (their labels are never used) while the new "
        "task is learnt from its labels (alpha is then 1 on the earlier tasks' rows) -- learning without forgetting "
        "with input replay")


class EmbeddingInitConfig(_Strict):
    """Start the embedding as ``W_E = A @ B`` (GrokTransfer's E_T = A B): ``A`` (``embed.W_E_A``, d_vocab x d_W) is
    a trained model's ``W_E``, ``B`` (``embed.W_E_B``, d_W x d_model) random; the rest of the model is initialised
    as usual."""

    model: str = Field(..., description="run directory or model file whose W_E becomes A")
    member: NonNegativeInt | list[NonNegativeInt] | None = Field(
        None, description="which member's W_E seeds every member, or a list: the source member of each member in "
        "turn; None: member k seeds member k (the model must have as many members) or its only member all")
    freeze_A: bool = Field(False, description="keep A at the source's W_E (no gradient, no weight decay)")
    freeze_B: bool = Field(False, description="keep B at its random initialisation")
    b_init_std: float | None = Field(
        None, gt=0, description="std of B's entries; None: chosen so that A @ B has the RMS entry of the model's "
        "usual W_E initialisation (std_usual / RMS row norm of A), keeping the rest of the init calibrated")


class TransferConfig(_Strict):
    """Recipe ``transfer`` (GrokTransfer): train a weak model until ``weak_threshold`` test accuracy (or
    ``weak_steps``), then train the run's ``model`` with its embedding initialised as A @ B, A = weak W_E."""

    weak_model: ModelConfig = Field(
        default_factory=lambda: ModelConfig(kind="mlp", d_embed=4, d_mlp=16, n_layers=2),
        description="the weak model (default: GrokTransfer's 2-layer MLP, d_embed 4, width 16)")
    weak_optimizer: OptimizerConfig | None = Field(None, description="the weak model's optimiser; None: `optimizer`")
    weak_steps: int = Field(5000, ge=1, description="the weak model's step budget")
    weak_threshold: float = Field(0.3, gt=0, le=1, description="stop the weak model once every member reaches this "
                                  "test accuracy")
    weak_eval_every: int | None = Field(None, ge=1, description="None: training.eval_every")
    weak_candidates: int = Field(
        1, ge=1, le=64, description="weak models trained per target member (initial seeds seed, seed + 100003, ...; "
        "all on the member's split); the one with the highest final *training* accuracy gives A. 1: the paper")
    freeze_A: bool = False
    freeze_B: bool = False
    b_init_std: float | None = Field(None, gt=0, description="see embedding_init.b_init_std")
    target_recipe: Literal["scratch", "distill"] = Field(
        "scratch", description="how the target trains: from labels, or distilled from the run's `distill:` teacher "
        "(GrokTransfer + distillation); the weak model always trains from labels")


class LoggingConfig(_Strict):
    """Optional metric streams besides metrics.csv (which is always written)."""

    tensorboard: bool = Field(False, description="write TensorBoard events to <run dir>/tensorboard")
    wandb: bool = Field(False, description="log to Weights & Biases")
    wandb_project: str = "grokkit"
    wandb_mode: Literal["offline", "online", "disabled"] = Field("offline", description="offline: no network")


class MemberConfig(_Strict):
    """One ensemble member: its seed and any hyper-parameters of its own (the rest come from the run config)."""

    seed: int
    lr: float | None = Field(None, gt=0)
    weight_decay: float | None = Field(None, ge=0)
    train_fraction: float | None = Field(None, gt=0, lt=1)
    alpha: float | None = Field(None, ge=0, le=1)
    temperature: float | None = Field(None, gt=0)
    init_scale: float | None = Field(None, gt=0, description="this member's model.init_scale")
    split_seed: int | None = Field(
        None, description="seed of this member's train/test split; default: `seed` (a task's split_seed wins)")


class RunConfig(_Strict):
    recipe: Literal["scratch", "distill", "joint", "continual", "transfer"] = "scratch"
    name: str = "run"
    seeds: list[int] | None = Field(None, description="one member per seed (shorthand for `members`)")
    members: list[MemberConfig] | None = None
    task: TaskConfig = Field(default_factory=TaskConfig)
    tasks: list[TaskConfig] | None = Field(None, description="recipes joint and continual: the tasks, in order")
    eval_tasks: list[TaskConfig] | None = Field(
        None, description="further tasks evaluated at every evaluation (test_acc@<task> columns), not trained on")
    vocab: VocabConfig = Field(default_factory=VocabConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    distill: DistillConfig | None = None
    joint: JointConfig | None = None
    continual: ContinualConfig | None = None
    init: InitConfig | None = None
    embedding_init: EmbeddingInitConfig | None = None
    transfer: TransferConfig | None = None
    logging: LoggingConfig = Field(default_factory=LoggingConfig)

    @model_validator(mode="after")
    def _consistent(self) -> RunConfig:
        if self.seeds is not None and self.members is not None:
            raise ValueError("give either `seeds` or `members`, not both")
        members = self.member_list()
        if not members:
            raise ValueError("a run needs at least one member: set `seeds: [0]`")
        seen = [m.model_dump() for m in members]
        duplicates = [m["seed"] for i, m in enumerate(seen) if m in seen[:i]]
        if duplicates:  # the same member twice is a mistake; one seed with other settings is a sweep
            raise ValueError(f"members must be distinct; seeds {duplicates} are listed twice with the same settings")
        if self.recipe == "distill" and self.distill is None:
            raise ValueError("recipe `distill` needs a `distill:` section with at least `teacher:`")
        distills = self.recipe == "distill" or (self.transfer is not None and self.transfer.target_recipe == "distill")
        if self.recipe == "transfer" and distills and self.distill is None:
            raise ValueError("transfer.target_recipe=distill needs a `distill:` section with at least `teacher:`")
        if not distills and self.distill is not None:
            raise ValueError(f"`distill:` is set but recipe is {self.recipe!r}; set `recipe: distill` (or, with "
                             "recipe transfer, `transfer.target_recipe: distill`) or drop it")
        if not distills and any(m.alpha is not None or m.temperature is not None for m in members):
            raise ValueError("member `alpha`/`temperature` only apply to distillation")
        for section in ("joint", "continual", "transfer"):
            if (self.recipe == section) != (getattr(self, section) is not None):
                raise ValueError(f"recipe `{section}` needs a `{section}:` section, and only that recipe takes one "
                                 f"(recipe is {self.recipe!r})")
        if self.recipe in ("joint", "continual"):
            if not self.tasks or len(self.tasks) < 2:
                raise ValueError(f"recipe `{self.recipe}` needs `tasks:` with at least two tasks")
            names = [t.name for t in self.tasks]
            if len(set(names)) != len(names):
                raise ValueError(f"tasks must be distinct, got {names}")
            if any(m.train_fraction is not None for m in members):
                raise ValueError("member `train_fraction` does not apply to multi-task recipes; set it per task")
        elif self.tasks is not None:
            raise ValueError(f"`tasks:` is for recipes joint and continual, not {self.recipe!r}; use `task:`")
        if self.joint is not None and self.joint.mode == "distill":
            if not self.joint.teachers or len(self.joint.teachers) != len(self.tasks or []):
                raise ValueError("joint.mode=distill needs `joint.teachers` with one teacher per task")
        if self.embedding_init is not None:
            if self.recipe not in ("scratch", "distill"):
                raise ValueError(f"`embedding_init:` is for recipes scratch and distill, not {self.recipe!r} "
                                 "(recipe transfer sets it for its target stage)")
            if self.init is not None:
                raise ValueError("give either `init:` (all weights) or `embedding_init:`, not both")
        if not self.task.is_modular:
            if self.recipe not in ("scratch", "transfer"):
                raise ValueError(f"task.kind={self.task.kind} runs with recipes scratch and transfer, not "
                                 f"{self.recipe!r}")
            if self.eval_tasks or self.vocab != VocabConfig():
                raise ValueError(f"task.kind={self.task.kind} has its own vocabulary (tokens 0/1) and no eval_tasks: "
                                 "drop `vocab:` and `eval_tasks:`")
            if any(m.train_fraction is not None for m in members):
                raise ValueError(f"task.kind={self.task.kind} sets n_train/n_test, not member train_fraction")
            return self
        bits = [t.name for t in (self.tasks or []) + list(self.eval_tasks or []) if not t.is_modular]
        if bits:
            raise ValueError(f"tasks {bits} are not modular: `tasks:` and `eval_tasks:` take modular tasks only")
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

    def all_tasks(self) -> list[TaskConfig]:
        """The tasks of the run: ``tasks`` for multi-task recipes, else ``[task]``."""
        return list(self.tasks) if self.tasks else [self.task]

    def member_list(self) -> list[MemberConfig]:
        if self.members is not None:
            return list(self.members)
        return [MemberConfig(seed=s) for s in (self.seeds if self.seeds is not None else [0])]

    def to_yaml(self) -> str:
        data = self.model_dump(mode="json")
        return yaml.safe_dump(data, sort_keys=False)


def _format_validation_error(err: ValidationError, source: str) -> str:
    lines = [f"invalid config {source}:"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        value = e.get("input")
        shown = repr(value) if not isinstance(value, dict) else "{...}"
        msg = e["msg"].removeprefix("Value error, ")
        lines.append(f"  - {loc}: {msg} (got {shown})")
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
        _set_dotted(data, key.strip(), yaml.safe_load(raw))
    return data


def parse_config(data: Any, source: str = "<dict>") -> RunConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"invalid config {source}: the top level must be a mapping, got {type(data).__name__}")
    try:
        return RunConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err, source)) from None


def read_yaml(path: str | Path, what: str = "config file", error: type[ValueError] = ConfigError) -> Any:
    """A YAML file's content; a missing or malformed file raises ``error`` naming ``what`` and the path."""
    path = Path(path)
    try:
        return yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise error(f"{what} {path} does not exist") from None
    except yaml.YAMLError as err:
        raise error(f"{what} {path} is not valid YAML: {err}") from None


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
