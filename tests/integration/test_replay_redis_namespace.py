"""A replay into Redis leaves nothing behind unless it was given a namespace to keep."""

from __future__ import annotations

import asyncio
from itertools import islice
from pathlib import Path

import pytest

from monitor.bundled import DEMO_STREAM
from monitor.cli import main
from monitor.redis_connect import connect


async def _replay_keys(url: str) -> set[str]:
    client = await connect(url, decode_responses=True)
    try:
        return {key async for key in client.scan_iter(match="{replay*")}
    finally:
        await client.aclose()


def _input(tmp_path: Path) -> Path:
    path = tmp_path / "head.jsonl"
    with DEMO_STREAM.open() as fh:
        path.write_text("".join(islice(fh, 600)))
    return path


def test_a_replay_into_redis_deletes_its_generated_namespace_and_keeps_a_named_one(
    tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Found by review: its alert states, outbox sets and epoch marker have no TTL, and every replay left 9 keys in
    a namespace nobody could name again."""
    monkeypatch.setenv("MONITOR_CLASSIFIER__KIND", "lexicon")
    before = asyncio.run(_replay_keys(redis_url))
    args = ["replay", "--input", str(_input(tmp_path)), "--store", redis_url, "--no-progress",
            "--report", str(tmp_path / "alerts.jsonl")]
    assert main(args) == 0
    assert asyncio.run(_replay_keys(redis_url)) == before
    assert main([*args, "--namespace", "replay-kept"]) == 0
    kept = asyncio.run(_replay_keys(redis_url)) - before
    assert "{replay-kept}:epoch" in kept and any(k.startswith("{replay-kept:alerts}:") for k in kept)


def test_a_replay_whose_production_sinks_left_notifications_undelivered_keeps_its_namespace(
    tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    """Found by the regression review: the outbox holding them was deleted while the summary said they waited in it."""
    monkeypatch.setenv("MONITOR_CLASSIFIER__KIND", "lexicon")
    (tmp_path / "adir").mkdir()  # a file sink on a directory fails every send
    monkeypatch.setenv("MONITOR_ALERTS__SINKS", f'["file://{tmp_path / "adir"}"]')
    before = asyncio.run(_replay_keys(redis_url))
    main(["replay", "--input", str(DEMO_STREAM), "--store", redis_url, "--no-progress", "--production-sinks",
          "--report", str(tmp_path / "alerts.jsonl")])
    err = capsys.readouterr().err
    assert "wait in the Redis outbox" in err and "namespace replay:" in err and "is kept" in err
    kept = asyncio.run(_replay_keys(redis_url)) - before
    assert any(":alerts}:outbox:" in key for key in kept)
