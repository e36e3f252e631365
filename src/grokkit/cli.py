"""The ``grokkit`` command: a thin layer over the public Python interface (``import grokkit``). Each command parses
its arguments, calls one public function and prints what it returned; it imports nothing of the package but
``grokkit`` itself and the command-line failure handling (:mod:`grokkit.failures`). ``tests/test_cli_layer.py``
checks that.

The help text shown by ``grokkit --help`` is :data:`HELP` (plain text), not this docstring."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

import grokkit
from grokkit.failures import GuardedGroup, run_app

HELP = ("grokkit: study and induce grokking in small models. Train a config into a run directory (run), the "
        "headline distillation demo (demo), sweeps and the paper's figures (sweep, repro, compare), equal-budget "
        "tuning of methods (tune), and read the results (results, threshold, map, inherit, report, analyze). Each "
        "command's --help says more; the same functions are grokkit.run, grokkit.sweep, ... in Python.")

# every command's known failures (grokkit.GrokkitError) become `error: ...` and their exit code, anything else one
# line and a crash log; Ctrl-C / SIGTERM say how to resume (grokkit.failures)
app = typer.Typer(cls=GuardedGroup, add_completion=False, no_args_is_help=True, help=HELP)
err = Console(stderr=True, soft_wrap=True)

PROGRESS = typer.Option("--progress/--no-progress", help="show a progress bar while training (default: the "
                        "config's training.progress; off when stderr is not a terminal)")
EXECUTOR = typer.Option(help="local (in-process ensembles, or --workers processes) or ray")
WORKERS = typer.Option(help="local executor: packed groups trained side by side, one process each")
SET = typer.Option("--set", help="dotted.key=value applied to every trial, e.g. --set training.device=cuda (repeat)")


def _say(message: str) -> None:
    err.print(message, highlight=False, markup=False)


def _wide() -> Console:
    console = Console()
    return console if console.is_terminal else Console(width=200)


@app.command("run")
def run_cmd(
    config: Annotated[Path, typer.Argument(help="YAML config; its `recipe:` names the recipe")],
    overrides: Annotated[list[str] | None, typer.Argument(
        help="dotted.key=value overrides, e.g. training.steps=500 task.train_fraction=0.25")] = None,
    out: Annotated[Path, typer.Option("--out", help="run directory to write (resumed if it holds this run)")] = ...,
    progress: Annotated[bool | None, PROGRESS] = None,
    restart: Annotated[bool, typer.Option(
        "--restart", help="train from step 0 in --out: an unreadable or unfinished earlier attempt's files are moved "
        "aside (renamed, never deleted); a finished, readable run is left as it is")] = False,
) -> None:
    """Run any recipe from a config file."""
    result = grokkit.run(config, out, progress=progress, restart=restart, assignments=overrides or [], log=_say)
    if result.reused:
        return  # the run said that the directory already holds it; nothing was trained
    for m in result.members:
        status = "FAILED" if m.failed else f"test acc {m.final_test_acc:.4f}"
        _say(f"seed {m.seed}: {status}, steps_to_generalize={m.steps_to_generalize}, "
             f"lasting from {m.steps_to_generalize_lasting}")
    _say(f"wrote {out} in {result.summary.wall_seconds:.1f} s")


@app.command("demo")
def demo_cmd(
    out: Annotated[Path, typer.Option("--out", help="directory for teacher, students, comparison")] = Path(
        "runs/demo"),
    seeds: Annotated[int | None, typer.Option(help="students per group (default: the configs' seeds)")] = None,
    steps: Annotated[int | None, typer.Option(help="student step budget (default: the config's)")] = None,
    progress: Annotated[bool | None, PROGRESS] = None,
) -> None:
    """The headline: distillation from a mod-113 teacher makes a mod-107 student generalise on 20% of the pairs."""
    grokkit.demo(out, seeds=seeds, steps=steps, progress=progress)


@app.command("sweep")
def sweep_cmd(
    sweep: Annotated[Path, typer.Argument(help="sweep YAML: base config, axes, cases, seeds")],
    overrides: Annotated[list[str] | None, typer.Argument(
        help="dotted.key=value overrides of the base config, e.g. training.device=cuda")] = None,
    out: Annotated[Path, typer.Option("--out", help="sweep directory (re-running resumes / extends it)")] = ...,
    executor: Annotated[str, EXECUTOR] = "local",
    workers: Annotated[int, WORKERS] = 1,
    address: Annotated[str | None, typer.Option(help="ray executor: cluster address (default: start one here)")] = None,
    cpus_per_group: Annotated[float, typer.Option(help="ray executor: CPUs reserved per packed group")] = 1.0,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print the trials and the packing, train nothing")] = False,
    restart: Annotated[bool, typer.Option(
        "--restart", help="groups whose checkpoint cannot be read train again from step 0 (the file is moved aside)")
                       ] = False,
) -> None:
    """Run a sweep: trials whose shapes agree are packed into one ensemble; finished trials are skipped."""
    result = grokkit.sweep(sweep, out, overrides=overrides, executor=executor, workers=workers, address=address,
                           cpus_per_group=cpus_per_group, dry_run=dry_run, restart=restart, log=_say)
    info = result.run_info
    if dry_run:
        for g in info.groups:
            _say(f"{g.id}: {len(g.trials)} trials, e.g. {g.trials[0].id}")
        _say(f"{len(info.trials)} trials in {len(info.groups)} packed ensembles")
        return
    errors = sum(v.startswith("error") for v in info.outcomes.values())
    _say(f"sweep {out}: {len(info.trials)} trials ({info.skipped} were done already, {len(info.outcomes)} run, "
         f"{errors} errors) in {info.wall_seconds:.1f} s; results: {out / 'results.parquet'}")
    if errors:
        raise typer.Exit(1)


@app.command("tune")
def tune_cmd(
    spec_file: Annotated[Path, typer.Argument(help="tune YAML: base config, arms and their search spaces, a budget")],
    out: Annotated[Path, typer.Option("--out", help="tune directory (re-running resumes it)")] = ...,
    executor: Annotated[str, EXECUTOR] = "local",
    workers: Annotated[int, WORKERS] = 1,
    address: Annotated[str | None, typer.Option(help="ray executor: cluster address (default: start one here)")] = None,
    train: Annotated[bool, typer.Option("--train/--table-only", help="run (or resume) the tune first; --table-only "
                                        "rewrites summary.csv and tune.md from DIR's trace.csv, final.csv and "
                                        "chosen.json")] = True,
) -> None:
    """Tune every arm with the same budget (selection on validation), then test each arm's choice on fresh seeds.

    Writes DIR/tune.md, trace.csv (every candidate), chosen.json, final.csv and summary.csv; a killed tune
    resumes."""
    result = grokkit.tune(spec_file, out, executor=executor, workers=workers, address=address, train=train, log=_say)
    print(grokkit.markdown(result.summary))
    _say(f"tune {out}: tables in {out / 'tune.md'}, every candidate in {out / 'trace.csv'}")


@app.command("repro")
def repro_cmd(
    figures: Annotated[list[str] | None, typer.Argument(
        help="figure names (fig2 ... fig7, studies), `all`, or figure YAML files; none: list them")] = None,
    out: Annotated[Path, typer.Option("--out", help="folder for the sweeps and the figures")] = Path("runs/repro"),
    executor: Annotated[str, EXECUTOR] = "local",
    workers: Annotated[int, WORKERS] = 1,
    override: Annotated[list[str] | None, SET] = None,
) -> None:
    """Reproduce the paper's figures: run the sweeps a figure needs (finished trials are skipped), draw PNG + CSV."""
    known = grokkit.figures()
    if not figures:
        for name, (title, needs) in known.items():
            err.print(f"[bold]{name}[/]: {title}  ({needs})", highlight=False)
        return
    for name in list(known) if figures == ["all"] else figures:
        result = grokkit.repro(name, out, executor=executor, workers=workers, overrides=override, log=_say)
        _say(f"wrote {result['png']} and {result['csv']}")
        _print_repro(result["summary"])


