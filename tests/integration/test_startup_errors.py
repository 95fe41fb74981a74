"""A daemon that cannot reach its backends says which setting to fix, exits 1, and leaks nothing."""

from __future__ import annotations

import asyncio

import pytest

from monitor.cli import main
from tests.kafka_broker import create_topics, unique_name
from tests.servers import free_port

pytestmark = pytest.mark.integration


def test_unreachable_redis_is_one_clear_error_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MONITOR_WINDOWS__STORE_URL", f"redis://:hunter2@127.0.0.1:{free_port()}/0")
    monkeypatch.setenv("MONITOR_CLASSIFIER__KIND", "lexicon")
    assert main(["run"]) == 1
    err = capsys.readouterr().err
    assert "error: windows.store_url" in err and "MONITOR_WINDOWS__STORE_URL" in err
    assert "hunter2" not in err and "Traceback" not in err


def test_unreachable_kafka_is_one_clear_error_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MONITOR_SOURCE__KIND", "kafka")
    monkeypatch.setenv("MONITOR_KAFKA__BOOTSTRAP_SERVERS", f"127.0.0.1:{free_port()}")
    monkeypatch.setenv("MONITOR_CLASSIFIER__KIND", "lexicon")
    monkeypatch.setenv("MONITOR_HTTP__ENABLED", "false")
    assert main(["run"]) == 1
    err = capsys.readouterr().err
    assert "error: kafka.bootstrap_servers" in err and "MONITOR_KAFKA__BOOTSTRAP_SERVERS" in err
    assert "Unclosed AIOKafka" not in err


def test_missing_replay_file_is_one_clear_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MONITOR_SOURCE__REPLAY_PATHS", '["/nonexistent/history.jsonl"]')
    monkeypatch.setenv("MONITOR_CLASSIFIER__KIND", "lexicon")
    assert main(["run"]) == 1
    assert "source.replay_paths" in capsys.readouterr().err


def test_a_model_path_that_cannot_load_is_one_clear_error_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MONITOR_CLASSIFIER__MODEL_PATH", "/nonexistent/finbert-two-head")
    monkeypatch.setenv("MONITOR_HTTP__ENABLED", "false")
    assert main(["run"]) == 1
    err = capsys.readouterr().err
    assert "error: directory not found: /nonexistent/finbert-two-head (classifier.model_path)" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("missing", ["news", "dead_letter"])
def test_a_missing_topic_is_one_clear_error_naming_the_topic_and_its_setting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], kafka_bootstrap: str, missing: str,
) -> None:
    """Before: a missing source topic waited request_timeout_ms, then said the broker could not be reached
    (the wrong setting); a missing dead-letter topic was found only at the first invalid record, which then
    blocked consumption for good."""
    topics = {"news": unique_name("news"), "comments": unique_name("comments"), "dead_letter": unique_name("dlq")}
    asyncio.run(create_topics(kafka_bootstrap, {t: 1 for name, t in topics.items() if name != missing}))
    for name, topic in topics.items():
        monkeypatch.setenv(f"MONITOR_KAFKA__{name.upper()}_TOPIC", topic)
    monkeypatch.setenv("MONITOR_SOURCE__KIND", "kafka")
    monkeypatch.setenv("MONITOR_KAFKA__BOOTSTRAP_SERVERS", kafka_bootstrap)
    monkeypatch.setenv("MONITOR_KAFKA__GROUP_ID", unique_name("grp"))
    monkeypatch.setenv("MONITOR_KAFKA__REQUEST_TIMEOUT_MS", "5000")
    monkeypatch.setenv("MONITOR_CLASSIFIER__KIND", "lexicon")
    monkeypatch.setenv("MONITOR_HTTP__ENABLED", "false")
    monkeypatch.setenv("MONITOR_WINDOWS__STORE_URL", "memory://")
    monkeypatch.setenv("MONITOR_ALERTS__SINKS", '["log://"]')
    assert main(["run"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    assert f"kafka.{missing}_topic" in err[0] and topics[missing] in err[0] and "does not exist" in err[0], err
