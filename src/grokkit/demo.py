"""The headline: a teacher grokked on (a + b) mod 113 makes a student on mod 107 with 20% of the pairs generalise,
where the same student trained from scratch does not.

Three runs, each an ordinary run directory under ``out``: ``teacher/``, ``distill/`` and ``scratch/`` (students of
the same seeds and step budget), then ``headline.csv`` (per seed), ``headline_summary.csv`` (per group: lasting
generalisation held for the hold window as censored data, the Kaplan–Meier median step with its interval and the
log-rank p-value against scratch: :mod:`grokkit.analysis.survival`), ``headline.md`` and ``comparison.png``.
"""

from __future__ import annotations

import time
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console
from rich.table import Table

from grokkit.api import run
from grokkit.checkpoint import atomic_write, atomic_write_text
from grokkit.config import RunConfig, apply_overrides, parse_config
from grokkit.plots import plot_groups
from grokkit.rundir import RunDir
from grokkit.sections import TrainingConfig
from grokkit.tables import cell, markdown_table  # noqa: F401 (markdown_table: re-exported)
from grokkit.yamlio import load_yaml_text

CONFIGS = ("teacher_add113.yaml", "student_add107_distill.yaml", "student_add107_scratch.yaml")


def packaged_config(name: str) -> RunConfig:
    text = resources.files("grokkit").joinpath("configs", "paper", name).read_text()
    return parse_config(load_yaml_text(text), f"configs/paper/{name}")


def _with(cfg: RunConfig, overrides: list[str]) -> RunConfig:
    return parse_config(apply_overrides(cfg.model_dump(mode="json"), overrides), cfg.name)


def run_demo(out: str | Path, n_seeds: int | None = None, student_steps: int | None = None,
             progress: bool | None = None, configs: tuple[RunConfig, RunConfig, RunConfig] | None = None
             ) -> pd.DataFrame:
    """Train the teacher, then distilled and from-scratch students; ``configs`` (teacher, distilled student,
    scratch student) default to the packaged ``configs/paper`` files."""
    out = Path(out)
    console = Console(stderr=True, soft_wrap=True)
    student_overrides = [f"seeds={list(range(n_seeds))}"] if n_seeds else []
    student_overrides += [f"training.steps={student_steps}"] if student_steps else []
    teacher_cfg, distill_cfg, scratch_cfg = configs or tuple(packaged_config(name) for name in CONFIGS)
    distill_cfg = _with(distill_cfg, student_overrides + [f"distill.teacher={out / 'teacher'}"])
    scratch_cfg = _with(scratch_cfg, student_overrides)
    t0 = time.perf_counter()
    console.print(f"[bold]1/3[/] teacher: {teacher_cfg.task.op} mod {teacher_cfg.task.modulus}, "
                  f"{teacher_cfg.task.train_fraction:.0%} of pairs")
    teacher = run(teacher_cfg, out / "teacher", progress=progress)
    if teacher["members"][0]["steps_to_generalize"] is None:
        console.print("[yellow]warning:[/] the teacher did not reach the generalisation threshold; "
                      "the students learn from an imperfect teacher")
    n_seeds = len(distill_cfg.member_list())
    console.print(f"[bold]2/3[/] {n_seeds} students distilled from it (mod {distill_cfg.task.modulus}, "
                  f"{distill_cfg.task.train_fraction:.0%} of pairs)")
    distill = run(distill_cfg, out / "distill", progress=progress)
    console.print(f"[bold]3/3[/] {n_seeds} students from scratch, same data and step budget")
    scratch = run(scratch_cfg, out / "scratch", progress=progress)
    total = time.perf_counter() - t0
    table = headline_table({"distilled": distill, "scratch": scratch})
    summary = headline_summary(table, {"distilled": distill_cfg.training, "scratch": scratch_cfg.training})
    atomic_write(out / "headline.csv", lambda p: table.to_csv(p, index=False))
    atomic_write(out / "headline_summary.csv", lambda p: summary.to_csv(p, index=False))
    groups = {
        f"distilled from mod-{teacher_cfg.task.modulus} teacher": RunDir(out / "distill").read_metrics(),
        "from scratch": RunDir(out / "scratch").read_metrics(),
    }
    plot_groups(groups, out / "comparison.png",
                f"(a+b) mod {distill_cfg.task.modulus}, {distill_cfg.task.train_fraction:.0%} of pairs: "
                f"distillation ({distill_cfg.distill.position if distill_cfg.distill else ''} position) vs scratch")
    teacher_line = (f"teacher: {teacher['task']}, {teacher_cfg.task.train_fraction:.0%} of pairs, "
                    f"steps_to_generalize={teacher['members'][0]['steps_to_generalize']}, "
                    f"test acc {teacher['members'][0]['final_test_acc']:.4f}, {teacher['wall_seconds']:.0f} s")
    md = [f"# Headline ({time.strftime('%Y-%m-%d')})", "", teacher_line, "",
          "<!-- data: ./headline.csv -->", markdown_table(table), "",
          '<!-- data: ./headline_summary.csv; columns: "generalised (lasting)"=generalized+n, "median lasting '
          'step [95% CI]"=km_median_text, "log-rank p vs scratch"=logrank_p -->',
          markdown_table(show_summary(summary)), "",
          f"total wall-clock: {total:.0f} s (teacher {teacher['wall_seconds']:.0f} s, distilled students "
          f"{distill['wall_seconds']:.0f} s, scratch students {scratch['wall_seconds']:.0f} s)"]
    atomic_write_text(out / "headline.md", "\n".join(md) + "\n")
    _print_table(console, table, teacher_line, total)
    readable_console(console).print(markdown_table(show_summary(summary)), highlight=False, markup=False)
    return table


