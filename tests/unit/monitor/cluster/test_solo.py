"""Whose lease may be taken at once: only a holder whose death can be told for sure (same host name and same
pid namespace, process gone). Found by review: two containers sharing a host name are both pid 1, and the
second took the live first one's lease within a second."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from monitor.cluster.solo import dead_on_this_host, pid_namespace


def token(pid: int, **extra: object) -> str:
    return json.dumps({"host": socket.gethostname(), "pid": pid, "pidns": pid_namespace(), "started_at": "t",
                       "id": "x", **extra})


@pytest.fixture(scope="module")
def gone_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    return int(done.stdout)


def test_a_gone_process_in_this_namespace_on_this_host_is_dead(gone_pid: int) -> None:
    assert pid_namespace() is not None
    assert dead_on_this_host(token(gone_pid))


def test_our_own_pid_in_another_pid_namespace_is_another_live_container_not_a_previous_life() -> None:
    assert not dead_on_this_host(token(os.getpid(), pidns=(pid_namespace() or 0) + 1))


def test_without_a_namespace_in_the_token_nothing_is_judged(gone_pid: int) -> None:
    assert not dead_on_this_host(token(gone_pid, pidns=None))
    assert not dead_on_this_host(json.dumps({"host": socket.gethostname(), "pid": gone_pid}))


def test_another_host_is_never_judged(gone_pid: int) -> None:
    assert not dead_on_this_host(token(gone_pid, host="elsewhere"))
    assert not dead_on_this_host("not json") and not dead_on_this_host("[1, 2]")
