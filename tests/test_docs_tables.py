"""Every markdown table in docs/ says where its numbers come from, and a ``data:`` table agrees with its file.

Markers (the comment on the line right before a table; the grammar is in ``grokkit.tables``):
``<!-- data: docs/x.csv ... -->``, ``<!-- not data: reason -->``, ``<!-- no data file: reason -->``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from grokkit.tables import Table, cell_matches, check_table, load_data, parse_markdown_tables, parse_marker

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted((ROOT / "docs").rglob("*.md"))
TABLES = [(p, t) for p in DOCS for t in parse_markdown_tables(p.read_text())]


@pytest.mark.parametrize(("path", "table"), TABLES, ids=[f"{p.relative_to(ROOT)}:{t.line}" for p, t in TABLES])
def test_docs_table(path: Path, table: Table) -> None:
    where = f"{path.relative_to(ROOT)}:{table.line}"
    assert table.marker is not None, f"{where}: no <!-- data: ... -->, <!-- not data: ... --> or <!-- no data file -->"
    marker = parse_marker(table.marker)
    if marker.kind != "data":
        return
    base = path.parent if marker.path.startswith("./") else ROOT  # ./file: beside the markdown (generated tables)
    assert (base / marker.path).is_file(), f"{where}: {marker.path} does not exist"
    errors = check_table(table, load_data(marker, base))
    assert not errors, f"{where}:\n" + "\n".join(errors)


@pytest.mark.parametrize("path", DOCS, ids=[str(p.relative_to(ROOT)) for p in DOCS])
def test_no_broken_tables(path: Path) -> None:
    """A pipe row outside a table (e.g. after a blank line inside one) renders as text: the table lost its rows."""
    text = path.read_text()
    inside = {t.line + k for t in parse_markdown_tables(text) for k in range(len(t.rows) + 2)}
    stray = [i for i, line in enumerate(text.splitlines(), 1) if line.strip().startswith("|") and i not in inside]
    assert not stray, f"{path.relative_to(ROOT)}: pipe rows outside any table at lines {stray}"


DOC = """intro

<!-- data: docs/x.csv; columns: "acc, [min, max]"=acc+lo+hi, gen=n+of; key: name; unchecked: note -->
| name | steps | acc, [min, max] | gen | note |
|---|---|---|---|---|
| **b** | 1,100 | 0.30 [0.25, 35%] | 2/5 | anything |
| `a` | never | 0.296 [0.1, 0.5] | 0/5 | |

