"""Training speed: grokkit's engine against the naive reference, run back to back on the same machine.

Canonical run: (a + b) mod 113, 30% of pairs, full batch, 1-layer transformer (d_model 128, 4 heads, d_mlp 512),
AdamW, cross-entropy in float64. Reports model-steps per second (members x steps / s) for each ensemble size K and
the ratio to the reference's steps per second.

    python benchmarks/bench_speed.py --members 1 8 --steps 60 --warmup 20 --rounds 5 --json docs/bench_cpu.json
    python benchmarks/bench_speed.py --device cuda --members 1 64 1024 --no-reference
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from grokkit.api import prepare
from grokkit.config import parse_config
from grokkit.engine import Trainer


def build_trainer(members: int, device: str, positions: str) -> Trainer:
    cfg = parse_config({
        "recipe": "scratch", "name": "bench", "seeds": list(range(members)),
        "task": {"op": "add", "modulus": 113, "train_fraction": 0.3},
        "optimizer": {"name": "adamw", "lr": 1e-3, "weight_decay": 1.0, "betas": [0.9, 0.98]},
        "training": {"device": device, "progress": False, "checkpoint_every": 0},
    })
    setup = prepare(cfg)
    if positions == "operator+final":  # the cost of distillation's extra scored position
        loss = setup.objective.loss
        setup.objective.positions = [2, 3]
        setup.objective.loss = lambda logits, *a: loss(logits[:, :, 1:], *a)
    return Trainer(cfg, setup.model, setup.train, setup.test, setup.objective, log=lambda m: None)


def step_times(trainer: Trainer, steps: int, device: str) -> list[float]:
    """Seconds of each of ``steps`` optimiser steps."""
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    times = []
    for _ in range(steps):
        sync()
        t0 = time.perf_counter()
        trainer.train_step()
        sync()
        times.append(time.perf_counter() - t0)
    return times


def bench_reference(script: Path, steps: int, threads: int) -> dict[str, float]:
    out = subprocess.run([sys.executable, str(script), "--p", "113", "--frac", "0.3", "--bench", str(steps),
                          "--threads", str(threads)], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def machine(device: str) -> str:
    """The processor (or GPU) the numbers were measured on: they are comparable only within one machine."""
    if device.startswith("cuda"):
        return torch.cuda.get_device_name()
    try:
        info: dict[str, str] = {}
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
    except OSError:
        return platform.processor() or platform.machine()
    # a VM's model name can be as bare as "AMD EPYC": family, model and the widest vector ISA tell the CPUs apart
    flags = info.get("flags", "").split()
    isa = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    name = info.get("model name", platform.processor() or platform.machine())
    return f"{name} (family {info.get('cpu family', '?')}, model {info.get('model', '?')}, {isa})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reference", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "bench"
                    / "reference_naive.py")
    ap.add_argument("--no-reference", action="store_true")
    ap.add_argument("--members", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--positions", choices=["final", "operator+final"], default="final")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--blocks", type=int, default=6, help="alternations of the K values within a round")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    results: dict[str, object] = {"device": args.device, "threads": args.threads, "torch": torch.__version__,
                                  "positions": args.positions, "rounds": args.rounds, "blocks": args.blocks,
                                  "machine": machine(args.device)}
    # Rounds interleave the reference and grokkit (trainers built and warmed up once) so that drift of a shared
    # machine hits all alike; the ratio of each round is reported and the median taken.
    trainers = {k: build_trainer(k, args.device, args.positions) for k in args.members}
    for trainer in trainers.values():
        for _ in range(args.warmup):
            trainer.train_step()
    per_round: list[dict[str, object]] = []
    for r in range(args.rounds):
        entry: dict[str, object] = {"round": r}
        if not args.no_reference:
            entry["reference_steps_per_s"] = bench_reference(args.reference, max(args.steps, 50),
                                                             args.threads)["steps_per_s"]
        # K values alternate in short blocks within the round, so that a slow spell of a shared machine hits every K
        # alike; about the same number of model-steps per K, medians of the step times
        times: dict[int, list[float]] = {k: [] for k in trainers}
        for _ in range(args.blocks):
            for k, trainer in trainers.items():
                times[k] += step_times(trainer, max(1, args.steps // (k * args.blocks)), args.device)
        for k, trainer in trainers.items():
            median = statistics.median(times[k])
            entry[f"K{k}_model_steps_per_s"] = k / median
            entry[f"K{k}_member_chunk"] = trainer.chunk
            if "reference_steps_per_s" in entry:
                entry[f"K{k}_ratio"] = k / median / float(entry["reference_steps_per_s"])
            if args.device.startswith("cuda"):
                torch.cuda.reset_peak_memory_stats()
                step_times(trainer, 2, args.device)
                entry[f"K{k}_peak_memory_mib"] = torch.cuda.max_memory_allocated() / 2**20
        print(json.dumps(entry), flush=True)
        per_round.append(entry)
    results["per_round"] = per_round
    summary = {}
    for key in per_round[0]:
        if key != "round":
            summary[key] = statistics.median(float(e[key]) for e in per_round)
    results["median"] = summary
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
