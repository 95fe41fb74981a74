"""The daemon against a Redis that only speaks TLS (``rediss://``): windows, alert state and the
outbox all go through it, and a missing CA is one clear start-up error."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.config import load_settings
from monitor.engine.app import MonitorApp
from monitor.windows.redis import RedisWindowStore
from tests.integration.streams import BUCKET_S, stream
from tests.kafka_broker import unique_name
from tests.servers import redis_tls_server

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    with redis_tls_server(tmp_path_factory.mktemp("redis-tls")) as server:
        yield server


async def test_a_replay_over_tls_redis_counts_every_message_and_pages_once(
    tmp_path: Path, tls_redis: tuple[str, Path]
) -> None:
    url, ca = tls_redis
    store_url = f"{url}?ssl_ca_certs={ca}"
    messages = stream(buckets=40, surge=range(30, 33))
    history = tmp_path / "history.jsonl"
    history.write_text("".join(json.dumps(m) + "\n" for m in messages))
    alerts_path, prefix = tmp_path / "alerts.jsonl", unique_name("tls")
    app = MonitorApp(load_settings(
        source={"kind": "replay", "replay_paths": [str(history)]},
        classifier={"kind": "lexicon"},
        windows={"store_url": store_url, "key_prefix": prefix, "bucket_s": BUCKET_S, "allowed_lateness_s": 60},
        alerts={"sinks": [f"file://{alerts_path}"]},
        http={"enabled": False},
    ))
    stats = await app.run()
    assert (stats.read, stats.applied, stats.late) == (len(messages), len(messages), 0)
    firing = [json.loads(line) for line in alerts_path.read_text().splitlines()]
    assert [n["status"] for n in firing].count("firing") >= 1
    assert any(a["window_key"] == "ticker:ACME" for n in firing for a in n["alerts"])
    async with RedisWindowStore(store_url, key_prefix=prefix, bucket_s=BUCKET_S, retention_s=10**7,
                                top_negative_per_bucket=5) as store:
        assert sum(b.volume for b in await store.buckets("all", 0, 2**40)) == len(messages)


def test_tls_redis_without_the_ca_is_one_clear_error_naming_the_setting(
    tls_redis: tuple[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MONITOR_WINDOWS__STORE_URL", tls_redis[0])
    monkeypatch.setenv("MONITOR_CLASSIFIER__KIND", "lexicon")
    monkeypatch.setenv("MONITOR_HTTP__ENABLED", "false")
    assert main(["run"]) == 1
    err = capsys.readouterr().err
    assert "error: windows.store_url" in err and "CERTIFICATE_VERIFY_FAILED" in err and "ssl_ca_certs=" in err
    assert "Traceback" not in err
