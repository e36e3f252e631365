"""The checker of hand-written markdown tables: a table that restates numbers says where they come from, and agrees
with its data file. Generated pages (``python docs/generate.py``) need none of this: a test regenerates them. What
remains checked: the study write-ups under ``docs/studies/`` and the tables the package writes with a marker
(``threshold.md``, ``tune.md``, the demo's ``headline.md``). Test tooling, not part of the package.
"""

from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

# --- markdown tables in docs/ checked against the data files they restate -----------------------------------------
#
# A table in docs/ is preceded by an HTML comment (it may span lines; it ends on the line right before the table):
#   <!-- data: PATH [key=SEL] [pivot]; columns: md header=csv_col[+csv_col...][@col=value], ...; where: col=value, ...;
#        last: col, ...; rows: 1, 3, 2; key: md header, ...; unchecked: md header, ... -->
#   <!-- not data: reason -->            (prose, commands, settings)
#   <!-- no data file: reason -->        (measured once, its data not kept)
# PATH is a CSV, a JSON file (``key=`` a dotted path to a list of objects, an object of objects or one object, ``a+b``
# for a's rows then b's; ``pivot`` turns a list of objects of objects into one row per inner object, fields
# ``<index>.<field>``) or a generated markdown file (``key=`` the table's number, 1 by default). ``columns:`` maps a
# markdown header to data columns (several joined by ``+``: the cell's numbers in order; ``@col=value`` takes that
# column from the row with the same key and col=value);
# a header that is a data column needs no mapping; a header seen twice takes its mappings in order. ``where:`` keeps
# rows, ``last:`` keeps the last row of each group, ``rows:`` picks rows by 1-based number. Rows are matched in order
# unless ``key:`` names markdown columns that identify a row. Quote a header that holds ``,``, ``=`` or ``;``.

MISSING_WORDS = {"", "never", "-", "—", "–", "n/a", "nan", "none"}
_NUMBER = re.compile(
    r"(?P<op>[<>≥≤]=?\s*)?(?<![A-Za-z_\d.])(?P<num>[-+−]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.(?P<dec>\d+))?(?:e[-+]?\d+)?)"
    r"(?P<pct>%)?|(?P<never>\bnever\b)"
)
_MISSING = None  # an atom: a value that is not there (NaN, empty, "never", "—")


class Table(NamedTuple):
    marker: str | None  # the HTML comment's text before the table, without ``<!--``/``-->``
    header: list[str]
    rows: list[list[str]]
    line: int  # 1-based line of the header


@dataclass
class Marker:
    kind: str  # "data", "not data" or "no data file"
    path: str = ""
    selector: str | None = None  # JSON: dotted path; markdown: the table's number
    pivot: bool = False
    clauses: dict[str, list[str]] = field(default_factory=dict)
    reason: str = ""


