"""Tables for people: markdown (docs, reports) from a data frame; a missing step count reads ``never``."""

from __future__ import annotations

from typing import Any

import pandas as pd


def cell(v: Any) -> str:
    """One table cell: ``never`` for a missing value (a member that did not generalise), else ``str(v)``."""
    return "never" if v is None or (not isinstance(v, str) and pd.isna(v)) else str(v)


def markdown_table(table: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)
