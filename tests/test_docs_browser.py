"""The documentation site as a reader sees it: built with ``mkdocs build --strict`` into a temporary directory, its home
page and config reference opened in headless Chromium (``--dump-dom``: the DOM after the page's scripts ran), and
the title, the navigation and a known config key checked in what the browser rendered.

Marked ``browser``; skipped where no Chromium binary is on the PATH (``apt-get install chromium``) or mkdocs is not
installed (the ``docs`` extra).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary on PATH"),
    pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None, reason="mkdocs not installed (the docs extra)"),
]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    return out


def rendered(page: Path, tmp_path: Path) -> str:
    """The page's DOM after Chromium loaded it and ran its scripts."""
    assert page.is_file(), page
    done = subprocess.run([str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                           f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", page.as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "<html" in done.stdout, done.stderr[-2000:]
    return done.stdout


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_the_home_page_renders_with_title_and_navigation(site: Path, tmp_path: Path) -> None:
    dom = rendered(site / "index.html", tmp_path)
    assert re.search(r"<title>\s*grokkit\s*</title>", dom)
    assert 'class="js' in dom  # the theme's scripts ran
    nav = _text(dom[dom.index('class="md-nav'):])
    for entry in ("Getting started", "Concepts", "Recipes", "Config reference", "Python API", "Results", "Benchmarks",
                  "Changelog"):
        assert entry in nav, entry
    assert 'href="reference/config/"' in dom


def test_the_config_reference_renders_its_keys(site: Path, tmp_path: Path) -> None:
    dom = rendered(site / "reference" / "config" / "index.html", tmp_path)
    assert re.search(r"<title>\s*Config reference - grokkit\s*</title>", dom)
    assert re.search(r"<td><code>training\.steps</code></td>\s*<td>int</td>", dom)
    assert re.search(r'<h2 id="distill"', dom) and 'href="#task-kinds"' in dom
    assert "<table>" in dom and dom.count("<tr>") > 200  # every key a row
