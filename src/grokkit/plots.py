"""Figures: a run's curves (accuracy, loss and weight norm against step), comparisons, progress measures."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import pandas as pd  # noqa: E402

from grokkit.checkpoint import atomic_write  # noqa: E402


def compact_number(value: float, _pos: object = None) -> str:
    """A tick label as a plain number: 0, 0.05, 3, 40, 500, 2k, 15k, 1M; powers of ten below 0.01 as 10^-k."""
    import math

    v = abs(value)
    sign = "-" if value < 0 else ""
    if v == 0:
        return "0"
    if v >= 1e6:
        return f"{sign}{v / 1e6:g}M"
    if v >= 1e3:
        return f"{sign}{v / 1e3:g}k"
    if v >= 0.01:
        return f"{sign}{v:g}"
    exponent = math.floor(math.log10(v) + 1e-9)
    mantissa = v / 10 ** exponent
    head = "" if abs(mantissa - 1) < 1e-6 else f"{mantissa:g}\\times"
    return f"${sign}{head}10^{{{exponent}}}$"


class _ReadableLogLocator(matplotlib.ticker.Locator):
    """Major ticks of a log axis that never crowd: at every 1-9 x 10^k on an axis spanning about half a decade, at 1,
    2, 3 and 5 x 10^k up to about a decade, at 1, 2 and 5 x 10^k up to three decades, at powers of ten (every other
    one past eight decades) beyond."""

    def __call__(self) -> list[float]:
        vmin, vmax = self.axis.get_view_interval()
        return self.tick_values(vmin, vmax)

    def tick_values(self, vmin: float, vmax: float) -> list[float]:
        import math

        lo, hi = sorted((vmin, vmax))
        if hi <= 0:
            return []
        lo = lo if lo > 0 else hi / 1e3
        decades = math.log10(hi / lo)
        subs: tuple[float, ...] = (tuple(range(1, 10)) if decades <= 0.6 else (1, 2, 3, 5) if decades <= 1.3
                                   else (1, 2, 5) if decades <= 3.3 else (1,))
        stride = max(1, math.ceil(decades / 8))
        first, last = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
        ticks = [s * 10.0 ** k for k in range(first, last + 1) if (k - first) % stride == 0 for s in subs]
        inside = [t for t in ticks if lo * (1 - 1e-9) <= t <= hi * (1 + 1e-9)]
        return inside if len(inside) >= 2 else ticks


def readable_log_axis(ax: plt.Axes, which: str = "x") -> None:
    """Label a log (or symlog) axis of ``ax`` with a few plain numbers (:func:`compact_number`) and no minor labels,
    so that labels never run into each other as matplotlib's minor labels do on an axis spanning less than a decade
    ("3×10¹4×10¹"). Call it after setting the scale."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis = ax.xaxis if which == "x" else ax.yaxis
    if axis.get_scale() == "log":
        axis.set_major_locator(_ReadableLogLocator())
        axis.set_minor_locator(LogLocator(subs="auto"))
    axis.set_major_formatter(FuncFormatter(compact_number))
    axis.set_minor_formatter(NullFormatter())


def _save(fig: plt.Figure, path: Path) -> None:
    atomic_write(path, lambda p: fig.savefig(p, dpi=120, bbox_inches="tight", format="png"))
    plt.close(fig)


def _accuracy_axes(ax: plt.Axes, title: str) -> None:
    ax.set_xscale("log")
    readable_log_axis(ax, "x")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("optimisation step")
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    ax.grid(alpha=0.3)


def _step_axis(ax: plt.Axes, steps: pd.Series) -> None:
    """A log-like step axis that keeps step 0: symlog, linear below the first evaluation after 0."""
    positive = steps[steps > 0]
    ax.set_xscale("symlog", linthresh=float(positive.min()) if len(positive) else 1.0)
    readable_log_axis(ax, "x")
    ax.set_xlim(left=0)
    ax.set_xlabel("optimisation step")
    ax.grid(alpha=0.3)


