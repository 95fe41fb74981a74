"""Size-bounded append-only line files: ``path`` plus at most ``keep`` rotated ``path.1`` … ``path.N``.

The daemon appends JSONL forever (alert file sink, dead letters); without a bound a noisy day fills the
disk. Before a line would push ``path`` past ``max_bytes``, the files shift (``path.1`` -> ``path.2`` …,
the oldest is overwritten) and ``path`` starts fresh, so a line is never split across files and about
``(keep + 1) * max_bytes`` stays on disk. A line longer than ``max_bytes`` is still written, alone in
its file: losing a record is worse than overshooting once.

Each append opens the file, so deleting or moving ``path`` from outside is picked up at the next line
and the size is read from disk, never tracked. Only regular files rotate (``/dev/null`` never moves).
One process writes a path; a lock serialises threads, since a cancelled ``to_thread`` keeps running.
"""

from __future__ import annotations

import contextlib
import os
import stat
import threading
from pathlib import Path

MIB = 1024 * 1024
DEFAULT_MAX_BYTES = 100 * MIB
DEFAULT_KEEP = 5


def rotated_path(path: Path, n: int) -> Path:
    """``path.n``: the n-th newest rotated file (``alerts.jsonl.1`` is the previous ``alerts.jsonl``)."""
    return path.with_name(f"{path.name}.{n}")


def _fsync_dir(directory: Path) -> None:
    """Renames and new names live in the directory: fsync it, or a crash may undo the rotation."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class RotatingFile:
    """Appends whole lines to ``path`` (blocking I/O: callers on the event loop decide whether to hop)."""

    def __init__(self, path: Path, *, max_bytes: int = DEFAULT_MAX_BYTES, keep: int = DEFAULT_KEEP,
                 fsync: bool = False) -> None:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be > 0, got {max_bytes}")
        if keep <= 0:
            raise ValueError(f"keep must be > 0, got {keep}")
        self.path = path
        self.max_bytes = max_bytes
        self.keep = keep
        self.fsync = fsync
        """fsync each line (and the directory after a rotation): durable, at a disk flush per line."""
        self._lock = threading.Lock()

    def create(self) -> None:
        """Create the file and its directories now, so an unwritable path fails at start, not later."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.open("ab").close()

    def append(self, line: bytes) -> None:
        """Write ``line`` (newline included) in one piece, rotating first if it would not fit."""
        with self._lock:
            rotated = self._rotate_if_full(len(line))
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("ab") as fh:
                fh.write(line)
                fh.flush()
                if self.fsync:
                    os.fsync(fh.fileno())
            if rotated and self.fsync:
                _fsync_dir(self.path.parent)

    def _rotate_if_full(self, incoming: int) -> bool:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return False
        if not stat.S_ISREG(st.st_mode) or st.st_size == 0 or st.st_size + incoming <= self.max_bytes:
            return False
        for n in range(self.keep - 1, 0, -1):
            with contextlib.suppress(FileNotFoundError):
                os.replace(rotated_path(self.path, n), rotated_path(self.path, n + 1))
        os.replace(self.path, rotated_path(self.path, 1))
        return True
