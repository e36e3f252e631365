"""Where a training step's time goes: the top operators of the canonical run's step under PyTorch's profiler.

``--before`` switches off what the speed work added (the CPU kernels' backward passes, ``GROKKIT_FAST_KERNELS=0``;
the allocator tuning, ``GROKKIT_MALLOC_TUNING=0``; the old member chunk of 4,096 rows), so before and after can be
profiled side by side on one machine:

    python benchmarks/profile_step.py --before --members 1 > before.md
    python benchmarks/profile_step.py --members 1 > after.md
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", action="store_true", help="profile with the speed work switched off")
    ap.add_argument("--members", type=int, default=1)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--top", type=int, default=15)
    args = ap.parse_args()
    if args.before:  # must be set before grokkit is imported
        os.environ["GROKKIT_FAST_KERNELS"] = "0"
        os.environ["GROKKIT_MALLOC_TUNING"] = "0"
    import torch
    from torch.profiler import ProfilerActivity, profile

    sys.path.insert(0, str(Path(__file__).parent))
    import grokkit.engine as engine
    from bench_speed import build_trainer

    if args.before:
        engine.CPU_CHUNK_ROWS = 4096
    torch.set_num_threads(2)
    trainer = build_trainer(args.members, "cpu", "final")
    for _ in range(10):
        trainer.train_step()
    faults0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    t0 = time.perf_counter()
    for _ in range(args.steps):
        trainer.train_step()
    step_ms = (time.perf_counter() - t0) / args.steps * 1e3
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults0) / args.steps
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(args.steps):
            trainer.train_step()
    events = sorted(prof.key_averages(group_by_input_shape=True), key=lambda e: -e.self_cpu_time_total)
    total = sum(e.self_cpu_time_total for e in events) / args.steps / 1e3
    label = "before" if args.before else "after"
    print(f"### {label}: K = {args.members}, {step_ms:.1f} ms a step unprofiled ({args.members / step_ms * 1e3:.1f} "
          f"model-steps/s), {faults:.0f} page faults a step, member chunk {trainer.chunk}; "
          f"{total:.1f} ms a step under the profiler\n")
    print("| operator | input shapes | ms a step | share |")
    print("|---|---|---|---|")
    for e in events[: args.top]:
        ms = e.self_cpu_time_total / args.steps / 1e3
        shapes = str(e.input_shapes).replace("|", "/")
        shapes = shapes if len(shapes) <= 70 else shapes[:67] + "..."
        print(f"| `{e.key}` | `{shapes}` | {ms:.2f} | {ms / total:.0%} |")


if __name__ == "__main__":
    main()
