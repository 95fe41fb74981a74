"""A progress bar that follows a running app's read count (replay and backtest share it)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")


async def run_with_progress(run: Callable[[], Awaitable[T]], read: Callable[[], int], bar: tqdm,
                            interval_s: float) -> T:
    """Await ``run()`` while ``bar`` shows ``read()`` every ``interval_s``; the bar is closed at the end,
    showing the final count, whether the run finished or failed."""

    async def follow() -> None:
        while True:
            bar.n = read()
            bar.refresh()
            await asyncio.sleep(interval_s)

    watcher = asyncio.create_task(follow())
    try:
        return await run()
    finally:
        watcher.cancel()
        bar.n = read()
        bar.close()