def _print_repro(table: Any) -> None:
    if "verdict" in table.columns:  # a reference: published number beside ours
        for r in table.to_dict("records"):
            _say(f"  {r['measure'][:30]:30s} published {r['published'][:40]:40s} ours {r['ours'][:50]:50s} "
                 f"{r['verdict']}")
        return
    reach = [c for c in table.columns if c.startswith(("seeds_reaching", "median_", "km_"))]
    for r in table.to_dict("records"):
        _say(f"  {r['panel'][:40]:40s} {r['curve'][:34]:34s} final {r['final_mean']:.3f} "
             f"[{r['final_min']:.3f}, {r['final_max']:.3f}]  " + "  ".join(f"{c}={r[c]}" for c in reach))


@app.command("compare")
def compare_cmd(
    comparison: Annotated[Path, typer.Argument(help="comparison YAML: one sweep per setting, its cases = methods")],
    out: Annotated[Path, typer.Option("--out", help="folder for the settings' sweeps and the table")] = Path(
        "runs/compare"),
    executor: Annotated[str, EXECUTOR] = "local",
    workers: Annotated[int, WORKERS] = 1,
    override: Annotated[list[str] | None, SET] = None,
    train: Annotated[bool, typer.Option("--train/--table-only", help="run the sweeps first (resumable)")] = True,
) -> None:
    """Rank methods: steps to generalise (Kaplan-Meier median, generalised n/N) and wall-clock, per setting."""
    table = grokkit.compare(comparison, out, executor=executor, workers=workers, overrides=override, train=train,
                            log=_say)
    typer.echo(grokkit.compare_markdown(table))
    _say(f"wrote {out}/*.csv, *.md, *.png")


