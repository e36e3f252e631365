"""Re-make the figure summaries of docs/repro/ (``<figure>_summary.csv`` / ``.md``) from the sweeps' committed
evidence (``docs/repro/<sweep>/trials.csv`` and ``curves.csv``, written by ``experiments/export_sweep.py``) instead of
the sweep directories, which are not committed: ``grokkit.repro.make_figure`` over
:func:`grokkit.repro.exported_trials`. Each trial's hold window comes from its sweep file.

    python experiments/redraw_repro.py [--out docs/repro] [FIGURE ...]

Only the summaries are copied into ``--out``: the figure and its curve CSV drawn from ``curves.csv`` (rounded to 6
significant digits) would differ from the committed ones in the last digits only. The figures whose sweeps have no
committed export (``studies``) and the references (``nanda2023``: its per-seed metrics are not committed) cannot be
re-made this way.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from grokkit.repro import FigureSpec, exported_trials, load_figure, make_figure

ROOT = Path(__file__).resolve().parents[1]
#: sweep key of the figure files -> the folder its evidence was exported to
EXPORTS = {"kd_add": "docs/repro/kd_add", "kd_sub": "docs/repro/kd_sub", "joint": "docs/repro/joint",
           "continual": "docs/repro/continual", "gf": "docs/repro/grokfast", "gt": "docs/repro/groktransfer",
           "pr": "docs/repro/prieto", "sm": "docs/repro/stablemax_claim"}
FIGURES = ("fig2", "fig3", "fig4", "fig5", "fig6", "fig7", "grokfast", "groktransfer", "prieto", "stablemax_claim")


def redraw(name: str, out: Path) -> Path:
    """Make figure ``name``'s summary from the exports into ``out``; returns the summary CSV's path."""
    spec, root = load_figure(name)
    assert isinstance(spec, FigureSpec), f"{name} is a reference, not a figure"
    trials = {key: exported_trials(ROOT / EXPORTS[key], root / rel) for key, rel in spec.sweeps.items()}
    with tempfile.TemporaryDirectory() as tmp:
        make_figure(spec, Path(tmp), trials)
        for suffix in ("_summary.csv", "_summary.md"):
            shutil.copyfile(Path(tmp) / f"{spec.name}{suffix}", out / f"{spec.name}{suffix}")
    return out / f"{spec.name}_summary.csv"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("figures", nargs="*", default=list(FIGURES))
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "repro")
    args = ap.parse_args(argv)
    for name in args.figures:
        print(f"wrote {redraw(name, args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
