"""Recipe ``transfer``: GrokTransfer (Xu et al., ICLR 2025), embedding transfer from a weaker model.

Stage 1 trains a weak model (``transfer.weak_model``, by default the paper's 2-layer MLP with ``d_embed`` 4 and width
16) on the run's task until every member reaches ``transfer.weak_threshold`` test accuracy (early stop) or
``transfer.weak_steps``. Stage 2 trains the run's ``model`` (MLP or transformer) with its embedding factorised as
``W_E = A @ B``: ``A`` (``embed.W_E_A``, d_vocab x d_W) starts as member k's weak ``W_E`` for member k, ``B``
(``embed.W_E_B``, d_W x d_model) is random (scale: see :func:`grokkit.recipes.common.init_embedding`); both train
unless ``transfer.freeze_A`` / ``freeze_B``. The rest of the target starts from its usual initialisation, and member
k uses member k's data split in both stages.

Each stage is an ordinary run directory, ``OUT/weak`` and ``OUT/target`` (the target's config carries the
``embedding_init:`` section that stage 2 is), so a killed run resumes inside the stage it was in and a finished
stage is skipped. ``OUT`` holds the stitched ``metrics.csv`` (``stage``, ``global_step``), ``model.safetensors``
(the target with the plain embedding ``embed.W_E = A @ B`` exported, for analysis), ``curves.png`` (the target's) and
``summary.json``: per member the weak model's steps and test accuracy, the target's ``steps_to_generalize``, and
wall-clock of both stages and in total (the weak model's cost included).

The weak stage stops for the whole ensemble once every member has reached the threshold, so a member that got
there earlier trains on until the last one does (its embedding is then, if anything, better); ``weak_steps`` in the
summary is that shared stop, and ``weak_steps_to_threshold`` each member's own crossing.

``transfer.weak_candidates = n > 1`` trains n weak models per target member (initial seeds ``seed + j * 100003``, all
on the member's split) in the one weak ensemble, and member k's ``A`` comes from the candidate with the highest final
training accuracy; selection uses no held-out data, and all n candidates' cost is in the weak wall-clock. The small
weak model cannot memorise, so its training accuracy tracks its test accuracy, and its outcome is bimodal across
seeds (docs/studies/transfer.md): best-of-n removes most of the seeds whose weak model stalls.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import Field

from grokkit.checkpoint import MODEL_FILE, CheckpointError, load_model
from grokkit.models import MLPConfig, ModelConfig, unfactorised
from grokkit.recipes.registry import SECTIONS, Recipe, RunConfig, Section, register
from grokkit.recipes.stages import Stage, StageContext, StageResult, Stages, Stitched
from grokkit.schema import Strict
from grokkit.sections import OptimizerConfig

CANDIDATE_SEED_STRIDE = 100_003


class TransferConfig(Strict):
    """Recipe ``transfer`` (GrokTransfer): train a weak model until ``weak_threshold`` test accuracy (or
    ``weak_steps``), then train the run's ``model`` with its embedding initialised as A @ B, A = weak W_E."""

    weak_model: ModelConfig = Field(
        default_factory=lambda: MLPConfig(kind="mlp", d_embed=4, d_mlp=16, n_layers=2),
        description="the weak model (default: GrokTransfer's 2-layer MLP, d_embed 4, width 16)")
    weak_optimizer: OptimizerConfig | None = Field(None, description="the weak model's optimiser; None: `optimizer`")
    weak_steps: int = Field(5000, ge=1, description="the weak model's step budget")
    weak_threshold: float = Field(0.3, gt=0, le=1, description="stop the weak model once every member reaches this "
                                  "test accuracy")
    weak_eval_every: int | None = Field(None, ge=1, description="None: training.eval_every")
    weak_candidates: int = Field(
        1, ge=1, le=64, description="weak models trained per target member (initial seeds seed, seed + 100003, ...; "
        "all on the member's split); the one with the highest final *training* accuracy gives A. 1: the paper")
    freeze_A: bool = Field(False, description="keep A at the weak model's W_E (no gradient, no weight decay)")
    freeze_B: bool = Field(False, description="keep B at its random initialisation")
    b_init_std: float | None = Field(None, gt=0, description="see embedding_init.b_init_std")
    target_recipe: Literal["scratch", "distill"] = Field(
        "scratch", description="how the target trains: from labels, or distilled from the run's `distill:` teacher "
        "(GrokTransfer + distillation); the weak model always trains from labels")


def _base(cfg: RunConfig) -> dict[str, Any]:
    data = cfg.model_dump(mode="json")
    for key in ("transfer", "embedding_init", "init", "distill", "joint", "continual", "tasks"):
        data.pop(key, None)
    data["recipe"] = "scratch"
    return data


