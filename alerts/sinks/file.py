"""file:///abs/path.jsonl or file://relative/path.jsonl -- one JSON notification per line, appended and
fsynced (off the event loop). A host part is read as the first segment of a relative path, so
``file://var/alerts.jsonl`` means ``./var/alerts.jsonl`` (never ``/alerts.jsonl`` on host ``var``).

The file is size-bounded (monitor/rotating_file.py): ``?max_mb=100&keep=5`` (the defaults) rotates it
to ``.1`` … ``.5`` before it would pass 100 MiB. The query is not part of the sink's name, so changing
it keeps the outbox's delivery records.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from alerts.model import Notification
from monitor.lifecycle import Service
from monitor.rotating_file import DEFAULT_KEEP, DEFAULT_MAX_BYTES, MIB, RotatingFile

EXAMPLE_URL = "file:///var/alerts.jsonl?max_mb=100&keep=5"


def _positive_int(params: dict[str, str], key: str, default: int) -> int:
    """``params[key]`` as a whole number > 0; a bad value names the parameter and shows an example."""
    if key not in params:
        return default
    value = params[key]
    if not (value.isascii() and value.isdigit()) or int(value) <= 0:
        raise ValueError(f"file sink URL parameter {key}={value!r} must be a whole number > 0, e.g. {EXAMPLE_URL}")
    return int(value)


def rotation_params(query: str) -> tuple[int, int]:
    """``(max_bytes, keep)`` from a URL query; unknown or repeated parameters are errors, not ignored."""
    pairs = parse_qsl(query, keep_blank_values=True)
    params = dict(pairs)
    unknown = sorted(set(params) - {"max_mb", "keep"})
    if unknown:
        raise ValueError(f"file sink URL has unknown parameter(s) {unknown}: use max_mb and keep, e.g. {EXAMPLE_URL}")
    if len(params) != len(pairs):
        raise ValueError(f"file sink URL repeats a parameter in {query!r}: give each once, e.g. {EXAMPLE_URL}")
    max_mb = _positive_int(params, "max_mb", DEFAULT_MAX_BYTES // MIB)
    return max_mb * MIB, _positive_int(params, "keep", DEFAULT_KEEP)


class FileSink(Service):
    def __init__(self, path: Path, name: str, *, max_bytes: int = DEFAULT_MAX_BYTES,
                 keep: int = DEFAULT_KEEP) -> None:
        self.path = path
        self.name = name
        self.file = RotatingFile(path, max_bytes=max_bytes, keep=keep, fsync=True)
        self._lock = asyncio.Lock()

    @classmethod
    def from_url(cls, url: str, name: str) -> FileSink:
        parts = urlsplit(url)
        if not parts.path and not parts.netloc:
            raise ValueError(f"file sink URL {url!r} needs a path: {EXAMPLE_URL}")
        max_bytes, keep = rotation_params(parts.query)
        path = Path(unquote(parts.netloc + parts.path)) if parts.netloc else Path(unquote(parts.path))
        return cls(path, name, max_bytes=max_bytes, keep=keep)

    async def send(self, notification: Notification) -> None:
        async with self._lock:
            await asyncio.to_thread(self.file.append, notification.to_json() + b"\n")
