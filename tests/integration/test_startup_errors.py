"""A daemon that cannot reach its backends says which setting to fix, exits 1, and leaks nothing."""

from __future__ import annotations

import pytest

from monitor.cli import main
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
    assert "error: cannot load classifier.model_path='/nonexistent/finbert-two-head'" in err
    assert "Traceback" not in err
