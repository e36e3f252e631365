"""The HTML report as a reader sees it (issue 31): every column explained, the config folded away, tables that fit
the page, the teacher's row, log axes whose labels do not collide, aggregate points that show their n; and, where a
``chromium`` is installed, the page rendered headless: a non-blank screenshot, the expected headings in the DOM, and
nothing wider than the window."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from grokkit.report import COLUMNS, explain, write_report
from grokkit.sweep import parse_sweep, run_sweep
from helpers import tiny_config

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

VOCAB = {"n_numbers": 19, "moduli": [17, 19]}
TEACHER = tiny_config(name="teacher", seeds=[0], task={"op": "add", "modulus": 19, "train_fraction": 0.5},
                      vocab=VOCAB, training={"steps": 40, "eval_every": 20, "checkpoint_every": 0, "progress": False})


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny sweep with a teacher (trained first into requires/), scratch and distill at two fractions, one seed
    each, and a threshold fit: a few seconds of CPU."""
    root = tmp_path_factory.mktemp("report")
    base = tiny_config(vocab=VOCAB, seeds=[0])
    spec = parse_sweep({
        "name": "browser", "base": base, "requires": {"teacher": {"base": TEACHER}},
        "cases": [{"name": "scratch", "overrides": {"recipe": "scratch"}},
                  {"name": "distill", "overrides": {"recipe": "distill",
                                                    "distill": {"teacher": "{requires.teacher}"}}}],
        "grid": {"task.train_fraction": [0.3, 0.6]}, "seeds": [0],
        "threshold": {"x": "task.train_fraction", "by": "case", "n_bootstrap": 20},
    })
    out = root / "sw"
    run_sweep(spec, root, out, log=lambda _: None)
    return out


@pytest.fixture(scope="module")
def pages(sweep_dir: Path) -> dict[str, Path]:
    """The reports of the sweep, of one distilled trial (it has a teacher) and of the teacher run."""
    distilled = next(p for p in sorted((sweep_dir / "trials").iterdir()) if p.name.startswith("distill"))
    return {"sweep": write_report(sweep_dir)[0], "distilled": write_report(distilled)[0],
            "teacher": write_report(sweep_dir / "requires" / "teacher")[0]}


def _headers(page: str) -> list[str]:
    return [re.sub(r"<[^>]+>", "", h) for h in re.findall(r"<th[^>]*>(.*?)</th>", page)]


def test_every_column_a_report_shows_is_explained_under_its_table(pages):
    for name, path in pages.items():
        page = path.read_text()
        headers = _headers(page)
        assert headers, name
        missing = sorted({h for h in headers if not explain(h)})
        assert not missing, f"{name}: columns without an explanation in grokkit.report.COLUMNS: {missing}"
        assert "no explanation recorded" not in page
        for table in re.findall(r"<table>.*?</table></div><ul class='glossary'>(.*?)</ul>", page, re.S):
            assert "<li><code>" in table  # a glossary under every table
        assert page.count("<table>") == page.count("<ul class='glossary'>") == page.count("<div class='table-wrap'>")


def test_the_columns_of_every_table_kind_are_explained():
    """Beyond the pages built here: every field of a member's and a teacher's record, and every column the sweep's
    outcome, threshold and required-run tables can carry."""
    from grokkit.analysis.survival import KM
    from grokkit.summary import MemberResult, TeacherRecord

    columns = set(MemberResult.model_fields) - {"tasks"}
    columns |= {"teacher", "member", "task", "own_test_acc", "own_threshold", "generalized",
                "acc_on_student_test@operator"} | (set(TeacherRecord.model_fields) - {"source", "acc_on_student_test"})
    columns |= {"n_trials", "n_generalized", "summary", "slope", "method"}
    columns |= {f for f in KM.__dataclass_fields__ if not f.startswith("median")} | {"km_median_text", "logrank_p"}
    columns |= {"trials", "errors", "pending", "test_acc", "test_acc_sd", "wall_s", "case", "status", "trial", "error"}
    columns |= {"run", "task", "train_fraction", "seed", "steps", "final_test_acc", "steps_to_generalize_lasting"}
    columns |= {"final_test_acc@add17", "steps_to_generalize_lasting@add17", "task.train_fraction", "distill.alpha"}
    assert {c for c in columns if not explain(c)} == set()
    assert all(isinstance(v, str) and v and "\n" not in v for v in COLUMNS.values())


def test_the_config_is_folded_away_and_the_teacher_has_its_row(pages, sweep_dir):
    sweep, distilled = pages["sweep"].read_text(), pages["distilled"].read_text()
    assert "<details><summary>sweep.yaml" in sweep and "<details><summary>config.yaml" in distilled
    assert "<pre>" not in sweep.split("<details>")[0]  # no raw config above the fold
    required = sweep.split("<h3>Teacher</h3>")[1].split("</table>")[0]
    assert {"run", "final_test_acc", "steps_to_generalize_lasting"} <= set(_headers(required))
    assert "<td class='text'>teacher</td>" in required
    teacher_table = distilled.split("<h3>Teacher</h3>")[1].split("</table>")[0]
    assert {"teacher", "own_test_acc", "generalized"} <= set(_headers(teacher_table))
    assert str(sweep_dir / "requires" / "teacher") in teacher_table.replace("<wbr>", "")
    assert "<h3>Teacher</h3>" not in pages["teacher"].read_text()  # a run trained from scratch has none


