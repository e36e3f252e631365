"""``grokkit repro``: the paper's figures, each from a figure file that names the sweeps it needs and what to draw.

A figure file (``configs/paper/repro/<name>.yaml``, validated by :class:`FigureSpec`) lists

* ``sweeps``: sweep files (relative to the figure file) run into ``OUT/<key>``; figures that share a sweep share its
  trials (the sweep skips the trials it has finished, so the second figure only draws);
* ``panels``: each a set of ``curves``, a curve being the trials of one sweep whose coordinates match ``where``
  (e.g. ``{case: distill, task.train_fraction: 0.2}``), one metric (``test_acc``, ``weight_norm``,
  ``test_acc@add61``, ...) against ``step`` (or ``global_step`` for continual runs). Each curve is drawn as the mean
  over its seeds with the min-max band shaded.

Outputs in ``OUT``: ``<name>.png``, ``<name>.csv`` (every curve: step, n_seeds, mean, std, min, max) and
``<name>_summary.csv`` / ``.md`` (per curve: seeds, final value; the first step each seed reaches ``reach`` and the
step from which it stays there, held for the trial's hold window, each with the Kaplan–Meier median over seeds and
its interval, a seed that never gets there censored at the end of its run: :mod:`grokkit.analysis.survival`).

A figure can also be redrawn from a sweep's exported evidence (``experiments/export_sweep.py``: ``trials.csv`` and
``curves.csv``) instead of its trial directories: :func:`exported_trials`.
"""

from __future__ import annotations

import math
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from pydantic import BaseModel, ConfigDict, Field, model_validator  # noqa: E402

from grokkit.checkpoint import atomic_write, atomic_write_text  # noqa: E402
from grokkit.config import load_spec, read_yaml  # noqa: E402
from grokkit.errors import InputError
from grokkit.rundir import RunDir  # noqa: E402
from grokkit.tables import markdown_table  # noqa: E402


class ReproError(InputError):
    """A figure that cannot be made: the message says why."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Curve(_Strict):
    label: str
    sweep: str = Field(..., description="key into the figure's `sweeps`")
    where: dict[str, Any] = Field(default_factory=dict, description="sweep coordinates the trials must match")
    y: str | None = Field(None, description="metric column; default: the panel's")
    color: str | None = None
    linestyle: str = "-"


class Panel(_Strict):
    title: str
    y: str = "test_acc"
    ylabel: str | None = None
    x: Literal["step", "global_step"] = "step"
    xscale: Literal["log", "linear"] = "log"
    curves: list[Curve]
    stage_lines: bool = Field(False, description="mark where each continual stage starts")


class FigureSpec(_Strict):
    name: str
    title: str
    caption: str
    sweeps: dict[str, str]
    panels: list[Panel]
    columns: int = Field(2, ge=1)
    reach: float = Field(0.99, description="summary: first step a seed's curve reaches this value")

    @model_validator(mode="after")
    def _check(self) -> FigureSpec:
        for panel in self.panels:
            for curve in panel.curves:
                if curve.sweep not in self.sweeps:
                    raise ValueError(f"panel {panel.title!r}, curve {curve.label!r}: sweep {curve.sweep!r} is not "
                                     f"one of the figure's sweeps {sorted(self.sweeps)}")
        return self


class Published(_Strict):
    """One published number and the measure of our runs it is compared with.

    ``measure`` is ``KIND:METRIC[:VALUE]`` over each seed's ``metrics.csv``: ``first_at_least:test_acc:0.99``
    (the first evaluated step at which the metric is >= VALUE), ``first_below:test_loss:1`` (< VALUE),
    ``lasting:test_acc:0.99`` (the first step from which it stays >= VALUE to the end), ``at:train_loss:1600``
    (the value at the last evaluation at or before step VALUE), ``final:test_acc``; or ``phase:NAME`` (memorised,
    cleanup, generalised: the boundaries :func:`grokkit.analysis.progress.phases` places on the member-mean curves of
    the snapshots). ``low``/``high`` bound the published value (a step range, or a value range); the verdict says
    whether our median over seeds falls inside."""

    measure: str
    text: str = Field(..., description="the published number, as the reference states it")
    source: str = ""
    low: float | None = None
    high: float | None = None

    @model_validator(mode="after")
    def _check(self) -> Published:
        kind, *rest = self.measure.split(":")
        arity = {"first_at_least": 2, "first_below": 2, "lasting": 2, "at": 2, "final": 1, "phase": 1}
        if kind not in arity or len(rest) != arity[kind]:
            raise ValueError(f"measure {self.measure!r}: use one of first_at_least:METRIC:V, first_below:METRIC:V, "
                             "lasting:METRIC:V, at:METRIC:STEP, final:METRIC, phase:memorised|cleanup|generalised")
        if kind == "phase" and rest[0] not in ("memorised", "cleanup", "generalised"):
            raise ValueError(f"measure {self.measure!r}: phases are memorised, cleanup, generalised")
        return self


class ReferenceSpec(_Strict):
    """A reference result of the field at its own settings: one run config (all seeds in one ensemble), its
    progress measures over the run's snapshots, and the published numbers to compare with."""

    kind: Literal["reference"]
    name: str
    title: str
    caption: str
    run: str = Field(..., description="run config, relative to this file")
    published: list[Published]
    cut: str = Field("", description="what the shipped budget cuts from the reference's, said in every summary")


