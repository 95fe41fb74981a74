"""FileSink URL parameters (rotation limits) and rotation through the sink; delivery is in tests/integration."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alerts.lifecycle import LifecyclePolicy, step
from alerts.model import Notification
from alerts.sinks.file import FileSink, rotation_params
from monitor.rotating_file import DEFAULT_KEEP, DEFAULT_MAX_BYTES, MIB, rotated_path
from tests.unit.alerts.builders import DAY0_S, signal


def notification() -> Notification:
    now = DAY0_S + 300
    return step({}, [signal("ticker:TSLA", now, True)], now, LifecyclePolicy()).notifications[0]


def test_url_query_sets_the_size_limit_in_mib_and_the_rotated_files_kept() -> None:
    sink = FileSink.from_url("file:///var/alerts.jsonl?max_mb=50&keep=3", "file:///var/alerts.jsonl")
    assert sink.path == Path("/var/alerts.jsonl")
    assert (sink.file.max_bytes, sink.file.keep) == (50 * MIB, 3)
    assert sink.file.fsync


def test_url_without_query_uses_100_mib_and_5_files() -> None:
    sink = FileSink.from_url("file://var/alerts.jsonl", "file://var/alerts.jsonl")
    assert sink.path == Path("var/alerts.jsonl")
    assert (sink.file.max_bytes, sink.file.keep) == (DEFAULT_MAX_BYTES, DEFAULT_KEEP) == (100 * MIB, 5)


@pytest.mark.parametrize(("query", "match"), [
    ("max_mb=0", "max_mb='0'"), ("max_mb=-1", "max_mb='-1'"), ("max_mb=1.5", "max_mb='1.5'"),
    ("max_mb=", "max_mb=''"), ("keep=two", "keep='two'"), ("keep=0", "keep='0'"),
    ("max_size=10", "unknown parameter"), ("keep=1&keep=2", "repeats"),
])
def test_bad_url_parameter_is_a_value_error_naming_it_with_an_example(query: str, match: str) -> None:
    with pytest.raises(ValueError, match=match) as exc:
        FileSink.from_url(f"file:///var/alerts.jsonl?{query}", "file:///var/alerts.jsonl")
    assert "file:///var/alerts.jsonl?max_mb=100&keep=5" in str(exc.value)


@given(max_mb=st.integers(min_value=1, max_value=10**6), keep=st.integers(min_value=1, max_value=1000))
def test_any_positive_whole_numbers_parse_back(max_mb: int, keep: int) -> None:
    assert rotation_params(f"keep={keep}&max_mb={max_mb}") == (max_mb * MIB, keep)


async def test_sink_rotates_its_file_and_keeps_whole_notifications(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    n = notification()
    line_bytes = len(n.to_json()) + 1
    sink = FileSink(path, "file", max_bytes=2 * line_bytes, keep=1)
    for _ in range(5):
        await sink.send(n)
    assert [len(p.read_bytes().splitlines()) for p in (path, rotated_path(path, 1))] == [1, 2]
    assert not rotated_path(path, 2).exists()
    assert all(Notification.from_json(line) == n for line in rotated_path(path, 1).read_bytes().splitlines())
