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

STYLE = """*{box-sizing:border-box}
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
.partial{background:#fff3cd;border:2px solid #d39e00;padding:6px 14px;margin:1em 0}
.table-wrap{max-width:100%;overflow-x:auto;border:1px solid #e3e3e3;margin:0.5em 0 0.2em}
table{border-collapse:collapse;font-size:13px}
td,th{border:1px solid #ccc;padding:3px 7px;text-align:right;white-space:nowrap}
th{background:#f3f3f3;vertical-align:bottom;font-weight:600;white-space:normal;min-width:3.5em}
td.text{text-align:left;white-space:normal;min-width:5em;max-width:30em}
.glossary{font-size:12px;color:#444;margin:0.2em 0 1.4em;padding-left:1.4em}.glossary li{margin:1px 0}
img{max-width:100%;border:1px solid #eee}
pre{background:#f7f7f7;padding:8px;font-size:12px;overflow-x:auto}details{margin:0.8em 0}
summary{cursor:pointer;font-weight:600}h2{border-bottom:1px solid #ddd;padding-bottom:3px}"""

#: one line for every column a report's tables show (:func:`explain`; a sweep's axes, dotted config keys, and
#: per-task columns ``COLUMN@task`` are explained by rule); tests/test_report_browser.py checks that every column of
#: a report has one
COLUMNS: dict[str, str] = {
    # a run's members (summary.json)
    "seed": "the member's random seed (one member of the run's ensemble per seed)",
    "final_train_acc": "accuracy on the training pairs at the last evaluation",
    "final_test_acc": "accuracy on the held-out test pairs at the last evaluation",
    "final_train_loss": "training loss (the task's cross-entropy) at the last evaluation",
    "final_test_loss": "cross-entropy on the held-out test pairs at the last evaluation",
    "final_val_acc": "accuracy on the validation split at the last evaluation (runs with a validation split)",
    "final_val_loss": "loss on the validation split at the last evaluation (runs with a validation split)",
    "steps_to_generalize": "the first evaluated step with test accuracy at or above the threshold (a first "
                           "crossing, which may not last); — : never within the run",
    "steps_to_generalize_lasting": "the step from which test accuracy stayed at or above the threshold to the end "
                                   "of the run, held for at least the hold window; — : it did not generalise for good",
    "val_steps_to_generalize_lasting": "the same as steps_to_generalize_lasting, on validation accuracy",
    "failed": "its loss became NaN or infinite and it was frozen there",
    "failed_step": "the step at which it failed",
    "error": "why it failed",
    # recipes' own member columns
    "accuracy_matrix": "continual runs: test accuracy on task j (column) after stage i (row), row by row",
    "average_accuracy": "continual runs: mean test accuracy over all tasks after the last stage",
    "backward_transfer": "continual runs: mean change of each earlier task's accuracy from the end of its own "
                         "stage to the end (negative: forgetting)",
    "forward_transfer": "continual runs: mean accuracy on each task before its stage, above chance (1/modulus)",
    "average_accuracy_seen": "continual runs: after each stage, the mean accuracy over the tasks seen so far",
    "steps_to_generalize_per_stage": "continual runs: per stage, the steps it took to generalise on its new task",
    "min_acc_on_previous_task_per_stage": "continual runs: per stage, the lowest test accuracy on the task just "
                                          "left (forgetting)",
    "weak_seed": "transfer runs: the seed of the weak model that seeded this member",
    "weak_candidate_test_accs": "transfer runs: the test accuracies of the weak candidates it was chosen from",
    "weak_steps": "transfer runs: the steps of the weak stage",
    "weak_steps_to_threshold": "transfer runs: the weak model's first step at the threshold",
    "weak_final_test_acc": "transfer runs: the weak model's final test accuracy",
    "weak_failed": "transfer runs: whether the weak model failed (NaN or infinite loss)",
    "total_steps_to_generalize": "transfer runs: weak stage's steps plus the target's steps to generalise",
    "weak_wall_seconds": "transfer runs: this member's share of the weak stage's wall-clock seconds",
    # a teacher (a distilled run's summary.json `teachers`; a sweep's requires/)
    "teacher": "the teacher's path (its run directory or model file)",
    "member": "which of the teacher run's members teach (member K; members matched: student member k learns from "
              "teacher member k)",
    "task": "the task (operation and modulus) the run learns or the teacher teaches",
    "own_test_acc": "the teacher's test accuracy on its own task (from its run's summary)",
    "own_threshold": "the generalisation threshold of the teacher's run",
    "generalized": "yes: it generalised for good within its run (teacher); in a count: the members or trials that "
                   "generalised for good (held for the hold window) within the budget",
    "run": "the required run's name in the sweep's requires/ folder (trained once, before the trials)",
    "train_fraction": "the share of all pairs of the task used for training",
    "steps": "optimiser steps the run took (fewer than its budget after an early stop)",
    # a sweep's tables (grokkit.sweep.store.summarize, grokkit.analysis.threshold)
    "case": "the sweep's case (method): a named set of overrides of the base config, e.g. scratch or distill",
    "trials": "trials in this group (one per seed)",
    "errors": "trials that raised an error (see Failed trials)",
    "pending": "trials that have not finished",
    "n": "finished trials (members) the row's statistics rest on",
    "share": "share of the n finished trials that generalised for good within the budget",
    "share_low": "lower end of the 95% Wilson interval of share",
    "share_high": "upper end of the 95% Wilson interval of share",
    "budget": "the step budget: the longest any trial was followed (its training.steps)",
    "km_median_text": "Kaplan-Meier median of the steps to lasting generalisation with its 95% interval (trials "
                      "that did not generalise are censored at the budget; > budget: not reached)",
    "logrank_p": "log-rank test p-value of the steps to lasting generalisation against scratch at the same "
                 "setting (— for scratch itself)",
    "test_acc": "mean final test accuracy over the finished trials",
    "test_acc_sd": "standard deviation of the final test accuracy over the finished trials",
    "wall_s": "wall-clock seconds of the trials, summed",
    "method": "the case whose threshold is fitted",
    "n_trials": "finished trials the fit rests on",
    "n_generalized": "of them, the trials that generalised for good within the budget",
    "summary": "the training fraction at which the fitted P(generalise) is 0.5, with its 95% bootstrap interval "
               "(< or >: outside the fractions tried)",
    "slope": "slope of the logistic fit of P(generalise) against the training fraction (steeper: a sharper "
             "threshold)",
    "status": "ok (finished), failed (NaN loss), error (raised) or pending",
    "trial": "the trial's id: its folder under trials/ (case, axis values and seed)",
}