# --------------------------------------------------------------------------------------------------- locating
def figures_dir() -> Path:
    return Path(str(resources.files("grokkit").joinpath("configs", "paper", "repro")))


def available() -> dict[str, Path]:
    """Name -> file, for every figure file and reference file shipped with the package."""
    out = {}
    for path in sorted(figures_dir().glob("*.yaml")):
        data = read_yaml(path, "figure file", ReproError)
        if isinstance(data, dict) and ("panels" in data or data.get("kind") == "reference"):
            out[path.stem] = path
    return out


def load_figure(name_or_path: str | Path) -> tuple[FigureSpec | ReferenceSpec, Path]:
    """A packaged figure or reference by name (``fig3``, ``nanda2023``) or any such file; returns the spec and its
    folder."""
    path = Path(name_or_path)
    if not path.suffix:
        figs = available()
        if str(name_or_path) not in figs:
            raise ReproError(f"unknown figure {name_or_path!r}; available: {', '.join(figs)}")
        path = figs[str(name_or_path)]
    data = read_yaml(path, "figure file", ReproError)
    if isinstance(data, dict) and data.get("kind") == "reference":
        return load_spec(path, ReferenceSpec, "reference file", ReproError)
    return load_spec(path, FigureSpec, "figure file", ReproError)


# --------------------------------------------------------------------------------------------------- data
def _matches(coords: dict[str, Any], where: dict[str, Any]) -> bool:
    for key, want in where.items():
        have = coords.get(key)
        if have is None:  # allow the last component of a dotted key (``train_fraction``)
            have = next((v for k, v in coords.items() if k.split(".")[-1] == key), None)
        if isinstance(want, float) or isinstance(have, float):
            if have is None or not math.isclose(float(have), float(want), rel_tol=1e-9):
                return False
        elif have != want:
            return False
    return True


#: a finished trial of a figure's sweep: its coordinates, its metrics (a trial directory, or its rows as a data frame)
#: and its hold window in steps
TrialCurve = tuple[dict[str, Any], "Path | pd.DataFrame", float]


def sweep_trials(sweep_dir: Path) -> list[TrialCurve]:
    """(coordinates, trial directory, hold window) of every finished trial of a sweep."""
    out = []
    for d in sorted((sweep_dir / "trials").glob("*")):
        run = RunDir(d)
        if run.has_summary() and run.has_metrics():
            out.append((run.read_summary().get("sweep", {}).get("coords", {}), d,
                        float(run.read_config().training.hold_steps())))
    return out


def export_key(trial_id: str) -> str:
    """A trial id without the hash of its required runs' paths (``teachers=h57b104e3``), which differs between
    machines: how an exported trial (``case`` and ``seed`` of ``trials.csv``) is matched to its sweep's trial."""
    import re

    return re.sub(r"=h[0-9a-f]{8}(?=__|$)", "", trial_id)


def trials_by_export_key(sweep_file: Path) -> dict[str, Any]:
    """A sweep file's trials (:class:`grokkit.sweep.spec.Trial`, with their configs) by :func:`export_key`."""
    from grokkit.sweep.spec import expand, load_sweep

    spec, root = load_sweep(sweep_file)
    trials = expand(spec, root, {name: f"/required/{name}" for name in spec.requires})
    return {export_key(t.id): t for t in trials}


