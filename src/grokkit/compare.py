"""``grokkit compare``: one table that ranks methods of inducing grokking, over seeds, on several settings.

A comparison file names one sweep per *setting* (e.g. mod-113 addition at 30%); each sweep's ``cases`` are the
*methods* (scratch, StableMax, ⊥AdamW, Grokfast, GrokTransfer, distillation, combinations). The sweeps run as usual
(packed, resumable); the table then reads their results stores:

* steps to lasting generalisation (held for each trial's hold window) per method as censored data
  (:mod:`grokkit.analysis.survival`): the Kaplan–Meier median with its 95% interval, a seed that never generalised
  censored at the end of its run (so the median reads ``> budget`` once the data cannot give it), and the log-rank
  p-value against the ``control`` method (default ``scratch``) of the same setting;
* how many seeds generalised;
* wall-clock: seconds per 1,000 steps of one member (the packed ensemble's time shared among its members), and the
  median time to generalise, which adds the method's one-off costs (a GrokTransfer weak model, per trial) given by
  ``extra_cost`` columns of the results store; a distillation teacher is trained once per sweep and reported apart.

Outputs: ``OUT/compare.csv``, ``OUT/compare.md`` and ``OUT/compare.png`` (steps to generalise per seed, per method).
"""

from __future__ import annotations

import json
import math
import textwrap
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from pydantic import BaseModel, ConfigDict, Field  # noqa: E402

from grokkit.checkpoint import atomic_write, atomic_write_text  # noqa: E402
from grokkit.config import load_spec  # noqa: E402
from grokkit.errors import InputError
from grokkit.plots import readable_log_axis  # noqa: E402
from grokkit.rundir import RunDir  # noqa: E402
from grokkit.tables import markdown_table  # noqa: E402


class CompareError(InputError):
    """A comparison that cannot be made: the message says why."""


class Setting(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    sweep: str = Field(..., description="sweep file, relative to the comparison file; its cases are the methods")
    overrides: dict[str, Any] = Field(default_factory=dict, description="dotted overrides of the sweep's base")


class CompareSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = "compare"
    title: str
    caption: str = ""
    settings: dict[str, str | Setting] = Field(..., min_length=1, description="setting label -> sweep file (its "
                                               "cases are the methods), or {sweep, overrides}")
    extra_cost: list[str] = Field(default_factory=list, description="results columns (seconds) added to a trial's "
                                  "time to generalise, e.g. a GrokTransfer weak model's wall-clock")
    control: str = Field("scratch", description="the method every other is tested against (log-rank), where a "
                         "setting has it")


def load_compare(path: str | Path) -> tuple[CompareSpec, Path]:
    return load_spec(path, CompareSpec, "comparison file", CompareError)


def _setting_key(label: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in label)


def _required_costs(sweep_dir: Path) -> dict[str, float]:
    out = {}
    for d in sorted((sweep_dir / "requires").glob("*")):
        if RunDir(d).has_summary():
            out[d.name] = float(RunDir(d).read_summary().get("wall_seconds", 0.0))
    return out


def method_rows(table: pd.DataFrame, setting: str, extra_cost: list[str], control: str | None = "scratch"
                ) -> list[dict[str, Any]]:
    """One row per method (case) of one setting's results table: lasting generalisation (held for the hold window)
    as censored data, a seed that did not generalise censored at the end of its run."""
    from grokkit.analysis.survival import km_of, km_summary, logrank_p, table_outcomes

    rows, outcomes = [], {}
    order = list(dict.fromkeys(table["case"])) if "case" in table else ["base"]
    for method in order:
        t = table[table["case"] == method] if "case" in table else table
        t = t[t["status"].isin(["ok", "failed"])]
        if not len(t):
            continue
        budget = int(pd.to_numeric(t["training.steps"] if "training.steps" in t else t["steps"]).max())
        # generalisation that lasted (stays at or above the threshold to the end, for the hold window)
        column = "steps_to_generalize_lasting" if "steps_to_generalize_lasting" in t else "steps_to_generalize"
        out = outcomes[method] = table_outcomes(t, column)
        km = km_of(out, budget)
        extra = np.zeros(len(t))
        for col in extra_cost:
            if col in t:
                extra += pd.to_numeric(t[col], errors="coerce").fillna(0.0).to_numpy()
        # a trial's wall-clock includes its one-off costs: the rate per step is what is left per step
        per_1k = float(np.median((t["wall_seconds"].to_numpy() - extra) / t["steps"].to_numpy()) * 1000)
        seconds = out.duration.to_numpy() * per_1k / 1000 + extra
        time_km = km_summary(seconds, out.event.to_numpy(), float(budget * per_1k / 1000 + extra.max()))
        rows.append({
            "setting": setting, "method": method, "n_seeds": km.n, "generalized": km.generalized,
            "km_median": km.median, "km_median_low": km.median_low, "km_median_high": km.median_high,
            "km_median_text": km.median_text(), "budget": budget,
            "steps_per_seed": " ".join(f"{d:g}" if e else "-" for d, e in zip(out.duration, out.event)),
            "final_test_acc_median": float(t["final_test_acc"].median()),
            "seconds_per_1k_steps": per_1k, "extra_seconds_median": float(np.median(extra)),
            "median_seconds_to_generalize": time_km.median, "budget_seconds": time_km.budget,
        })
    for row in rows:
        has_control = control in outcomes and row["method"] != control
        row["logrank_p"] = logrank_p(outcomes[row["method"]], outcomes[control]) if has_control else math.nan
    return rows


def markdown(df: pd.DataFrame, control: str = "scratch") -> str:
    from grokkit.analysis.survival import format_p, format_step

    show = pd.DataFrame({
        "setting": df.setting, "method": df.method,
        "generalised": [f"{g}/{n}" for g, n in zip(df.generalized, df.n_seeds)],
        "median steps [95% CI]": df.km_median_text,
        f"log-rank p vs {control}": [format_p(p) for p in df.logrank_p],
        "steps per seed": df.steps_per_seed,
        "final test acc (median)": [f"{v:.3f}" for v in df.final_test_acc_median],
        "s / 1k steps": [f"{v:.1f}" for v in df.seconds_per_1k_steps],
        "median s to generalise": [format_step(v, b) for v, b in zip(df.median_seconds_to_generalize,
                                                                     df.budget_seconds)],
    })
    return markdown_table(show)


def plot(df: pd.DataFrame, tables: dict[str, pd.DataFrame], path: Path, title: str) -> None:
    settings = list(dict.fromkeys(df.setting))
    fig, axes = plt.subplots(1, len(settings), figsize=(5.0 * len(settings), 4.2), squeeze=False)
    for ax, setting in zip(axes[0], settings):
        sub = df[df.setting == setting]
        for i, row in enumerate(sub.itertuples()):
            steps = [float(s) if s != "-" else np.nan for s in row.steps_per_seed.split()]
            hit = [s for s in steps if np.isfinite(s)]
            miss = sum(not np.isfinite(s) for s in steps)
            jitter = np.linspace(-0.15, 0.15, max(len(steps), 1))[: len(hit)]
            ax.scatter(i + jitter, hit, s=18, color=f"C{i % 10}")
            if miss:
                ax.scatter([i] * miss, [row.budget * 1.15] * miss, marker="^", s=30, facecolors="none",
                           edgecolors=f"C{i % 10}")
            if np.isfinite(row.km_median):
                ax.hlines(row.km_median, i - 0.3, i + 0.3, color="k", lw=1.5)
        ax.axhline(sub.budget.max(), color="0.6", ls=":", lw=0.8)
        ax.set_xticks(range(len(sub)), sub.method, rotation=45, ha="right", fontsize=8)
        ax.set_yscale("log")
        readable_log_axis(ax, "y")
        ax.set_ylabel("steps to lasting generalisation (held for the hold window)")
        ax.set_title(setting, fontsize=10)
        ax.grid(alpha=0.3, axis="y")
    legend = "(dots: seeds; bar: Kaplan-Meier median; open triangles: not generalised within the budget)"
    width = int(13 * 5.0 * len(settings))  # characters that fit the figure's width at fontsize 10
    fig.suptitle("\n".join(textwrap.fill(line, width) for line in (title, legend)), fontsize=10)
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, dpi=120, format="png"))
    plt.close(fig)