def _split(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside double quotes; strip each part."""
    parts, cur, quoted = [], "", False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == sep and not quoted:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    return [p for p in [*parts, cur.strip()] if p]


def _unquote(s: str) -> str:
    return s.strip().strip('"').strip()


def _row_cells(line: str) -> list[str]:
    body = line.strip()
    body = body[1:] if body.startswith("|") else body
    body = body[:-1] if body.endswith("|") and not body.endswith("\\|") else body
    return [c.strip() for c in re.split(r"(?<!\\)\|", body)]


def _is_separator(line: str) -> bool:
    return line.strip().startswith("|") and all(re.fullmatch(r":?-{3,}:?", c) for c in _row_cells(line))


def parse_markdown_tables(text: str) -> list[Table]:
    """Every pipe table of a markdown text (header, separator, rows) with the comment on the line right before it."""
    lines, tables, i = text.splitlines(), [], 0
    while i < len(lines):
        if lines[i].strip().startswith("|") and i + 1 < len(lines) and _is_separator(lines[i + 1]):
            start, marker = i, None
            if start > 0 and lines[start - 1].strip().endswith("-->"):
                j = start - 1
                while j >= 0 and "<!--" not in lines[j]:
                    j -= 1
                if j >= 0:
                    comment = " ".join(x.strip() for x in lines[j:start])
                    marker = comment[comment.index("<!--") + 4 : comment.rindex("-->")].strip()
            header, rows, i = _row_cells(lines[i]), [], i + 2
            while i < len(lines) and lines[i].strip().startswith("|"):
                rows.append(_row_cells(lines[i]))
                i += 1
            tables.append(Table(marker, header, rows, start + 1))
        else:
            i += 1
    return tables


def parse_marker(marker: str) -> Marker:
    """``data: PATH ...; clause: ...`` / ``not data: reason`` / ``no data file: reason``; ValueError otherwise."""
    for kind in ("not data", "no data file"):
        if marker.startswith(kind + ":"):
            reason = marker[len(kind) + 1 :].strip()
            if not reason:
                raise ValueError(f"{kind}: give a reason")
            return Marker(kind, reason=reason)
    if not marker.startswith("data:"):
        raise ValueError(f"not a table marker: {marker!r} (data: / not data: / no data file:)")
    first, *rest = _split(marker[5:], ";")
    words = first.split()
    m = Marker("data", path=words[0])
    for w in words[1:]:
        if w.startswith("key="):
            m.selector = w[4:]
        elif w == "pivot":
            m.pivot = True
        else:
            raise ValueError(f"data: unknown option {w!r}")
    for clause in rest:
        name, _, value = clause.partition(":")
        if name.strip() not in ("columns", "where", "last", "rows", "key", "unchecked"):
            raise ValueError(f"data: unknown clause {name.strip()!r}")
        m.clauses[name.strip()] = _split(value, ",")
    return m


def _flatten(obj: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in obj.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def load_data(marker: Marker, root: Path) -> list[dict[str, Any]]:
    """The rows of a ``data:`` marker's file (path relative to ``root``), before ``where``/``last``/``rows``."""
    path = root / marker.path
    if path.suffix == ".csv":
        with path.open(newline="") as f:
            return list(csv.DictReader(f))
    if path.suffix == ".md":
        t = parse_markdown_tables(path.read_text())[int(marker.selector or 1) - 1]
        return [dict(zip(t.header, r)) for r in t.rows]
    if path.suffix != ".json":
        raise ValueError(f"{marker.path}: a data file is .csv, .json or .md")
    if "+" in (marker.selector or ""):  # key=a+b: a's rows, then b's
        return [r for sel in (marker.selector or "").split("+") for r in load_data(replace(marker, selector=sel), root)]
    obj: Any = json.loads(path.read_text())
    for part in (marker.selector or "").split("."):
        obj = obj[int(part)] if part and isinstance(obj, list) else obj[part] if part else obj
    if marker.pivot:  # [{name: {field: v}}] -> one row per name: {"name": name, "<i>.<field>": v}
        rows: dict[str, dict[str, Any]] = {}
        for i, item in enumerate(obj):
            for name, inner in item.items():
                if isinstance(inner, dict):
                    rows.setdefault(name, {"name": name}).update({f"{i}.{k}": v for k, v in _flatten(inner).items()})
        return list(rows.values())
    if isinstance(obj, list):
        return [{"index": i, **_flatten(o)} for i, o in enumerate(obj)]
    if all(isinstance(v, dict) for v in obj.values()):
        return [{"name": k, **_flatten(v)} for k, v in obj.items()]
    return [_flatten(obj)]


def _clean(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace("**", "").replace("__", "").replace("`", "").replace("*", "")).strip()


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, int | float):
        return float(v)
    try:
        return float(str(v).replace(",", "").replace("−", "-"))
    except ValueError:
        return None


def _is_missing(v: Any) -> bool:
    if v is None:
        return True
    if isinstance(v, float):
        return math.isnan(v)
    return isinstance(v, str) and _clean(v).lower() in MISSING_WORDS


def _expected(values: list[Any]) -> list[float | None]:
    """A data cell's (or several cells') values as atoms; in a composite a missing value is skipped."""
    atoms: list[float | None] = []
    for v in values:
        if _is_missing(v):
            atoms.append(_MISSING)
        elif (x := _number(v)) is not None:
            atoms.append(x)
        else:
            atoms += [_MISSING if _is_missing(t) else _number(t) for t in str(v).split()]
    present = [a for a in atoms if a is not _MISSING]
    return atoms if len(atoms) == 1 else present or [_MISSING]


def _cell_atoms(cell: str) -> list[tuple[str, float, int, bool] | None]:
    """The numbers of a markdown cell in order (comparison, value, decimals shown, percent), ``None`` for missing."""
    text = _clean(cell)
    if text.lower() in MISSING_WORDS:
        return [_MISSING]
    out: list[tuple[str, float, int, bool] | None] = []
    for m in _NUMBER.finditer(text):
        if m["never"]:
            out.append(_MISSING)
        else:
            value = float(m["num"].replace(",", "").replace("−", "-"))
            out.append(((m["op"] or "").strip()[:1], value, len(m["dec"] or ""), bool(m["pct"])))
    return out


def _atom_matches(shown: tuple[str, float, int, bool] | None, v: float | None) -> bool:
    if shown is None or v is None:
        return shown is None and v is None
    op, x, decimals, pct = shown
    candidates = [(x, 0.5 * 10.0**-decimals)] + ([(x / 100, 0.5 * 10.0 ** -(decimals + 2))] if pct else [])
    for target, tol in candidates:
        tol += 1e-9 * max(1.0, abs(target))
        if (op in (">", "≥") and v >= target - tol) or (op in ("<", "≤") and v <= target + tol):
            return True
        if not op and math.isfinite(v) and abs(v - target) <= tol:
            return True
    return False