def exported_trials(export_dir: Path, sweep_file: Path) -> list[TrialCurve]:
    """The finished trials of a sweep as ``experiments/export_sweep.py`` committed them (``trials.csv``: case and
    seed per trial; ``curves.csv``: every trial's metrics rows), with each trial's coordinates and hold window taken
    from the sweep file's expansion (trial ids are matched without the hash of required runs' paths, which differ
    between machines)."""
    by_id = trials_by_export_key(sweep_file)
    curves = pd.read_csv(export_dir / "curves.csv")
    out = []
    for (case, seed), m in curves.groupby(["case", "seed"], sort=True):
        trial = by_id.get(export_key(f"{case}__seed={seed}"))
        if trial is None:
            raise ReproError(f"{export_dir}: trial {case}__seed={seed} is not one of {sweep_file}'s trials")
        # a column this trial does not have (another trial's, e.g. a staged run's global_step) is all NaN here
        out.append((trial.coords, m.drop(columns=["case"]).dropna(axis=1, how="all").reset_index(drop=True),
                    float(trial.config.training.hold_steps())))
    return out


def curve_table(curve: Curve, panel: Panel, trials: list[TrialCurve]) -> pd.DataFrame:
    """Per-seed values of one curve: columns seed, x, y, stage and the trial's hold window (steps)."""
    y = curve.y or panel.y
    frames = []
    for coords, source, window in trials:
        if not _matches(coords, curve.where):
            continue
        m = source if isinstance(source, pd.DataFrame) else RunDir(source).read_metrics()
        d = source if not isinstance(source, pd.DataFrame) else f"trial {coords}"
        if panel.x == "global_step" and "global_step" not in m.columns:  # a one-stage run: its steps are global
            m = m.assign(global_step=m["step"])
        if y not in m.columns or panel.x not in m.columns:
            raise ReproError(f"curve {curve.label!r}: {d}/metrics.csv has no column {y!r} or {panel.x!r} "
                             f"(columns: {', '.join(m.columns)})")
        frames.append(pd.DataFrame({"seed": coords.get("seed", len(frames)), "x": m[panel.x], "y": m[y],
                                    "stage": m["stage"] if "stage" in m.columns else 0, "window": window}))
    if not frames:
        raise ReproError(f"curve {curve.label!r}: no finished trial of sweep {curve.sweep!r} matches {curve.where}")
    return pd.concat(frames, ignore_index=True)


def aggregate(per_seed: pd.DataFrame) -> pd.DataFrame:
    """Mean, std, min and max over seeds at every x."""
    g = per_seed.groupby("x")["y"]
    return pd.DataFrame({"n_seeds": g.count(), "mean": g.mean(), "std": g.std(ddof=0), "min": g.min(),
                         "max": g.max()}).reset_index()


def first_reach(per_seed: pd.DataFrame, level: float) -> list[float | None]:
    out: list[float | None] = []
    for _, df in per_seed.groupby("seed"):
        hit = df[df.y >= level]
        out.append(float(hit.x.iloc[0]) if len(hit) else None)
    return out


def lasting_reach(per_seed: pd.DataFrame, level: float, window: float | None = None) -> list[float | None]:
    """Per seed: the first x from which the curve stays >= ``level`` to its end, held for at least ``window`` steps
    (default: each seed's ``window`` column, its trial's hold window) before the end (:func:`grokkit.engine.
    lasting_step`; None if its last value is below, or if it held for less than the window)."""
    from grokkit.engine import lasting_step

    out: list[float | None] = []
    for _, df in per_seed.groupby("seed"):
        df = df.sort_values("x")
        w = float(df["window"].iloc[0]) if window is None else window
        hit = lasting_step(df.x.tolist(), df.y.tolist(), level, w)
        out.append(None if hit is None else float(hit))
    return out


def _km_text(values: list[float | None], ends: list[float]) -> str:
    """The Kaplan–Meier median over seeds of per-seed steps (None: not reached by the end of that seed's curve,
    censored there), printed as every table prints it (:func:`grokkit.analysis.survival.format_median`)."""
    from grokkit.analysis.survival import km_summary

    if not values:
        return ""
    durations = [v if v is not None else e for v, e in zip(values, ends)]
    return km_summary(durations, [v is not None for v in values], max(ends)).median_text()


