"""Run directories written before the redesign keep working: their config.yaml lists every field of the one flat
task and model section (tests/data/legacy_config_v0.yaml is the teacher config the demo wrote then)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from grokkit.config import ConfigError, parse_config

LEGACY = Path(__file__).parent / "data" / "legacy_config_v0.yaml"


def test_a_legacy_config_reads_as_the_same_run():
    data = yaml.safe_load(LEGACY.read_text())
    assert data["task"]["n_bits"] is None and data["model"]["d_embed"] is None  # the flat layout
    cfg = parse_config(data)
    assert (cfg.task.kind, cfg.task.name, cfg.task.train_fraction) == ("modular", "add113", 0.35)
    assert cfg.model.kind == "transformer" and cfg.model.d_model == 128
    # the same run as its config in today's layout: a resume or a "done" check finds it
    assert parse_config(yaml.safe_load(cfg.to_yaml())) == cfg


def test_a_legacy_field_away_from_its_default_is_still_an_error():
    data = yaml.safe_load(LEGACY.read_text())
    data["task"]["n_bits"] = 5
    with pytest.raises(ConfigError, match="does not use n_bits"):
        parse_config(data)
