"""Wall-clock of a tune, packed against one run per candidate, side by side on this machine.

A tune trains each round's candidates as one sweep; ``pack: true`` (the default) trains the candidates that differ
only in member-level settings as one ensemble, ``pack: false`` one run after another (in this process, so the
baseline pays no process start-up: the ratio is a lower bound on what packing saves against one process per
candidate). The spec is ``configs/tune/smoke.yaml`` unless ``--spec`` names another; its required runs
(a teacher) are trained once, before the rounds, and copied into every tune directory, so only the search and the
final runs are timed. Rounds alternate packed / unpacked; the chosen settings and final accuracies must agree
between the two (packing changes no result). ``--steps N`` shortens every candidate and final run to N steps (a
spec too long to time twice side by side, such as the method table's, at reduced length; the JSON records it).

    python benchmarks/bench_tune.py --rounds 2 --json docs/bench_tune.json
    python benchmarks/bench_tune.py --spec configs/tune/methods.yaml --steps 400 --rounds 2 \
        --json docs/bench_tune_methods.json
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--spec", type=Path, default=ROOT / "configs" / "tune" / "smoke.yaml")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--steps", type=int, help="every candidate's and final run's steps (default: the spec's)")
    args = ap.parse_args()

    import torch
    import yaml

    from grokkit.tune import load_tune, run_tune

    spec, root = load_tune(args.spec)
    spec_steps = spec.budget.steps
    if args.steps is not None:
        if args.steps < 1:
            ap.error("--steps must be at least 1")
        spec = spec.model_copy(update={"budget": spec.budget.model_copy(update={"steps": args.steps}),
                                       "final": spec.final.model_copy(update={"steps": args.steps})})
    work = Path(tempfile.mkdtemp(prefix="bench-tune-"))
    quiet = lambda _msg: None  # noqa: E731
    t0 = time.perf_counter()
    seed_dir = work / "seed"
    run_tune(spec.model_copy(update={"arms": spec.arms[:1], "budget": spec.budget.model_copy(
        update={"candidates": 1})}), root, seed_dir, log=quiet)  # trains the required runs once
    required_s = time.perf_counter() - t0

    def tune(tag: str, pack: bool) -> tuple[float, dict]:
        s = spec.model_copy(update={"pack": pack})
        out = work / tag
        out.mkdir()
        if (seed_dir / "requires").exists():
            shutil.copytree(seed_dir / "requires", out / "requires")
        (out / "tune.yaml").write_text(yaml.safe_dump(s.model_dump(mode="json"), sort_keys=False))
        start = time.perf_counter()
        result = run_tune(s, root, out, log=quiet)
        wall = time.perf_counter() - start
        shutil.rmtree(out)
        return wall, result

    rounds = []
    for r in range(args.rounds):
        order = (True, False) if r % 2 == 0 else (False, True)
        row: dict[str, object] = {}
        results = {}
        for pack in order:
            wall, result = tune(f"{'packed' if pack else 'single'}{r}", pack)
            row["packed_s" if pack else "one_per_candidate_s"] = round(wall, 2)
            results[pack] = result
        same = results[True]["chosen"] == results[False]["chosen"]
        row["speed-up"] = round(row["one_per_candidate_s"] / row["packed_s"], 2)  # type: ignore[operator]
        row["same_choice"] = same
        rounds.append(row)
        print(f"round {r}: {row}", flush=True)
    candidates = spec.budget.candidates * len(spec.arms) * len(spec.budget.seeds)
    out = {
        "spec": str(args.spec.relative_to(ROOT)) if args.spec.is_relative_to(ROOT) else str(args.spec),
        "arms": [a.name for a in spec.arms], "candidates_per_arm": spec.budget.candidates,
        "per_round": spec.budget.per_round or spec.budget.candidates, "search_runs": candidates,
        "final_runs": len(spec.arms) * len(spec.final.seeds), "steps": spec.budget.steps,
        "steps_cut_from": None if args.steps is None else spec_steps,
        "required_runs_s": round(required_s, 2), "rounds": rounds,
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "threads":
                    torch.get_num_threads(), "torch": torch.__version__},
    }
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