| no | marker |
|---|---|
| 1 | 2 |
"""
DATA = [
    {"name": "a", "steps": "", "acc": "0.29612", "lo": 0.1, "hi": 0.5, "n": "0", "of": "5"},
    {"name": "b", "steps": "1100.0", "acc": 0.3, "lo": 0.251, "hi": 0.35, "n": 2, "of": 5},
]


def test_parse_markdown_tables() -> None:
    first, second = parse_markdown_tables(DOC)
    assert first.line == 4 and second.marker is None and second.rows == [["1", "2"]]
    assert first.header == ["name", "steps", "acc, [min, max]", "gen", "note"]
    assert first.rows[1] == ["`a`", "never", "0.296 [0.1, 0.5]", "0/5", ""]
    marker = parse_marker(first.marker or "")
    assert marker.path == "docs/x.csv" and marker.clauses["key"] == ["name"]
    assert parse_marker("no data file: gone (2026-11-23, grokkit run)").kind == "no data file"
    with pytest.raises(ValueError):
        parse_marker("not data:")


def test_check_table_agrees() -> None:
    assert check_table(parse_markdown_tables(DOC)[0], DATA) == []


@pytest.mark.parametrize(
    ("cell", "wrong"),
    [("1,100", "1,200"), ("0.30 [0.25, 35%]", "0.30 [0.26, 35%]"), ("2/5", "3/5"), ("**b**", "c")],
)
def test_check_table_finds_a_wrong_cell(cell: str, wrong: str) -> None:
    table = parse_markdown_tables(DOC.replace(f"| {cell} |", f"| {wrong} |", 1))[0]
    errors = check_table(table, DATA)
    assert errors, f"{wrong!r} in place of {cell!r} went unnoticed"


def test_check_table_reports_every_mismatch_and_unknown_columns() -> None:
    table = parse_markdown_tables(DOC.replace("| 1,100 |", "| 1,101 |").replace("0/5", "1/5"))[0]
    assert len(check_table(table, DATA)) == 2
    unmapped = table._replace(marker="data: docs/x.csv")
    assert any("'acc, [min, max]' is not in" in e for e in check_table(unmapped, DATA))
    in_order = table._replace(marker="data: docs/x.csv; unchecked: \"acc, [min, max]\", gen, note")
    assert any("column 'name'" in e for e in check_table(in_order, DATA))  # without key:, row 1 is a


@pytest.mark.parametrize(
    ("cell", "values", "ok"),
    [
        ("0.296", [0.29612], True),
        ("0.296", [0.2967], False),
        ("1,100", ["1100"], True),
        ("35%", [0.35], True),
        ("1.5%", [0.0149], True),
        ("1.5%", [0.0161], False),
        ("never", [float("nan")], True),
        ("—", [""], True),
        ("never", [3.0], False),
        ("> 2000 [2000, > 2000]", [float("inf"), 2000, float("inf")], True),
        ("2000", [float("inf")], False),
        ("**5.10**", [5.100801], True),
        ("2.70×", [2.7], True),
        ("−0.38", [-0.375], True),
        ("3/3 (1,100 / 1,050 / 2,000)", [3, 3, "1100 1050 2000"], True),
        ("2/3 (1,150 / 1,250)", [2, 3, "- 1150 1250"], True),
        ("- 300 500", ["- 300 500"], True),
        ("`transfer_best3`", ["transfer_best3"], True),
        ("0.193 [95% CI 0.161, 0.225]", ["0.193 [95% CI 0.161, 0.226]"], False),
    ],
)
def test_cell_matches(cell: str, values: list[object], ok: bool) -> None:
    assert cell_matches(cell, values) is ok


def test_load_data_json_selectors(tmp_path: Path) -> None:
    (tmp_path / "b.json").write_text(
        '{"rounds": [{"local": {"wall_s": 1.5}, "ray": {"wall_s": 2}, "same": true}, {"local": {"wall_s": 1.7}}],'
        ' "median": {"x": 3}}'
    )
    assert load_data(parse_marker("data: b.json key=rounds"), tmp_path)[1] == {"index": 1, "local.wall_s": 1.7}
    assert load_data(parse_marker("data: b.json key=median"), tmp_path) == [{"x": 3}]
    pivot = load_data(parse_marker("data: b.json key=rounds pivot"), tmp_path)
    assert pivot == [{"name": "local", "0.wall_s": 1.5, "1.wall_s": 1.7}, {"name": "ray", "0.wall_s": 2}]


def test_check_table_selection_and_per_column_rows() -> None:
    rows = [("d", "0.1", "1"), ("d", "0.1", "4"), ("s", "0.1", "0"), ("s", "0.2", "5"), ("d", "0.2", "5")]
    data = [{"case": c, "f": f, "gen": g} for c, f, g in rows]
    text = """<!-- data: t.csv; last: case, f; key: fraction;
    columns: fraction=f, "s: gen"=gen@case=s, "d: gen"=gen@case=d -->
| fraction | s: gen | d: gen |
|---|---|---|
| 0.20 | 5 | 5 |
| 0.10 | 0 | 4 |
"""
    table = parse_markdown_tables(text)[0]
    assert check_table(table, data) == []
    assert len(check_table(table._replace(rows=[["0.20", "5", "5"], ["0.10", "0", "1"]]), data)) == 1  # not the last
    marker = 'data: t.csv; where: case=s; rows: 2, 1; columns: fraction=f, "s: gen"=gen; unchecked: d: gen'
    picked = table._replace(marker=marker)
    assert check_table(picked, data) == []
    assert check_table(picked._replace(marker=picked.marker.replace("rows: 2, 1", "rows: 1, 2")), data)


def test_generated_threshold_tables_carry_a_marker_that_checks(tmp_path: Path) -> None:
    import numpy as np
    import pandas as pd

    from grokkit.analysis.threshold import threshold_report

    x = np.repeat([0.1, 0.2, 0.3, 0.4], 4)
    table = pd.DataFrame({"task.train_fraction": x, "case": "a", "status": "ok", "generalized_lasting": x >= 0.3,
                          "steps_to_generalize_lasting": pd.array(np.where(x >= 0.3, 100, None), dtype="Int64"),
                          "steps": 2000})
    threshold_report(table, tmp_path, n_bootstrap=20)
    generated = parse_markdown_tables((tmp_path / "threshold.md").read_text())
    assert len(generated) == 2
    for t in generated:
        marker = parse_marker(t.marker)
        assert marker.kind == "data" and not check_table(t, load_data(marker, tmp_path))