@app.command("results")
def results_cmd(
    sweep_dir: Annotated[Path, typer.Argument(help="a sweep directory")],
    where: Annotated[str | None, typer.Option(help="pandas query, e.g. \"recipe == 'distill'\"")] = None,
    group_by: Annotated[list[str] | None,
                        typer.Option("--group-by", help="columns (repeat); default: the case and the axes")] = None,
    csv: Annotated[Path | None, typer.Option(help="also write the summary to this CSV")] = None,
) -> None:
    """Summarise a sweep's results table per setting: generalised n/N, steps to generalise, final accuracy."""
    from rich.table import Table

    summary = grokkit.results(sweep_dir, where=where, group_by=group_by)
    shown = grokkit.readable_results(summary)
    out = Table(title=f"{sweep_dir}: {int(summary['trials'].sum())} trials (lasting generalisation, held for the hold "
                "window; median: Kaplan-Meier, > budget where the data cannot give it; log-rank against scratch)")
    for c in shown.columns:
        out.add_column(str(c).split(".")[-1], justify="right", no_wrap=True)
    for row in shown.itertuples(index=False):
        out.add_row(*[f"{v:.4g}" if isinstance(v, float) else str(v) for v in row])
    _wide().print(out)
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
    for r in grokkit.threshold(sweep_dir, x=x, by=by, n_bootstrap=n_bootstrap).itertuples():
        _say(f"{r.method}: {x} at P(generalise)=0.5: {r.summary} ({r.n_generalized}/{r.n_trials} generalised)")


@app.command("map")
def map_cmd(
    sweep_dir: Annotated[Path, typer.Argument(help="a sweep directory whose sweep has a `map:` section")],
) -> None:
    """Draw a sweep's map (map.csv/md/png) from the trials finished so far (the sweep draws it when it ends)."""
    cells = grokkit.draw_map(sweep_dir)
    pending = int(cells.treatment_pending.sum() + cells.control_pending.sum())
    _say(f"wrote {sweep_dir}/map.csv, map.md and map.png: {len(cells)} cells"
         + (f" ({pending} trials not finished)" if pending else ""))


@app.command("inherit")
def inherit_cmd(
    sweep_dir: Annotated[Path, typer.Argument(help="a sweep of students with snapshots, its teacher a required run")],
    teacher: Annotated[str, typer.Option(help="the required run that is the teacher")] = "teacher",
    case: Annotated[list[str] | None, typer.Option(help="only these cases (default: every case)")] = None,
    out: Annotated[Path | None, typer.Option(help="where to write (default: the sweep directory)")] = None,
) -> None:
    """What distilled students inherit: each case's students' Fourier spectra over their snapshots against the
    teacher's key frequencies; writes inherit.{csv,md,png} and inherit_over_time.csv into the sweep directory."""
    seeds = grokkit.inherit(sweep_dir, teacher=teacher, cases=case, out=out)
    for r in seeds.to_dict("records"):
        _say(f"{r['arm']:>10} seed {r['seed']}: test {r['final_test_acc']:.3f}, keys {r['key_frequencies'] or '-'} "
             f"({r['shared_with_teacher']} of the teacher's), teacher-key share {r['final_teacher_key_share']:.2f}")


@app.command("report")
def report_cmd(
    directory: Annotated[Path, typer.Argument(help="a run or sweep directory")],
    out: Annotated[Path | None, typer.Option(help="HTML file (default: DIR/report.html)")] = None,
    partial: Annotated[bool, typer.Option(
        "--partial", help="for an unfinished run or sweep, or one with files missing: draw what there is, with a "
        "banner saying what is missing (without it such a directory is refused)")] = False,
) -> None:
    """Write one static HTML file with every figure and table of a run or sweep."""
    path, missing = grokkit.report(directory, out, partial=partial)
    for line in missing:
        _say(f"partial report: {line}")
    _say(f"wrote {path}")


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

    result, paths = grokkit.analyze(run_dir, member=member, position=position, min_gap=min_gap, out=out)
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
    (console if console.is_terminal else Console(width=160)).print(table)
    _say(f"wrote {', '.join(str(p) for p in paths)}")


def main() -> None:
    run_app(app)


if __name__ == "__main__":
    main()
