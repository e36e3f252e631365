"""``grokkit report DIR``: one static, self-contained HTML file with every figure and table of a run, a sweep, or a
folder of finished runs (e.g. the demo's ``teacher/``, ``distill/``, ``scratch/`` with its ``headline.md``).

A directory that lacks something the report shows (an unfinished or killed run without ``summary.json``, a missing
or unreadable ``metrics.csv``, a sweep without ``results.parquet`` or with unfinished trials) is refused, naming what
is missing, unless ``partial=True`` (``--partial``): then the report draws what there is under a banner that lists
what is missing, so that a partial page is never mistaken for a complete one.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

import pandas as pd

from grokkit.checkpoint import atomic_write_text
from grokkit.errors import InputError
from grokkit.rundir import CONFIG_FILE, RunDir, RunError

STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}
.partial{background:#fff3cd;border:2px solid #d39e00;padding:6px 14px;margin:1em 0}
table{border-collapse:collapse;font-size:13px;margin:0.5em 0}td,th{border:1px solid #ccc;padding:3px 7px;
text-align:right}th{background:#f3f3f3}img{max-width:100%;border:1px solid #eee}pre{background:#f7f7f7;
padding:8px;font-size:12px;overflow-x:auto}h2{border-bottom:1px solid #ddd;padding-bottom:3px}"""


class ReportError(InputError):
    pass


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(path.name)}" src="data:image/png;base64,{data}">'


def _fig_img(fig: object) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)  # type: ignore[attr-defined]
    plt.close(fig)  # type: ignore[arg-type]
    return f'<img src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def _table(df: pd.DataFrame) -> str:
    return df.to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="—", border=0)


def _lasting_line(rd: RunDir, s: dict[str, Any]) -> str:
    """The run's members as censored data: how many generalised for good (held for the hold window) and the
    Kaplan–Meier median step with its interval (``> budget`` where the data cannot give it)."""
    from grokkit.analysis.survival import km_summary, time_to_event

    training = rd.read_config().training
    window = training.hold_steps()
    pairs = [time_to_event(m.get("steps_to_generalize_lasting"), s["steps"], window) for m in s["members"]]
    km = km_summary([d for d, _ in pairs], [e for _, e in pairs], float(training.steps))
    return (f"<p>generalised for good (test accuracy &ge; {s.get('generalization_threshold', '?')} to the end, held "
            f"for the hold window of {window} steps): <b>{km.count_text()}</b> members; Kaplan&ndash;Meier median "
            f"lasting step [95% CI]: <b>{html.escape(km.median_text())}</b></p>")


def _run_sections(d: Path, missing: list[str]) -> list[str]:
    """A run's sections; what the run lacks is appended to ``missing`` (and left out of the page)."""
    rd = RunDir(d)
    s = None
    if not rd.has_summary():
        missing.append(f"{rd.summary_path} is missing: the run has not finished (or was stopped); its outcome table "
                       "is not shown" + (" and its curves are those of its last checkpoint" if rd.has_metrics()
                                         else ""))
    else:
        try:
            s = rd.read_summary()
            s["members"], s["recipe"]  # noqa: B018 - what the page reads
        except (RunError, KeyError) as err:
            missing.append(f"{rd.summary_path} cannot be read ({err}); its outcome table is not shown")
            s = None
    name = s.get("name", d.name) if s is not None else d.name
    out = [f"<h2>Run {html.escape(str(name))}</h2>"]
    if s is not None:
        out += [f"<p>recipe <b>{s['recipe']}</b>, task <b>{s.get('task')}</b>, train fraction "
                f"{s.get('train_fraction')}, {s.get('steps')} steps, {float(s.get('wall_seconds', 0.0)):.1f} s "
                f"wall-clock on {s.get('device', '?')}</p>", _lasting_line(rd, s), _table(pd.DataFrame(s["members"]))]
    for png in sorted(d.glob("*.png")):
        out.append(f"<h3>{html.escape(png.name)}</h3>{_img(png)}")
    metrics = None
    if not rd.has_metrics():
        missing.append(f"{rd.metrics_path} is missing: no loss and weight-norm figure")
    else:
        try:
            metrics = rd.read_metrics()
        except RunError as err:
            missing.append(f"{err}: no loss and weight-norm figure")
    if metrics is not None:
        fig = loss_and_norm_figure(metrics)
        if fig is not None:
            out.append(f"<h3>Loss and weight norm</h3>{_fig_img(fig)}")
    if rd.has_config():
        out.append(f"<h3>{CONFIG_FILE}</h3><pre>{html.escape(rd.read_config_text())}</pre>")
    else:
        missing.append(f"{rd.config_path} is missing")
    return out


