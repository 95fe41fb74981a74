"""One lifecycle contract for every long-lived part: ``start()``/``stop()`` and ``async with``.

Subclasses implement ``_start``/``_stop``; this base makes both idempotent, so a shutdown path
can call ``stop()`` on everything without tracking what actually started.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Self


async def cancel_and_wait(*tasks: asyncio.Task[Any] | None) -> None:
    """Cancel ``tasks`` (None: not started) and wait until each has ended: a stopped part leaves nothing running."""
    running = [t for t in tasks if t is not None]
    for task in running:
        task.cancel()
    for task in running:
        with contextlib.suppress(asyncio.CancelledError):
            await task


class Service:
    _started: bool = False

    async def _start(self) -> None:
        """Acquire resources. Override."""

    async def _stop(self) -> None:
        """Release resources. Override; called once, only after a successful start."""

    @property
    def started(self) -> bool:
        return self._started

    async def start(self) -> None:
        if self._started:
            return
        await self._start()
        self._started = True

    async def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        await self._stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
