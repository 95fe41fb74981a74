from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import pytest

from monitor.cli import DELEGATED, _split_delegated, main


@pytest.mark.parametrize("name", sorted(DELEGATED))
def test_every_delegated_command_resolves_to_a_function_taking_the_declared_arguments(name: str) -> None:
    target, _, needs_settings = DELEGATED[name]
    module_name, func_name = target.split(":")
    func = getattr(importlib.import_module(module_name), func_name)
    assert len(inspect.signature(func).parameters) == (2 if needs_settings else 1)


def test_delegated_command_options_are_passed_through_untouched() -> None:
    head, rest = _split_delegated(["--config", "x.toml", "replay", "--input", "a.jsonl", "--speed", "10"])
    assert head == ["--config", "x.toml", "replay"]
    assert rest == ["--input", "a.jsonl", "--speed", "10"]


def test_global_options_after_a_delegated_command_are_moved_in_front() -> None:
    head, rest = _split_delegated(["backtest", "--config", "x.toml", "--sweep", "z_threshold=3", "--log-format=json"])
    assert head == ["--config", "x.toml", "--log-format=json", "backtest"]
    assert rest == ["--sweep", "z_threshold=3"]


def test_config_option_is_accepted_after_the_run_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[windows]\nbucket_s = 77\n")
    assert main(["config", "--config", str(cfg)]) == 0
    assert '"bucket_s": 77' in capsys.readouterr().out


def test_config_error_exits_2_naming_the_key_and_the_variable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[windows]\nbucket_s = 'five minutes'\n[source]\nkind = 'carrier-pigeon'\n")
    assert main(["--config", str(cfg), "config"]) == 2
    err = capsys.readouterr().err
    assert "windows.bucket_s" in err and "MONITOR_WINDOWS__BUCKET_S" in err
    assert "source.kind" in err and "use one of the allowed values" in err


def test_unknown_config_key_is_rejected_with_a_hint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "typo.toml"
    cfg.write_text("[windows]\nbukcet_s = 60\n")
    assert main(["--config", str(cfg), "config"]) == 2
    assert "windows.bukcet_s" in capsys.readouterr().err


def test_environment_overrides_the_file(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MONITOR_WINDOWS__BUCKET_S", "42")
    monkeypatch.setenv("MONITOR_ALERTS__WEBHOOK_SECRET", "s3cret")
    monkeypatch.setenv("MONITOR_HTTP__API_TOKEN", "t0ken-xyz-7c1e93ab")
    monkeypatch.setenv("MONITOR_WINDOWS__STORE_URL", "redis://:hunter2@redis:6379/0")
    assert main(["config"]) == 0
    out = capsys.readouterr().out
    assert '"bucket_s": 42' in out
    assert "s3cret" not in out and "hunter2" not in out and "t0ken-xyz-7c1e93ab" not in out
    assert "redis://:***@redis:6379/0" in out


@pytest.mark.parametrize(
    ("toml", "variable"),
    [
        ("[alerts]\nwebhook_secret = 'k'\n", "MONITOR_ALERTS__WEBHOOK_SECRET"),
        ("[kafka]\nsasl_password = 'pw'\n", "MONITOR_KAFKA__SASL_PASSWORD"),
        ("[http]\napi_token = 't'\n", "MONITOR_HTTP__API_TOKEN"),
        ("[windows]\nstore_url = 'redis://:pw@host:6379/0'\n", "MONITOR_WINDOWS__STORE_URL"),
    ],
)
def test_secrets_in_a_config_file_are_refused_with_the_variable_to_use(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], toml: str, variable: str
) -> None:
    cfg = tmp_path / "leaky.toml"
    cfg.write_text(toml)
    assert main(["--config", str(cfg), "config"]) == 2
    assert variable in capsys.readouterr().err


def test_end_of_run_summary_lists_each_notification_with_its_event_time() -> None:
    from dataclasses import dataclass

    from monitor.cli import notification_summary

    @dataclass
    class Note:
        event_time_s: int
        title: str

    lines = notification_summary([Note(1_793_722_200, "[FIRING] negative sentiment spike: ticker:BA"), object()])
    assert lines == ["  2026-11-03T16:10:00Z  [FIRING] negative sentiment spike: ticker:BA"]


def test_config_shows_the_classifier_precision_it_resolves_to(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    assert main(["config"]) == 0
    resolved = json.loads(capsys.readouterr().out)["resolved"]
    assert resolved["classifier_precision"].split()[0] in {"float32", "amx_bf16:", "avx512_bf16:"}


def test_config_shows_where_the_model_runs_and_why(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import json
    import os

    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1})
    assert main(["config"]) == 0
    assert json.loads(capsys.readouterr().out)["resolved"]["classifier_worker"] == (
        "process (auto: kind 'transformer', 2 usable cores)"
    )
    monkeypatch.setenv("MONITOR_CLASSIFIER__WORKER", "thread")
    assert main(["config"]) == 0
    resolved = json.loads(capsys.readouterr().out)["resolved"]
    assert resolved["classifier_worker"] == "thread (classifier.worker = 'thread')"


