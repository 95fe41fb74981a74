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
import errno
import os
import stat
import threading
from pathlib import Path
from typing import BinaryIO

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


def _write_all(fh: BinaryIO, data: bytes) -> None:
    """An unbuffered write may be short (e.g. at a file size limit): write on until all is out or it fails."""
    view = memoryview(data)
    while view:
        written = fh.write(view)
        if not written:
            raise OSError(errno.EIO, "short write: 0 bytes written")
        view = view[written:]


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
        """Write ``line`` (newline included) in one piece, rotating first if it would not fit.

        All or nothing: when the write fails part-way (disk full, file size limit), the file is cut back to
        where the line began before the error is raised, so a retry never leaves a torn line behind it."""
        with self._lock:
            rotated = self._rotate_if_full(len(line))
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("ab", buffering=0) as fh:
                start = fh.tell()
                try:
                    _write_all(fh, line)
                    if self.fsync:
                        os.fsync(fh.fileno())
                except OSError:
                    with contextlib.suppress(OSError):
                        if stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                            os.ftruncate(fh.fileno(), start)
                    raise
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
