"""The ``grokkit`` command: a thin layer over :mod:`grokkit.api` and :mod:`grokkit.demo`.

The help text shown by ``grokkit --help`` is :data:`HELP` (plain text), not this docstring."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from grokkit.api import RunError, run
from grokkit.checkpoint import DiskFullError
from grokkit.config import ConfigError, load_config

HELP = ("grokkit: study and induce grokking in small models. Train a config into a run directory (run), the "
        "headline distillation demo (demo), sweeps and the paper's figures (sweep, repro, compare), equal-budget "
        "tuning of methods (tune), and read the results (results, threshold, report, analyze). Each command's --help "
        "says more.")

app = typer.Typer(add_completion=False, no_args_is_help=True, help=HELP)
err = Console(stderr=True, soft_wrap=True)


def _fail(message: str, code: int = 2) -> None:
    """Print ``error: message`` and exit: 2 for a bad config or argument (nothing written), 1 for a failure while
    running (e.g. a full disk)."""
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True, markup=True)
    raise typer.Exit(code)


@app.command("run")
def run_cmd(
    config: Annotated[Path, typer.Argument(help="YAML config; its `recipe:` names the recipe")],
    overrides: Annotated[list[str] | None, typer.Argument(help="dotted.key=value overrides")] = None,
    out: Annotated[Path, typer.Option("--out", help="run directory to write (resumed if it holds this run)")] = ...,
    progress: Annotated[bool | None, typer.Option("--progress/--no-progress")] = None,
) -> None:
    """Run any recipe from a config file."""
    try:
        cfg = load_config(config, overrides or [])
        summary = run(cfg, out, progress=progress)
    except (ConfigError, RunError) as e:
        _fail(str(e))
        return
    except DiskFullError as e:
        _fail(str(e), 1)
        return
    for m in summary["members"]:
        status = "FAILED" if m["failed"] else f"test acc {m['final_test_acc']:.4f}"
        err.print(f"seed {m['seed']}: {status}, steps_to_generalize={m['steps_to_generalize']}", highlight=False)
    err.print(f"wrote {out} in {summary['wall_seconds']:.1f} s", highlight=False)


@app.command("demo")
def demo_cmd(
    out: Annotated[Path, typer.Option("--out", help="directory for teacher, students, comparison")] = Path(
        "runs/demo"),
    seeds: Annotated[int | None, typer.Option(help="students per group (default: the configs' seeds)")] = None,
    steps: Annotated[int | None, typer.Option(help="student step budget (default: the config's)")] = None,
    progress: Annotated[bool | None, typer.Option("--progress/--no-progress")] = None,
) -> None:
    """The headline: distillation from a mod-113 teacher makes a mod-107 student generalise on 20% of the pairs."""
    from grokkit.demo import run_demo

    try:
        run_demo(out, n_seeds=seeds, student_steps=steps, progress=progress)
    except (ConfigError, RunError) as e:
        _fail(str(e))
    except DiskFullError as e:
        _fail(str(e), 1)


@app.command("sweep")
def sweep_cmd(
    sweep: Annotated[Path, typer.Argument(help="sweep YAML: base config, axes, cases, seeds")],
    overrides: Annotated[list[str] | None, typer.Argument(
        help="dotted.key=value overrides of the base config, e.g. training.device=cuda")] = None,
    out: Annotated[Path, typer.Option("--out", help="sweep directory (re-running resumes / extends it)")] = ...,
    executor: Annotated[str, typer.Option(help="local (in-process ensembles / process pool) or ray")] = "local",
    workers: Annotated[int, typer.Option(help="local executor: processes for groups run side by side")] = 1,
    address: Annotated[str | None, typer.Option(help="ray executor: cluster address (default: start one here)")] = None,
    cpus_per_group: Annotated[float, typer.Option(help="ray executor: CPUs reserved per packed group")] = 1.0,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print the trials and the packing, train nothing")] = False,
) -> None:
    """Run a sweep: trials whose shapes agree are packed into one ensemble; finished trials are skipped."""
    from grokkit.sweep import SweepError, load_sweep, run_sweep

    try:
        spec, root = load_sweep(sweep)
        if overrides:
            spec = spec.with_overrides(overrides)
        result = run_sweep(spec, root, out, executor=executor, workers=workers, address=address,
                           cpus_per_group=cpus_per_group, dry_run=dry_run,
                           log=lambda m: err.print(m, highlight=False, markup=False))
    except (SweepError, ConfigError, RunError) as e:
        _fail(str(e))
        return
    if dry_run:
        for g in result.groups:
            err.print(f"{g.id}: {len(g.trials)} trials, e.g. {g.trials[0].id}", highlight=False, markup=False)
        err.print(f"{len(result.trials)} trials in {len(result.groups)} packed ensembles", highlight=False)
        return
    errors = sum(v.startswith("error") for v in result.outcomes.values())
    err.print(f"sweep {out}: {len(result.trials)} trials ({result.skipped} were done already, "
              f"{len(result.outcomes)} run, {errors} errors) in {result.wall_seconds:.1f} s; "
              f"results: {out / 'results.parquet'}", highlight=False)
    if errors:
        raise typer.Exit(1)


@app.command("tune")
def tune_cmd(
    spec_file: Annotated[Path, typer.Argument(help="tune YAML: base config, arms and their search spaces, a budget")],
    out: Annotated[Path, typer.Option("--out", help="tune directory (re-running resumes it)")] = ...,
    executor: Annotated[str, typer.Option(help="local or ray (the rounds' sweeps run there)")] = "local",
    workers: Annotated[int, typer.Option(help="local executor: processes for groups run side by side")] = 1,
    address: Annotated[str | None, typer.Option(help="ray executor: cluster address (default: start one here)")] = None,
    train: Annotated[bool, typer.Option("--train/--table-only", help="run (or resume) the tune first; --table-only "
                                        "rewrites summary.csv and tune.md from DIR's trace.csv, final.csv and "
                                        "chosen.json")] = True,
) -> None:
    """Tune every arm with the same budget (selection on validation), then test each arm's choice on fresh seeds.

    Writes DIR/tune.md, trace.csv (every candidate), chosen.json and final.csv; a killed tune resumes."""
    from grokkit.sweep import SweepError
    from grokkit.tables import markdown_table
    from grokkit.tune import TuneError, load_tune, run_tune, write_tables

    try:
        spec, root = load_tune(spec_file)
        if train:
            table = run_tune(spec, root, out, executor=executor, workers=workers, address=address,
                             log=lambda m: err.print(m, highlight=False, markup=False))["table"]
        else:
            table = write_tables(spec, out).to_dict("records")
    except (TuneError, SweepError, ConfigError, RunError) as e:
        _fail(str(e))
        return
    import pandas as pd

    print(markdown_table(pd.DataFrame(table)))
    err.print(f"tune {out}: tables in {out / 'tune.md'}, every candidate in {out / 'trace.csv'}", highlight=False)


@app.command("repro")
def repro_cmd(
    figures: Annotated[list[str] | None, typer.Argument(
        help="figure names (fig2 ... fig7, studies), `all`, or figure YAML files; none: list them")] = None,
    out: Annotated[Path, typer.Option("--out", help="folder for the sweeps and the figures")] = Path("runs/repro"),
    executor: Annotated[str, typer.Option(help="local or ray (see `grokkit sweep`)")] = "local",
    workers: Annotated[int, typer.Option(help="local executor: processes for groups run side by side")] = 1,
    override: Annotated[list[str] | None, typer.Option(
        "--set", help="dotted.key=value applied to every trial, e.g. --set training.device=cuda")] = None,
) -> None:
    """Reproduce the paper's figures: run the sweeps a figure needs (finished trials are skipped), draw PNG + CSV."""
    from grokkit.analysis.progress import AnalysisError
    from grokkit.repro import ReferenceSpec, ReproError, available, load_figure, repro
    from grokkit.sweep import SweepError

    figs = available()
    if not figures:
        for name, path in figs.items():
            spec, _ = load_figure(path)
            needs = (f"run: {spec.run}" if isinstance(spec, ReferenceSpec)
                     else f"sweeps: {', '.join(spec.sweeps.values())}")
            err.print(f"[bold]{name}[/]: {spec.title}  ({needs})", highlight=False)
        return
    names = list(figs) if figures == ["all"] else figures
    for name in names:
        try:
            result = repro(name, out, executor=executor, workers=workers, overrides=override or [],
                           log=lambda m: err.print(m, highlight=False, markup=False))
        except (ReproError, SweepError, ConfigError, RunError, AnalysisError) as e:
            _fail(str(e))
            return
        err.print(f"wrote {result['png']} and {result['csv']}", highlight=False)
        table = result["summary"]
        if "verdict" in table.columns:  # a reference: published number beside ours
            for r in table.to_dict("records"):
                err.print(f"  {r['measure'][:30]:30s} published {r['published'][:40]:40s} ours {r['ours'][:50]:50s} "
                          f"{r['verdict']}", highlight=False, markup=False)
            continue
        reach = [c for c in table.columns if c.startswith(("seeds_reaching", "median_"))]
        for r in table.to_dict("records"):
            err.print(f"  {r['panel'][:40]:40s} {r['curve'][:34]:34s} final {r['final_mean']:.3f} "
                      f"[{r['final_min']:.3f}, {r['final_max']:.3f}]  " + "  ".join(f"{c}={r[c]}" for c in reach),
                      highlight=False, markup=False)