@pytest.mark.parametrize(("sinks", "warned"), [([], True), (["log://"], False)])
def test_run_with_no_alert_sinks_logs_alerts_go_nowhere_at_start(
    monkeypatch: pytest.MonkeyPatch, sinks: list[str], warned: bool,
) -> None:
    """Found by review: ``sinks = []`` ran silently and alerted nobody. A warning, not an error."""
    import asyncio

    from structlog.testing import capture_logs

    from monitor import cli
    from monitor.config import AlertSettings, Settings
    from monitor.engine import app

    class Started(Exception):
        pass

    def not_started(settings: Settings) -> None:
        raise Started

    monkeypatch.setattr(app, "MonitorApp", not_started)
    with capture_logs() as logs, pytest.raises(Started):
        asyncio.run(cli._serve(Settings(alerts=AlertSettings(sinks=sinks))))
    found = [e for e in logs if e["event"] == "alerts_go_nowhere"]
    assert bool(found) is warned
    if warned:
        assert found[0]["log_level"] == "warning" and found[0]["setting"] == "alerts.sinks"
        assert "MONITOR_ALERTS__SINKS" in found[0]["detail"]


def test_replay_with_no_configured_sinks_does_not_warn_that_alerts_go_nowhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    """A replay (and a backtest) sets its own sinks: an empty alerts.sinks is the isolation, not a mistake."""
    monkeypatch.setenv("MONITOR_CLASSIFIER__KIND", "lexicon")
    monkeypatch.setenv("MONITOR_ALERTS__SINKS", "[]")
    stream = tmp_path / "s.jsonl"
    stream.write_text('{"id": "1", "text": "Boeing shares fall", "published_at": "2026-11-03T14:00:00Z", '
                      '"source": "news"}\n')
    assert main(["replay", "--input", str(stream), "--report", str(tmp_path / "r.jsonl"), "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "replayed 1 messages" in captured.out
    assert "alerts_go_nowhere" not in captured.out + captured.err


def test_config_shows_the_log_format_given_on_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    """Found by review: ``--log-format json`` logged JSON while ``monitor config`` said ``console``."""
    import json

    assert main(["--log-format", "json", "config"]) == 0
    assert json.loads(capsys.readouterr().out)["log"]["format"] == "json"


def test_a_delegated_commands_help_names_the_global_options(capsys: pytest.CaptureFixture[str]) -> None:
    # found by a walkthrough: `monitor check --help` said nothing of --config, which the README uses with it
    from monitor.cli import main

    with pytest.raises(SystemExit) as done:
        main(["check", "--help"])
    assert done.value.code == 0 and "--config FILE" in capsys.readouterr().out


def test_a_replay_whose_every_message_was_already_counted_says_so_and_how_to_count_them() -> None:
    """Found by a walkthrough: a second `make run` into Redis exited 0 with "0 new, 4230 duplicates" and nothing
    saying that the store already held them."""
    from monitor.cli import where_things_went
    from monitor.config import load_settings
    from monitor.engine.pipeline import PipelineStats

    settings = load_settings(windows={"store_url": "redis://:secret@127.0.0.1:6379/0"})
    assert settings.source.kind == "replay"
    lines = where_things_went(settings, PipelineStats(read=40, duplicates=40))
    warning = next(line for line in lines if line.startswith("warning: "))
    assert "already counted" in warning and "windows.key_prefix" in warning and "secret" not in warning
    assert not any(line.startswith("warning: ") for line in where_things_went(
        settings, PipelineStats(read=40, applied=1, duplicates=39)))


def test_the_daemon_says_its_files_are_appended_and_a_replay_does_not_claim_it() -> None:
    """Found by a walkthrough: a replay's summary said 'file sinks append across runs' although a replay starts
    them afresh, and the daemon's 'each is kept with its reason in var/dead-letter.jsonl' sat over 11 rows from
    four runs."""
    from monitor.cli import where_things_went
    from monitor.config import load_settings
    from monitor.engine.pipeline import PipelineStats

    settings = load_settings()
    stats = PipelineStats(read=40, applied=37, dead_letters=3, notifications=2)
    daemon = where_things_went(settings, stats)
    assert any(line.endswith("dead-letter.jsonl (appended across runs)") for line in daemon)
    assert any(line.endswith("(file sinks append across runs)") for line in daemon)
    replay_settings = load_settings(alerts={"sinks": ["file://reports/replay-alerts.jsonl"]})
    replay = where_things_went(replay_settings, stats, dead_letters_in="reports/replay.dead-letter.jsonl",
                               report=Path("reports/replay-alerts.jsonl"))
    assert not any("across runs" in line for line in replay)


def test_a_replay_marks_the_daemons_file_sinks_it_borrows_as_appended_not_its_report() -> None:
    """Found by the regression review: `monitor replay --production-sinks` lost the note while the desk's file sink
    grew 10 -> 20 lines over two runs (only the replay's own report starts afresh)."""
    from monitor.cli import where_things_went
    from monitor.config import load_settings
    from monitor.engine.pipeline import PipelineStats

    report = Path("/tmp/r/replay-alerts.jsonl")
    settings = load_settings(alerts={"sinks": [f"file://{report}", "file:///tmp/r/desk.jsonl", "log://"]})
    lines = where_things_went(settings, PipelineStats(read=4, applied=4, notifications=2),
                              dead_letters_in="/tmp/r/replay-alerts.dead-letter.jsonl", report=report)
    sinks = next(line for line in lines if line.startswith("alerts went to: "))
    assert sinks == ("alerts went to: file:///tmp/r/replay-alerts.jsonl, file:///tmp/r/desk.jsonl (appended across "
                     "runs), log://")
