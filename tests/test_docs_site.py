"""The documentation site: its generated pages are what ``python docs/generate.py`` writes, the config reference
lists every field of every config model, no page is over 40 KB, and the worked examples of the extending guide run.

The site itself is built with ``mkdocs build --strict`` (CI: ``.ci/run``); ``tests/test_docs_browser.py`` opens it in
a headless Chromium.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
sys.path.insert(0, str(DOCS))

from docsgen import pages  # noqa: E402

CONFIG_REFERENCE = DOCS / "reference" / "config.md"


@pytest.fixture(scope="module")
def generated() -> dict[Path, str]:
    return pages(ROOT)


def test_generated_pages_are_up_to_date(generated: dict[Path, str]) -> None:
    stale = [str(p.relative_to(ROOT)) for p, text in generated.items() if not p.exists() or p.read_text() != text]
    assert not stale, f"out of date (run `python docs/generate.py`): {stale}"


def test_generate_check_passes_on_the_committed_pages() -> None:
    """The command CI and contributors run: ``generate.py --check`` exits 0 (1, naming the page, when one differs)."""
    done = subprocess.run([sys.executable, str(DOCS / "generate.py"), "--check"], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


def _models_in(annotation: object) -> list[type[BaseModel]]:
    """The pydantic models an annotation mentions, however nested (unions, lists, dicts, Annotated)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    out: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        out += _models_in(arg)
    return out


def _all_config_models() -> list[type[BaseModel]]:
    """Every model reachable from the run config, the sweep spec and the tune spec, and every registered kind and
    recipe section: walked here independently of the generator."""
    from grokkit.config import RunConfig
    from grokkit.models import MODELS
    from grokkit.recipes import SECTIONS
    from grokkit.sweep.spec import SweepSpec
    from grokkit.tasks import TASKS
    from grokkit.tune import TuneSpec

    todo: list[type[BaseModel]] = [RunConfig, SweepSpec, TuneSpec, *(c for _, c in TASKS.items()),
                                   *(c for _, c in MODELS.items()), *(s.model for _, s in SECTIONS.items())]
    seen: list[type[BaseModel]] = []
    while todo:
        model = todo.pop()
        if model in seen:
            continue
        seen.append(model)
        for field in model.model_fields.values():
            todo += _models_in(field.annotation)
    return seen


def _reference_tables(text: str) -> list[tuple[set[str], dict[str, str]]]:
    """Each table of the config reference: its keys' last components, and key -> description cell."""
    tables: list[tuple[set[str], dict[str, str]]] = []
    current: dict[str, str] | None = None
    for line in text.splitlines():
        if line.startswith("| key | type | default | allowed | description |"):
            current = {}
            tables.append((set(), current))
        elif current is not None and line.startswith("| `"):
            cells = re.split(r"(?<!\\)\|", line.strip().strip("|"))
            key = cells[0].strip().strip("`")
            leaf = re.split(r"[.\]]", key)[-1]
            tables[-1][0].add(leaf)
            current[leaf] = cells[-1].strip()
        elif current is not None and not line.startswith("|"):
            current = None
    return tables


def test_config_reference_lists_every_field_of_every_config_model() -> None:
    tables = _reference_tables(CONFIG_REFERENCE.read_text())
    models = _all_config_models()
    assert len(models) > 20
    missing = [m.__name__ for m in models if not any(keys == set(m.model_fields) for keys, _ in tables)]
    assert not missing, f"no table of the config reference lists exactly the fields of {missing}"


def test_every_config_field_has_a_description() -> None:
    undescribed = [f"{m.__name__}.{name}" for m in _all_config_models() for name, f in m.model_fields.items()
                   if not f.description and name != "kind"]
    assert not undescribed, f"fields without a description (the config reference shows it): {undescribed}"


def test_config_reference_shows_type_default_and_allowed_values() -> None:
    text = CONFIG_REFERENCE.read_text()
    assert "| `training.steps` | int | `10000` | ≥ 1 |" in text
    assert re.search(r"\| `recipe` \| str \| `scratch` \| `scratch`, `distill`, `joint`, `continual`, `transfer` \|",
                     text)
    assert "| `loss.dtype` | str | `float64` | `float64`, `float32` |" in text


def test_no_docs_page_is_over_40_kb() -> None:
    big = {str(p.relative_to(ROOT)): p.stat().st_size for p in DOCS.rglob("*.md") if p.stat().st_size > 40_000}
    assert not big, f"pages over 40 KB: {big}"


def test_every_page_of_the_site_is_in_its_navigation() -> None:
    """A page under docs/ that the navigation leaves out is reachable by no reader (the data directories' own
    generated tables aside)."""
    import yaml

    class Loader(yaml.SafeLoader):  # mkdocs.yml's own tags (!relative ...) read as plain values
        pass

    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    nav = yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=Loader)["nav"]  # noqa: S506

    def files(node: object) -> list[str]:
        if isinstance(node, str):
            return [node]
        if isinstance(node, list):
            return [f for n in node for f in files(n)]
        if isinstance(node, dict):
            return [f for v in node.values() for f in files(v)]
        return []

    listed = set(files(nav))
    assert all((DOCS / f).is_file() for f in listed), sorted(f for f in listed if not (DOCS / f).is_file())
    pages_here = {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md")
                  if p.parent == DOCS or p.parent.name in ("concepts", "recipes", "guides", "reference", "api",
                                                           "results", "studies", "archive")}
    assert pages_here <= listed, sorted(pages_here - listed)


def test_readme_is_short_and_starts_with_a_first_run() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 200, len(lines)
    assert any("grokkit run configs/smoke.yaml" in line for line in lines[:30]), "the 30-second first run"
    assert any("bash run.sh demo" in line for line in lines[:30]) and any("bash run.sh test" in line
                                                                           for line in lines[:30])


def test_readme_figure_is_readable_at_githubs_width() -> None:
    """GitHub shows a README at most ~880 px wide: a figure drawn at that width keeps its 11-pt text at its size."""
    from matplotlib.image import imread

    text = (ROOT / "README.md").read_text()
    figures = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", text)
    assert figures, "the README shows the headline figure"
    for figure in figures:
        height, width = imread(ROOT / figure).shape[:2]
        assert 700 <= width <= 1000 and height <= width, (figure, width, height)


EXAMPLES = sorted((DOCS / "examples").glob("*.py"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_worked_example_runs(path: Path, tmp_path: Path) -> None:
    """The extending guide's worked examples, as the page shows them (it includes these files), each in a fresh
    interpreter (they register components: the registries of this process stay as they are)."""
    env = {**os.environ, "GROKKIT_CACHE": str(tmp_path / "cache"),
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, str(path)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]


def test_the_extending_guide_includes_every_worked_example() -> None:
    text = (DOCS / "guides" / "extending.md").read_text()
    assert EXAMPLES and all(f'--8<-- "docs/examples/{p.name}"' in text for p in EXAMPLES)