def curves_figure(metrics: pd.DataFrame, title: str) -> plt.Figure:
    """A run's curves as grokking researchers read them: accuracy and loss (log y), train dashed and test solid, one
    colour per member, against step on a symlog axis that keeps step 0; and the weight norm where it was recorded."""
    has_norm = "weight_norm" in metrics and metrics.weight_norm.notna().any()
    fig, axes = plt.subplots(1, 3 if has_norm else 2, figsize=(14 if has_norm else 10.5, 4.0))
    members = list(metrics.groupby("member")) if "member" in metrics else [(0, metrics)]
    for i, (_, df) in enumerate(members):
        color = f"C{i % 10}"
        seed = df.seed.iloc[0] if "seed" in df else i
        for ax, column in zip(axes[:2], ("acc", "loss")):
            ax.plot(df.step, df[f"train_{column}"], "--", color=color, alpha=0.8, label=f"train (seed {seed})")
            ax.plot(df.step, df[f"test_{column}"], "-", color=color, label=f"test (seed {seed})")
        if has_norm:
            axes[2].plot(df.step, df.weight_norm, "-", color=color, label=f"seed {seed}")
    for ax in axes:
        _step_axis(ax, metrics.step)
    axes[0].set_ylim(-0.02, 1.02)
    axes[0].set_ylabel("accuracy")
    axes[1].set_yscale("log")
    readable_log_axis(axes[1], "y")
    axes[1].set_ylabel("loss")
    if has_norm:
        axes[2].set_ylabel("L2 weight norm")
    axes[0].legend(fontsize=7, ncol=2 if len(members) > 3 else 1, loc="best")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_curves(metrics: pd.DataFrame, path: Path, title: str) -> None:
    """:func:`curves_figure` written to ``path``."""
    _save(curves_figure(metrics, title), path)


