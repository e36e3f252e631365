"""The headline pipeline end to end, on a small modulus (the full-size demo is `bash run.sh demo`)."""

import pandas as pd

from grokkit.config import parse_config
from grokkit.demo import CONFIGS, packaged_config, run_demo
from helpers import tiny_config


def test_packaged_paper_configs_are_valid_and_share_the_vocabulary():
    teacher, distill, scratch = (packaged_config(n) for n in CONFIGS)
    assert teacher.vocab == distill.vocab == scratch.vocab
    assert distill.distill is not None and distill.distill.position == "operator"
    assert distill.task.train_fraction == scratch.task.train_fraction == 0.2
    assert distill.training.steps == scratch.training.steps


def test_demo_pipeline_writes_table_and_figure(tmp_path):
    vocab = {"n_numbers": 17, "moduli": [13, 17]}
    teacher = parse_config(tiny_config(seeds=[0], vocab=vocab, task__train_fraction=0.6))
    distill = parse_config(tiny_config(recipe="distill", seeds=[0, 1], vocab=vocab, task__modulus=13,
                                       distill={"teacher": "unused", "temperature": 8.0}))
    scratch = parse_config(tiny_config(seeds=[0, 1], vocab=vocab, task__modulus=13))
    table = run_demo(tmp_path, progress=False, configs=(teacher, distill, scratch), student_steps=40)
    assert list(table.group) == ["distilled", "distilled", "scratch", "scratch"]
    assert set(table.steps) == {40}
    for f in ("headline.csv", "headline_summary.csv", "headline.md", "comparison.png", "teacher/model.safetensors",
              "distill/metrics.csv", "scratch/metrics.csv"):
        assert (tmp_path / f).exists(), f
    assert pd.read_csv(tmp_path / "headline.csv").shape[0] == 4
    summary = pd.read_csv(tmp_path / "headline_summary.csv")
    assert list(summary.group) == ["distilled", "scratch"] and (summary.n == 2).all()
    from tablecheck import check_table, load_data, parse_markdown_tables, parse_marker

    for t in parse_markdown_tables((tmp_path / "headline.md").read_text()):  # each table agrees with its CSV
        marker = parse_marker(t.marker)
        assert not check_table(t, load_data(marker, tmp_path))


def test_headline_summary_never_prints_a_median_over_the_successes_only():
    from grokkit.demo import headline_summary, show_summary
    from grokkit.sections import TrainingConfig

    table = pd.DataFrame({"group": ["distilled"] * 3 + ["scratch"] * 3, "seed": [0, 1, 2] * 2,
                          "steps_to_generalize_lasting": [700, 650, 900, 1200, None, None], "steps": 1500})
    tc = TrainingConfig(steps=1500)
    shown = show_summary(headline_summary(table, {"distilled": tc, "scratch": tc})).set_index("group")
    assert shown.loc["scratch", "generalised (lasting)"] == "1/3"
    assert shown.loc["scratch", "median lasting step [95% CI]"].startswith("> 1,500")  # not 1,200
    assert shown.loc["distilled", "median lasting step [95% CI]"].startswith("700 ")
