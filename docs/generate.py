"""Write every generated page of the documentation site, from the code and from the committed data under docs/.

    python docs/generate.py            # (re)write the pages
    python docs/generate.py --check    # exit 1, naming them, when a committed page differs from what would be written

The pages: ``docs/reference/config.md`` (the config reference, from the config models: :mod:`docsgen.configref`),
the results pages ``docs/results/*.md`` (from the committed CSV/JSON: :mod:`docsgen.results`) and
``docs/benchmarks.md`` (from ``docs/bench_*.json``: :mod:`docsgen.benchmarks`), the generated blocks of
``README.md`` and its figure ``docs/headline/headline.png`` (:mod:`docsgen.readme`). ``tests/test_docs_site.py`` runs
the check.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(DOCS))
if (ROOT / "src" / "grokkit").is_dir():
    sys.path.insert(1, str(ROOT / "src"))

from docsgen import pages, readme  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a page is out of date")
    args = parser.parse_args(argv)
    stale = []
    for path, text in pages(ROOT).items():
        if path.exists() and path.read_text() == text:
            continue
        stale.append(path.relative_to(ROOT))
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    figure = ROOT / "docs" / readme.FIGURE
    if not args.check:
        readme.figure(ROOT)  # a PNG: redrawn every time, not compared byte for byte (renderers differ)
    elif not figure.exists():
        stale.append(figure.relative_to(ROOT))
    verb = "out of date" if args.check else "written"
    for p in stale:
        print(f"{verb}: {p}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
