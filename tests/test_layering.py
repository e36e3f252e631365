"""Layering: no import cycle between grokkit's modules at import time, and recipes never import the layers above them
(the API that dispatches to them, sweeps, the CLI)."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import grokkit

PACKAGE = Path(grokkit.__file__).parent
#: layers above the recipes: a recipe importing one of these is a cycle (they dispatch to the recipes)
ABOVE_RECIPES = ("grokkit.api", "grokkit.sweep", "grokkit.cli")

#: run in a fresh interpreter: import every module of a package and report each import of a module that was still
#: executing (``__spec__._initializing``) at the time: an import cycle at import time
CYCLE_PROBE = textwrap.dedent("""
    import builtins, importlib, importlib.util, json, pkgutil, sys, types

    package = sys.argv[1]
    real_import = builtins.__import__
    cycles, skipped = [], []

    def initializing(name):
        module = sys.modules.get(name)
        return bool(getattr(getattr(module, "__spec__", None), "_initializing", False))

    def probe(name, globals=None, locals=None, fromlist=(), level=0):
        module = real_import(name, globals, locals, fromlist, level)
        importer = (globals or {}).get("__name__", "?")
        if level:
            base = importlib.util.resolve_name("." * level + name, (globals or {}).get("__package__"))
        else:
            base = name
        if not (base == package or base.startswith(package + ".")):
            return module
        targets = [base]
        for f in fromlist or ():  # `from x import y`: y itself when it is a submodule, else x
            attr = getattr(module, f, None)
            targets.append(attr.__name__ if isinstance(attr, types.ModuleType) else base)
        for target in set(targets):
            if target != importer and initializing(target):
                cycles.append([importer, target])
        return module

    builtins.__import__ = probe
    root = importlib.import_module(package)
    names = [package] + sorted(m.name for m in pkgutil.walk_packages(root.__path__, package + "."))
    for name in names:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as err:  # an optional dependency that is not installed
            if err.name and (err.name == package or err.name.startswith(package + ".")):
                raise
            skipped.append([name, err.name])
    print(json.dumps({"modules": names, "cycles": cycles, "skipped": skipped}))
""")


def probe_imports(package: str, path: Path | None = None) -> dict:
    env = dict(os.environ)
    if path is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(path), env.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, "-c", CYCLE_PROBE, package], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_probe_finds_an_import_cycle(tmp_path):
    pkg = tmp_path / "cyclepkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from cyclepkg import b\n")
    (pkg / "b.py").write_text("import cyclepkg.a\n")
    (pkg / "c.py").write_text("def f():\n    from cyclepkg import a\n")  # at call time only: not a cycle
    report = probe_imports("cyclepkg", tmp_path)
    assert report["cycles"] == [["cyclepkg.b", "cyclepkg.a"]]


def test_no_import_cycle_between_grokkit_modules():
    report = probe_imports("grokkit", PACKAGE.parent)
    assert {"grokkit.api", "grokkit.rundir", "grokkit.recipes.continual", "grokkit.recipes.transfer",
            "grokkit.sweep.runner", "grokkit.cli"} <= set(report["modules"])
    assert report["cycles"] == [], f"import cycles (importer, module still executing): {report['cycles']}"


def _type_only(tree: ast.AST) -> set[int]:
    """The ids of the nodes inside ``if TYPE_CHECKING:`` blocks: imports for annotations only, never executed."""
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            ids |= {id(n) for child in node.body for n in ast.walk(child)}
    return ids


def _imported_modules(path: Path, package: str, types: bool = True) -> list[tuple[int, str]]:
    """Every module a source file imports, at any level (functions included), as absolute names; also
    ``importlib.import_module("...")`` / ``__import__("...")`` with a literal name. ``types=False``: without the
    imports of ``if TYPE_CHECKING:`` blocks (names for annotations, never imported when the code runs)."""
    found = []
    tree = ast.parse(path.read_text(), str(path))
    skip = set() if types else _type_only(tree)
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[:len(parts) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{a.name}") for a in node.names]  # `from grokkit import api`
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                found.append((node.lineno, node.args[0].value))
    return found


def test_recipes_do_not_import_the_layers_above_them():
    sources = sorted((PACKAGE / "recipes").rglob("*.py"))
    assert {"continual.py", "transfer.py", "common.py"} <= {p.name for p in sources}
    bad = [f"{p.relative_to(PACKAGE)}:{line} imports {name}" for p in sources
           for line, name in _imported_modules(p, "grokkit.recipes")
           if any(name == up or name.startswith(up + ".") for up in ABOVE_RECIPES)]
    assert bad == []


def test_the_source_check_sees_function_level_and_relative_imports(tmp_path):
    src = tmp_path / "x.py"
    src.write_text("def f():\n    from grokkit.api import run\n    from .. import sweep\n"
                   "    import importlib\n    importlib.import_module('grokkit.cli')\n")
    names = {name for _, name in _imported_modules(src, "grokkit.recipes")}
    assert {"grokkit.api", "grokkit.sweep", "grokkit.cli"} <= names


#: the layers of the package, lowest first (docs/architecture.md): a module imports only from its own layer or the
#: layers below it, at import time and inside functions alike
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("foundations", ("registry", "schema", "io", "runtime", "tables", "errors", "yamlio", "summary")),
    ("components", ("tasks", "models", "losses", "optim", "checkpoint")),
    ("shared sections", ("sections",)),
    ("engine", ("engine",)),
    ("recipes", ("recipes",)),
    ("run config", ("config", "resources")),
    ("run directories", ("rundir", "api", "sinks", "plots")),
    ("studies", ("sweep", "tune", "analysis", "report", "compare", "repro", "demo", "export")),
    ("public interface", ("results", "interface")),
    ("command line", ("cli", "failures")),
]


def _layer(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != "grokkit" or len(parts) == 1:
        return None  # the package itself re-exports lazily (its __getattr__), at every layer's top
    for i, (_, names) in enumerate(LAYERS):
        if parts[1] in names:
            return i
    return None


def test_every_module_has_a_layer():
    modules = [p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" or p.parent != PACKAGE]
    unplaced = sorted(str(p.relative_to(PACKAGE)) for p in modules
                      if _layer("grokkit." + ".".join(p.relative_to(PACKAGE).with_suffix("").parts)) is None)
    assert unplaced == []


def test_no_module_imports_a_layer_above_its_own():
    """At import time or inside a function; a name imported for annotations only (``if TYPE_CHECKING:``, e.g. the
    recipes' ``RunConfig``) is not an import."""
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).with_suffix("")
        if rel.parts == ("__init__",):
            continue
        module = "grokkit." + ".".join(p for p in rel.parts if p != "__init__")
        own = _layer(module)
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        for line, name in _imported_modules(path, package, types=False):
            target = _layer(name)
            if target is not None and own is not None and target > own:
                bad.append(f"{rel}:{line} ({LAYERS[own][0]}) imports {name} ({LAYERS[target][0]})")
    assert bad == [], "\n".join(bad)


def test_no_module_below_the_recipes_names_a_recipe():
    from grokkit.recipes import RECIPES

    below = [p for p in PACKAGE.rglob("*.py") if (_layer("grokkit." + ".".join(
        p.relative_to(PACKAGE).with_suffix("").parts)) or 0) < 4]
    bad = [f"{p.relative_to(PACKAGE)}: {name!r}" for p in below for node in ast.walk(ast.parse(p.read_text()))
           if isinstance(node, ast.Compare) for name in RECIPES.names()
           if any(isinstance(c, ast.Constant) and c.value == name for c in node.comparators)]
    assert bad == []
