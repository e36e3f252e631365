"""Recipe ``continual``: a model grokked on ``tasks[0]`` is trained on ``tasks[1]``, then ``tasks[2]``, ... (the
paper's continual pre-training, Figure 6, extended to any number of shifts).

Each stage is an ordinary run (recipe ``scratch``; or ``distill`` from the frozen model of the stage before, on the
new task's inputs; or, with ``continual.distill_inputs: previous``, ``joint``: the earlier tasks' training inputs
taught by the previous model, never their labels, and the new task by its labels) started
from the previous stage's weights, evaluated on every task of the sequence at every evaluation, written to
``OUT/stages/NN-<task>/`` — so a killed sequence resumes inside the stage it was in, and finished stages are skipped.
The run directory itself holds the stitched ``metrics.csv`` (global step, stage, one ``test_acc@<task>`` column per
task), ``summary.json`` with the continual-learning measures per member, ``model.safetensors`` (the last stage's),
and ``curves.png``.

Measures (Lopez-Paz & Ranzato 2017), from the accuracy matrix R[i][j] = test accuracy on task j after stage i
(stage 0: the initial model): average accuracy ACC = mean_j R[N-1][j]; backward transfer BWT = mean_{j<N-1}
(R[N-1][j] - R[j][j]) (negative: forgetting); forward transfer FWT = mean_{j>=1} (R[j-1][j] - 1/P_j), against
chance 1/P_j.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import Field

from grokkit.checkpoint import MODEL_FILE, CheckpointError, atomic_write, load_model
from grokkit.recipes.registry import SECTIONS, Recipe, RunConfig, Section, register
from grokkit.recipes.stages import Stage, StageContext, StageResult, Stages, Stitched
from grokkit.schema import Strict


class ContinualConfig(Strict):
    """Recipe ``continual``: start from a model grokked on ``tasks[0]``, then train on ``tasks[1]``, ``tasks[2]``, ...
    in turn; with a ``distill:`` section each stage is distilled from the frozen model of the stage before (the
    distillation settings are that section's; its teacher is always the previous model)."""

    init: str = Field(..., description="run directory or model file of the model grokked on tasks[0]")
    init_member: int | None = Field(None, ge=0, description="see init.member")
    steps_per_stage: int = Field(2000, ge=1, description="training steps of each stage (each task after the first)")
    distill_inputs: Literal["current", "previous"] = Field(
        "current", description="with `distill:` — current: distil on the new task's inputs (the paper's reading); "
        "previous: distil the previous model's answers on the earlier tasks' training inputs (their labels are "
        "never used) while the new task is learnt from its labels (alpha is then 1 on the earlier tasks' rows) -- "
        "learning without forgetting with input replay")


def stage_config(cfg: RunConfig, i: int, previous: str, init_members: int) -> dict[str, Any]:
    """The run of stage ``i`` (1-based over ``tasks[1:]``), starting from the model at ``previous``, as a config
    mapping (the driver parses it). Its distillation, if any, is the run's ``distill:`` section with the previous
    model as teacher — every field kept."""
    c = cfg.continual
    assert c is not None and cfg.tasks is not None
    k = len(cfg.member_list())
    tasks = [t.model_dump(mode="json") for t in cfg.tasks]
    data = cfg.model_dump(mode="json")
    distill = data.pop("distill", None)
    for key in ("tasks", "continual", "joint", "init", "eval_tasks"):
        data.pop(key, None)
    data["recipe"] = "distill" if distill is not None else "scratch"
    data["name"] = f"{cfg.name}/stage{i}-{cfg.tasks[i].name}"
    data["task"] = tasks[i]
    data["eval_tasks"] = [t for j, t in enumerate(tasks) if j != i]
    data["training"] = dict(data["training"], steps=c.steps_per_stage)
    if i == 1:  # from the grokked model: member-wise if it has one member per run member
        member: int | None = c.init_member if c.init_member is not None else (None if init_members in (1, k) else 0)
        teacher_member: int | str = "matched" if member is None and init_members == k and k > 1 else (member or 0)
    else:
        member, teacher_member = None, ("matched" if k > 1 else 0)
    data["init"] = {"model": previous, "member": member}
    if distill is not None and c.distill_inputs == "previous":
        # one joint run: the earlier tasks' training inputs taught by the previous model, the new task by its labels
        data["recipe"] = "joint"
        data["tasks"] = tasks[: i + 1]
        data["task"] = tasks[i]
        data["eval_tasks"] = tasks[i + 1:] or None
        data["distill"] = dict(distill, teacher=[previous] * i + [None], teacher_member=teacher_member,
                               combine="route", alpha=1.0, alpha_decay_start=None)  # no old labels
    elif distill is not None:
        data["distill"] = dict(distill, teacher=previous, teacher_member=teacher_member)
    return data


def _with_init_split(cfg: RunConfig, context: StageContext) -> tuple[RunConfig, int]:
    """Evaluate tasks[0] on the initial model's own held-out pairs: take its split seed from the model file."""
    c = cfg.continual
    assert c is not None and cfg.tasks is not None
    try:
        model, _, meta = load_model(c.init)
    except CheckpointError as err:
        raise ValueError(f"continual.init: {err}") from None
    first = cfg.tasks[0]
    try:
        trained_cfg = context.read_config(Path(c.init))
    except ValueError as err:
        raise ValueError(f"continual.init: {c.init}'s config is unreadable: {err}") from None
    if trained_cfg is not None:  # a run directory: tasks[0] must describe what the initial model was trained on
        trained = trained_cfg.task
        want = {"op": first.op, "modulus": first.modulus, "train_fraction": first.train_fraction}
        got = {k: getattr(trained, k) for k in want}
        if got != want:
            raise ValueError(f"tasks[0] is {want} but the initial model {c.init} was trained on {got}: tasks[0] "
                             "must describe the initial model's training, so that its held-out pairs are known")
    if first.split_seed is None:
        member = c.init_member if c.init_member is not None else 0
        if member >= model.n_members:
            raise ValueError(f"continual.init_member={member} but {c.init} has {model.n_members} member(s)")
        if model.n_members > 1 and c.init_member is None:
            raise ValueError(f"continual.init {c.init} has {model.n_members} members: set continual.init_member, or "
                             "tasks[0].split_seed")
        tasks = [first.model_copy(update={"split_seed": int(model.seeds[member])})] + list(cfg.tasks[1:])
        cfg = cfg.model_copy(update={"tasks": tasks})
    return cfg, model.n_members


def stage_dir(cfg: RunConfig, out: Path, i: int) -> Path:
    """The run directory of stage ``i`` (1-based over ``tasks[1:]``)."""
    assert cfg.tasks is not None
    return Path(out) / "stages" / f"{i:02d}-{cfg.tasks[i].name}"


def stages(cfg: RunConfig, out: Path, context: StageContext) -> Stages:
    """The stages, in order (see :mod:`grokkit.recipes.stages`): stage ``i`` starts from stage ``i - 1``'s model
    (stage 1 from ``continual.init``). Every stage's config is checked, with a placeholder for the previous model,
    before the first one is yielded."""
    resolved, init_members = _with_init_split(cfg, context)
    assert resolved.tasks is not None and resolved.continual is not None
    n = len(resolved.tasks)
    for i in range(1, n):  # every stage's config is valid before anything is written
        context.parse(stage_config(resolved, i, "<previous>", init_members), f"stage {i} of {cfg.name}")
    previous = resolved.continual.init
    for i in range(1, n):
        sc = stage_config(resolved, i, previous, init_members)
        d = stage_dir(resolved, out, i)
        note = (f"stage {i}/{n - 1}: {resolved.tasks[i - 1].name} -> {resolved.tasks[i].name}"
                + (" with distillation" if sc["recipe"] != "scratch" else ""))
        yield Stage(f"{i:02d}-{resolved.tasks[i].name}", sc, d, (note,))
        previous = str(d)


def finish(cfg: RunConfig, results: list[StageResult]) -> Stitched:
    """Stitch the stages: ``metrics.csv`` (global step, stage, task), the last stage's model, the continual curves
    and the continual-learning summary."""
    assert cfg.tasks is not None
    frames = []
    offset = 0
    for i, result in enumerate(results, start=1):
        name = cfg.tasks[i].name
        m = result.metrics.copy()
        if f"test_acc@{name}" not in m:  # a single-task stage: its test set is the new task's
            m[f"test_acc@{name}"] = m["test_acc"]
            m[f"test_loss@{name}"] = m["test_loss"]
        m.insert(0, "stage", i)
        m.insert(1, "task", name)
        m.insert(2, "global_step", m["step"] + offset)
        frames.append(m)
        offset += result.summary["steps"]
    metrics = pd.concat(frames, ignore_index=True)
    summary = continual_summary(cfg, metrics, [r.summary for r in results])
    return Stitched(summary=summary, metrics=metrics, model_from=results[-1].directory / MODEL_FILE,
                    figure=continual_figure(metrics, cfg))


def accuracy_matrix(metrics: pd.DataFrame, names: list[str], member: int) -> list[list[float]]:
    """R[i][j]: accuracy on task j after stage i; row 0 is the initial model (stage 1 at step 0)."""
    mm = metrics[metrics.member == member]
    first = mm[(mm.stage == 1) & (mm.step == 0)]
    rows = [[float(first[f"test_acc@{n}"].iloc[0]) for n in names]]
    for i in range(1, len(names)):
        last = mm[mm.stage == i].sort_values("step").iloc[-1]
        rows.append([float(last[f"test_acc@{n}"]) for n in names])
    return rows


def cl_measures(r: list[list[float]], moduli: list[int]) -> dict[str, float]:
    n = len(r)
    final = r[n - 1]
    return {
        "average_accuracy": sum(final) / n,
        "backward_transfer": sum(final[j] - r[j][j] for j in range(n - 1)) / (n - 1),
        "forward_transfer": sum(r[j - 1][j] - 1.0 / moduli[j] for j in range(1, n)) / (n - 1),
        "average_accuracy_seen": [sum(r[i][: i + 1]) / (i + 1) for i in range(n)],  # type: ignore[dict-item]
    }


def _stage_steps(member: dict[str, Any], task: str) -> int | None:
    """Steps to generalise on the stage's new task (a joint stage reports it per task)."""
    tasks = member.get("tasks") or {}
    return tasks[task]["steps_to_generalize"] if task in tasks else member["steps_to_generalize"]


def continual_summary(cfg: RunConfig, metrics: pd.DataFrame, stages: list[dict[str, Any]]) -> dict[str, Any]:
    assert cfg.tasks is not None
    names = [t.name for t in cfg.tasks]
    moduli = [t.modulus for t in cfg.tasks]
    members = []
    for k, m in enumerate(cfg.member_list()):
        r = accuracy_matrix(metrics, names, k)
        previous_min = {}
        for i in range(1, len(names)):  # the lowest accuracy on the task just left, during stage i: forgetting
            col = metrics[(metrics.member == k) & (metrics.stage == i)][f"test_acc@{names[i - 1]}"]
            previous_min[names[i]] = float(col.min())
        members.append({
            "seed": m.seed,
            "failed": any(s["members"][k]["failed"] for s in stages),
            "accuracy_matrix": r,
            **cl_measures(r, moduli),
            "steps_to_generalize_per_stage": {names[i]: _stage_steps(stages[i - 1]["members"][k], names[i])
                                              for i in range(1, len(names))},
            "min_acc_on_previous_task_per_stage": previous_min,
            "final_test_acc": r[-1][-1],
            "final_train_acc": stages[-1]["members"][k]["final_train_acc"],
            "steps_to_generalize": _stage_steps(stages[-1]["members"][k], names[-1]),
        })
    first = stages[0]
    return {
        "name": cfg.name, "recipe": "continual", "task": " -> ".join(names), "tasks": names,
        "distill": cfg.distill is not None,
        "train_fraction": [t.train_fraction for t in cfg.tasks[1:]],
        "steps": int(sum(s["steps"] for s in stages)),
        "wall_seconds": round(sum(s["wall_seconds"] for s in stages), 3),
        "members": members,
        "versions": first.get("versions"), "loss_dtype": first.get("loss_dtype"), "device": first.get("device"),
    }


def plot_continual(metrics: pd.DataFrame, cfg: RunConfig, path: Path) -> None:
    """:func:`continual_figure` written to ``path``."""
    import matplotlib.pyplot as plt

    fig = continual_figure(metrics, cfg)
    atomic_write(path, lambda p: fig.savefig(p, dpi=120, format="png"))
    plt.close(fig)


def continual_figure(metrics: pd.DataFrame, cfg: RunConfig) -> Any:
    """Test accuracy on every task of the sequence against the global step (mean, min-max over members); dotted
    lines where a stage starts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    assert cfg.tasks is not None
    names = [t.name for t in cfg.tasks]
    fig, ax = plt.subplots(figsize=(8, 4.2))
    for j, name in enumerate(names):
        g = metrics.groupby("global_step")[f"test_acc@{name}"]
        mean, lo, hi = g.mean(), g.min(), g.max()
        ax.plot(mean.index, mean.values, color=f"C{j}", label=name)
        ax.fill_between(mean.index, lo.values, hi.values, color=f"C{j}", alpha=0.15)
    for start in metrics.groupby("stage")["global_step"].min().tolist()[1:]:
        ax.axvline(start, color="grey", ls=":", lw=1)
    kd = " with distillation" if cfg.distill is not None else " without distillation"
    ax.set_title(f"{cfg.name}: continual training{kd} (mean, min-max over {metrics.member.nunique()} seeds)",
                 fontsize=9)
    ax.set_xlabel("step (all stages)")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=min(5, len(names)))
    fig.tight_layout()
    return fig


def _check(cfg: RunConfig) -> None:
    if cfg.distill is not None and cfg.distill.teacher_list():
        raise ValueError("continual distils each stage from the model of the stage before: drop `distill.teacher` "
                         "(the other distillation settings apply)")


SECTIONS.add("continual", Section(ContinualConfig))
register(Recipe("continual", stages=stages, finish=finish, sections=("continual", "distill"),
                trained_tasks=lambda cfg: list(cfg.tasks or [])[1:],
                required=("continual",), multi_task=True, needs=frozenset({"shared_vocabulary"}), check=_check,
                summary="a grokked model trained on one task after another, optionally distilled"))