def compare(path: str | Path, out: str | Path, executor: str = "local", workers: int = 1,
            overrides: list[str] | None = None, log: Any = print, run: bool = True) -> pd.DataFrame:
    """Run (or resume) every setting's sweep into ``out/<setting>``, then write the comparison table and figure."""
    from grokkit.sweep import load_sweep, run_sweep
    from grokkit.sweep.store import read_table

    spec, root = load_compare(path)
    out = Path(out)
    rows, tables, teachers = [], {}, []
    for setting, entry in spec.settings.items():
        sweep_dir = out / _setting_key(setting)
        if isinstance(entry, str):
            entry = Setting(sweep=entry)
        if run:
            sweep_spec, sweep_root = load_sweep(root / entry.sweep)
            items = [f"{k}={json.dumps(v)}" for k, v in entry.overrides.items()] + list(overrides or [])
            if items:
                sweep_spec = sweep_spec.with_overrides(items)
            log(f"{setting}: sweep {entry.sweep} {' '.join(items)} -> {sweep_dir}")
            run_sweep(sweep_spec, sweep_root, sweep_dir, executor=executor, workers=workers, log=log)
        if not (sweep_dir / "results.parquet").exists():
            raise CompareError(f"setting {setting!r}: no results in {sweep_dir}; run the comparison first")
        table = read_table(sweep_dir)
        tables[setting] = table
        rows += method_rows(table, setting, spec.extra_cost, spec.control)
        teachers += [f"{setting}: {name} {sec:.0f} s" for name, sec in _required_costs(sweep_dir).items()]
    if not rows:
        raise CompareError("no finished trial in any setting")
    df = pd.DataFrame(rows)
    df.attrs["control"] = spec.control
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / f"{spec.name}.csv", df.to_csv(index=False))
    once = ("\n\nTrained once per setting and shared by its trials (not in the per-trial times): "
            + "; ".join(teachers) + ".") if teachers else ""
    marker = (f'<!-- data: ./{spec.name}.csv; columns: generalised=generalized+n_seeds, "median steps [95% CI]"='
              f'km_median_text, "log-rank p vs {spec.control}"=logrank_p, "steps per seed"=steps_per_seed, '
              '"final test acc (median)"=final_test_acc_median, "s / 1k steps"=seconds_per_1k_steps, '
              '"median s to generalise"=median_seconds_to_generalize -->\n')
    atomic_write_text(out / f"{spec.name}.md", f"# {spec.title}\n\n{spec.caption}{once}\n\n" + marker
                      + markdown(df, spec.control) + "\n")
    plot(df, tables, out / f"{spec.name}.png", spec.title)
    return df
