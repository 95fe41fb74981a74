"""Start real servers (redis-server, the Kafka broker) as subprocesses on 127.0.0.1 for tests.

A missing binary is a hard failure, never a skip: CI must not go green without the real backends.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is valid and free too."""
    for _ in range(200):
        port = free_port()
        if port + 10_000 > 65_535:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 10_000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair (port, port + 10000) for a Redis Cluster node")


def wait_for_port(port: int, timeout_s: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited early with code {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout_s}s")


def require_binary(name: str, install_hint: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found on PATH -- {install_hint}", pytrace=False)
    return path


@contextmanager
def serving(args: list[str], port: int, timeout_s: float = 10.0) -> Iterator[None]:
    """Run a server process until the block ends: waits for ``port`` to accept, then terminates it."""
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, timeout_s, proc)
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextmanager
def redis_server(workdir: Path, *extra: str, port: int | None = None) -> Iterator[str]:
    """A throwaway redis-server (``extra``: more options, e.g. cluster mode); yields its URL."""
    binary = require_binary("redis-server", "install it: apt-get install -y redis-server (.ci/run does)")
    port = port or free_port()
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(workdir), *extra]
    with serving(args, port):
        yield f"redis://127.0.0.1:{port}/0"


@contextmanager
def redis_cluster(workdir: Path, nodes: int = 3, replicas: int = 0, node_timeout_ms: int = 15_000) -> Iterator[str]:
    """A throwaway Redis Cluster of ``nodes`` servers (``replicas`` per master; a master silent for
    ``node_timeout_ms`` is failed over); yields the first node's URL."""
    require_binary("redis-server", "install it: apt-get install -y redis-server (.ci/run does)")
    cli = require_binary("redis-cli", "install it: apt-get install -y redis-tools (.ci/run does)")
    with contextlib.ExitStack() as stack:
        urls = []
        for i in range(nodes):
            node_dir = workdir / f"node{i}"
            node_dir.mkdir(parents=True, exist_ok=True)
            urls.append(stack.enter_context(redis_server(
                node_dir, "--cluster-enabled", "yes", "--cluster-config-file", str(node_dir / "nodes.conf"),
                "--cluster-node-timeout", str(node_timeout_ms), port=free_cluster_port())))
        addresses = [url.split("//")[1].rsplit("/", 1)[0] for url in urls]
        subprocess.run([cli, "--cluster", "create", *addresses, "--cluster-replicas", str(replicas), "--cluster-yes"],
                       check=True, capture_output=True, timeout=60)
        deadline = time.monotonic() + 30
        for address in addresses:
            _wait_for_node(cli, address, "cluster_state:ok", deadline, "cluster", "info")
            # a replica that has not finished its first sync is never promoted (its data counts as too old):
            # a failover drill must not start before every replica is in sync
            if "role:slave" in _cli_out(cli, address, "info", "replication"):
                _wait_for_node(cli, address, "master_link_status:up", deadline, "info", "replication")
        yield urls[0]


def _cli_out(cli: str, address: str, *args: str) -> str:
    host, port = address.split(":")
    return subprocess.run([cli, "-h", host, "-p", port, *args], capture_output=True, text=True, timeout=10).stdout


def _wait_for_node(cli: str, address: str, expected: str, deadline: float, *args: str) -> None:
    while expected not in _cli_out(cli, address, *args):
        if time.monotonic() > deadline:
            pytest.fail(f"Redis Cluster node {address} never reported {expected}", pytrace=False)
        time.sleep(0.1)


def make_certificates(workdir: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 signed by it (openssl CLI)."""
    openssl = require_binary("openssl", "install it: apt-get install -y openssl")
    ca_key, ca, key, csr, cert = (workdir / n for n in ("ca.key", "ca.pem", "server.key", "server.csr", "server.pem"))
    ext = workdir / "san.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    steps = [
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca, "-days", "2",
         "-subj", "/CN=finsent-test-ca"],
        [openssl, "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1"],
        [openssl, "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", cert,
         "-days", "2", "-extfile", ext],
    ]
    for step in steps:
        subprocess.run([str(a) for a in step], check=True, capture_output=True)
    return ca, cert, key


@contextmanager
def redis_tls_server(workdir: Path) -> Iterator[tuple[str, Path]]:
    """A throwaway redis-server that only speaks TLS; yields its ``rediss://`` URL and the CA file."""
    binary = require_binary("redis-server", "install it: apt-get install -y redis-server (.ci/run does)")
    ca, cert, key = make_certificates(workdir)
    port = free_port()
    args = [binary, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1", "--tls-cert-file", str(cert),
            "--tls-key-file", str(key), "--tls-ca-cert-file", str(ca), "--tls-auth-clients", "no",
            "--save", "", "--appendonly", "no", "--dir", str(workdir)]
    with serving(args, port):
        yield f"rediss://127.0.0.1:{port}/0", ca


ALERTMANAGER_HINT = "install it: apt-get install -y prometheus-alertmanager (make test / .ci/run does)"


@contextmanager
def alertmanager_server(workdir: Path, webhook_url: str) -> Iterator[str]:
    """A throwaway Prometheus Alertmanager (no clustering) that forwards every group, resolved ones
    included, to ``webhook_url`` within about a second; yields its base URL."""
    binary = shutil.which("prometheus-alertmanager") or require_binary("alertmanager", ALERTMANAGER_HINT)
    config = workdir / "alertmanager.yml"
    config.write_text(
        "route:\n  receiver: hook\n  group_by: ['...']\n  group_wait: 0s\n  group_interval: 1s\n"
        "  repeat_interval: 1h\n"
        f"receivers:\n  - name: hook\n    webhook_configs:\n      - url: '{webhook_url}'\n        send_resolved: true\n"
    )
    port = free_port()
    args = [binary, f"--config.file={config}", f"--storage.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=", "--log.level=warn"]
    with serving(args, port, timeout_s=15.0):
        yield f"http://127.0.0.1:{port}"
