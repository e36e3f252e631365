"""The generators of the documentation site's generated pages and the README's generated blocks
(``python docs/generate.py``)."""

from __future__ import annotations

from pathlib import Path


def pages(root: Path) -> dict[Path, str]:
    """Every generated page: its path (under ``root``, the repository) and its text."""
    from docsgen import benchmarks, cliref, configref, readme, results

    return {root / "docs" / "reference" / "config.md": configref.render(),
            root / "docs" / "reference" / "cli.md": cliref.render(),
            root / "docs" / "benchmarks.md": benchmarks.render(root),
            root / "README.md": readme.render(root),
            **results.pages(root)}