# --------------------------------------------------------------------------------------------------- making
def make_figure(spec: FigureSpec, out: Path, trials_of: dict[str, list[TrialCurve]] | None = None) -> dict[str, Any]:
    """Draw a figure from sweeps already run into ``out/<sweep key>`` (or from ``trials_of``, per sweep key, e.g.
    :func:`exported_trials`); writes PNG, CSV and summary."""
    out = Path(out)
    rows, summary_rows = [], []
    n = len(spec.panels)
    cols = min(spec.columns, n)
    nrows = math.ceil(n / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(5.2 * cols, 3.9 * nrows + 0.9), squeeze=False)
    if trials_of is None:
        trials_of = {key: sweep_trials(out / key) for key in spec.sweeps}
    for i, panel in enumerate(spec.panels):
        ax = axes[i // cols][i % cols]
        stage_starts: set[float] = set()
        for j, curve in enumerate(panel.curves):
            per_seed = curve_table(curve, panel, trials_of[curve.sweep])
            agg = aggregate(per_seed)
            if panel.stage_lines:
                stage_starts |= set(per_seed.groupby("stage").x.min().tolist()) - {per_seed.x.min()}
            shown = agg[agg.x > 0] if panel.xscale == "log" else agg
            color = curve.color or f"C{j % 10}"
            ax.plot(shown.x, shown["mean"], curve.linestyle, color=color, label=curve.label, lw=1.6)
            ax.fill_between(shown.x, shown["min"], shown["max"], color=color, alpha=0.18, lw=0)
            rows.append(agg.assign(panel=panel.title, curve=curve.label, metric=curve.y or panel.y))
            last = per_seed.sort_values("x").groupby("seed").y.last()
            metric = curve.y or panel.y
            reach = first_reach(per_seed, spec.reach) if "acc" in metric else []  # a level only accuracy has
            hit = [r for r in reach if r is not None]
            lasting = lasting_reach(per_seed, spec.reach) if "acc" in metric else []
            held = [r for r in lasting if r is not None]
            ends = per_seed.groupby("seed").x.max().astype(float).tolist()
            summary_rows.append({
                "panel": panel.title, "curve": curve.label, "metric": metric,
                "n_seeds": int(last.size), "final_mean": float(last.mean()), "final_min": float(last.min()),
                "final_max": float(last.max()), f"seeds_reaching_{spec.reach:g}": len(hit),
                f"km_median_{panel.x}_to_{spec.reach:g}": _km_text(reach, ends),
                f"{panel.x}_to_{spec.reach:g}_per_seed": " ".join("-" if r is None else f"{r:g}" for r in reach),
                f"seeds_lasting_{spec.reach:g}": len(held),
                f"km_median_{panel.x}_lasting_{spec.reach:g}": _km_text(lasting, ends),
                f"{panel.x}_lasting_{spec.reach:g}_per_seed": " ".join("-" if r is None else f"{r:g}" for r in lasting),
                "peak_of_mean": float(agg["mean"].max()), f"{panel.x}_of_peak": float(agg.x[agg["mean"].idxmax()]),
            })
        for s in sorted(stage_starts):
            ax.axvline(s, color="0.6", lw=0.8, ls=":")
        ax.set_xscale(panel.xscale)
        ax.set_title(panel.title, fontsize=10)
        ax.set_xlabel("optimisation step" if panel.x == "step" else "step (all stages)")
        ax.set_ylabel(panel.ylabel or panel.y)
        if "acc" in panel.y:
            ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    for k in range(n, nrows * cols):
        axes[k // cols][k % cols].set_visible(False)
    fig.suptitle(spec.title, fontsize=11)
    fig.text(0.5, 0.005, spec.caption, ha="center", va="bottom", fontsize=7, wrap=True)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / f"{spec.name}.png", lambda p: fig.savefig(p, dpi=120, format="png"))
    plt.close(fig)
    curves = pd.concat(rows, ignore_index=True)[["panel", "curve", "metric", "x", "n_seeds", "mean", "std", "min",
                                                  "max"]]
    atomic_write_text(out / f"{spec.name}.csv", curves.to_csv(index=False))
    summary = pd.DataFrame(summary_rows)
    atomic_write_text(out / f"{spec.name}_summary.csv", summary.to_csv(index=False))
    atomic_write_text(out / f"{spec.name}_summary.md", f"# {spec.title}\n\n{spec.caption}\n\n"
                      f"<!-- data: ./{spec.name}_summary.csv -->\n" + markdown_table(summary.round(3)) + "\n")
    return {"png": out / f"{spec.name}.png", "csv": out / f"{spec.name}.csv", "summary": summary}


# --------------------------------------------------------------------------------------------------- references
def _first(steps: np.ndarray, hit: np.ndarray) -> float | None:
    return float(steps[hit.argmax()]) if hit.any() else None


def measure_seed(metrics: pd.DataFrame, measure: str, window: float) -> float | None:
    """One seed's value of a :class:`Published` measure (not ``phase:``) from its metrics rows; ``lasting:`` must
    hold for ``window`` steps (the run's hold window) before the run's end."""
    kind, metric, *rest = measure.split(":")
    m = metrics.sort_values("step")
    if metric not in m.columns:
        raise ReproError(f"measure {measure!r}: metrics.csv has no column {metric!r} (has {', '.join(m.columns)})")
    steps, y = m.step.to_numpy(), m[metric].to_numpy(dtype=float)
    value = float(rest[0]) if rest else None
    if kind == "first_at_least":
        return _first(steps, y >= value)
    if kind == "first_below":
        return _first(steps, y < value)
    if kind == "lasting":
        from grokkit.engine import lasting_step

        start = lasting_step(steps.tolist(), y.tolist(), value, window)
        return None if start is None else float(start)
    if kind == "at":
        before = steps <= value
        return float(y[before][-1]) if before.any() else None
    return float(y[-1])  # final


def _summarise(values: list[float | None], horizon: float, is_step: bool) -> tuple[float | None, str]:
    """The median over seeds (None if the data cannot give it) and a text with every seed, censored ones shown as
    '> horizon'. A step is time to an event: the Kaplan–Meier median with its interval, a seed that never gets there
    censored at the horizon (:mod:`grokkit.analysis.survival`); a value (``at:``, ``final:``) is a plain median."""
    from grokkit.analysis.survival import km_summary

    reached = [v for v in values if v is not None]
    fmt = (lambda v: f"{v:,.0f}") if is_step else (lambda v: f"{v:.3g}")
    per_seed = " / ".join(fmt(v) if v is not None else f"> {horizon:,.0f}" for v in values)
    if is_step:
        km = km_summary([v if v is not None else horizon for v in values], [v is not None for v in values], horizon)
        median = None if not math.isfinite(km.median) else km.median
        return median, f"{km.median_text()} (seeds: {per_seed})"
    if len(reached) * 2 <= len(values):
        return None, f"not reached by most seeds ({per_seed})"
    med = float(np.median([v if v is not None else math.inf for v in values]))
    return med, f"{fmt(med)} (seeds: {per_seed})"


def verdict(p: Published, median: float | None, horizon: float, is_step: bool) -> str:
    if p.low is None and p.high is None:
        return "no range given"
    if median is None:
        if is_step and p.low is not None and p.low > horizon:
            return "not reached: the published value lies beyond our budget"
        return "**not reproduced** (not reached)"
    if (p.low is None or median >= p.low) and (p.high is None or median <= p.high):
        return "**reproduced** (inside the published range)"
    side = "earlier" if is_step else "lower"
    if p.high is not None and median > p.high:
        side = "later" if is_step else "higher"
    return f"**differs**: {side} than the published range"


def make_reference(spec: ReferenceSpec, out: Path) -> dict[str, Any]:
    """Summaries, figure and CSV of a finished reference run in ``out/<name>``."""
    import shutil

    from grokkit.analysis.progress import OVER_TIME_FILES, AnalysisError, analyze_run, write_analysis

    run_dir = RunDir(out / spec.name)
    metrics = run_dir.read_metrics()
    horizon = float(metrics.step.max())
    window = float(run_dir.read_config().training.hold_steps())
    bounds: dict[str, int | None] = {}
    try:
        result = analyze_run(run_dir.path)
        write_analysis(result, run_dir.path)  # places the phases when the run has snapshots
        bounds = result.get("phases", {})
    except AnalysisError as err:
        if any(p.measure.startswith("phase:") for p in spec.published):
            raise ReproError(f"{spec.name}: cannot place the phases: {err}") from None
    rows = []
    seeds = sorted(metrics.seed.unique())
    for p in spec.published:
        kind, *rest = p.measure.split(":")
        is_step = kind in ("first_at_least", "first_below", "lasting", "phase")
        if kind == "phase":
            value = bounds.get(rest[0])
            median, text = (float(value), f"{value:,} (member-mean curves)") if value is not None else \
                (None, "not reached")
        else:
            values = [measure_seed(metrics[metrics.seed == s], p.measure, window) for s in seeds]
            median, text = _summarise(values, horizon, is_step)
        rows.append({"measure": p.measure, "published": p.text, "source": p.source, "low": p.low, "high": p.high,
                     "ours": text, "ours_median": median, "seeds": len(seeds), "steps_run": int(horizon),
                     "verdict": verdict(p, median, horizon, is_step)})
    summary = pd.DataFrame(rows)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / f"{spec.name}_summary.csv", summary.to_csv(index=False))
    shown = summary[["measure", "published", "ours", "verdict"]]
    cut = f"\n\nCut: {spec.cut}" if spec.cut else ""
    atomic_write_text(out / f"{spec.name}_summary.md", f"# {spec.title}\n\n{spec.caption}{cut}\n\n"
                      f"<!-- data: ./{spec.name}_summary.csv; columns: measure=measure, published=published, "
                      f"ours=ours, verdict=verdict -->\n" + markdown_table(shown) + "\n")
    curves = (metrics.groupby("step")[[c for c in ("train_loss", "test_loss", "train_acc", "test_acc", "weight_norm")
                                        if c in metrics.columns]].agg(["mean", "min", "max"]))
    curves.columns = [f"{a}_{b}" for a, b in curves.columns]
    atomic_write_text(out / f"{spec.name}.csv", curves.reset_index().to_csv(index=False))
    table, figure = (run_dir.path / f for f in OVER_TIME_FILES)
    if figure.exists():
        shutil.copyfile(figure, out / f"{spec.name}.png")
        shutil.copyfile(table, out / f"{spec.name}_over_time.csv")
    else:
        shutil.copyfile(run_dir.path / "curves.png", out / f"{spec.name}.png")
    return {"png": out / f"{spec.name}.png", "csv": out / f"{spec.name}.csv", "summary": summary}


