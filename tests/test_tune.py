"""grokkit tune: equal budgets per arm, selection on the validation split only, fresh seeds for the final runs."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from grokkit.tasks import Split
from grokkit.tasks.modular import ModularTask
from grokkit.tune import TuneError, load_tune, parse_tune, run_tune, seed_score

SMOKE = Path(__file__).parents[1] / "configs" / "tune" / "smoke.yaml"


def quiet(_: str) -> None:
    pass


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    spec, root = load_tune(SMOKE)
    out = tmp_path_factory.mktemp("tune") / "smoke"
    return spec, root, out, run_tune(spec, root, out, log=quiet)


def test_every_arm_gets_the_same_budget_and_fresh_seeds(smoke):
    spec, _, out, result = smoke
    trace = pd.read_csv(out / "trace.csv")
    assert trace.groupby("arm").size().to_dict() == {"scratch": 4, "distill": 4}
    assert set(trace["round"]) == {0, 1}  # 2 candidates per round
    assert trace.groupby("arm").chosen.sum().to_dict() == {"scratch": 1, "distill": 1}
    for arm in ("scratch", "distill"):  # every candidate of every arm: the same step budget and search seeds
        d = out / "arms" / arm / "search" / "trials"
        summaries = [json.loads(p.read_text()) for p in d.glob("*/summary.json")]
        assert len(summaries) == 4 and {s["steps"] for s in summaries} == {300}
        assert {s["members"][0]["seed"] for s in summaries} == {0}
        chosen = trace[(trace.arm == arm) & trace.chosen].iloc[0]
        assert chosen.score == trace[trace.arm == arm].score.min()
    final = pd.read_csv(out / "final.csv")
    assert final.groupby("arm").seed.apply(sorted).to_dict() == {"distill": [100, 101, 102],
                                                                 "scratch": [100, 101, 102]}
    assert json.loads((out / "chosen.json").read_text()) == result["chosen"]
    assert "Budget per arm (the same for every arm): 4 candidates" in (out / "tune.md").read_text()
    # the search's packed ensembles: a round's candidates differ only in lr / weight decay
    groups = {json.loads(p.read_text())["sweep"]["pack_size"]
              for p in (out / "arms" / "scratch" / "search" / "trials").glob("*/summary.json")}
    assert groups == {2}


def test_a_finished_tune_runs_nothing_again(smoke):
    spec, root, out, result = smoke
    logs: list[str] = []
    again = run_tune(spec, root, out, log=logs.append)
    assert again["chosen"] == result["chosen"]
    assert not any("to run in" in line and "0 to run" not in line for line in logs), logs


def test_selection_never_reads_the_test_split(smoke, tmp_path, monkeypatch):
    spec, root, out, result = smoke
    original = ModularTask.split

    def corrupted(self, vocab, train_fraction, seed, val_fraction=0.0):  # test labels shuffled: test acc at chance
        s = original(self, vocab, train_fraction, seed, val_fraction)
        g = torch.Generator().manual_seed(seed)
        bad = s.test.labels[torch.randperm(len(s.test.labels), generator=g)]
        return Split(s.train, type(s.test)(s.test.tokens, bad, s.test.answer_range), s.val)

    monkeypatch.setattr(ModularTask, "split", corrupted)
    corrupt = run_tune(spec, root, tmp_path / "corrupt", log=quiet)
    assert corrupt["chosen"] == result["chosen"]
    clean, dirty = pd.read_csv(out / "trace.csv"), pd.read_csv(tmp_path / "corrupt" / "trace.csv")
    pd.testing.assert_series_equal(clean.score, dirty.score)
    assert pd.read_csv(tmp_path / "corrupt" / "final.csv").final_test_acc.max() < 0.5  # the test split was broken


def test_seed_score_orders_lasting_generalisation_before_any_loss():
    assert seed_score({"val_steps_to_generalize_lasting": 250}, 300) < seed_score({"final_val_loss": 0.0}, 300)
    assert seed_score({"final_val_loss": 0.1}, 300) < seed_score({"final_val_loss": 2.0}, 300)
    assert seed_score({"failed": True, "final_val_loss": 0.1}, 300) == float("inf")


def test_invalid_tune_specs(tmp_path):
    data = yaml.safe_load(SMOKE.read_text())
    with pytest.raises(TuneError, match="must be fresh"):
        parse_tune({**data, "final": {"seeds": [0, 1]}})
    with pytest.raises(TuneError, match="cannot be searched"):
        parse_tune({**data, "arms": [{"name": "a", "space": {"training.steps": {"low": 1, "high": 9}}}]})
    with pytest.raises(TuneError, match="low < high"):
        parse_tune({**data, "arms": [{"name": "a", "space": {"optimizer.lr": {"low": 1, "high": 0.1}}}]})
    no_val = dict(data, base=dict(data["base"], task={"op": "add", "modulus": 23, "train_fraction": 0.4}))
    with pytest.raises(TuneError, match="validation split"):
        run_tune(parse_tune(no_val), SMOKE.parent, tmp_path / "t", log=quiet)
    assert not (tmp_path / "t").exists()  # nothing written
    typo = dict(data, arms=[{"name": "a", "space": {"optimizer.lrr": {"low": 0.001, "high": 0.1}}}])
    with pytest.raises(TuneError, match="lrr"):
        run_tune(parse_tune(typo), SMOKE.parent, tmp_path / "t2", log=quiet)


def test_the_tune_tables_agree_with_their_csvs(smoke):
    from tablecheck import check_table, load_data, parse_markdown_tables, parse_marker

    _, _, out, _ = smoke
    tables = parse_markdown_tables((out / "tune.md").read_text())
    assert len(tables) == 4  # the required runs (the teacher), the final table and one trace per arm
    for t in tables:
        marker = parse_marker(t.marker)
        assert marker.kind == "data" and not check_table(t, load_data(marker, out)), t.marker


def test_the_cli_resumes_a_finished_tune_and_prints_its_table(smoke):
    from typer.testing import CliRunner

    from grokkit.cli import app

    _, _, out, result = smoke
    res = CliRunner().invoke(app, ["tune", str(SMOKE), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "| arm | chosen |" in res.output and all(arm in res.output for arm in result["chosen"])
    bad = CliRunner().invoke(app, ["tune", str(SMOKE.parent / "missing.yaml"), "--out", str(out / "x")])
    assert bad.exit_code == 2 and "does not exist" in bad.output


def test_summary_table_counts_lasting_seeds_and_reports_a_weak_stage():
    from grokkit.tune import summary_table

    final = pd.DataFrame([
        {"arm": "scratch", "seed": 100, "steps_to_generalize_lasting": None, "final_test_acc": 0.1, "weak_steps": 0,
         "wall_seconds": 12.0, "steps": 2000},
        {"arm": "scratch", "seed": 101, "steps_to_generalize_lasting": 900, "final_test_acc": 0.995, "weak_steps": 0,
         "wall_seconds": 12.0, "steps": 2000},
        {"arm": "scratch", "seed": 102, "steps_to_generalize_lasting": 1900, "final_test_acc": 0.995,
         "weak_steps": 0, "wall_seconds": 12.0, "steps": 2000},  # lasting from 1,900 of 2,000: inside the window
        {"arm": "transfer", "seed": 100, "steps_to_generalize_lasting": 300, "final_test_acc": 1.0, "weak_steps": 800,
         "wall_seconds": 30.0, "steps": 2000},
        {"arm": "transfer", "seed": 101, "steps_to_generalize_lasting": 500, "final_test_acc": 1.0, "weak_steps": 1000,
         "wall_seconds": 40.0, "steps": 2000},
        {"arm": "transfer", "seed": 102, "steps_to_generalize_lasting": 700, "final_test_acc": 1.0, "weak_steps": 900,
         "wall_seconds": 35.0, "steps": 2000},
    ])
    table = summary_table(final, {"scratch": {"optimizer.lr": 0.01}, "transfer": {}}).set_index("arm")
    # scratch: 1 of 3 held for the window (the seed lasting from 1,900 is censored): no median, not "900" over the
    # successes only
    assert table.loc["scratch", "generalised (lasting)"] == "1/3"
    assert table.loc["scratch", "median lasting step [95% CI]"] == "> 2,000 [900, > 2,000]"
    assert table.loc["transfer", "median lasting step [95% CI]"] == "500 [300, 700]"
    assert table.loc["transfer", "weak-stage steps"] == 900
    assert table.loc["scratch", "weak-stage steps"] == 0 and table.loc["scratch", "chosen"] == "lr=0.01"
    # steps counting the weak stage: 1,100 / 1,500 / 1,600 -> 1,500
    assert table.loc["transfer", "median lasting step incl. weak stage [95% CI]"] == "1,500 [1,100, 1,600]"
    p = table["log-rank p vs scratch"]
    assert p["scratch"] == "—" and p["transfer"] != "—"
    wall = table["wall-clock s per final seed"]
    assert wall["transfer"] == 35.0 and wall["scratch"] == 12.0


def test_arms_appended_to_a_finished_tune_extend_it_and_other_changes_are_refused(smoke, tmp_path):
    import shutil

    spec, root, out, result = smoke
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    changed = spec.model_copy(update={"budget": spec.budget.model_copy(update={"steps": 200})})
    with pytest.raises(TuneError, match="another spec"):
        run_tune(changed, root, copy, log=quiet)
    extra = spec.arms[0].model_copy(update={"name": "scratch_again"})
    extended = spec.model_copy(update={"arms": [*spec.arms, extra]})
    logs: list[str] = []
    again = run_tune(extended, root, copy, log=logs.append)
    assert any("extending the tune" in line and "scratch_again" in line for line in logs)
    assert {k: again["chosen"][k] for k in result["chosen"]} == result["chosen"]  # the old arms: nothing re-run
    assert not any("[scratch] round" in line for line in logs)
    trace = pd.read_csv(copy / "trace.csv")
    assert trace.groupby("arm").size().to_dict() == {"scratch": 4, "distill": 4, "scratch_again": 4}


def test_final_seeds_appended_to_a_finished_tune_add_runs_and_keep_the_rest(smoke, tmp_path):
    import shutil

    spec, root, out, result = smoke
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    # (the scratch arm's: the distilled arm's configs name the teacher by its path, which the copy moved)
    kept = {p: p.stat().st_mtime_ns for p in (copy / "arms" / "scratch").rglob("summary.json")}
    assert len(kept) == 4 + 3
    extended = spec.model_copy(update={"final": spec.final.model_copy(update={"seeds": [*spec.final.seeds, 103]})})
    logs: list[str] = []
    again = run_tune(extended, root, copy, log=logs.append)
    assert any("extending the tune" in line and "final seeds [103]" in line for line in logs), logs
    assert again["chosen"] == result["chosen"] and not any("round" in line for line in logs)
    rewritten = [str(p) for p, t in kept.items() if p.stat().st_mtime_ns != t]
    assert not rewritten  # nothing that ran is run or rewritten again
    final = pd.read_csv(copy / "final.csv")
    assert final.groupby("arm").seed.apply(sorted).to_dict() == {"distill": [100, 101, 102, 103],
                                                                 "scratch": [100, 101, 102, 103]}
    old = pd.read_csv(out / "final.csv")
    pd.testing.assert_frame_equal(final[final.seed < 103].drop(columns="wall_seconds").reset_index(drop=True),
                                  old.drop(columns="wall_seconds").reset_index(drop=True))
    reordered = spec.model_copy(update={"final": spec.final.model_copy(update={"seeds": [103, 100, 101, 102]})})
    with pytest.raises(TuneError, match="another spec"):
        run_tune(reordered, root, copy, log=quiet)
