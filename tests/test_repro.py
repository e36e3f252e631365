"""`grokkit repro`: figure files, the sweeps they run, the curves and summaries they write, and their errors."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from grokkit.cli import app
from grokkit.config import load_config
from grokkit.repro import ReferenceSpec, ReproError, available, load_figure, make_figure, repro
from helpers import tiny_config


def write_figure(tmp_path, where_kd: dict | None = None) -> str:
    base = tiny_config(vocab={"n_numbers": 19, "moduli": [17, 19]})
    base["distill"] = {"teacher": "{requires.teacher}", "alpha": 0.5, "temperature": 2.0}
    teacher = tiny_config(name="teacher", seeds=[0], task={"op": "add", "modulus": 19, "train_fraction": 0.5},
                          vocab={"n_numbers": 19, "moduli": [17, 19]})
    sweep = {"name": "fig-test", "base": base, "requires": {"teacher": {"base": teacher}},
             "cases": [{"name": "scratch", "overrides": {"recipe": "scratch"}},
                       {"name": "kd", "overrides": {"recipe": "distill"}}],
             "grid": {"task.train_fraction": [0.4, 0.5]}, "seeds": [0, 1]}
    (tmp_path / "sweeps").mkdir()
    (tmp_path / "sweeps" / "s.yaml").write_text(yaml.safe_dump(sweep))
    figure = {"name": "figt", "title": "test figure", "caption": "tiny", "sweeps": {"s": "sweeps/s.yaml"},
              "panels": [
                  {"title": "accuracy", "curves": [
                      {"label": "scratch 50%", "sweep": "s", "where": {"case": "scratch", "train_fraction": 0.5}},
                      {"label": "kd 50%", "sweep": "s", "where": where_kd or {"case": "kd",
                                                                              "task.train_fraction": 0.5}}]},
                  {"title": "norm", "y": "weight_norm", "xscale": "linear", "curves": [
                      {"label": "kd 40%", "sweep": "s", "where": {"case": "kd", "task.train_fraction": 0.4}}]}]}
    path = tmp_path / "figt.yaml"
    path.write_text(yaml.safe_dump(figure))
    return str(path)


def test_repro_runs_the_sweep_and_writes_figure_csv_and_summary(tmp_path):
    fig = write_figure(tmp_path)
    out = tmp_path / "out"
    result = repro(fig, out, log=lambda _: None)
    assert (out / "figt.png").stat().st_size > 0
    curves = pd.read_csv(out / "figt.csv")
    assert set(curves.curve) == {"scratch 50%", "kd 50%", "kd 40%"}
    assert (curves.n_seeds == 2).all()  # two seeds per curve, aggregated at every evaluation step
    assert sorted(curves[curves.curve == "kd 50%"].x) == [0, 20, 40, 60]
    # the aggregate is the mean over the trials' own metrics.csv
    trial = pd.read_csv(out / "s" / "trials" / "kd__train_fraction=0.5__seed=1" / "metrics.csv")
    other = pd.read_csv(out / "s" / "trials" / "kd__train_fraction=0.5__seed=0" / "metrics.csv")
    row = curves[(curves.curve == "kd 50%") & (curves.x == 60)].iloc[0]
    assert row["mean"] == pytest.approx((trial.test_acc.iloc[-1] + other.test_acc.iloc[-1]) / 2)
    assert row["min"] <= row["mean"] <= row["max"]
    norm = curves[curves.curve == "kd 40%"]
    assert (norm.metric == "weight_norm").all() and (norm["mean"] > 1).all()
    summary = result["summary"]
    assert list(summary.n_seeds) == [2, 2, 2]
    assert (out / "figt_summary.md").read_text().startswith("# test figure")
    # a second call draws again without training: every trial is found finished
    logs: list[str] = []
    repro(fig, out, log=logs.append)
    assert any("8 trials: 8 already done, 0 to run" in m for m in logs)


def test_curve_matching_nothing_is_an_error(tmp_path):
    fig = write_figure(tmp_path, where_kd={"case": "kd", "task.train_fraction": 0.9})
    with pytest.raises(ReproError, match="no finished trial"):
        repro(fig, tmp_path / "out", log=lambda _: None)
    assert not (tmp_path / "out" / "figt.png").exists()


def test_bad_figure_files_are_clear_errors(tmp_path):
    with pytest.raises(ReproError, match="unknown figure 'fig99'"):
        load_figure("fig99")
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"name": "b", "title": "t", "caption": "c", "sweeps": {"s": "x.yaml"},
                                   "panels": [{"title": "p", "curves": [{"label": "l", "sweep": "nope"}]}]}))
    with pytest.raises(ReproError, match="sweep 'nope' is not one of"):
        load_figure(bad)
    result = CliRunner().invoke(app, ["repro", str(bad), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "nope" in result.output


def test_packaged_figures_load_and_name_their_sweeps():
    figs = available()
    assert {"fig2", "fig3", "fig4", "fig5", "fig6", "fig7", "studies"} <= set(figs)
    for name in figs:
        spec, root = load_figure(name)
        if isinstance(spec, ReferenceSpec):
            assert load_config(root / spec.run).training.snapshot_every > 0, name
            continue
        for rel in spec.sweeps.values():
            assert (root / rel).exists(), (name, rel)


def write_reference(tmp_path, published: list[dict]) -> str:
    cfg = tiny_config(seeds=[0, 1, 2], task={"op": "add", "modulus": 17, "train_fraction": 0.6},
                      training={"steps": 200, "eval_every": 20, "checkpoint_every": 100, "progress": False,
                                "snapshot_every": 50})
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
    spec = {"kind": "reference", "name": "reft", "title": "a tiny reference", "caption": "tiny", "run": "run.yaml",
            "cut": "nothing", "published": published}
    (tmp_path / "reft.yaml").write_text(yaml.safe_dump(spec))
    return str(tmp_path / "reft.yaml")


def test_a_reference_runs_analyses_and_gives_a_verdict_per_published_number(tmp_path):
    ref = write_reference(tmp_path, [
        {"measure": "first_at_least:train_acc:0.99", "text": "memorises at once", "low": 0, "high": 200},
        {"measure": "first_at_least:train_acc:0.99", "text": "memorises late", "low": 10000, "high": 20000},
        {"measure": "first_below:train_loss:1e-30", "text": "never this low", "low": 0, "high": 10},
        {"measure": "at:train_loss:100", "text": "a value", "low": 0.0, "high": 100.0},
        {"measure": "final:test_acc", "text": "anything"},
        {"measure": "phase:memorised", "text": "memorised early", "low": 0, "high": 200}])
    out = tmp_path / "out"
    repro(ref, out, log=lambda _: None)
    rows = pd.read_csv(out / "reft_summary.csv")
    assert list(rows.verdict.str.extract(r"\*\*(\w+)")[0].fillna("-")) == [
        "reproduced", "differs", "not", "reproduced", "-", "reproduced"]
    assert rows.ours[2].startswith("> 200 [—, > 200] (seeds: > 200 / > 200 / > 200")  # censored, no median
    assert (rows.seeds == 3).all() and (out / "reft.png").stat().st_size > 0
    assert {"train_loss_mean", "test_acc_max"} <= set(pd.read_csv(out / "reft.csv").columns)
    over = pd.read_csv(out / "reft_over_time.csv")
    assert sorted(over.step.unique()) == [0, 50, 100, 150, 200] and over.member.nunique() == 3
    # a re-run finds the run finished and only re-analyses
    repro(ref, out, log=lambda _: None)
    assert pd.read_csv(out / "reft_summary.csv").equals(rows)


def test_bad_reference_measures_are_refused(tmp_path):
    with pytest.raises(ReproError, match="use one of"):
        load_figure(write_reference(tmp_path, [{"measure": "median:test_acc", "text": "x"}]))
    with pytest.raises(ReproError, match="phases are"):
        load_figure(write_reference(tmp_path, [{"measure": "phase:grokked", "text": "x"}]))


def test_make_figure_needs_finished_trials(tmp_path):
    spec, _ = load_figure("fig3")
    with pytest.raises(ReproError, match="no finished trial"):
        make_figure(spec, tmp_path)


def test_figure_summaries_report_lasting_reach_next_to_the_first_crossing():
    """A seed that crosses the level and falls back counts for ``first_reach`` but not for ``lasting_reach``."""
    import pandas as pd

    from grokkit.repro import first_reach, lasting_reach

    per_seed = pd.DataFrame({"seed": [0] * 5 + [1] * 5, "x": list(range(0, 500, 100)) * 2,
                             "y": [0.1, 0.995, 0.7, 0.999, 1.0] + [0.1, 0.995, 0.999, 0.98, 0.5]})
    assert first_reach(per_seed, 0.99) == [100.0, 100.0]
    assert lasting_reach(per_seed, 0.99, 0) == [300.0, None]
    assert lasting_reach(per_seed, 0.99, 100) == [300.0, None] and lasting_reach(per_seed, 0.99, 101) == [None, None]
    assert lasting_reach(per_seed.assign(window=100), 0.99) == [300.0, None]  # each trial's own window


def test_a_one_stage_run_is_drawn_against_global_step_as_its_own_step(tmp_path):
    """A figure panel on ``global_step`` (staged runs: GrokTransfer's weak + target) can hold one-stage runs too."""
    import pandas as pd

    from grokkit.repro import Curve, Panel, curve_table

    d = tmp_path / "t"
    d.mkdir()
    pd.DataFrame({"step": [0, 50, 100], "member": 0, "seed": 3, "test_acc": [0.0, 0.5, 1.0]}).to_csv(
        d / "metrics.csv", index=False)
    panel = Panel(title="p", x="global_step", curves=[Curve(label="c", sweep="s")])
    table = curve_table(panel.curves[0], panel, [({"seed": 3}, d, 10.0)])
    assert table.x.tolist() == [0, 50, 100] and table.y.tolist() == [0.0, 0.5, 1.0]