@app.command("compare")
def compare_cmd(
    comparison: Annotated[Path, typer.Argument(help="comparison YAML: one sweep per setting, its cases = methods")],
    out: Annotated[Path, typer.Option("--out", help="folder for the settings' sweeps and the table")] = Path(
        "runs/compare"),
    executor: Annotated[str, typer.Option(help="local or ray (see `grokkit sweep`)")] = "local",
    workers: Annotated[int, typer.Option(help="local executor: processes for groups run side by side")] = 1,
    override: Annotated[list[str] | None, typer.Option(
        "--set", help="dotted.key=value applied to every trial, e.g. --set training.device=cuda")] = None,
    train: Annotated[bool, typer.Option("--train/--table-only", help="run the sweeps first (resumable)")] = True,
) -> None:
    """Rank methods: steps to generalise (median, IQR, seeds generalised) and wall-clock, per setting."""
    from grokkit.compare import CompareError, compare, markdown
    from grokkit.sweep import SweepError

    try:
        df = compare(comparison, out, executor=executor, workers=workers, overrides=override or [],
                     log=lambda m: err.print(m, highlight=False, markup=False), run=train)
    except (CompareError, SweepError, ConfigError, RunError) as e:
        _fail(str(e))
        return
    typer.echo(markdown(df, df.attrs.get("control", "scratch")))
    err.print(f"wrote {out}/*.csv, *.md, *.png", highlight=False)


