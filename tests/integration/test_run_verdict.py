"""A run whose every alert delivery was abandoned does not exit 0 as if all went well."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from monitor.cli import main
from tests.servers import free_port


def test_demo_run_with_only_a_dead_sink_exits_1_saying_every_delivery_was_abandoned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    for key, value in {"CLASSIFIER__KIND": "lexicon", "ALERTS__WEBHOOK_SECRET": "k",
                       "ALERTS__SINKS": f'["webhook+http://127.0.0.1:{free_port()}/hook"]',
                       "ALERTS__DELIVERY_MAX_ATTEMPTS": "1", "ALERTS__WEBHOOK_MAX_ATTEMPTS": "1",
                       "ALERTS__SINK_TIMEOUT_S": "1"}.items():
        monkeypatch.setenv(f"MONITOR_{key}", value)
    assert main(["run"]) == 1
    err = capsys.readouterr().err
    assert "[FIRING] negative sentiment spike" in err  # the alerts were found ...
    assert "error: every alert delivery was abandoned" in err  # ... and the run says none got out


def test_demo_run_whose_only_sink_fails_every_send_exits_1_saying_the_notifications_end_with_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    """Found by review: a file sink pointing at a directory failed every send (retried, never abandoned within
    the run), the in-memory outbox was dropped at exit, and the run exited 0."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "adir").mkdir()
    monkeypatch.setenv("MONITOR_CLASSIFIER__KIND", "lexicon")
    monkeypatch.setenv("MONITOR_ALERTS__SINKS", f'["file://{tmp_path / "adir"}"]')
    assert main(["run"]) == 1
    err = capsys.readouterr().err
    assert "[FIRING] negative sentiment spike" in err
    assert "alert notifications never reached sink file://" in err and "end with this run" in err


@pytest.mark.parametrize(("stop", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 0)])
def test_ctrl_c_on_a_run_exits_130_and_a_service_managers_stop_exits_0(
    tmp_path: Path, stop: signal.Signals, code: int,
) -> None:
    """Ctrl-C exited 0 like a SIGTERM stop; a shell or script reads 0 as "ran to the end" (a known gap until now)."""
    env = {**os.environ, "MONITOR_CLASSIFIER__KIND": "lexicon", "MONITOR_SOURCE__REPLAY_SPEED": "1",
           "MONITOR_LOG__FORMAT": "json", "MONITOR_LOG__LEVEL": "INFO"}
    proc = subprocess.Popen([sys.executable, "-m", "monitor.cli", "run"], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    deadline = time.monotonic() + 60
    for line in proc.stderr:  # the engine runs: its signal handling is in place
        if "monitor_started" in line or time.monotonic() > deadline:
            break
    proc.send_signal(stop)
    try:
        assert proc.wait(timeout=60) == code
    finally:
        proc.kill()
