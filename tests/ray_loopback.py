"""A two-node Ray cluster on this machine, on the loopback interface only, started the way a cluster is: ``ray start
--head`` and ``ray start --address`` as separate processes. Used by tests/test_ray_cluster.py and
benchmarks/bench_ray.py.

Ray >= 2.5x replaces 127.0.0.1 with the machine's routable address wherever it sees it (``--node-ip-address``,
``--address``, ``ray.init(address=...)``), so a cluster asked for loopback would still bind and dial the external
interface. Two settings keep everything on 127.0.0.1:

* ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` in every process (head, second node, driver, and through them the raylets
  and workers): Ray then resolves "localhost" to 127.0.0.1. It also makes ``ray start --address`` refuse to add a node
  (multi-node is "unsupported" in that mode), so the second node is started through :data:`SECOND_NODE_LAUNCHER`,
  which is the ``ray`` command with that one check passed and 127.0.0.1 kept as given.
* token authentication with a random per-cluster token in the environment (``RAY_AUTH_MODE=token``,
  ``RAY_AUTH_TOKEN``), so nothing is written to ``~/.ray``.

Every port is chosen free on 127.0.0.1 and passed explicitly, so two clusters (or a user's own Ray) do not collide.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HOST = "127.0.0.1"
SECOND_NODE_LAUNCHER = (
    "import sys\n"
    "import ray._private.ray_constants as c\n"
    "import ray._private.services as s\n"
    "from ray._raylet import is_localhost\n"
    "c.ENABLE_RAY_CLUSTER = True\n"
    "s.resolve_ip_for_localhost = lambda h: '127.0.0.1' if is_localhost(h) else h\n"
    "from ray.scripts.scripts import main\n"
    "sys.argv[0] = 'ray'\n"
    "sys.exit(main())\n"
)
SECOND_NODE_MARK = "GROKKIT_RAY_NODE"  # set to "second" in the second node's environment (its workers inherit it)


def ray_cli() -> str | None:
    """The ``ray`` command next to this Python, or on PATH."""
    here = Path(sys.executable).parent / "ray"
    return str(here) if here.exists() else shutil.which("ray")


def free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind((HOST, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class LoopbackCluster:
    """``with LoopbackCluster(src) as c:`` starts the head and a second node (1 CPU each); ``c.address`` is the
    ``--address`` for a driver and ``c.env`` the environment a driver needs. Leaving the block runs ``ray stop
    --force`` and removes the temp dir. ``pythonpath``: prepended to PYTHONPATH of every node, so that the nodes'
    workers import the same grokkit as the driver."""

    def __init__(self, pythonpath: str | None = None, cpus: tuple[int, int] = (1, 1), timeout: float = 90.0,
                 nice: int = 0) -> None:
        self.cli = ray_cli()
        if self.cli is None:
            raise RuntimeError("the `ray` command is not installed")
        self.cpus = cpus
        self.timeout = timeout
        self.nice = nice
        self.tmp = Path(tempfile.mkdtemp(prefix="grokkit-ray-"))  # short: Ray's socket paths must fit 107 bytes
        env = dict(os.environ)
        if pythonpath:
            env["PYTHONPATH"] = os.pathsep.join(p for p in (pythonpath, env.get("PYTHONPATH")) if p)
        env.update(RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="token",
                   RAY_AUTH_TOKEN=secrets.token_hex(16))
        env.pop("RAY_ADDRESS", None)
        self.env = env
        ports = free_ports(10)
        self.port = ports[0]
        self.address = f"{HOST}:{self.port}"
        self._head_ports = ports[1:6]
        self._node_ports = ports[6:10]
        self.logs: list[str] = []

    def _run(self, argv: list[str], env: dict[str, str]) -> None:
        prefix = ["nice", "-n", str(self.nice)] if self.nice and shutil.which("nice") else []
        proc = subprocess.run(prefix + argv, env=env, capture_output=True, text=True, timeout=self.timeout)
        self.logs.append(proc.stdout[-3000:] + proc.stderr[-3000:])
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[:3])} failed ({proc.returncode}):\n{self.logs[-1]}")

    def start(self) -> LoopbackCluster:
        common = ["--disable-usage-stats", "--object-store-memory=80000000", f"--temp-dir={self.tmp}"]
        client, agent, agent_grpc, renv, metrics = self._head_ports
        try:
            self._run([self.cli, "start", "--head", f"--port={self.port}", f"--node-ip-address={HOST}",
                       f"--num-cpus={self.cpus[0]}", "--include-dashboard=false", f"--ray-client-server-port={client}",
                       f"--dashboard-agent-listen-port={agent}", f"--dashboard-agent-grpc-port={agent_grpc}",
                       f"--runtime-env-agent-port={renv}", f"--metrics-export-port={metrics}", *common], self.env)
            agent, agent_grpc, renv, metrics = self._node_ports
            self._run([sys.executable, "-c", SECOND_NODE_LAUNCHER, "start", f"--address={self.address}",
                       f"--num-cpus={self.cpus[1]}", f"--dashboard-agent-listen-port={agent}",
                       f"--dashboard-agent-grpc-port={agent_grpc}", f"--runtime-env-agent-port={renv}",
                       f"--metrics-export-port={metrics}", *common],
                      {**self.env, SECOND_NODE_MARK: "second"})
            self.wait_for_nodes(2)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_for_nodes(self, n: int) -> None:
        """Until the GCS lists ``n`` live nodes (bounded by ``timeout``)."""
        probe = ("import ray, sys\n"
                 f"ray.init(address={self.address!r}, include_dashboard=False, log_to_driver=False)\n"
                 "print(sum(1 for x in ray.nodes() if x['Alive']))\n")
        deadline = time.monotonic() + self.timeout
        alive = 0
        while time.monotonic() < deadline:
            proc = subprocess.run([sys.executable, "-c", probe], env=self.env, capture_output=True, text=True,
                                  timeout=self.timeout)
            lines = proc.stdout.strip().splitlines()
            alive = int(lines[-1]) if proc.returncode == 0 and lines and lines[-1].isdigit() else 0
            if alive >= n:
                return
            time.sleep(1.0)
        raise RuntimeError(f"the loopback cluster has {alive} of {n} nodes after {self.timeout:.0f} s")

    def stop(self) -> None:
        try:
            subprocess.run([self.cli, "stop", "--force"], env=self.env, capture_output=True, timeout=60)
        except subprocess.TimeoutExpired:
            pass
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> LoopbackCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
