"""How far a run's result moves when nothing but the order of floating-point sums changes.

The speed work's acceptance asks the demo's results to stay "the same steps to generalise ± one evaluation". This
measures what that bar is worth: the same code, on the same machine, trained again with only the float rounding
changed, or might be — a different number of CPU threads (measured: no effect on training, the products split
rows and columns over threads, not the summed axis) and the built-in PyTorch kernels instead of grokkit's CPU kernels
(``GROKKIT_FAST_KERNELS=0``: the same maths, sums in another order). Each variant is an ordinary ``grokkit run``
directory in its own process, so that the environment variable and thread count apply from the start; the run
directory's own rules apply (a killed variant resumes, a finished one is read back, not retrained, and one holding
another config — other overrides — is refused).

    python benchmarks/repro_floor.py --out runs/repro_floor --json docs/repro_floor.json

Default: the demo's teacher (``configs/paper/teacher_add113.yaml``), variants ``threads=2``, ``threads=1``,
``kernels=builtin``. Its result is a finding about the run, not a speed: a bar finer than the spread here is one that
no change of summation order, including none to the code, can promise.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_speed import machine  # noqa: E402
from grokkit.checkpoint import atomic_write_text  # noqa: E402
from grokkit.rundir import RunDir  # noqa: E402

VARIANTS: dict[str, tuple[dict[str, str], list[str]]] = {
    # name: (environment, config overrides)
    "threads=2": ({}, ["training.threads=2"]),
    "threads=1": ({}, ["training.threads=1"]),
    "kernels=builtin": ({"GROKKIT_FAST_KERNELS": "0"}, ["training.threads=2"]),
}


def default_config() -> Path:
    return Path(str(resources.files("grokkit").joinpath("configs", "paper", "teacher_add113.yaml")))


def run_variant(config: Path, out: Path, name: str, extra: list[str]) -> dict[str, Any]:
    env_vars, overrides = VARIANTS[name]
    directory = out / name.replace("=", "_")
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "grokkit.cli", "run", str(config), *overrides, *extra,
                    "--out", str(directory), "--no-progress"], check=True, env={**os.environ, **env_vars})
    print(f"{name}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    summary = RunDir(directory).read_summary()
    return {
        "variant": name, "environment": env_vars, "overrides": overrides + extra, "directory": str(directory),
        "threads": summary["threads"], "steps": summary["steps"], "wall_seconds": summary["wall_seconds"],
        "members": [{k: m.get(k) for k in ("seed", "steps_to_generalize", "steps_to_generalize_lasting",
                                            "final_test_acc", "final_train_acc") if k in m}
                    for m in summary["members"]],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", type=Path, default=None, help="run config (default: the demo's teacher)")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--out", type=Path, required=True, help="directory of the variants' run directories")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("overrides", nargs="*", help="dotted.key=value overrides applied to every variant")
    args = ap.parse_args()
    config = args.config or default_config()
    results = [run_variant(config, args.out, name, args.overrides) for name in args.variants]
    cpu = machine("cpu")
    shown = str(args.config) if args.config else "grokkit/configs/paper/teacher_add113.yaml (packaged)"
    rows = [{"variant": r["variant"], "threads": r["threads"], "wall_seconds": r["wall_seconds"], **m}
            for r in results for m in r["members"]]  # flat: one per (variant, member), for tables
    doc = {"config": shown, "machine": cpu, "date": time.strftime("%Y-%m-%d"), "variants": results, "rows": rows}
    text = json.dumps(doc, indent=2)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.json, text + "\n")


if __name__ == "__main__":
    main()
