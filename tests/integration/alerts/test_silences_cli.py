"""``monitor silences create|list|expire`` against a real Redis, and what it refuses."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from alerts.silences import silence_command
from monitor.config import Settings


def redis_settings(redis_url: str) -> Settings:
    return Settings(windows={"store_url": redis_url, "key_prefix": f"cli-{uuid.uuid4().hex}",
                             "bucket_s": 300, "allowed_lateness_s": 600})


def test_create_list_expire_round_trip(redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    settings = redis_settings(redis_url)
    before = int(time.time())
    assert silence_command(["create", "--matcher", "ticker:TSLA", "--duration-s", "3600",
                            "--comment", "earnings call"], settings) == 0
    created = json.loads(capsys.readouterr().out)
    assert created["matcher"] == "ticker:TSLA" and created["comment"] == "earnings call"
    assert created["starts_at_s"] <= before - 900  # covers buckets still being evaluated
    assert before + 3600 <= created["ends_at_s"] <= int(time.time()) + 3600

    assert silence_command(["list"], settings) == 0
    assert [json.loads(line)["id"] for line in capsys.readouterr().out.splitlines()] == [created["id"]]

    assert silence_command(["expire", created["id"]], settings) == 0
    capsys.readouterr()
    assert silence_command(["list"], settings) == 0
    assert capsys.readouterr().out == ""
    assert silence_command(["list", "--all"], settings) == 0
    assert created["id"] in capsys.readouterr().out
    assert silence_command(["expire", "nope"], settings) == 1


def test_silence_is_anchored_to_the_stored_detection_cursor_not_the_wall_clock(
        redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    import asyncio

    from alerts.factory import build_state_store

    settings = redis_settings(redis_url)
    replayed_until = 1_793_893_200  # detection has judged up to 2026-11-05 15:40 (a replay, weeks ago)

    async def store_cursor() -> None:
        async with build_state_store(settings) as store:
            await store.commit([], [], replayed_until)

    asyncio.run(store_cursor())
    assert silence_command(["create", "--matcher", "ticker:WFC", "--duration-s", "3600"], settings) == 0
    created = json.loads(capsys.readouterr().out)
    assert (created["starts_at_s"], created["ends_at_s"]) == (replayed_until - 900, replayed_until + 3600)


def test_a_silence_made_while_detection_works_off_a_backlog_lasts_its_duration_past_the_wall_clock(
        redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Found by review: anchored to a cursor hours behind (a backlog after downtime), a "2h" silence ended in event
    time the daemon passed within minutes, and muted nothing."""
    import asyncio

    from alerts.factory import build_state_store

    settings = redis_settings(redis_url)
    behind = int(time.time()) - 6 * 3600  # detection works off six hours of backlog

    async def store_cursor() -> None:
        async with build_state_store(settings) as store:
            await store.commit([], [], behind)

    asyncio.run(store_cursor())
    assert silence_command(["create", "--matcher", "ticker:WFC", "--duration-s", "3600"], settings) == 0
    created = json.loads(capsys.readouterr().out)
    assert created["starts_at_s"] == behind - 900 and abs(created["ends_at_s"] - (time.time() + 3600)) < 60


def test_invalid_requests_exit_2(redis_url: str) -> None:
    settings = redis_settings(redis_url)
    assert silence_command(["create", "--matcher", "*", "--duration-s", "60"], settings) == 2
    assert silence_command(["create", "--matcher", "all", "--duration-s", str(30 * 86_400)], settings) == 2
    assert silence_command(["bogus"], settings) == 2
    for nothing in ("TSLA", "ticker:tsla", "ticker:", "nonsense"):  # accepted before: they muted nothing
        assert silence_command(["create", "--matcher", nothing, "--duration-s", "60"], settings) == 2, nothing
    assert silence_command(["list"], Settings()) == 2  # memory:// cannot share silences with the daemon


def test_human_duration_and_iso_times_in_the_listing(redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    settings = redis_settings(redis_url)
    before = int(time.time())
    assert silence_command(["create", "--matcher", "ticker:BA", "--duration", "1h30m"], settings) == 0
    created = json.loads(capsys.readouterr().out)
    assert before + 5400 <= created["ends_at_s"] <= int(time.time()) + 5400
    assert created["ends_at"].endswith("Z") and created["ends_at"].startswith("20")
    assert silence_command(["create", "--matcher", "ticker:BA", "--duration", "soon"], settings) == 2
    assert "not a duration" in capsys.readouterr().err


def test_redis_down_is_one_line_error_naming_the_setting(capsys: pytest.CaptureFixture[str]) -> None:
    from tests.servers import free_port

    settings = Settings(windows={"store_url": f"redis://127.0.0.1:{free_port()}/0"})
    assert silence_command(["list"], settings) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("error: cannot reach the silence store") and "windows.store_url" in err


def test_a_duration_out_of_range_names_the_duration_given_not_a_flag_that_was_not(
    redis_url: str, capsys: pytest.CaptureFixture[str],
) -> None:
    assert silence_command(["create", "--matcher", "ticker:TSLA", "--duration", "400d"], redis_settings(redis_url)) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the duration (34560000 s) must be") and "--duration-s" not in err


def test_a_memory_store_is_refused_with_one_error_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert silence_command(["list"], Settings()) == 2
    assert capsys.readouterr().err.startswith("error: silences need a shared store")


def test_an_empty_listing_says_so_on_stderr_and_keeps_stdout_for_json(
        redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    settings = redis_settings(redis_url)
    assert silence_command(["list"], settings) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and "no live silences" in captured.err
