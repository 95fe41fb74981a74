"""``monitor.cli.main`` turns any failure into one line naming what failed and which setting."""

from __future__ import annotations

import argparse

import pytest
import redis.exceptions
import structlog
from aiokafka.errors import KafkaConnectionError

from monitor import cli
from monitor.config import ConfigError
from monitor.fatal import fatal_line, root_cause


def _failing_run(monkeypatch: pytest.MonkeyPatch, exc: Exception) -> None:
    def run(args: argparse.Namespace) -> int:
        raise exc

    monkeypatch.setattr(cli, "cmd_run", run)


def test_a_redis_error_inside_the_pipelines_task_group_is_one_line_naming_the_store_url(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    error = redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:6379.\nConnection refused.")
    _failing_run(monkeypatch, ExceptionGroup("unhandled errors in a TaskGroup", [error]))
    assert cli.main(["run"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("error: monitor run failed: windows.store_url: ConnectionError: Error 111")
    assert "MONITOR_WINDOWS__STORE_URL" in err


def test_a_failure_before_the_settings_load_prints_one_line_and_no_debug_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    structlog.reset_defaults()  # as in a fresh process: structlog unconfigured printed the debug traceback
    _failing_run(monkeypatch, ValueError("Invalid IPv6 URL, token XXSECRETXX in a local"))
    assert cli.main(["run"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("error: monitor run failed: ValueError: Invalid IPv6 URL")


def test_the_fatal_traceback_is_logged_only_when_the_log_level_is_debug(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MONITOR_LOG__LEVEL", "DEBUG")
    _failing_run(monkeypatch, ValueError("boom"))
    assert cli.main(["run"]) == 1
    err = capsys.readouterr().err
    assert "fatal_error_traceback" in err and "Traceback" in err


def test_a_config_error_raised_late_still_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _failing_run(monkeypatch, ExceptionGroup("g", [ConfigError("alerts.cluster_mode needs redis -- set it")]))
    assert cli.main(["run"]) == 2
    assert capsys.readouterr().err == "error: alerts.cluster_mode needs redis -- set it\n"


def test_an_unknown_error_says_what_failed_and_how_to_see_the_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _failing_run(monkeypatch, ZeroDivisionError("division by zero"))
    assert cli.main(["run"]) == 1
    assert capsys.readouterr().err == (
        "error: monitor run failed: ZeroDivisionError: division by zero -- set MONITOR_LOG__LEVEL=DEBUG for the "
        "traceback\n")


def test_kafka_errors_name_the_bootstrap_servers_and_nested_groups_are_unwrapped() -> None:
    nested = ExceptionGroup("outer", [ExceptionGroup("inner", [KafkaConnectionError("broker gone")])])
    assert isinstance(root_cause(nested), KafkaConnectionError)
    assert "kafka.bootstrap_servers" in fatal_line(nested, "run")


def test_file_errors_name_the_file() -> None:
    line = fatal_line(PermissionError(13, "Permission denied", "/var/lib/finsent/x"), "replay")
    assert line.startswith("monitor replay failed: Permission denied (/var/lib/finsent/x)")


def test_a_command_redis_refuses_is_not_called_a_reachability_problem() -> None:
    line = fatal_line(redis.exceptions.NoPermissionError("NOPERM this user has no permissions to run 'evalsha'"),
                      "run")
    assert line.startswith("monitor run failed: windows.store_url: Redis refused a command (NoPermissionError: NOPERM")
    assert "ACL user's permissions" in line and "up and reachable" not in line


def test_a_failed_path_names_the_path_and_points_at_flags_as_well_as_the_configuration() -> None:
    """Found by review: ``monitor eval --report-dir FILE`` was told only to check the configuration's paths."""
    line = fatal_line(FileExistsError(17, "File exists", "/tmp/afile"), "eval")
    assert line.startswith("monitor eval failed: File exists (/tmp/afile) -- check that path: the command's flags")


def test_an_error_that_starts_with_its_type_is_named_once() -> None:
    from aiokafka.errors import KafkaConnectionError

    from monitor.fatal import named

    # found by a walkthrough: "KafkaConnectionError: KafkaConnectionError: Unable to bootstrap"
    assert named(KafkaConnectionError("Unable to bootstrap from b:9092")) == (
        "KafkaConnectionError: Unable to bootstrap from b:9092")
    assert (named(ValueError("bad")), named(TimeoutError())) == ("ValueError: bad", "TimeoutError")
