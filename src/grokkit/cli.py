"""The ``grokkit`` command: a thin layer over :mod:`grokkit.api` and :mod:`grokkit.demo`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from grokkit.api import RunError, run
from grokkit.config import ConfigError, load_config

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
err = Console(stderr=True, soft_wrap=True)


def _fail(message: str) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True, markup=True)
    raise typer.Exit(2)


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


def main() -> None:
    app()


if __name__ == "__main__":
    main()
