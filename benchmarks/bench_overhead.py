"""What evaluation and bookkeeping cost during a run, as a share of its wall-clock.

Trains the canonical run ((a + b) mod 113, 30%, full batch, d_model 128, AdamW, float64 loss) with ``Trainer.fit``
as ``grokkit run`` does (evaluation every ``--eval-every`` steps, checkpoints, NaN checks, a progress callback), and
times separately the optimiser steps, the evaluations (train and test loss/accuracy, weight norms, metric rows), the
checkpoints and the progress callback.

    python benchmarks/bench_overhead.py --steps 600 --eval-every 100 50 --json docs/bench_overhead.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch

from grokkit.api import prepare
from grokkit.config import parse_config
from grokkit.engine import Trainer


def measure(members: int, steps: int, eval_every: int, checkpoint_every: int) -> dict[str, float]:
    cfg = parse_config({
        "recipe": "scratch", "name": "overhead", "seeds": list(range(members)),
        "task": {"op": "add", "modulus": 113, "train_fraction": 0.3},
        "optimizer": {"name": "adamw", "lr": 1e-3, "weight_decay": 1.0, "betas": [0.9, 0.98]},
        "training": {"steps": steps, "eval_every": eval_every, "checkpoint_every": checkpoint_every,
                     "progress": False},
    })
    setup = prepare(cfg)
    spent: dict[str, float] = defaultdict(float)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(cfg, setup.model, setup.train, setup.test, setup.objective, checkpoint_dir=Path(tmp),
                          log=lambda m: None)
        for name in ("train_step", "evaluate", "save_checkpoint"):
            original = getattr(trainer, name)

            def timed(*args, _f=original, _n=name, **kwargs):
                t0 = time.perf_counter()
                try:
                    return _f(*args, **kwargs)
                finally:
                    spent[_n] += time.perf_counter() - t0

            setattr(trainer, name, timed)

        def progress(t: Trainer) -> None:  # what the CLI's progress bar reads at each evaluation
            t0 = time.perf_counter()
            last = t.rows[-len(t.seeds):]
            _ = (t.step, max((r["test_acc"] for r in last), default=0.0))
            spent["progress"] += time.perf_counter() - t0

        t0 = time.perf_counter()
        trainer.fit(progress)
        total = time.perf_counter() - t0
    other = total - sum(spent.values())
    out = {"members": members, "steps": steps, "eval_every": eval_every, "checkpoint_every": checkpoint_every,
           "total_s": total, **{f"{k}_s": v for k, v in spent.items()}, "loop_other_s": other}
    out["bookkeeping_share"] = (total - spent["train_step"]) / total
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--members", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--eval-every", type=int, nargs="+", default=[100, 50])
    ap.add_argument("--checkpoint-every", type=int, default=500)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    results = []
    for k in args.members:
        for every in args.eval_every:
            steps = max(every * 2, args.steps // k)
            r = measure(k, steps, every, args.checkpoint_every)
            print(json.dumps(r), flush=True)
            results.append(r)
    if args.json:
        args.json.write_text(json.dumps({"torch": torch.__version__, "threads": args.threads, "runs": results},
                                        indent=2))


if __name__ == "__main__":
    main()
