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
    for f in ("headline.csv", "headline.md", "comparison.png", "teacher/model.safetensors",
              "distill/metrics.csv", "scratch/metrics.csv"):
        assert (tmp_path / f).exists(), f
    assert pd.read_csv(tmp_path / "headline.csv").shape[0] == 4
