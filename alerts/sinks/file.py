"""file:///abs/path.jsonl or file://relative/path.jsonl -- one JSON notification per line, appended and
fsynced (off the event loop). A host part is read as the first segment of a relative path, so
``file://var/alerts.jsonl`` means ``./var/alerts.jsonl`` (never ``/alerts.jsonl`` on host ``var``)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

from alerts.model import Notification
from monitor.lifecycle import Service


class FileSink(Service):
    def __init__(self, path: Path, name: str) -> None:
        self.path = path
        self.name = name
        self._lock = asyncio.Lock()

    @classmethod
    def from_url(cls, url: str, name: str) -> FileSink:
        parts = urlsplit(url)
        if not parts.path and not parts.netloc:
            raise ValueError(f"file sink URL {url!r} needs a path: file:///var/alerts.jsonl")
        if parts.netloc:
            return cls(Path(unquote(parts.netloc + parts.path)), name)
        return cls(Path(unquote(parts.path)), name)

    def _append(self, line: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("ab") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())

    async def send(self, notification: Notification) -> None:
        async with self._lock:
            await asyncio.to_thread(self._append, notification.to_json() + b"\n")
