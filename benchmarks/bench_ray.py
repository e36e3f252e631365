"""The Ray executor's overhead per packed group, against the local executor, on the same sweep (G packed groups of
identical size; every trial pinned to one thread, ``training.threads: 1``, so each executor does the same arithmetic
and the only difference is how groups reach a process).

Per round, each on a fresh sweep directory (the driver is this process; its imports are warm):

* ``local``       in-process, one group after another: the baseline, T_local;
* ``local_pool``  the local executor's process pool, ``--workers 2`` (spawned processes, 2 slots);
* ``ray_local``   a fresh local Ray instance with 1 CPU (groups one after another, like ``local``): ray.init, the
  sweep, ray.shutdown timed separately;
* ``ray_cluster`` a two-node cluster started with ``ray start`` on 127.0.0.1 (1 CPU per node, 2 slots; started once,
  before the rounds), joined with ``ray.init(address=...)`` like ``grokkit sweep --address``.

Overhead per group, in slot-seconds: (S * T_sweep - T_local) / G with S the executor's slots (1 or 2), and against
the local executor with as many slots: ray_local - local and S * (ray_cluster - local_pool) / G. For Ray, T_sweep
excludes ray.init/shutdown, which are reported on their own (a one-off per sweep). ``train_s`` is the trainers' own
time summed over groups: where it grows with 2 slots, the two slots did not get two free cores (the 2-slot numbers then
measure CPU contention as much as the executor).

    python benchmarks/bench_ray.py --rounds 2 --json docs/bench_ray.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the loopback cluster helper


def sweep_spec(groups: int, seeds: int, steps: int) -> dict:
    """``groups`` MLP widths (different shapes, so one packed group each) x ``seeds`` seeds."""
    return {
        "name": "bench-ray",
        "base": {
            "recipe": "scratch", "name": "bench-ray",
            "task": {"op": "add", "modulus": 23, "train_fraction": 0.5},
            "model": {"d_model": 32, "n_heads": 2, "d_head": 16, "d_mlp": 64},
            "optimizer": {"name": "adamw", "lr": 0.003, "weight_decay": 1.0},
            "training": {"steps": steps, "eval_every": 50, "checkpoint_every": 100, "progress": False,
                         "threads": 1},
        },
        "grid": {"model.d_mlp": [64 + 8 * i for i in range(groups)]},
        "seeds": list(range(seeds)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--groups", type=int, default=8)
    ap.add_argument("--seeds", type=int, default=2, help="trials per packed group")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--no-cluster", action="store_true", help="skip the two-node loopback cluster")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    cluster = None
    if not args.no_cluster:
        from ray_loopback import LoopbackCluster

        cluster = LoopbackCluster(pythonpath=str(ROOT / "src"))
        # the driver needs the cluster's loopback and auth settings before Ray is imported
        os.environ.update({k: cluster.env[k] for k in ("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "RAY_USAGE_STATS_ENABLED",
                                                        "RAY_AUTH_MODE", "RAY_AUTH_TOKEN")})
    import ray
    import torch

    from grokkit.sweep import parse_sweep, run_sweep

    torch.set_num_threads(1)
    spec = parse_sweep(sweep_spec(args.groups, args.seeds, args.steps))
    work = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    quiet = lambda _msg: None  # noqa: E731
    g = args.groups

    def sweep(tag: str, **kw) -> tuple[float, float, list[float]]:
        out = work / tag
        t0 = time.perf_counter()
        res = run_sweep(spec, work, out, log=quiet, **kw)
        wall = time.perf_counter() - t0
        table = res.table
        assert table is not None and len(table) == g * args.seeds and set(table.status) == {"ok"}, table
        shutil.rmtree(out)
        return wall, float(table.groupby("group").group_wall_seconds.first().sum()), \
            table.sort_values("trial").final_test_acc.tolist()

    def ray_sweep(tag: str, **init) -> tuple[float, float, float, float, list[float]]:
        """A sweep on the Ray executor between ray.init(**init) and ray.shutdown():
        (init s, sweep wall s, trainers' s, shutdown s, final test accuracies)."""
        t0 = time.perf_counter()
        ray.init(include_dashboard=False, log_to_driver=False, **init)
        started = time.perf_counter() - t0
        wall, train, acc = sweep(tag, executor="ray")
        t0 = time.perf_counter()
        ray.shutdown()
        return started, wall, train, time.perf_counter() - t0, acc

    rounds = []
    try:
        if cluster is not None:
            t0 = time.perf_counter()
            cluster.start()
            cluster_start = time.perf_counter() - t0
            print(f"two-node loopback cluster up in {cluster_start:.1f} s at {cluster.address}")
        for r in range(args.rounds):
            row: dict[str, object] = {}
            local, local_train, acc = sweep(f"local{r}")
            row["local"] = {"wall_s": round(local, 3), "train_s": round(local_train, 3)}
            pool, pool_train, acc_pool = sweep(f"pool{r}", workers=2)
            row["local_pool"] = {"wall_s": round(pool, 3), "train_s": round(pool_train, 3), "slots": 2,
                                 "overhead_per_group_s": round((2 * pool - local) / g, 3)}
            init, wall, train, stop, acc_ray = ray_sweep(f"ray{r}", num_cpus=1)
            row["ray_local"] = {"init_s": round(init, 3), "wall_s": round(wall, 3), "shutdown_s": round(stop, 3),
                                "train_s": round(train, 3), "slots": 1,
                                "overhead_per_group_s": round((wall - local) / g, 3)}
            same = acc_pool == acc and acc_ray == acc
            if cluster is not None:
                init, wall, train, stop, acc_cl = ray_sweep(f"cluster{r}", address=cluster.address)
                row["ray_cluster"] = {"connect_s": round(init, 3), "wall_s": round(wall, 3),
                                      "disconnect_s": round(stop, 3), "train_s": round(train, 3),
                                      "slots": 2, "overhead_per_group_s": round((2 * wall - local) / g, 3),
                                      "overhead_vs_local_pool_per_group_s": round(2 * (wall - pool) / g, 3)}
                same = same and acc_cl == acc
            row["same_final_test_acc"] = same
            rounds.append(row)
            print(f"round {r}: " + "; ".join(
                f"{k} {v['wall_s']:.2f} s" + (f" ({v['overhead_per_group_s']:+.3f} s/group)"
                                              if "overhead_per_group_s" in v else "")
                for k, v in row.items() if isinstance(v, dict)) + f"; identical results: {same}")
    finally:
        if ray.is_initialized():
            ray.shutdown()
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(work, ignore_errors=True)
    result = {"groups": g, "trials_per_group": args.seeds, "steps": args.steps, "threads_per_group": 1,
              "ray": ray.__version__, "torch": torch.__version__, "cpus": os.cpu_count(),
              "platform": platform.platform(), "rounds": rounds}
    if cluster is not None:
        result["cluster_start_s"] = round(cluster_start, 2)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