def explain(column: str) -> str | None:
    """The one-line explanation of a report column: :data:`COLUMNS`, a per-task column ``COLUMN@task``, a teacher's
    accuracy on the student's test pairs at a position, or a config key (a sweep's axis); None if there is none."""
    if column in COLUMNS:
        return COLUMNS[column]
    if column.startswith("acc_on_student_test@"):
        return (f"how often the teacher's argmax is the student's answer on the student's test pairs, read at the "
                f"{column.split('@', 1)[1]} position (— : it cannot read the student's tokens up to there)")
    if "@" in column:
        base, task = column.split("@", 1)
        if base in COLUMNS:
            return f"{COLUMNS[base]}; for task {task}"
    if "." in column and not column.startswith("."):
        return f"the value of config key {column} in this row (an axis the sweep varies)"
    return None


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


def _cell(value: Any) -> tuple[str, bool]:
    """A table cell's text and whether it is text (left-aligned) rather than a number."""
    if value is None or (isinstance(value, float) and value != value):
        return "—", False
    if isinstance(value, bool):
        return ("yes" if value else "no"), True
    if isinstance(value, int):
        return str(value), False
    if isinstance(value, float):
        return f"{value:.4g}", False
    if isinstance(value, list | tuple):
        return ", ".join(_cell(v)[0] if not isinstance(v, list | tuple) else f"[{_cell(v)[0]}]" for v in value), True
    try:
        if pd.isna(value):
            return "—", False
    except (TypeError, ValueError):
        pass
    if hasattr(value, "item"):  # numpy and pandas scalars
        return _cell(value.item())
    return str(value), True


