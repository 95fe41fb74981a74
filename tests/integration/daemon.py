"""Run the real daemon (``python -m monitor.cli run``) as a subprocess for end-to-end tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from monitor.config import REPO_ROOT
from tests.processes import child_pids

PRODUCTION_CONFIG = REPO_ROOT / "configs" / "production.toml"


class Daemon:
    """One ``monitor run`` process configured via ``MONITOR_*`` variables; logs (JSON) go to a file."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        # the test streams are dated in the past (tests/integration/streams.py): page for them as for live data
        # unless a test sets alerts.max_page_age_s itself
        self.env = {**os.environ, "MONITOR_ALERTS__MAX_PAGE_AGE_S": "0", **env, "MONITOR_LOG__FORMAT": "json",
                    "PYTHONUNBUFFERED": "1",
                    "PYTHONPATH": str(REPO_ROOT)}
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Daemon:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "monitor.cli", "--config", str(PRODUCTION_CONFIG), "run"],
            cwd=self.log_path.parent, env=self.env, stdout=log, stderr=subprocess.STDOUT,
        )
        return self

    def events(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log_path.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return out

    def wait_for_event(self, name: str, timeout_s: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for event in self.events():
                if event.get("event") == name:
                    return event
            self.assert_alive()
            time.sleep(0.1)
        raise TimeoutError(f"daemon did not log {name!r} within {timeout_s}s; log tail:\n{self.tail()}")

    def assert_alive(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"daemon exited with {self.proc.returncode}; log tail:\n{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])

    def terminate(self, timeout_s: float = 30.0) -> int:
        """SIGTERM and wait: the graceful path (drain, commit, flush)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout_s)

    def children(self) -> list[int]:
        """Pids of the daemon's live child processes (the inference worker, multiprocessing's tracker)."""
        assert self.proc is not None
        return child_pids(self.proc.pid)

    def kill(self) -> None:
        """SIGKILL: a crash, nothing drained or committed."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=10)