def cell_matches(cell: str, values: list[Any]) -> bool:
    """Does a markdown cell show these data values? Text exactly (emphasis and backticks stripped), numbers to the
    precision shown ("0.296" is 0.29612, "1,100" 1100, "35%" 0.35 or 35, "> 2000" anything from 2000 to inf),
    "never"/"—"/empty for a missing value; several values are the cell's numbers in order."""
    if len(values) == 1 and not _is_missing(values[0]) and _number(values[0]) is None:
        return _clean(cell) == _clean(str(values[0]))
    shown, expected = _cell_atoms(cell), _expected(values)
    return len(shown) == len(expected) and all(_atom_matches(s, v) for s, v in zip(shown, expected))


def _shows(cell: str, s: tuple[list[str], tuple[str, str] | None] | None, record: dict[str, Any]) -> bool:
    return s is not None and cell_matches(cell, [record.get(c) for c in s[0]])


def check_table(table: Table, data: list[dict[str, Any]]) -> list[str]:
    """Mismatches between a ``data:`` table and its file's rows (loaded by :func:`load_data`): one message each."""
    assert table.marker is not None
    m, at = parse_marker(table.marker), f"table at line {table.line}"
    errors: list[str] = []
    for cond in m.clauses.get("where", []):
        col, neg, val = re.match(r"(.+?)(!?)=(.*)", cond).groups()  # type: ignore[union-attr]
        data = [r for r in data if (str(r.get(_unquote(col), "")) == _unquote(val)) != bool(neg)]
    if groups := [_unquote(c) for c in m.clauses.get("last", [])]:
        data = list({tuple(str(r.get(c)) for c in groups): r for r in data}.values())
    if picks := m.clauses.get("rows"):
        data = [data[int(i) - 1] for i in picks]
    columns = {c for r in data for c in r}
    mappings: dict[str, list[tuple[list[str], tuple[str, str] | None]]] = {}
    for item in m.clauses.get("columns", []):
        if item.startswith('"'):
            head, _, expr = item[1:].partition('"')
            expr = expr.strip().removeprefix("=")
        else:
            head, _, expr = item.partition("=")
        expr, _, cond = expr.partition("@")
        filt = (cond.split("=", 1)[0].strip(), cond.split("=", 1)[1].strip()) if "=" in cond else None
        mappings.setdefault(head.strip(), []).append(([c.strip() for c in expr.split("+")], filt))
    header = [_clean(h) for h in table.header]
    unchecked = {_unquote(c) for c in m.clauses.get("unchecked", [])}
    for h in set(mappings) | unchecked | {_unquote(k) for k in m.clauses.get("key", [])}:
        if h not in header:
            errors.append(f"{at}: no column {h!r} in the markdown (columns: {header})")
    spec: list[tuple[list[str], tuple[str, str] | None] | None] = []
    seen: dict[str, int] = {}
    for h in header:
        n = seen[h] = seen.get(h, -1) + 1
        if h in mappings:
            spec.append(mappings[h][min(n, len(mappings[h]) - 1)])
        elif h in unchecked:
            spec.append(None)
        elif h in columns:
            spec.append(([h], None))
        else:
            spec.append(None)
            errors.append(f"{at}: column {h!r} is not in {m.path}; map it (columns:) or list it (unchecked:)")
    for s in spec:
        for c in s[0] if s else []:
            if c not in columns:
                errors.append(f"{at}: {m.path} has no column {c!r}")
    if errors:
        return errors
    keys = [header.index(_unquote(k)) for k in m.clauses.get("key", [])]
    for i, row in enumerate(table.rows):
        if len(row) != len(header):
            errors.append(f"{at}, row {i + 1}: {len(row)} cells under {len(header)} columns")
            continue
        for j, (h, s) in enumerate(zip(header, spec)):
            if s is None:
                continue
            cols, filt = s
            candidates = [r for r in data if filt is None or str(r.get(filt[0])) == filt[1]]
            if keys:
                record = next((r for r in candidates if all(_shows(row[k], spec[k], r) for k in keys)), None)
            else:
                record = candidates[i] if i < len(candidates) else None
            if record is None:
                errors.append(f"{at}, row {i + 1} ({' | '.join(row[:2])}): no matching row in {m.path}")
                break
            values = [record.get(c) for c in cols]
            if not cell_matches(row[j], values):
                errors.append(f"{at}, row {i + 1}, column {h!r}: markdown {row[j]!r}, {m.path} {values}")
    for filt in [] if keys else {s[1] for s in spec if s}:
        n = len([r for r in data if filt is None or str(r.get(filt[0])) == filt[1]])
        if n != len(table.rows):
            errors.append(f"{at}: {len(table.rows)} rows in the markdown, {n} in {m.path} (after selection)")
    return errors