def weak_members(cfg: RunConfig) -> tuple[list[dict[str, Any]], list[list[int]]] | None:
    """The weak stage's members when the run lists members or trains several candidates: the distinct weak models
    (target members whose weak settings agree, e.g. two packed arms with the same seeds, share one), and for each
    target member the indices of its ``weak_candidates`` among them. None: weak member k is target member k."""
    t = cfg.transfer
    assert t is not None
    if cfg.members is None and t.weak_candidates == 1:
        return None
    # a member's own distillation settings and init scale belong to the target (the weak model has its own
    # transfer.weak_model.init_scale); so do its lr / weight decay when the weak model has an optimiser of its own (a
    # sweep writes every packed member's lr, weight decay and init scale out explicitly)
    own = ("alpha", "temperature", "init_scale") + (("lr", "weight_decay") if t.weak_optimizer is not None else ())
    unique: list[dict[str, Any]] = []
    groups: list[list[int]] = []
    for m in cfg.member_list():
        base = {k: v for k, v in m.model_dump(mode="json").items() if k not in own and v is not None}
        group = []
        for j in range(t.weak_candidates):
            # candidate 0 is the member itself; candidate j > 0 starts from seed + j * CANDIDATE_SEED_STRIDE on the
            # member's own split
            cand = base if j == 0 else dict(base, seed=base["seed"] + j * CANDIDATE_SEED_STRIDE,
                                            split_seed=base.get("split_seed", base["seed"]))
            if cand not in unique:
                unique.append(cand)
            group.append(unique.index(cand))
        groups.append(group)
    return unique, groups


def weak_config(cfg: RunConfig) -> dict[str, Any]:
    """Stage 1: the weak model, early-stopped at ``weak_threshold`` test accuracy (a config mapping)."""
    t = cfg.transfer
    assert t is not None
    data = _base(cfg)
    data["name"] = f"{cfg.name}/weak"
    listed = weak_members(cfg)
    if listed is not None:
        data["members"] = listed[0]
        data["seeds"] = None
    data["model"] = t.weak_model.model_dump(mode="json")
    if t.weak_optimizer is not None:
        data["optimizer"] = t.weak_optimizer.model_dump(mode="json")
    data["training"] = dict(data["training"], steps=t.weak_steps, generalization_threshold=t.weak_threshold,
                            early_stop=True, patience=0, eval_every=t.weak_eval_every or cfg.training.eval_every)
    return data


def select_candidates(cfg: RunConfig, weak: dict[str, Any]) -> list[int] | None:
    """The weak member whose ``W_E`` seeds each target member: of a member's ``weak_candidates`` weak models the one
    with the highest final training accuracy (ties: the lower index). Training accuracy, not test: the choice uses
    no held-out data. None when weak member k seeds target member k."""
    listed = weak_members(cfg)
    if listed is None:
        return None
    accs = [m["final_train_acc"] for m in weak["members"]]
    chosen = [max(group, key=lambda j: (accs[j], -j)) for group in listed[1]]
    return None if chosen == list(range(len(weak["members"]))) else chosen


def target_config(cfg: RunConfig, weak_dir: str, member: list[int] | None = None) -> dict[str, Any]:
    """Stage 2: the run's model, its embedding A @ B with A from the weak model at ``weak_dir`` (member ``member[k]``
    of it for member k; None: member k), as a config mapping; distilled with the run's ``distill:`` section (every
    field of it) when ``transfer.target_recipe`` is distill."""
    t = cfg.transfer
    assert t is not None
    data = _base(cfg)
    data["name"] = f"{cfg.name}/target"
    if t.target_recipe == "distill":
        assert cfg.distill is not None
        data["recipe"] = "distill"
        data["distill"] = cfg.distill.model_dump(mode="json")
    data["embedding_init"] = {"model": weak_dir, "member": member, "freeze_A": t.freeze_A, "freeze_B": t.freeze_B,
                              "b_init_std": t.b_init_std}
    return data


def weak_dir(out: Path) -> Path:
    return Path(out) / "weak"


def target_dir(out: Path) -> Path:
    return Path(out) / "target"


def stages(cfg: RunConfig, out: Path, context: StageContext) -> Stages:
    """The weak model, then the target seeded by it (see :mod:`grokkit.recipes.stages`). Both stages' configs are
    checked before the first one is yielded; the target's member mapping follows the weak stage's summary."""
    t = cfg.transfer
    assert t is not None
    weak_data = weak_config(cfg)
    weak_cfg = context.parse(weak_data, f"weak stage of {cfg.name}")
    target_data = target_config(cfg, str(weak_dir(out)))
    context.parse(target_data, f"target stage of {cfg.name}")  # both stages' configs are valid before anything runs
    weak = yield Stage("weak", weak_data, weak_dir(out), (
        f"stage 1/2: weak model ({t.weak_model.kind}) until test accuracy "
        f"{weak_cfg.training.generalization_threshold} or {weak_cfg.training.steps} steps",))
    notes = []
    chosen = select_candidates(cfg, weak.summary)
    if chosen is not None:
        target_data = target_config(cfg, str(weak_dir(out)), chosen)
        notes.append(f"weak candidates chosen (by training accuracy): {chosen}")
    notes.append(f"stage 2/2: target ({cfg.model.kind}) with embedding A @ B, A from the weak model")
    yield Stage("target", target_data, target_dir(out), tuple(notes))


