"""The Ray executor on a real cluster: a head and a second node started with ``ray start`` on this machine (separate
processes, 127.0.0.1 only; see tests/ray_loopback.py), a sweep submitted to it with ``--address``, and a worker of
the second node killed with SIGKILL mid-group. Ray re-runs the lost task (its own task retries: ``max_retries``), the
group resumes from its checkpoint, and the sweep ends as if nothing had happened:

* ``grokkit sweep`` exits 0 and reports each group exactly once;
* ``results.parquet`` holds each trial once, status ``ok``; each trial's directory holds one summary and its
  ``metrics.csv`` each evaluation step once; no ``error.json`` and nothing left in ``groups/``;
* the killed group was started twice (``sweep.attempts``), the second time resuming its checkpoint
  (``sweep.resumed``), and every other group once, from scratch;
* final accuracies, steps to generalise and every metrics row equal a local-executor run of the same sweep.

Why equality is exact: packing is the same (the plan depends on the trials only), the config fixes
``training.threads: 1`` so the local process and the Ray workers do the same floating-point reductions, and a resume
restores parameters, optimizer state and RNG state bit for bit (tests/test_engine.py). The metrics are compared with
rtol 1e-9 (float64 losses written to CSV and read back) and the accuracies and steps exactly.

Run: ``pytest -m ray_cluster tests/test_ray_cluster.py``; skipped where the ``ray`` command is missing or not on Linux.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

pytest.importorskip("ray")
from grokkit.sweep.runner import ATTEMPTS_DIR  # noqa: E402
from ray_loopback import SECOND_NODE_MARK, LoopbackCluster, ray_cli  # noqa: E402

pytestmark = [
    pytest.mark.ray_cluster,
    pytest.mark.skipif(ray_cli() is None, reason="the `ray` command is not installed"),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds Ray workers through /proc"),
]

SRC = Path(__file__).parents[1] / "src"
SWEEP_TIMEOUT = 150  # seconds for one sweep on the cluster (about 15 s on 2 cores)
# 4 model widths x 2 seeds: 4 packed groups of 2 trials (widths cannot share an ensemble), ~4 s each on one core.
SWEEP = {
    "name": "raycluster",
    "base": {
        "recipe": "scratch", "name": "tiny",
        "task": {"op": "add", "modulus": 23, "train_fraction": 0.5},
        "model": {"d_model": 32, "n_heads": 2, "d_head": 16, "d_mlp": 64},
        "optimizer": {"name": "adamw", "lr": 0.003, "weight_decay": 1.0},
        "training": {"steps": 800, "eval_every": 50, "checkpoint_every": 50, "progress": False, "threads": 1},
    },
    "grid": {"model.d_model": [16, 24, 32, 40]},
    "seeds": [0, 1],
}
N_TRIALS, N_GROUPS = 8, 4


def sweep_cmd(spec: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "grokkit.cli", "sweep", str(spec), "--out", str(out), *extra]


def read_results(out: Path) -> pd.DataFrame:
    return pd.read_parquet(out / "results.parquet").sort_values("trial").reset_index(drop=True)


def trial_metrics(out: Path) -> dict[str, pd.DataFrame]:
    return {d.name: pd.read_csv(d / "metrics.csv") for d in sorted((out / "trials").iterdir())}


@pytest.fixture(scope="module")
def spec_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("spec") / "sweep.yaml"
    path.write_text(yaml.safe_dump(SWEEP))
    return path


@pytest.fixture(scope="module")
def cluster():
    with LoopbackCluster(pythonpath=str(SRC), timeout=90) as c:
        yield c


@pytest.fixture(scope="module")
def local_run(spec_file, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("local") / "sw"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(SRC), os.environ.get("PYTHONPATH")) if p)}
    proc = subprocess.run(sweep_cmd(spec_file, out), env=env, capture_output=True, text=True, timeout=SWEEP_TIMEOUT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def assert_same_as_local(out: Path, local: Path) -> None:
    ray_table, local_table = read_results(out), read_results(local)
    assert len(ray_table) == N_TRIALS and ray_table.trial.is_unique, ray_table.trial.tolist()
    assert set(ray_table.status) == {"ok"}, ray_table[["trial", "status", "error"]]
    cols = ["trial", "status", "final_train_acc", "final_test_acc", "steps_to_generalize", "steps", "group",
            "pack_size"]
    pd.testing.assert_frame_equal(ray_table[cols], local_table[cols], check_exact=True)
    ray_metrics, local_metrics = trial_metrics(out), trial_metrics(local)
    assert ray_metrics.keys() == local_metrics.keys()
    for trial, frame in ray_metrics.items():
        assert frame.step.is_unique, f"{trial}: an evaluation step recorded twice"
        pd.testing.assert_frame_equal(frame, local_metrics[trial], rtol=1e-9, atol=0, obj=trial)
    assert not list(out.rglob("error.json"))
    assert not (out / "groups").exists() or not any((out / "groups").iterdir()), list((out / "groups").iterdir())


def summaries(out: Path) -> dict[str, dict]:
    return {d.name: json.loads((d / "summary.json").read_text())["sweep"] for d in (out / "trials").iterdir()}


def reported_groups(log: str) -> list[str]:
    """The groups in the driver's `[i/N] GROUP (k trials): ok` lines."""
    return [line.split("] ", 1)[1].split()[0] for line in log.splitlines()
            if line.startswith("[") and f"/{N_GROUPS}] group-" in line]