def groups_figure(groups: Mapping[str, pd.DataFrame], title: str,
                  styles: Sequence[str] = ("C3", "C0", "C2", "C1", "C4", "C5")) -> plt.Figure:
    """Several runs side by side (one colour per run, one line per member): accuracy and loss against step, test
    solid and train dotted, on a step axis that keeps step 0."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for (label, df), color in zip(groups.items(), styles):
        for j, (_, member) in enumerate(df.groupby("seed")):
            for ax, column in zip(axes, ("acc", "loss")):
                ax.plot(member.step, member[f"test_{column}"], "-", color=color,
                        label=f"{label}: test" if j == 0 else None)
                ax.plot(member.step, member[f"train_{column}"], ":", color=color, alpha=0.6,
                        label=f"{label}: train" if j == 0 else None)
    steps = pd.concat([df.step for df in groups.values()])
    for ax in axes:
        _step_axis(ax, steps)
    axes[0].set_ylim(-0.02, 1.02)
    axes[0].set_ylabel("accuracy")
    axes[1].set_yscale("log")
    readable_log_axis(axes[1], "y")
    axes[1].set_ylabel("loss")
    axes[0].legend(fontsize=8, loc="best")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_groups(groups: Mapping[str, pd.DataFrame], path: Path, title: str,
                styles: Sequence[str] = ("C3", "C0", "C2", "C1", "C4", "C5")) -> None:
    """:func:`groups_figure` written to ``path``."""
    _save(groups_figure(groups, title, styles), path)


def plot_fourier_norms(members: Sequence[Mapping], path: Path, title: str) -> None:
    """One bar chart per member: norm of each Fourier frequency of the embedding, key frequencies in red."""
    fig, axs = plt.subplots(len(members), 1, figsize=(8, 2.2 * len(members) + 0.6), squeeze=False)
    for ax, m in zip(axs[:, 0], members):
        f = m["fourier"]
        keys = set(f["key_frequencies"])
        colors = ["C3" if k in keys else "C7" for k in f["frequencies"]]
        ax.bar(f["frequencies"], f["norms"], color=colors, width=0.8)
        for k, v in zip(f["frequencies"], f["norms"]):
            if k in keys:
                ax.annotate(str(k), (k, v), ha="center", va="bottom", fontsize=7, color="C3")
        ax.set_ylabel("norm")
        ax.set_title(f"member {m['member']} (seed {m['seed']}): key frequencies {sorted(keys) or 'none'}", fontsize=9)
        ax.grid(alpha=0.3, axis="y")
    axs[-1, 0].set_xlabel("frequency k (cos and sin of 2 pi k x / p)")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    _save(fig, path)


def plot_weight_norms(members: Sequence[Mapping], path: Path, title: str) -> None:
    """L2 norm of each parameter group (and all weights), one bar per member."""
    groups = [g for g in members[0]["weight_norms"] if g != "total_squared"]
    fig, ax = plt.subplots(figsize=(max(5.0, 1.0 * len(groups) + 1), 3.6))
    width = 0.8 / len(members)
    for i, m in enumerate(members):
        xs = [j + (i - (len(members) - 1) / 2) * width for j in range(len(groups))]
        ax.bar(xs, [m["weight_norms"][g] for g in groups], width=width, color=f"C{i % 10}",
               label=f"member {m['member']} (seed {m['seed']})")
    ax.set_xticks(range(len(groups)), groups, rotation=20, fontsize=8)
    ax.set_ylabel("L2 norm")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=7)
    _save(fig, path)


def plot_loss_decomposition(members: Sequence[Mapping], path: Path, title: str) -> None:
    """Train loss of the full, restricted (key frequencies only) and excluded (key frequencies removed) logits, and
    the test loss, per member on a log axis; chance (log p) dashed."""
    kinds = [("train_loss", "train (full)"), ("restricted_loss", "train, restricted"),
             ("excluded_loss", "train, excluded"), ("test_loss", "test (full)")]
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    width = 0.8 / len(kinds)
    for j, (key, label) in enumerate(kinds):
        xs = [i + (j - (len(kinds) - 1) / 2) * width for i in range(len(members))]
        ys = [m["losses"][key] if m["losses"][key] is not None else float("nan") for m in members]
        ax.bar(xs, [max(y, 1e-12) for y in ys], width=width, color=f"C{j}", label=label)
    ax.axhline(members[0]["losses"]["chance_loss"], ls="--", color="k", lw=1, label="chance (log p)")
    ax.set_yscale("log")
    readable_log_axis(ax, "y")
    ax.set_xticks(range(len(members)), [f"member {m['member']}" for m in members])
    ax.set_ylabel("cross-entropy")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=7)
    _save(fig, path)


def plot_progress_over_time(frame: pd.DataFrame, bounds: Mapping[str, int | None], path: Path, title: str) -> None:
    """Nanda et al.'s picture: train / test / restricted / excluded loss (log scale) against step, accuracies, the
    Fourier sparsity of the embedding and the weight norm; mean over members, min-max shaded, phase boundaries
    (:func:`grokkit.analysis.progress.phases`) as dotted lines."""
    g = frame.groupby("step")
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    panels = [
        (axes[0, 0], [("train_loss", "train"), ("test_loss", "test"), ("restricted_loss", "restricted"),
                      ("excluded_loss", "excluded")], "loss (train pairs; test: held-out pairs)", True),
        (axes[0, 1], [("train_acc", "train"), ("test_acc", "test")], "accuracy", False),
        (axes[1, 0], [("key_energy_fraction", "key frequencies' share of W_E"), ("gini", "Gini of Fourier norms")],
         "Fourier sparsity of the embedding", False),
        (axes[1, 1], [("weight_norm", "all weights")], "L2 weight norm", False),
    ]
    steps = g.size().index.to_numpy(float)
    for ax, series, label, log in panels:
        for i, (col, name) in enumerate(series):
            if col not in frame or frame[col].isna().all():
                continue
            mean, lo, hi = g[col].mean(), g[col].min(), g[col].max()
            ax.plot(steps, mean.to_numpy(float), color=f"C{i}", label=name)
            ax.fill_between(steps, lo.to_numpy(float), hi.to_numpy(float), color=f"C{i}", alpha=0.15)
        for phase, step in bounds.items():
            if step is not None:
                ax.axvline(max(step, 1), color="0.4", ls=":", lw=1)
                if ax is axes[0, 0]:
                    ax.text(max(step, 1), 0.98, f" {phase}", transform=ax.get_xaxis_transform(), fontsize=7,
                            va="top", rotation=90, color="0.3")
        ax.set_xscale("symlog", linthresh=max(1.0, float(steps[steps > 0].min()) if (steps > 0).any() else 1.0))
        readable_log_axis(ax, "x")
        ax.set_xlim(left=0)
        if log:
            ax.set_yscale("log")
            readable_log_axis(ax, "y")
        ax.set_xlabel("step")
        ax.set_ylabel(label, fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    n = frame.member.nunique()
    fig.suptitle(f"{title} (mean over {n} member(s), min-max shaded; dotted: phase boundaries)", fontsize=10)
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, dpi=120, format="png"))
    plt.close(fig)
