"""The replay/backtest progress bar and the log lines written while it is shown."""

from __future__ import annotations

import asyncio
import io
import logging
import sys
from collections.abc import Iterator

import pytest
from tqdm import tqdm

from monitor.progress import bar_wanted, logs_above, run_with_progress


@pytest.fixture
def stream_handler() -> Iterator[tuple[io.StringIO, logging.StreamHandler[io.StringIO]]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    before, level = root.handlers[:], root.level
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    yield stream, handler
    root.handlers[:] = before
    root.setLevel(level)


def test_log_line_during_a_run_starts_its_own_line_instead_of_joining_the_bar(
    stream_handler: tuple[io.StringIO, logging.StreamHandler[io.StringIO]], monkeypatch: pytest.MonkeyPatch,
) -> None:
    stream, handler = stream_handler
    monkeypatch.setattr(sys, "stderr", stream)  # the bar and the log handler share stderr, as in the CLI
    bar = tqdm(total=10, file=stream, mininterval=0)
    count = 0

    async def run() -> str:
        nonlocal count
        count = 4
        await asyncio.sleep(0.05)  # the bar is drawn at 4/10
        logging.getLogger("monitor.test").warning("late_record seen")
        return "done"

    assert asyncio.run(run_with_progress(run, lambda: count, bar, 0.01)) == "done"
    out = stream.getvalue()
    at = out.index("late_record seen")
    assert "4/10" in out[:at]
    assert out[at - 1] in "\r\n", repr(out[max(0, at - 40):at + 20])
    assert handler.stream is stream  # restored after the run


def test_disabled_bar_leaves_the_handlers_alone(
    stream_handler: tuple[io.StringIO, logging.StreamHandler[io.StringIO]],
) -> None:
    stream, handler = stream_handler
    with logs_above(tqdm(total=1, file=stream, disable=True), stream):
        assert handler.stream is stream


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_bar_is_drawn_only_when_asked_for_and_stderr_is_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by a walkthrough: drawn into a file or pipe, a bar was carriage returns and cursor-up codes among the
    log lines of `monitor backtest 2> log`."""
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert not bar_wanted(True)
    monkeypatch.setattr(sys, "stderr", _Terminal())
    assert bar_wanted(True) and not bar_wanted(False)
