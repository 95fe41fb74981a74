"""A progress bar that follows a running app's read count (replay and backtest share it)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Awaitable, Callable, Iterator
from typing import IO, TypeVar

from tqdm import tqdm

T = TypeVar("T")


def bar_wanted(progress: bool) -> bool:
    """Whether to draw a progress bar: asked for (no ``--no-progress``) and stderr is a terminal. Drawn into a file
    or a pipe (a CI log, ``2> run.log``) a bar is carriage returns and cursor-up codes among the log lines, and
    buried the summary (found by a walkthrough)."""
    return progress and sys.stderr.isatty()


class _AboveBar:
    """A stream that writes each log line above the progress bars (``tqdm.write``) instead of into them.

    Why: the log handler and the bar share stderr; a line logged mid-run was glued to the bar's last
    redraw (``45%|####    | 2300/5000 ... {"event": "late_record" ...}``) and the bar was redrawn inside it.
    """

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        tqdm.write(text, file=self.stream, end="")
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


@contextlib.contextmanager
def logs_above(bar: tqdm, stream: IO[str] | None = None) -> Iterator[None]:
    """While ``bar`` is shown, the root logger's handlers that write to ``stream`` (the bar's, stderr by
    default) write above it.

    The handlers themselves stay (their formatter and filters, e.g. the repeat throttle, keep working);
    only their stream is wrapped, and restored on exit.
    """
    target = sys.stderr if stream is None else stream
    swapped: list[tuple[logging.StreamHandler[IO[str]], IO[str]]] = []
    if not bar.disable:
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream is target:
                swapped.append((handler, handler.stream))
                handler.setStream(_AboveBar(target))
    try:
        yield
    finally:
        for handler, stream in swapped:
            handler.setStream(stream)


async def run_with_progress(run: Callable[[], Awaitable[T]], read: Callable[[], int], bar: tqdm,
                            interval_s: float) -> T:
    """Await ``run()`` while ``bar`` shows ``read()`` every ``interval_s``; the bar is closed at the end,
    showing the final count, whether the run finished or failed. Log lines go above the bar meanwhile."""

    async def follow() -> None:
        while True:
            bar.n = read()
            bar.refresh()
            await asyncio.sleep(interval_s)

    with logs_above(bar):
        watcher = asyncio.create_task(follow())
        try:
            return await run()
        finally:
            watcher.cancel()
            bar.n = read()
            bar.close()