def repro_reference(spec: ReferenceSpec, root: Path, out: Path, overrides: list[str], log: Any) -> dict[str, Any]:
    from grokkit.api import run
    from grokkit.config import load_config

    cfg = load_config(root / spec.run, overrides)
    log(f"{spec.name}: run {spec.run} -> {out / spec.name}")
    run(cfg, out / spec.name, progress=False, log=log)
    return make_reference(spec, out)


def repro(name: str | Path, out: str | Path, executor: str = "local", workers: int = 1,
          overrides: list[str] | None = None, log: Any = print) -> dict[str, Any]:
    """Run the sweeps a figure needs (resuming / skipping finished trials), then draw it; or run a reference's run
    (resuming it), analyse it and compare it with the published numbers."""
    from grokkit.sweep import load_sweep, run_sweep

    spec, root = load_figure(name)
    out = Path(out)
    if isinstance(spec, ReferenceSpec):
        return repro_reference(spec, root, out, overrides or [], log)
    for key, rel in spec.sweeps.items():
        sweep_spec, sweep_root = load_sweep(root / rel)
        if overrides:
            sweep_spec = sweep_spec.with_overrides(overrides)
        log(f"{spec.name}: sweep {key} ({rel}) -> {out / key}")
        result = run_sweep(sweep_spec, sweep_root, out / key, executor=executor, workers=workers, log=log)
        errors = [t for t, v in result.outcomes.items() if v.startswith("error")]
        if errors:
            raise ReproError(f"sweep {key}: {len(errors)} trial(s) failed, e.g. {errors[0]} (see its error.json); "
                             "re-run to retry them")
    return make_figure(spec, out)