def test_log_axis_labels_do_not_collide_and_medians_show_their_n():
    """The threshold figure's step axis spans less than a decade (where matplotlib's own minor labels run together,
    "3×10¹4×10¹"): its labels must not overlap, and each Kaplan-Meier median carries its k/n."""
    import matplotlib.pyplot as plt

    from grokkit.analysis.threshold import threshold_figure, threshold_table

    rows = []
    for f in (0.2, 0.3, 0.4):
        for seed in range(5 if f > 0.2 else 1):  # a point resting on 1 seed beside points resting on 5
            rows.append({"case": "distill", "task.train_fraction": f, "status": "ok", "steps": 2000,
                         "steps_to_generalize_lasting": 300 + 40 * seed + 100 * f})
    table = pd.DataFrame(rows)
    fig = threshold_figure(table, threshold_table(table, n_bootstrap=10))
    fig.canvas.draw()
    ax = fig.axes[1]
    labels = [t for t in ax.get_yticklabels() if t.get_text() and t.get_visible()]
    lo, hi = ax.get_ylim()
    boxes = [t.get_window_extent() for t in labels if lo <= t.get_position()[1] <= hi]
    assert len(boxes) >= 2
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    assert all("times" not in t.get_text() for t in labels)
    texts = {t.get_text() for t in ax.texts}
    assert {"1/1", "5/5"} <= texts
    plt.close(fig)


@pytest.mark.parametrize("span", [(30, 45), (25, 90), (500, 1300), (300, 3000), (10, 3000), (1e-6, 10), (100, 1e6)])
@pytest.mark.parametrize("which", ["x", "y"])
def test_readable_log_axis_labels_never_overlap(span, which):
    """Labels of major and minor ticks together (matplotlib's own minor labels overlap on a narrow axis from 300 to
    3,000 steps: "3×10²4×10²"), as plain numbers."""
    import matplotlib.pyplot as plt

    from grokkit.plots import readable_log_axis

    fig, ax = plt.subplots(figsize=(3.2, 3.2))
    ax.plot(span, span)
    (ax.set_xscale if which == "x" else ax.set_yscale)("log")
    readable_log_axis(ax, which)
    (ax.set_xlim if which == "x" else ax.set_ylim)(*span)
    fig.canvas.draw()
    get = ax.get_xticklabels if which == "x" else ax.get_yticklabels
    labels = [t for t in get() + get(minor=True) if t.get_text() and t.get_visible()]
    lo, hi = span
    inside = [t for t in labels if lo * 0.999 <= t.get_position()[0 if which == "x" else 1] <= hi * 1.001]
    boxes = [t.get_window_extent() for t in inside]
    assert len(boxes) >= 2, [t.get_text() for t in labels]
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:]), [t.get_text() for t in inside]
    assert span[0] < 0.01 or all("times" not in t.get_text() for t in inside)
    plt.close(fig)


def _chromium(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CHROMIUM), "--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars",
                           "--window-size=1280,2000", *args], capture_output=True, text=True, timeout=120)


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (Debian: apt-get install chromium)")
@pytest.mark.parametrize("which", ["sweep", "distilled"])
def test_the_report_renders_in_headless_chromium(pages, which, tmp_path):
    import matplotlib.image

    page = pages[which]
    shot = tmp_path / f"{which}.png"
    done = _chromium(f"--screenshot={shot}", page.as_uri())
    assert shot.exists(), done.stderr[-2000:]
    pixels = matplotlib.image.imread(shot)[..., :3]
    assert pixels.shape[:2] == (2000, 1280)
    assert pixels.std() > 0.05 and (pixels < 0.5).mean() > 0.002  # text and figures, not a blank page

    # the DOM as rendered, with a probe that records whether anything is wider than the window
    probe = tmp_path / "probe.html"
    probe.write_text(page.read_text().replace("</body>", (
        "<script>const d=document.documentElement;document.body.insertAdjacentHTML('beforeend',"
        "`<p id='probe'>scroll ${d.scrollWidth} client ${d.clientWidth} wraps "
        "${[...document.querySelectorAll('.table-wrap')].every(w=>w.getBoundingClientRect().right<=d.clientWidth)}"
        "</p>`)</script></body>")))
    dom = _chromium("--dump-dom", probe.as_uri()).stdout
    m = re.search(r"scroll (\d+) client (\d+) wraps (true|false)", dom)
    assert m, dom[-2000:]
    assert int(m.group(1)) <= int(m.group(2)) and m.group(3) == "true", m.group(0)
    text = re.sub(r"<[^>]+>", " ", dom)
    expected = (["Outcomes by setting", "Teacher", "Critical threshold", "Test accuracy of every trial"]
                if which == "sweep" else ["Members", "Teacher", "curves.png"])
    for heading in expected:
        assert heading in text, heading
    assert "<details>" in dom and "class=\"glossary\"" in dom

