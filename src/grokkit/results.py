"""Results as objects: what :func:`grokkit.run`, :func:`grokkit.load`, :func:`grokkit.sweep` and
:func:`grokkit.tune` return. Each holds its directory and reads the files there lazily (metrics, model), so a result
is cheap to make and a notebook gets tables as pandas DataFrames and figures as matplotlib Figures.
"""

from __future__ import annotations

import tempfile
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import torch
from torch import nn

from grokkit.summary import MemberResult, Summary

if TYPE_CHECKING:
    import matplotlib.figure

    from grokkit.config import RunConfig
    from grokkit.models import EnsembleModel
    from grokkit.tasks import Vocabulary


class SingleMember(nn.Module):
    """One member of an ensemble as a plain module: ``model(tokens)`` with ``tokens [N, T]`` (or ``[T]``) gives the
    logits at the answer's position, ``[N, C]``; ``model(tokens, positions)`` those at ``positions``, ``[N, S, C]``;
    ``run_with_cache(tokens)`` every position and activation (TransformerLens names), without the member axis.
    ``vocab`` is its vocabulary (token ids: ``vocab.token_names()``), ``seed`` the member's seed."""

    def __init__(self, ensemble: EnsembleModel, vocab: Vocabulary, final_position: int) -> None:
        super().__init__()
        if ensemble.n_members != 1:
            raise ValueError(f"SingleMember wraps an ensemble of one member, got {ensemble.n_members}")
        self.ensemble = ensemble
        self.vocab = vocab
        self.final_position = final_position

    @property
    def seed(self) -> int:
        return int(self.ensemble.seeds[0])

    def forward(self, tokens: torch.Tensor, positions: list[int] | None = None) -> torch.Tensor:
        single = tokens.dim() == 1
        batch = tokens.unsqueeze(0) if single else tokens
        out = self.ensemble(batch.unsqueeze(0), positions if positions is not None else [self.final_position])[0]
        out = out[:, 0] if positions is None else out
        return out[0] if single else out

    def run_with_cache(self, tokens: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``tokens [N, T]`` -> (logits ``[N, T, C]``, cache of every activation without the member axis)."""
        logits, cache = self.ensemble.run_with_cache(tokens.unsqueeze(0))
        return logits[0], {k: v[0] for k, v in cache.items()}

    def state_dict_plain(self) -> dict[str, torch.Tensor]:
        """The weights without the member axis (TransformerLens names)."""
        return self.ensemble.member_state(0)


class RunResult:
    """A finished run (or a stage of one, or a sweep trial), read from its run directory.

    ``config`` (the :class:`~grokkit.config.RunConfig`), ``dir`` (the directory), ``summary`` (the typed
    :class:`~grokkit.summary.Summary`, as in ``summary.json``), ``members`` (one :class:`~grokkit.summary.MemberResult`
    per seed), ``metrics`` (long format as in ``metrics.csv``: one row per member and evaluation), ``model`` (the
    trained ensemble; weights carry a leading member axis), ``member(i)`` (member i as a plain module), ``vocab``,
    ``plot()`` (accuracy and loss curves) and ``to_frame()`` (one row per member).

    A run made with ``out=None`` lives in a temporary directory that is removed when the result is garbage-collected
    (keep the result, or pass ``out=`` to keep the files)."""

    def __init__(self, directory: str | Path, *, temporary: tempfile.TemporaryDirectory[str] | None = None) -> None:
        from grokkit.rundir import RunDir

        self.dir = Path(directory)
        self._rundir = RunDir(self.dir)
        self._temporary = temporary  # removed with this object
        #: True when the directory already held this finished run (nothing was trained)
        self.reused = False

    def __repr__(self) -> str:
        gen = sum(m.steps_to_generalize_lasting is not None for m in self.members)
        return (f"RunResult({str(self.dir)!r}: recipe {self.summary.recipe}, task {self.summary.task}, "
                f"{len(self.members)} member(s), {gen} generalised for good, {self.summary.steps} steps)")

    @cached_property
    def config(self) -> RunConfig:
        return self._rundir.read_config()

    @cached_property
    def summary(self) -> Summary:
        return self._rundir.read_summary_model()

    @property
    def members(self) -> list[MemberResult]:
        return self.summary.members

    @cached_property
    def metrics(self) -> pd.DataFrame:
        """``metrics.csv``: ``step, member, seed, train_loss, train_acc, test_loss, test_acc, weight_norm`` (+
        ``val_*``, ``test_acc@<task>``, a staged run's ``stage``/``global_step``)."""
        return self._rundir.read_metrics()

    @cached_property
    def _model(self) -> tuple[EnsembleModel, Vocabulary]:
        from grokkit.checkpoint import CheckpointError
        from grokkit.rundir import RunError

        try:
            model, vocab, _ = self._rundir.read_model()
        except CheckpointError as err:
            raise RunError(f"the model of {self.dir} cannot be read: {err}") from None
        return model.eval(), vocab

    @property
    def model(self) -> EnsembleModel:
        """The trained ensemble (all members; weights ``[K, ...]``)."""
        return self._model[0]

    @property
    def vocab(self) -> Vocabulary:
        return self._model[1]

    def member(self, i: int) -> SingleMember:
        """Member ``i`` (0-based, in the order of ``members``) as a plain module (see :class:`SingleMember`)."""
        from grokkit.models import same_model

        model = self.model
        if not 0 <= i < model.n_members:
            raise IndexError(f"member {i}: the run has {model.n_members} member(s)")
        single = same_model(model, [model.seeds[i]])
        single.load_state_dict({n: p[i : i + 1] for n, p in model.state_dict().items()})
        final = self.config.task.positions()["final"] if hasattr(self.config.task, "positions") else -1
        return SingleMember(single.eval(), self.vocab, final)

    def to_frame(self) -> pd.DataFrame:
        """One row per member: seed, final accuracies and losses, steps to generalise (first crossing and lasting),
        failed."""
        rows = [m.model_dump(exclude={"tasks"}) for m in self.members]
        frame = pd.DataFrame(rows)
        frame.insert(0, "run", self.summary.name)
        return frame

    def plot(self, title: str | None = None) -> matplotlib.figure.Figure:
        """Accuracy and loss against step (train dashed, test solid), one colour per member, and the weight norm."""
        from grokkit.plots import curves_figure

        metrics = self.metrics
        if "global_step" in metrics:  # a staged run: its stitched stages on one axis
            metrics = metrics.assign(step=metrics.global_step)
        return curves_figure(metrics, title or f"{self.summary.name}: {self.summary.task} ({self.summary.recipe})")

    def teacher(self) -> RunResult:
        """This distilled run's (first) teacher, when it is a run directory."""
        records = self.summary.teachers or []
        if not records:
            raise ValueError(f"{self.dir} has no teacher (recipe {self.summary.recipe})")
        return RunResult(records[0].source)


class SweepResult:
    """A sweep directory: ``trials`` (the results table, one row per trial), ``summary`` (per setting: trials,
    generalised, steps, accuracy), ``threshold`` (the critical fraction per method, where the sweep fits one),
    ``trial(id)`` (a trial as a :class:`RunResult`) and ``plot()``."""

    def __init__(self, directory: str | Path, *, group_by: list[str] | None = None, run: Any = None) -> None:
        self.dir = Path(directory)
        self.group_by = group_by
        #: what the sweep did this time (trials run, skipped, errors), when it was just run
        self.run_info = run

    def __repr__(self) -> str:
        return f"SweepResult({str(self.dir)!r}: {len(self.trials)} trials)"

    @cached_property
    def spec(self) -> Any:
        from grokkit.sweep import load_sweep

        return load_sweep(self.dir / "sweep.yaml")[0]

    @cached_property
    def trials(self) -> pd.DataFrame:
        from grokkit.sweep import read_table

        return read_table(self.dir)

    def default_group_by(self) -> list[str]:
        axes = list(self.spec.grid) + list(self.spec.zip)
        return (["case"] if "case" in self.trials.columns else []) + [a for a in axes if a in self.trials.columns]

    @cached_property
    def summary(self) -> pd.DataFrame:
        from grokkit.sweep import summarize

        return summarize(self.trials, self.group_by if self.group_by is not None else self.default_group_by())

    @cached_property
    def threshold(self) -> pd.DataFrame | None:
        path = self.dir / "threshold.csv"
        return pd.read_csv(path) if path.is_file() else None

    def trial(self, trial_id: str) -> RunResult:
        return RunResult(self.dir / "trials" / trial_id)

    def plot(self) -> matplotlib.figure.Figure:
        """Final test accuracy (mean, min-max) against the first varied axis, one line per case."""
        import matplotlib.pyplot as plt

        table = self.trials[self.trials.status == "ok"] if "status" in self.trials else self.trials
        by = self.default_group_by()
        axis = next((b for b in by if b != "case"), None)
        fig, ax = plt.subplots(figsize=(6.4, 4.0))
        groups = table.groupby("case") if "case" in table else [("all", table)]
        for i, (case, g) in enumerate(groups):
            if axis is None:
                ax.bar(i, g.final_test_acc.mean(), color=f"C{i}", label=str(case))
                continue
            stats = g.groupby(axis).final_test_acc.agg(["mean", "min", "max", "size"])
            ax.plot(stats.index, stats["mean"], "o-", color=f"C{i}", label=f"{case}")
            ax.fill_between(stats.index, stats["min"], stats["max"], color=f"C{i}", alpha=0.15)
        ax.set_xlabel(axis or "case")
        ax.set_ylabel("final test accuracy (mean, min-max over seeds)")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        ax.set_title(f"{self.spec.name}: {len(table)} finished trials", fontsize=10)
        fig.tight_layout()
        return fig


class TuneResult:
    """A tune directory: ``chosen`` (each arm's chosen settings), ``trials`` (every candidate, ``trace.csv``),
    ``final`` (the chosen settings re-run on fresh seeds, ``final.csv``), ``summary`` (per arm, ``summary.csv``)
    and ``plot()``."""

    def __init__(self, directory: str | Path) -> None:
        self.dir = Path(directory)

    def __repr__(self) -> str:
        return f"TuneResult({str(self.dir)!r}: arms {', '.join(self.chosen)})"

    @cached_property
    def chosen(self) -> dict[str, dict[str, Any]]:
        import json

        return json.loads((self.dir / "chosen.json").read_text())

    @cached_property
    def trials(self) -> pd.DataFrame:
        return pd.read_csv(self.dir / "trace.csv")

    @cached_property
    def final(self) -> pd.DataFrame:
        return pd.read_csv(self.dir / "final.csv")

    @cached_property
    def summary(self) -> pd.DataFrame:
        return pd.read_csv(self.dir / "summary.csv")

    def plot(self) -> matplotlib.figure.Figure:
        """Per arm: each candidate's validation accuracy (the search), and the fresh seeds' final test accuracy."""
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(10, 4.0))
        arms = list(self.chosen)
        for i, arm in enumerate(arms):
            t = self.trials[self.trials.arm == arm]
            score = next((c for c in ("score", "val_acc", "final_val_acc") if c in t), None)
            if score is not None:
                axes[0].scatter([i] * len(t), t[score], color=f"C{i}", alpha=0.7)
            f = self.final[self.final.arm == arm]
            axes[1].scatter([i] * len(f), f.final_test_acc, color=f"C{i}", alpha=0.8)
        for ax, label in zip(axes, ("search: each candidate's validation score", "fresh seeds: final test accuracy")):
            ax.set_xticks(range(len(arms)), arms, rotation=20, fontsize=8)
            ax.set_title(label, fontsize=9)
            ax.grid(alpha=0.3)
        fig.tight_layout()
        return fig
