"""Fatal errors of the real ``monitor`` process end with ONE clear line, a non-zero exit and no traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.config import REPO_ROOT
from tests.servers import free_cluster_port, free_port, redis_server

pytestmark = pytest.mark.integration


def _monitor(env: dict[str, str], *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "MONITOR_HTTP__ENABLED": "false",
            "MONITOR_CLASSIFIER__KIND": "lexicon", **env}
    return subprocess.run([sys.executable, "-m", "monitor.cli", *args], env=full, cwd=cwd, capture_output=True,
                          text=True, timeout=180, check=False)


def _the_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    assert proc.stderr.rstrip().splitlines()[-1] == errors[0], "the error is the last word"
    return errors[0]


def test_unreachable_redis_at_start_is_one_line_naming_the_setting_without_the_password(tmp_path: Path) -> None:
    proc = _monitor({"MONITOR_WINDOWS__STORE_URL": f"redis://:hunter2@127.0.0.1:{free_port()}/0"}, "run",
                    cwd=tmp_path)
    line = _the_error_line(proc)
    assert proc.returncode == 1
    assert line.startswith("error: windows.store_url redis://:***@127.0.0.1:") and "MONITOR_WINDOWS__STORE_URL" in line
    assert "hunter2" not in proc.stderr


def test_an_existing_model_directory_that_cannot_load_is_one_line_naming_the_setting(tmp_path: Path) -> None:
    model = tmp_path / "broken-model"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "bert", "hidden_size": ')
    proc = _monitor({"MONITOR_CLASSIFIER__KIND": "transformer", "MONITOR_CLASSIFIER__MODEL_PATH": str(model)},
                    "run", cwd=tmp_path)
    line = _the_error_line(proc)
    assert proc.returncode == 1 and line.startswith(f"error: {model}") and "(classifier.model_path)" in line


def test_an_unwritable_dead_letter_path_is_one_line_naming_the_setting(tmp_path: Path) -> None:
    proc = _monitor({"MONITOR_SOURCE__DEAD_LETTER_PATH": "/sys/finsent/dead-letter.jsonl"}, "run", cwd=tmp_path)
    line = _the_error_line(proc)
    assert proc.returncode == 2
    assert line.startswith("error: source.dead_letter_path /sys/finsent/dead-letter.jsonl: cannot create it")
    assert "MONITOR_SOURCE__DEAD_LETTER_PATH" in line


def test_an_http_port_in_use_is_one_line_naming_the_setting(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = _monitor({"MONITOR_HTTP__ENABLED": "true", "MONITOR_HTTP__PORT": str(port)}, "run", cwd=tmp_path)
    line = _the_error_line(proc)
    assert proc.returncode == 1
    assert line == (f"error: http 127.0.0.1:{port} is in use by another process -- set http.port / http.host "
                    "(MONITOR_HTTP__PORT, MONITOR_HTTP__HOST), or http.enabled = false to run without the HTTP side")


def test_a_redis_cluster_that_serves_no_slot_is_one_line_naming_the_setting_and_the_check(tmp_path: Path) -> None:
    cluster = ("--cluster-enabled", "yes", "--cluster-config-file", str(tmp_path / "nodes.conf"))
    with redis_server(tmp_path, *cluster, port=free_cluster_port()) as url:  # a node no slot was given to
        proc = _monitor({"MONITOR_WINDOWS__STORE_URL": url}, "run", cwd=tmp_path)
        check = _monitor({"MONITOR_WINDOWS__STORE_URL": url}, "check", cwd=tmp_path)
    line = _the_error_line(proc)
    assert proc.returncode == 1
    assert line.startswith(f"error: windows.store_url {url}: cannot use this Redis Cluster (")
    assert line.endswith("every slot needs a live master: check it with `redis-cli --cluster check HOST:PORT`")
    assert check.returncode == 1
    fails = [row for row in check.stdout.splitlines() if row.startswith("FAIL  redis")]
    assert fails and "does not serve every slot" in fails[0], check.stdout


def test_monitor_config_prints_no_secret_from_any_url_or_setting(tmp_path: Path) -> None:
    secrets = {
        "MONITOR_ALERTS__SINKS": '["slack+https://hooks.slack.com/services/T0001/B0002/xoxbQ2w8Er4Ty6Ui9OpAsDf3", '
                                 '"webhook+https://hooks.example.com/in?token=tok3n-abc", '
                                 '"smtp://alerts:mailpw9@mail.example.com:587?from=a@x.com&to=b@x.com"]',
        "MONITOR_ALERTS__WEBHOOK_SECRET": "hmac-k3y", "MONITOR_ALERTS__SMTP_PASSWORD": "smtp-pw7",
        "MONITOR_KAFKA__SASL_PASSWORD": "sasl-pw5", "MONITOR_WINDOWS__STORE_URL": "redis://:redis-pw3@r:6379/0",
    }
    proc = _monitor(secrets, "config", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    for leak in ("xoxbQ2w8Er4Ty6Ui9OpAsDf3", "tok3n-abc", "mailpw9", "hmac-k3y", "smtp-pw7", "sasl-pw5", "redis-pw3"):
        assert leak not in proc.stdout
    assert '"webhook_secret": "<set>"' in proc.stdout and '"sasl_password": "<set>"' in proc.stdout
    assert "hooks.slack.com/services/T0001/B0002/***" in proc.stdout and "redis://:***@r:6379/0" in proc.stdout