def finish(cfg: RunConfig, results: list[StageResult]) -> Stitched:
    """Stitch the stages: ``metrics.csv`` (stage, global step), the target's model with ``W_E = A @ B`` exported,
    the target's curves and the summary."""
    weak, target = (r.summary for r in results)
    frames = []
    for stage, result, offset in (("weak", results[0], 0), ("target", results[1], weak["steps"])):
        m = result.metrics.copy()
        m.insert(0, "stage", stage)
        m.insert(1, "global_step", m["step"] + offset)
        frames.append(m)
    try:
        model, vocab, meta = load_model(results[1].directory / MODEL_FILE)
    except CheckpointError as err:
        raise ValueError(f"the target stage's model cannot be read: {err}") from None
    target_rows = frames[1]
    listed = weak_members(cfg)
    summary = transfer_summary(cfg, weak, target, select_candidates(cfg, weak),
                               None if listed is None else listed[1])
    extra = {k: v for k, v in meta.items() if k not in ("format", "model_kind", "shape", "vocab", "seeds",
                                                        "token_layout")}
    return Stitched(summary=summary, metrics=pd.concat(frames, ignore_index=True),
                    model=(unfactorised(model), vocab, extra),
                    curves=(target_rows, f"{cfg.name}: {target['task']}, GrokTransfer target") if len(target_rows)
                    else None)


def transfer_summary(cfg: RunConfig, weak: dict[str, Any], target: dict[str, Any],
                     chosen: list[int] | None = None, groups: list[list[int]] | None = None) -> dict[str, Any]:
    """``chosen[k]``: the weak member that seeded target member k (None: member k); ``groups[k]``: target member
    k's weak candidates (None: member k alone)."""
    members = []
    for i, t in enumerate(target["members"]):
        j = chosen[i] if chosen is not None else i
        w = weak["members"][j]
        steps = t["steps_to_generalize"]
        members.append({
            **t,
            "weak_seed": w["seed"],
            "weak_candidate_test_accs": [weak["members"][c]["final_test_acc"]
                                         for c in (groups[i] if groups else [i])],
            "weak_steps": weak["steps"],
            "weak_steps_to_threshold": w["steps_to_generalize"],
            "weak_final_test_acc": w["final_test_acc"],
            "weak_failed": w["failed"],
            "total_steps_to_generalize": None if steps is None else weak["steps"] + steps,
            # this member's share of the weak stage's wall-clock (a sweep's results store reads member scalars)
            "weak_wall_seconds": round(weak["wall_seconds"] / len(target["members"]), 3),
        })
    drop = ("name", "recipe", "members", "versions")
    return {
        "name": cfg.name,
        "recipe": "transfer",
        "task": target["task"],
        "train_fraction": target["train_fraction"],
        "steps": target["steps"],
        "weak_steps": weak["steps"],
        "generalization_threshold": target["generalization_threshold"],
        "weak_threshold": weak["generalization_threshold"],
        "weak_wall_seconds": weak["wall_seconds"],
        "target_wall_seconds": target["wall_seconds"],
        "wall_seconds": round(weak["wall_seconds"] + target["wall_seconds"], 3),
        "members": members,
        "weak": {k: v for k, v in weak.items() if k not in drop},
        "target": {k: v for k, v in target.items() if k not in drop},
        "versions": target["versions"],
    }


def _check(cfg: RunConfig) -> None:
    t = cfg.transfer
    assert t is not None
    if getattr(cfg.model, "input", "embed") == "one_hot":
        raise ValueError("model.input=one_hot has a fixed embedding: GrokTransfer has nothing to transfer into")
    if t.target_recipe == "distill" and cfg.distill is None:
        raise ValueError("transfer.target_recipe=distill needs a `distill:` section with at least `teacher:`")
    if t.target_recipe != "distill" and cfg.distill is not None:
        raise ValueError(f"`distill:` is set but recipe is {cfg.recipe!r}; set `recipe: distill` (or, with recipe "
                         "transfer, `transfer.target_recipe: distill`) or drop it")


SECTIONS.add("transfer", Section(TransferConfig))
def _takes(data: dict[str, Any]) -> tuple[str, ...]:
    """The sections a transfer run reads: ``distill:`` only when its target distils."""
    return ("transfer", "distill") if (data.get("transfer") or {}).get("target_recipe") == "distill" else ("transfer",)


register(Recipe("transfer", stages=stages, finish=finish, sections=("transfer", "distill"), required=("transfer",),
                takes=_takes, check=_check,
                summary="GrokTransfer: a weak model's embedding initialises the target's as A @ B"))