def _table(df: pd.DataFrame) -> str:
    """``df`` as an HTML table inside a box that scrolls sideways when it is wider than the page, its long headers
    breakable at ``_`` and ``.``, and under it a glossary: one line per column (:func:`explain`)."""
    heads = []
    for c in df.columns:
        label = html.escape(str(c)).replace("_", "_<wbr>").replace(".", ".<wbr>")
        heads.append(f'<th title="{html.escape(explain(str(c)) or "")}">{label}</th>')
    rows = []
    for record in df.itertuples(index=False):
        cells = []
        for v in record:
            text, is_text = _cell(v)
            if is_text:  # long paths and names break after / and _ rather than anywhere
                cells.append(f"<td class='text'>{html.escape(text).replace('/', '/<wbr>').replace('_', '_<wbr>')}</td>")
            else:
                cells.append(f"<td>{html.escape(text)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    glossary = "".join(f"<li><code>{html.escape(str(c))}</code>: "
                       f"{html.escape(explain(str(c)) or 'no explanation recorded')}</li>" for c in df.columns)
    return (f"<div class='table-wrap'><table><thead><tr>{''.join(heads)}</tr></thead><tbody>{''.join(rows)}"
            f"</tbody></table></div><ul class='glossary'>{glossary}</ul>")


def _flat(records: list[dict[str, Any]]) -> pd.DataFrame:
    """Records (a summary's members) as a table: a mapping-valued field spread over ``FIELD@key`` columns (a
    per-task mapping of fields over ``field@task``), columns empty in every row left out."""
    rows = []
    for r in records:
        row: dict[str, Any] = {}
        for k, v in r.items():
            if isinstance(v, dict):
                for key, inner in v.items():
                    if isinstance(inner, dict):
                        row.update({f"{f}@{key}": x for f, x in inner.items()})
                    else:
                        row[f"{k}@{key}"] = inner
            else:
                row[k] = v
        rows.append(row)
    df = pd.DataFrame(rows)
    return df[[c for c in df.columns if df[c].map(lambda v: _cell(v)[0] != "—").any()]]


def _config_details(name: str, what: str, text: str) -> str:
    """A config file folded away under a one-line summary."""
    return (f"<details><summary>{html.escape(name)}: {html.escape(what)} (click to show)</summary>"
            f"<pre>{html.escape(text)}</pre></details>")


def _teacher_lasting(source: str, label: str) -> int | None:
    """The step from which a teacher run's member generalised for good: member K of a label "member K" ("member 2 of
    all"), the only member of a one-member run; None where the teacher is no readable run or the label names several
    members ("members matched")."""
    try:
        members = RunDir(Path(source)).read_summary()["members"]
    except (RunError, KeyError, OSError, TypeError, ValueError):
        return None
    words = label.split()
    index = int(words[1]) if len(words) > 1 and words[0] == "member" and words[1].isdigit() else (
        0 if len(members) == 1 else None)
    if index is None or index >= len(members):
        return None
    return members[index].get("steps_to_generalize_lasting")