def loss_and_norm_figure(m: pd.DataFrame) -> Any:
    """Train (dashed) and test (solid) loss on a log scale, and the L2 weight norm, per member against step (log x):
    the two curves grokking papers draw beside accuracy. None if the metrics lack those columns."""
    step = "global_step" if "global_step" in m else "step"
    if not {step, "seed", "train_loss", "test_loss", "weight_norm"} <= set(m.columns):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (loss_ax, norm_ax) = plt.subplots(1, 2, figsize=(11, 3.8))
    for i, (seed, df) in enumerate(m.groupby("seed")):
        df = df[df[step] > 0].sort_values(step)
        color = f"C{i % 10}"
        loss_ax.plot(df[step], df.train_loss.clip(lower=1e-12), "--", color=color, alpha=0.8,
                     label=f"train (seed {seed})")
        loss_ax.plot(df[step], df.test_loss.clip(lower=1e-12), "-", color=color, label=f"test (seed {seed})")
        norm_ax.plot(df[step], df.weight_norm, "-", color=color, label=f"seed {seed}")
    for ax in (loss_ax, norm_ax):
        ax.set_xscale("log")
        ax.set_xlabel("optimisation step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
    loss_ax.set_yscale("log")
    loss_ax.set_ylabel("loss")
    loss_ax.set_title("loss (log scale)")
    norm_ax.set_ylabel("L2 norm of the weights")
    norm_ax.set_title("weight norm")
    fig.tight_layout()
    return fig


def _collection_sections(d: Path, runs: list[Path], missing: list[str]) -> list[str]:
    """A folder of runs (the demo's output): its own notes and figures, then every run's sections."""
    out = [f"<h2>{html.escape(d.name)}: {len(runs)} runs ({', '.join(html.escape(r.name) for r in runs)})</h2>"]
    for md in sorted(d.glob("*.md")):
        out.append(f"<h3>{html.escape(md.name)}</h3><pre>{html.escape(md.read_text())}</pre>")
    for png in sorted(d.glob("*.png")):
        out.append(f"<h3>{html.escape(png.name)}</h3>{_img(png)}")
    for r in runs:
        out += _run_sections(r, missing)
    return out


def _sweep_curves(d: Path, table: pd.DataFrame, axes: list[str], missing: list[str]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = list(table["case"].unique()) if "case" in table else ["all"]
    fig, axs = plt.subplots(1, len(cases), figsize=(5.5 * len(cases), 3.8), squeeze=False, sharey=True)
    colour_by = axes[0] if axes else None
    values = sorted(table[colour_by].unique()) if colour_by else [None]
    cmap = plt.get_cmap("viridis")
    for ax, case in zip(axs[0], cases):
        sub = table if case == "all" else table[table["case"] == case]
        for _, row in sub.iterrows():
            trial = RunDir(d / "trials" / row["trial"])
            if row["status"] == "pending":
                continue  # reported once, with the count of unfinished trials
            if not trial.has_metrics():
                if row["status"] != "error":
                    missing.append(f"{trial.metrics_path} is missing: trial {row['trial']}'s curve is not drawn")
                continue
            try:
                m = trial.read_metrics()
            except RunError as err:
                missing.append(f"{err}: trial {row['trial']}'s curve is not drawn")
                continue
            m = m[m.step > 0]
            v = row[colour_by] if colour_by else None
            c = cmap(values.index(v) / max(1, len(values) - 1)) if colour_by else "C0"
            ax.plot(m.step, m.test_acc, color=c, alpha=0.6, lw=1)
        ax.set_xscale("log")
        ax.set_title(str(case))
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axs[0][0].set_ylabel("test accuracy")
    if colour_by:
        handles = [plt.Line2D([], [], color=cmap(i / max(1, len(values) - 1))) for i in range(len(values))]
        axs[0][-1].legend(handles, [str(v) for v in values], title=colour_by, fontsize=7, title_fontsize=7)
    fig.tight_layout()
    return _fig_img(fig)


def _sweep_sections(d: Path, missing: list[str]) -> list[str]:
    from grokkit.sweep.spec import SweepError
    from grokkit.sweep.store import RESULTS_FILE, current_table, read_table, summarize, sweep_record

    spec = sweep_record(d)
    try:
        table = read_table(d)
    except SweepError as err:  # a sweep that has not finished (or whose table is damaged): its trials as they stand
        table = current_table(d)[1]
        missing.append(f"{d / RESULTS_FILE} is missing or unreadable ({str(err).split('. ')[0]}); the tables "
                       "below are built from the trials' directories as they stand")
    pending = int((table.status == "pending").sum())
    if pending:
        missing.append(f"{pending} of {len(table)} trials have not finished (no trials/TRIAL/summary.json); they are "
                       "counted as not generalised in the tables below")
    axes = [a for a in list(spec.get("grid") or {}) + list(spec.get("zip") or {}) if a in table.columns]
    by = (["case"] if "case" in table.columns else []) + axes
    out = [f"<h2>Sweep {html.escape(str(spec.get('name', d.name)))}</h2>",
           f"<p>{len(table)} trials; status: " + ", ".join(f"{k} {v}" for k, v in
                                                             table.status.value_counts().items()) + "</p>",
           "<h3>Outcomes by setting</h3>", _table(summarize(table, by))]
    if (d / "threshold.csv").exists() and (d / "threshold.png").exists():
        th = pd.read_csv(d / "threshold.csv")
        out += ["<h3>Critical threshold</h3>",
                _table(th[["method", "n_trials", "n_generalized", "summary", "slope"]])]
        if (d / "threshold_steps.csv").exists():
            out.append(_table(pd.read_csv(d / "threshold_steps.csv")))
        out.append(_img(d / "threshold.png"))
    out += ["<h3>Test accuracy of every trial</h3>", _sweep_curves(d, table, axes, missing)]
    if "pack_size" in table:
        packs = table.dropna(subset=["group"]).groupby("group").size()
        if len(packs):
            out.append(f"<p>Packing: {len(packs)} ensembles, sizes {sorted(packs.tolist(), reverse=True)}.</p>")
    errors = table[table.status.isin(["error", "failed"])]
    if len(errors):
        out += ["<h3>Failed trials</h3>", _table(errors[["trial", "status", "error"]])]
    out.append(f"<h3>sweep.yaml</h3><pre>{html.escape((d / 'sweep.yaml').read_text())}</pre>")
    return out


def write_report(d: str | Path, out: str | Path | None = None, partial: bool = False) -> tuple[Path, list[str]]:
    """Write the report of ``d`` (a run, a sweep or a folder of runs) to ``out`` (default ``d/report.html``);
    returns its path and what was missing (empty for a complete report). A directory that lacks something is
    refused (:class:`ReportError`, nothing written) unless ``partial``: then the page says what is missing in a
    banner at its top."""
    d = Path(d)
    if not d.is_dir():
        raise ReportError(f"{d} does not exist or is not a directory: give a run, sweep or demo directory")
    missing: list[str] = []
    subdirs = sorted(p for p in d.iterdir() if p.is_dir())
    if (d / "sweep.yaml").exists():
        body = _sweep_sections(d, missing)
    elif RunDir(d).has_summary() or RunDir(d).has_config():
        body = _run_sections(d, missing)
    elif runs := [p for p in subdirs if RunDir(p).has_summary() and RunDir(p).has_config()] or (
            [p for p in subdirs if RunDir(p).has_config()] if partial else []):
        unfinished = [p.name for p in subdirs if RunDir(p).has_config() and p not in runs]
        if unfinished:
            missing.append(f"runs {', '.join(unfinished)} have not finished (no summary.json) and are not shown")
        body = _collection_sections(d, runs, missing)
    else:
        unfinished = [p.name for p in subdirs if RunDir(p).has_config()]
        raise ReportError(f"{d} is neither a finished run (summary.json), a sweep (sweep.yaml) nor a folder of "
                          "finished runs (such as the demo's)" + (
                              f"; its runs {', '.join(unfinished)} have not finished: `grokkit report {d} --partial` "
                              "draws what there is" if unfinished else ""))
    if missing and not partial:
        raise ReportError(f"{d} is incomplete, so no report was written: " + "; ".join(missing)
                          + f". `grokkit report {d} --partial` draws what there is, under a banner listing what is "
                          "missing")
    banner = ("<div class='partial'><p><b>Partial report</b>: this directory lacks what a complete report shows."
              "</p><ul>" + "".join(f"<li>{html.escape(m)}</li>" for m in missing) + "</ul></div>") if missing else ""
    target = Path(out) if out else d / "report.html"
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>grokkit report: {html.escape(d.name)}"
            f"{' (partial)' if missing else ''}</title><style>{STYLE}</style></head><body><h1>grokkit report"
            f"{' (partial)' if missing else ''}</h1>{banner}<p><code>{html.escape(str(d))}</code></p>"
            + "\n".join(body) + "</body></html>")
    atomic_write_text(target, page)
    return target, missing