@app.command("results")
def results_cmd(
    sweep_dir: Annotated[Path, typer.Argument(help="a sweep directory")],
    where: Annotated[str | None, typer.Option(help="pandas query, e.g. \"recipe == 'distill'\"")] = None,
    group_by: Annotated[list[str] | None,
                        typer.Option("--group-by", help="columns (repeat); default: the axes")] = None,
    csv: Annotated[Path | None, typer.Option(help="also write the summary to this CSV")] = None,
) -> None:
    """Summarise a sweep's results table: P(generalise), steps to generalise, accuracy per setting."""
    import yaml
    from rich.table import Table

    from grokkit.sweep import SweepError, read_table, summarize

    try:
        table = read_table(sweep_dir)
        if group_by is None:
            spec = yaml.safe_load((sweep_dir / "sweep.yaml").read_text())
            axes = list(spec.get("grid", {})) + list(spec.get("zip", {}))
            group_by = (["case"] if "case" in table.columns else []) + [a for a in axes if a in table.columns]
        summary = summarize(table, group_by, where)
    except SweepError as e:
        _fail(str(e))
        return
    from grokkit.analysis.survival import format_p

    shown = summary[[*group_by, "trials", "errors", "pending"]].assign(
        generalised=[f"{k}/{n}" for k, n in zip(summary.generalized, summary.n)],
        **{"share [95% CI]": [f"{v:.2f} [{lo:.2f}, {hi:.2f}]" if n else "—" for v, lo, hi, n in
                              zip(summary.share, summary.share_low, summary.share_high, summary.n)],
           "median lasting step [95% CI]": summary.km_median_text.fillna("—"),
           "log-rank p": [format_p(p) for p in summary.logrank_p]},
        test_acc=summary.test_acc, test_acc_sd=summary.test_acc_sd, wall_s=summary.wall_s)
    out = Table(title=f"{sweep_dir}: {len(table)} trials (lasting generalisation, held for the hold window; "
                "median: Kaplan-Meier, > budget where the data cannot give it; log-rank against scratch)")
    for c in shown.columns:
        out.add_column(str(c).split(".")[-1], justify="right", no_wrap=True)
    for row in shown.itertuples(index=False):
        out.add_row(*[f"{v:.4g}" if isinstance(v, float) else str(v) for v in row])
    console = Console()
    if not console.is_terminal:
        console = Console(width=200)
    console.print(out)
    if csv is not None:
        summary.to_csv(csv, index=False)


