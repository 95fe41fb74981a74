"""Process checks from /proc (Linux): a process's children, and waiting for pids to exit."""

from __future__ import annotations

import time
from pathlib import Path


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (state first), or None if the pid is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None


def child_pids(parent: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        fields = _stat(int(entry.name)) if entry.name.isdigit() else None
        if fields and fields[1] == str(parent) and fields[0] != "Z":
            pids.append(int(entry.name))
    return pids


def gone(pid: int) -> bool:
    """Exited, or a zombie nobody reaped yet (an orphan's new parent may not reap promptly)."""
    fields = _stat(pid)
    return fields is None or fields[0] == "Z"


def wait_gone(pids: list[int], timeout_s: float) -> list[int]:
    """Waits for every pid to exit; returns those still running at the deadline."""
    deadline = time.monotonic() + timeout_s
    while (alive := [p for p in pids if not gone(p)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive
