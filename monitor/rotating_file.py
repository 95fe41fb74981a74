"""Size-bounded append-only line files: ``path`` plus at most ``keep`` rotated ``path.1`` … ``path.N``.

The daemon appends JSONL forever (alert file sink, dead letters); without a bound a noisy day fills the
disk. Before a line would push ``path`` past ``max_bytes``, the files shift (``path.1`` -> ``path.2`` …,
the oldest is overwritten) and ``path`` starts fresh, so a line is never split across files and about
``(keep + 1) * max_bytes`` stays on disk. A line longer than ``max_bytes`` is still written, alone in
its file: losing a record is worse than overshooting once.

Each append opens the file, so deleting or moving ``path`` from outside is picked up at the next line
and the size is read from disk, never tracked. Only regular files rotate (``/dev/null`` never moves).
One process writes a path; a lock serialises threads, since a cancelled ``to_thread`` keeps running.

The lines hold message text and Kafka headers (dead letters) or alerts: a file this module creates is
``0600`` and a directory ``0700`` (whatever the umask allows of that), never the umask's usual ``0644``/``0755``
(found by review). Existing files and directories keep their modes: they are the operator's.
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
FILE_MODE = 0o600
DIR_MODE = 0o700


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


def _open_private(path: str, flags: int) -> int:
    """``open``'s opener: a file it creates is ``FILE_MODE``, not the umask's default."""
    return os.open(path, flags, FILE_MODE)


def _make_private_dirs(directory: Path) -> None:
    """``directory`` and any missing parents, each created ``DIR_MODE``: ``Path.mkdir(mode=...)`` applies the
    mode to the last one only. Directories that exist are left as they are."""
    missing: list[Path] = []
    while not directory.is_dir() and directory.parent != directory:
        missing.append(directory)
        directory = directory.parent
    for path in reversed(missing):
        with contextlib.suppress(FileExistsError):  # made meanwhile (or not a directory: the open names it)
            path.mkdir(mode=DIR_MODE)


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
        _make_private_dirs(self.path.parent)
        open(self.path, "ab", opener=_open_private).close()

    def append(self, line: bytes) -> None:
        """Write ``line`` (newline included) in one piece, rotating first if it would not fit.

        All or nothing: when the write fails part-way (disk full, file size limit), the file is cut back to
        where the line began before the error is raised, so a retry never leaves a torn line behind it."""
        with self._lock:
            rotated = self._rotate_if_full(len(line))
            _make_private_dirs(self.path.parent)
            with open(self.path, "ab", buffering=0, opener=_open_private) as fh:
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
