"""The README's numbers and its figure, generated from the committed headline data.

``README.md`` is written by hand except its generated blocks, each between ``<!-- generated:NAME -->`` and
``<!-- /generated:NAME -->``: ``intro`` (the first sentences, with the headline's and the threshold-budget study's
numbers), ``headline`` (the headline table) and ``smoke`` (the smoke sweep's measured time, from
``docs/smoke_sweep.json``). :func:`render` returns the README with every block re-made; :func:`figure` draws
``docs/headline/headline.png`` (test accuracy against step at the paper's budget, each arm at its tuned setting).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from docsgen.results import arms, arms_columns, table

DEMO = "headline/demo5_2026-12-06_after_1819b79.csv"
TUNED_30K = "headline/30k_tuned"
FIGURE = "headline/headline.png"
THRESHOLD_BUDGET = "threshold_budget/thresholds.csv"
SMOKE = "smoke_sweep.json"


def _median(row: pd.Series) -> str:
    return f"{row.km_median:,.0f}"


def blocks(docs: Path) -> dict[str, str]:
    demo = pd.read_csv(docs / DEMO)
    budget = float(demo["steps"].max())
    d = arms(demo, "group", budget, control="scratch").set_index("group")
    long = pd.read_csv(docs / TUNED_30K / "trials.csv")
    t = arms(long, "case", 30000.0, control="scratch_tuned").set_index("case")
    kd, scratch, kd_long, scratch_long = d.loc["distilled"], d.loc["scratch"], t.loc["distill_tuned"], \
        t.loc["scratch_tuned"]
    fits = pd.read_csv(docs / THRESHOLD_BUDGET).set_index(["case", "budget"])
    largest = int(fits.index.get_level_values("budget").max())
    sc, di = fits.loc[("scratch", largest)], fits.loc[("distill", largest)]
    sc_low = fits.loc["scratch"]
    sc_low = sc_low[sc_low.index < largest]
    intro = (
        "grokkit is a toolkit for studying and *inducing* grokking in small models: ensembles of small transformers "
        "trained in one batched computation, and knowledge distillation across distributions. Distillation both "
        "accelerates grokking and, within the budgets measured, enables it below the critical data size: a teacher "
        "grokked on (a + b) mod 113 makes students on (a + b) mod 107 generalise for good from 20% of the pairs on "
        f"{kd.generalized}/{kd.n} seeds (median step {_median(kd)}), against {scratch.generalized}/{scratch.n} from "
        f"scratch in the same {budget:,.0f} steps (at 30,000 steps, tuned, scratch groks on "
        f"{scratch_long.generalized}/{scratch_long.n} seeds at a median of {_median(scratch_long)} steps, distilled "
        f"students at {_median(kd_long)}); and on (a + b) mod 59, scratch's critical training fraction levels off "
        f"({', '.join(f'{x50:.3f}' for x50 in sc_low.x50)} at {', '.join(f'{b:,}' for b in sc_low.index)} steps; "
        f"{sc.summary.replace('95% CI ', '')} at {largest:,}) while distillation's from a mod-61 teacher is "
        f"{di.summary.replace('95% CI ', '')} at {largest:,} steps "
        "(*When Data Falls Short: Grokking Below the Critical Threshold*, arXiv 2511.04760).")
    headline = "\n".join([
        table(arms(demo, "group", budget, control="scratch"), arms_columns("group", "students (mod 107, 20%)")),
        "",
        f"<sub>`bash run.sh demo`, {int(kd.n)} seeds per arm, {budget:,.0f} steps; data: "
        f"[`docs/{DEMO}`](docs/{DEMO}); more: [Results](docs/results/headline.md).</sub>",
    ])
    smoke = json.loads((docs / SMOKE).read_text())
    minutes, seconds = divmod(round(smoke["wall_s"]), 60)
    smoke_text = (
        f"A sweep that shows the effect: `{smoke['command']}` trains a mod-61 teacher, then {smoke['trials']} "
        "mod-59 students from scratch and distilled at 10–40% of their pairs, and fits each arm's critical fraction "
        f"(`threshold.md`: distillation {smoke['threshold']['distill'].replace('95% CI ', '')}, scratch "
        f"{smoke['threshold']['scratch'].replace('95% CI ', '')}): {minutes} min {seconds} s on a quiet 2-core machine "
        f"({smoke['cpu_s']:.0f} s of CPU; {smoke['date']}, [`docs/{SMOKE}`](docs/{SMOKE})).")
    return {"intro": intro, "headline": headline, "smoke": smoke_text}


def render(root: Path) -> str:
    text = (root / "README.md").read_text()
    for name, body in blocks(root / "docs").items():
        pattern = re.compile(rf"(<!-- generated:{name} -->\n)(?:.*?\n)?(<!-- /generated:{name} -->)", re.S)
        if not pattern.search(text):
            raise ValueError(f"README.md has no generated block {name!r}")
        text = pattern.sub(lambda m, body=body: m.group(1) + body + "\n" + m.group(2), text)
    return text


def figure(root: Path) -> Path:
    """Draw the README's figure: 880 px wide, so GitHub's ~880 px column shows it at its own size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    docs = root / "docs"
    curves = pd.read_csv(docs / TUNED_30K / "curves.csv")
    labels = {"distill_tuned": ("distilled from the mod-113 teacher", "tab:blue"),
              "scratch_tuned": ("from scratch", "tab:orange")}
    with plt.rc_context({"font.size": 11}):
        fig, ax = plt.subplots(figsize=(8.8, 3.4), dpi=100)
        for case, (label, color) in labels.items():
            for i, (_, seed) in enumerate(curves[curves.case == case].groupby("seed")):
                ax.plot(seed.step, seed.test_acc, color=color, lw=1.6, alpha=0.85, label=label if i == 0 else None)
        ax.set_xlim(0, 30000)
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda x, _: f"{x:,.0f}"))
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("training step")
        ax.set_ylabel("test accuracy")
        ax.set_title("(a + b) mod 107 on 20% of the pairs, each arm at its tuned setting (one line per seed)",
                     fontsize=11)
        ax.legend(loc="center right", frameon=False)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        out = docs / FIGURE
        fig.savefig(out, metadata={"Software": None})
        plt.close(fig)
    return out