def headline_table(runs: dict[str, dict[str, Any]]) -> pd.DataFrame:
    rows = []
    for group, summary in runs.items():
        for m in summary["members"]:
            rows.append({"group": group, "seed": m["seed"], "steps_to_generalize": m["steps_to_generalize"],
                         "steps_to_generalize_lasting": m.get("steps_to_generalize_lasting"),
                         "final_test_acc": round(m["final_test_acc"], 4) if m["final_test_acc"] is not None else None,
                         "final_train_acc": round(m["final_train_acc"], 4) if m["final_train_acc"] is not None
                         else None, "steps": summary["steps"]})
    table = pd.DataFrame(rows)
    for c in ("steps_to_generalize", "steps_to_generalize_lasting"):
        table[c] = table[c].astype("Int64")
    return table


def headline_summary(table: pd.DataFrame, trainings: dict[str, TrainingConfig], control: str = "scratch"
                     ) -> pd.DataFrame:
    """Per group of :func:`headline_table`: lasting generalisation (held for the group's hold window, a seed that
    did not generalise censored at the end of its run) as censored data: seeds that generalised of all, the
    Kaplan–Meier median step and its 95% interval, and the log-rank p-value against the ``control`` group."""
    from grokkit.analysis.survival import arms_table, table_outcomes

    frames = []
    for group, g in table.groupby("group", sort=False):
        tc = trainings[str(group)]
        g = g.assign(**{"training.steps": tc.steps, "training.hold_window": tc.hold_window})
        frames.append(pd.concat([g[["group"]], table_outcomes(g)], axis=1))
    budget = max(tc.steps for tc in trainings.values())
    return arms_table(pd.concat(frames), "group", control, budget=float(budget))


def show_summary(summary: pd.DataFrame, control: str = "scratch") -> pd.DataFrame:
    """:func:`headline_summary` as printed: counts, the median with its interval, the p-value."""
    from grokkit.analysis.survival import format_p

    return pd.DataFrame({"group": summary.group,
                         "generalised (lasting)": [f"{k}/{n}" for k, n in zip(summary.generalized, summary.n)],
                         "median lasting step [95% CI]": summary.km_median_text,
                         f"log-rank p vs {control}": [format_p(p) for p in summary.logrank_p]})


#: width of tables printed to something that is not a terminal (a log file, a pipe): wide enough not to cut a column
LOG_WIDTH = 200


def readable_console(console: Console) -> Console:
    """``console`` itself on a terminal; otherwise a console on the same stream that is wide enough for a table to be
    printed in full (rich assumes 80 columns off a terminal, and cuts cells to ``steps_to_gener…``)."""
    if console.is_terminal:
        return console
    return Console(file=console.file, width=max(console.width, LOG_WIDTH), soft_wrap=True)


def _print_table(console: Console, table: pd.DataFrame, teacher_line: str, total: float) -> None:
    console = readable_console(console)
    t = Table(title="mod-107 students on 20% of the pairs")
    for c in table.columns:
        t.add_column(c, no_wrap=True)
    for row in table.itertuples(index=False):
        t.add_row(*(cell(v) for v in row))
    console.print(teacher_line, highlight=False)
    console.print(t)
    console.print(f"total wall-clock: {total:.0f} s", highlight=False)
