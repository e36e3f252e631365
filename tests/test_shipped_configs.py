"""Every YAML file the package ships validates: run configs, sweeps (every trial expanded), comparisons and figures.
A config that drifted from the schema would otherwise fail only when someone runs it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import grokkit
from grokkit.compare import load_compare
from grokkit.config import _get_dotted, load_config
from grokkit.repro import load_figure
from grokkit.sweep.spec import expand, load_sweep

CONFIGS = Path(grokkit.__file__).parent / "configs"
FILES = sorted(CONFIGS.rglob("*.yaml"))


def kind(path: Path) -> str:
    data = yaml.safe_load(path.read_text())
    if "settings" in data:
        return "compare"
    if "arms" in data:
        return "tune"
    if "cases" in data or "grid" in data or "zip" in data or "n_seeds" in data:
        return "sweep"
    if path.parent.name == "repro":
        return "figure"
    return "run"


def test_the_package_ships_every_kind_of_config():
    assert {kind(p) for p in FILES} == {"compare", "sweep", "figure", "run", "tune"}
    assert len(FILES) > 20


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(CONFIGS)) for p in FILES])
def test_shipped_config_validates(path: Path):
    k = kind(path)
    if k == "run":
        load_config(path)
    elif k == "sweep":
        spec, root = load_sweep(path)
        assert expand(spec, root)
    elif k == "compare":
        spec, root = load_compare(path)
        for setting in spec.settings.values():
            sweep = setting if isinstance(setting, str) else setting.sweep
            assert (root / sweep).exists()
    elif k == "tune":
        from grokkit.tune import _check_arm, load_tune

        spec, root = load_tune(path)
        for arm in spec.arms:  # every arm's config, with a validation split and every searched key
            _check_arm(spec, root, arm)
    else:
        load_figure(path)


def test_the_tuned_30k_headline_runs_the_settings_its_tune_chose():
    """configs/paper/long/headline_30k_tuned.yaml copies each arm's choice from the committed tune; they must agree."""
    import json

    chosen = json.loads((Path(__file__).parents[1] / "docs" / "tune_headline" / "chosen.json").read_text())
    spec, root = load_sweep(CONFIGS / "paper" / "long" / "headline_30k_tuned.yaml")
    trials = expand(spec, root)
    for arm, settings in chosen.items():
        arm_trials = [t for t in trials if t.coords["case"] == f"{arm}_tuned"]
        assert len(arm_trials) == 3
        for t in arm_trials:
            for dotted, value in settings.items():
                assert _get_dotted(t.config, dotted) == value, (arm, dotted)