@app.command("threshold")
def threshold_cmd(
    sweep_dir: Annotated[Path, typer.Argument(help="a sweep directory over training fractions")],
    x: Annotated[str, typer.Option(help="the column varied")] = "task.train_fraction",
    by: Annotated[str, typer.Option(help="one threshold per value of this column")] = "case",
    n_bootstrap: Annotated[int, typer.Option(help="bootstrap resamples for the CI")] = 1000,
) -> None:
    """Fit P(generalise) against the training fraction; write threshold.{csv,md,png} with bootstrap CIs."""
    from grokkit.analysis.threshold import threshold_report
    from grokkit.sweep import SweepError, read_table

    try:
        th = threshold_report(read_table(sweep_dir), sweep_dir, x, by, n_bootstrap)
    except (SweepError, ValueError) as e:
        _fail(str(e))
        return
    for r in th.itertuples():
        err.print(f"{r.method}: {x} at P(generalise)=0.5: {r.summary} ({r.n_generalized}/{r.n_trials} generalised)",
                  highlight=False)


@app.command("map")
def map_cmd(
    sweep_dir: Annotated[Path, typer.Argument(help="a sweep directory whose sweep has a `map:` section")],
) -> None:
    """Draw a sweep's map (map.csv/md/png) from the trials finished so far (the sweep draws it when it ends)."""
    from grokkit.analysis.map import map_report
    from grokkit.sweep import SweepError, current_table

    try:
        spec, table = current_table(sweep_dir)
        if spec.map is None:
            raise SweepError(f"{sweep_dir}/sweep.yaml has no `map:` section")
        cells = map_report(table, sweep_dir, spec.map)
    except SweepError as e:
        _fail(str(e))
        return
    pending = int(cells.treatment_pending.sum() + cells.control_pending.sum())
    err.print(f"wrote {sweep_dir}/map.csv, map.md and map.png: {len(cells)} cells"
              + (f" ({pending} trials not finished)" if pending else ""), highlight=False)


