"""The command line is a thin layer over the public Python interface: cli.py imports nothing of the package but
``grokkit`` itself and the command-line failure handling, and every public name it calls exists."""

from __future__ import annotations

import ast
from pathlib import Path

import grokkit

CLI = Path(grokkit.__file__).parent / "cli.py"
ALLOWED = {"grokkit", "grokkit.failures"}


def test_cli_imports_only_the_public_interface():
    tree = ast.parse(CLI.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    ours = {m for m in imported if m == "grokkit" or m.startswith("grokkit.")}
    assert ours == ALLOWED, ours - ALLOWED


def test_every_grokkit_name_the_cli_calls_is_public():
    tree = ast.parse(CLI.read_text())
    used = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)
            and n.value.id == "grokkit"}
    assert used and used <= set(grokkit.__all__), used - set(grokkit.__all__)
    for name in used:
        assert getattr(grokkit, name).__doc__, name