def test_sweep_on_a_two_node_cluster_matches_the_local_executor(cluster, spec_file, local_run, tmp_path):
    out = tmp_path / "sw"
    proc = subprocess.run(sweep_cmd(spec_file, out, "--executor", "ray", "--address", cluster.address),
                          env=cluster.env, capture_output=True, text=True, timeout=SWEEP_TIMEOUT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    groups = reported_groups(proc.stderr)
    assert len(groups) == N_GROUPS and len(set(groups)) == N_GROUPS, proc.stderr
    assert_same_as_local(out, local_run)
    assert {s["attempts"] for s in summaries(out).values()} == {1}


def _second_node_worker(pid: int) -> bool:
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False
    return f"{SECOND_NODE_MARK}=second".encode() in environ


def _kill_a_second_node_group(out: Path, proc: subprocess.Popen, deadline: float) -> tuple[str, int]:
    """Wait until a group running on the second node has written a checkpoint (and not finished), then SIGKILL the
    worker running it. Returns (group id, pid)."""
    groups, starts = out / "groups", out / ATTEMPTS_DIR
    while time.monotonic() < deadline and proc.poll() is None:
        for attempts in sorted(starts.glob("*.jsonl")) if starts.exists() else []:
            gid = attempts.name.removesuffix(".jsonl")
            lines = attempts.read_text().splitlines()
            if len(lines) != 1 or not lines[0].endswith("}"):
                continue
            pid = json.loads(lines[0])["pid"]
            run_dir = groups / gid
            mid_run = (run_dir / "checkpoint.safetensors").exists() and not (run_dir / "summary.json").exists()
            if mid_run and _second_node_worker(pid):
                os.kill(pid, signal.SIGKILL)
                return gid, pid
        time.sleep(0.05)
    raise AssertionError("no group ran on the second node before the sweep ended or the deadline passed")


def test_worker_killed_mid_sweep_is_retried_by_ray_and_every_trial_trains_once(cluster, spec_file, local_run,
                                                                               tmp_path):
    out = tmp_path / "sw"
    log = tmp_path / "sweep.log"
    deadline = time.monotonic() + SWEEP_TIMEOUT
    with open(log, "w") as f:
        proc = subprocess.Popen(sweep_cmd(spec_file, out, "--executor", "ray", "--address", cluster.address),
                                env=cluster.env, stdout=f, stderr=subprocess.STDOUT)
        try:
            killed_group, killed_pid = _kill_a_second_node_group(out, proc, deadline)
            rc = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
    text = log.read_text()
    assert rc == 0, text[-3000:]
    groups = reported_groups(text)
    assert len(groups) == N_GROUPS and len(set(groups)) == N_GROUPS and killed_group in groups, text
    assert_same_as_local(out, local_run)
    by_trial = summaries(out)
    starts = {s["group"]: (s["attempts"], s["resumed"]) for s in by_trial.values()}
    assert starts.pop(killed_group) == (2, True), by_trial  # Ray's retry resumed the group's checkpoint
    assert set(starts.values()) == {(1, False)}, by_trial
    assert not Path(f"/proc/{killed_pid}").exists()