@app.command("inherit")
def inherit_cmd(
    sweep_dir: Annotated[Path, typer.Argument(help="a sweep of students with snapshots, its teacher a required run")],
    teacher: Annotated[str, typer.Option(help="the required run that is the teacher")] = "teacher",
    case: Annotated[list[str] | None, typer.Option(help="only these cases (default: every case)")] = None,
    out: Annotated[Path | None, typer.Option(help="where to write (default: the sweep directory)")] = None,
) -> None:
    """What distilled students inherit: each case's students' Fourier spectra over their snapshots against the
    teacher's key frequencies; writes inherit.{csv,md,png} and inherit_over_time.csv into the sweep directory."""
    from grokkit.analysis.inherit import inheritance_report
    from grokkit.analysis.progress import AnalysisError
    from grokkit.sweep import SweepError, current_table

    try:
        spec, table = current_table(sweep_dir)
        if teacher not in spec.requires:
            raise SweepError(f"the sweep requires no run {teacher!r} (it requires {sorted(spec.requires)})")
        done = table[table.status == "ok"]
        if case:
            unknown = sorted(set(case) - set(table.case))
            if unknown:
                raise SweepError(f"--case {unknown}: no such case (cases: {', '.join(dict.fromkeys(table.case))})")
            done = done[done.case.isin(case)]
        if done.empty:
            raise SweepError(f"{sweep_dir}: no finished trial yet")
        arms = {str(c): [sweep_dir / "trials" / t for t in g.trial] for c, g in done.groupby("case", sort=False)}
        target = out or sweep_dir
        target.mkdir(parents=True, exist_ok=True)
        seeds = inheritance_report(sweep_dir / "requires" / teacher, arms, target,
                                   f"{spec.name}: students against the teacher run {teacher!r}")
    except (SweepError, AnalysisError) as e:
        _fail(str(e))
        return
    for r in seeds.to_dict("records"):
        err.print(f"{r['arm']:>10} seed {r['seed']}: test {r['final_test_acc']:.3f}, keys "
                  f"{r['key_frequencies'] or '-'} ({r['shared_with_teacher']} of the teacher's), teacher-key share "
                  f"{r['final_teacher_key_share']:.2f}", highlight=False)


@app.command("report")
def report_cmd(
    directory: Annotated[Path, typer.Argument(help="a run or sweep directory")],
    out: Annotated[Path | None, typer.Option(help="HTML file (default: DIR/report.html)")] = None,
) -> None:
    """Write one static HTML file with every figure and table of a run or sweep."""
    from grokkit.report import ReportError, write_report
    from grokkit.sweep import SweepError

    try:
        path = write_report(directory, out)
    except (ReportError, SweepError) as e:
        _fail(str(e))
        return
    err.print(f"wrote {path}", highlight=False)


@app.command("analyze")
def analyze_cmd(
    run_dir: Annotated[Path, typer.Argument(help="a run directory (modular addition or subtraction)")],
    member: Annotated[int | None, typer.Option(help="analyse only this member (default: all)")] = None,
    out: Annotated[Path | None, typer.Option(help="where to write analysis.json and figures (default: RUN_DIR)")
                   ] = None,
    position: Annotated[str, typer.Option(help="sequence position whose logits are read")] = "final",
    min_gap: Annotated[float, typer.Option(help="key-frequency rule: least squared-norm gap")] = 1.5,
) -> None:
    """Progress measures (Nanda et al.): key Fourier frequencies of the embedding, restricted/excluded loss, softmax
    collapse and weight norms; writes analysis.json and analysis_*.png."""
    from rich.table import Table

    from grokkit.analysis.progress import AnalysisError, analyze_run, write_analysis

    try:
        result = analyze_run(run_dir, member=member, position=position, min_gap=min_gap)
        paths = write_analysis(result, out if out is not None else run_dir)
    except AnalysisError as e:
        _fail(str(e))
        return
    table = Table(title=f"{run_dir}: {result['task']}, progress measures (losses on the train pairs)")
    for c in ("model", "step", "member", "seed", "key frequencies", "train loss", "restricted", "excluded",
              "test acc", "collapse", "weight norm"):
        table.add_column(c, justify="right")
    for ckpt in result["checkpoints"]:
        for m in ckpt["members"]:
            los = m["losses"]
            test_acc = "—" if los["test_acc"] is None else f"{los['test_acc']:.4f}"
            table.add_row(ckpt["label"], str(ckpt["step"]), str(m["member"]), str(m["seed"]),
                          " ".join(map(str, m["fourier"]["key_frequencies"])) or "none",
                          f"{los['train_loss']:.3g}", f"{los['restricted_loss']:.3g}", f"{los['excluded_loss']:.3g}",
                          test_acc, f"{m['softmax_collapse_fraction']:.3f}", f"{m['weight_norms']['total']:.2f}")
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)
    console.print(table)
    err.print(f"wrote {', '.join(str(p) for p in paths)}", highlight=False)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
