"""Figures in the style of the paper's: accuracy against step on a log axis, one line per member."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from grokkit.checkpoint import atomic_write  # noqa: E402


def _save(fig: plt.Figure, path: Path) -> None:
    atomic_write(path, lambda p: fig.savefig(p, dpi=120, bbox_inches="tight", format="png"))
    plt.close(fig)


def _accuracy_axes(ax: plt.Axes, title: str) -> None:
    ax.set_xscale("log")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("optimisation step")
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    ax.grid(alpha=0.3)


def plot_curves(metrics: pd.DataFrame, path: Path, title: str) -> None:
    """Train (dashed) and test (solid) accuracy of every member against step (log x)."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for i, (seed, df) in enumerate(metrics.groupby("seed")):
        df = df[df.step > 0]
        color = f"C{i % 10}"
        ax.plot(df.step, df.train_acc, "--", color=color, alpha=0.8, label=f"train (seed {seed})")
        ax.plot(df.step, df.test_acc, "-", color=color, label=f"test (seed {seed})")
    _accuracy_axes(ax, title)
    ax.legend(fontsize=7, ncol=2, loc="best")
    _save(fig, path)


def plot_groups(groups: Mapping[str, pd.DataFrame], path: Path, title: str,
                styles: Sequence[str] = ("C3", "C0", "C2", "C1")) -> None:
    """Test accuracy of several runs (one colour per run, one line per member), train accuracy dashed."""
    fig, ax = plt.subplots(figsize=(7, 4.4))
    for (label, df), color in zip(groups.items(), styles):
        for j, (_, member) in enumerate(df.groupby("seed")):
            member = member[member.step > 0]
            ax.plot(member.step, member.test_acc, "-", color=color, label=f"{label}: test" if j == 0 else None)
            ax.plot(member.step, member.train_acc, ":", color=color, alpha=0.6,
                    label=f"{label}: train" if j == 0 else None)
    _accuracy_axes(ax, title)
    ax.legend(fontsize=8, loc="center left")
    _save(fig, path)