def _teacher_table(s: dict[str, Any]) -> str:
    """A distilled run's teachers, one row each: path, member, own test accuracy and threshold, whether it
    generalised (and from which step, where it is a run directory), and its accuracy on the student's test pairs."""
    rows = []
    for t in s.get("teachers") or []:
        row: dict[str, Any] = {"teacher": t.get("source"), "member": t.get("member")}
        if t.get("task"):
            row["task"] = t["task"]
        row.update({"own_test_acc": t.get("own_test_acc"), "own_threshold": t.get("own_threshold"),
                    "generalized": t.get("generalized")})
        lasting = _teacher_lasting(str(t.get("source")), str(t.get("member") or ""))
        row["steps_to_generalize_lasting"] = lasting
        row.update({f"acc_on_student_test@{pos}": acc for pos, acc in (t.get("acc_on_student_test") or {}).items()})
        rows.append(row)
    return _table(pd.DataFrame(rows)) if rows else ""


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
                f"wall-clock on {s.get('device', '?')}</p>", _lasting_line(rd, s), "<h3>Members</h3>",
                _table(_flat(s["members"]))]
        if s.get("teachers"):
            out += ["<h3>Teacher</h3>", "<p>the run it was distilled from, as the student saw it</p>",
                    _teacher_table(s)]
    for png in sorted(d.glob("*.png")):
        out.append(f"<h3>{html.escape(png.name)}</h3>{_img(png)}")
    metrics = None
    if not rd.has_metrics():
        missing.append(f"{rd.metrics_path} is missing: no curves beyond a curves.png")
    else:
        try:
            metrics = rd.read_metrics()
        except RunError as err:
            missing.append(f"{err}: no curves beyond a curves.png")
    if metrics is not None and not (d / "curves.png").exists():  # curves.png is the run's figure; else the same
        from grokkit.plots import curves_figure

        fig = curves_figure(metrics, f"{name}: accuracy, loss and weight norm so far")
        out.append(f"<h3>Curves (from metrics.csv; the run wrote no curves.png)</h3>{_fig_img(fig)}")
    if rd.has_config():
        out.append(_config_details(CONFIG_FILE, "the run's full configuration", rd.read_config_text()))
    else:
        missing.append(f"{rd.config_path} is missing")
    return out


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


def _readable(df: pd.DataFrame) -> pd.DataFrame:
    """A table of Kaplan-Meier outcomes as a page shows it: the median as its printed text (the numbers behind it are
    in the CSV files), the counts of errors and pending trials only where there are any."""
    drop = ["km_median", "km_median_low", "km_median_high"]
    drop += [c for c in ("errors", "pending") if c in df and not pd.to_numeric(df[c], errors="coerce").fillna(0).any()]
    return df.drop(columns=[c for c in drop if c in df])


def _sweep_curves(d: Path, table: pd.DataFrame, axes: list[str], missing: list[str]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from grokkit.plots import readable_log_axis

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
        readable_log_axis(ax, "x")
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
    from grokkit.sweep.store import (
        RESULTS_FILE,
        current_table,
        read_table,
        required_runs_table,
        summarize,
        sweep_record,
    )

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
           "<h3>Outcomes by setting</h3>", _table(_readable(summarize(table, by)))]
    teachers = required_runs_table(d)
    if len(teachers):
        out += ["<h3>Teacher</h3>", "<p>the runs the sweep trained once, before its trials (<code>requires/</code>), "
                "e.g. the distillation teacher</p>", _table(teachers)]
    if (d / "threshold.csv").exists() and (d / "threshold.png").exists():
        th = pd.read_csv(d / "threshold.csv")
        out += ["<h3>Critical threshold</h3>",
                _table(th[["method", "n_trials", "n_generalized", "summary", "slope"]])]
        if (d / "threshold_steps.csv").exists():
            out.append(_table(_readable(pd.read_csv(d / "threshold_steps.csv"))))
        out.append(_img(d / "threshold.png"))
    out += ["<h3>Test accuracy of every trial</h3>", _sweep_curves(d, table, axes, missing)]
    if "pack_size" in table:
        packs = table.dropna(subset=["group"]).groupby("group").size()
        if len(packs):
            out.append(f"<p>Packing: {len(packs)} ensembles, sizes {sorted(packs.tolist(), reverse=True)}.</p>")
    errors = table[table.status.isin(["error", "failed"])]
    if len(errors):
        out += ["<h3>Failed trials</h3>", _table(errors[["trial", "status", "error"]])]
    out.append(_config_details("sweep.yaml", "the sweep as it was run: base config, cases, axes, seeds",
                               (d / "sweep.yaml").read_text()))
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
