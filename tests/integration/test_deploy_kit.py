"""The ops kit in deploy/: checked with the real tools where this machine has them (promtool, amtool,
systemd-analyze; FAIL if missing), and statically where it does not (no Docker engine here: the
compose file and the Dockerfile are checked for structure and for files that exist, not run)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

import monitor.metrics  # noqa: F401  (registers every metric)
from monitor.config import KafkaSettings
from tests.servers import ALERTMANAGER_HINT, free_port, require_binary, serving

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
PROMETHEUS_HINT = "install it: apt-get install -y prometheus (make test / .ci/run does)"
METRIC = re.compile(r"\bfinsent_[a-z_]+\b")


def run(*argv: str | Path, cwd: Path = DEPLOY) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in argv], cwd=cwd, capture_output=True, text=True, timeout=60)


def exported_names() -> set[str]:
    """Every series name this process's metrics can export (labelled ones have no samples until used)."""
    suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"),
                "gauge": ("",), "summary": ("_sum", "_count", "")}
    names: set[str] = set()
    for family in REGISTRY.collect():
        if family.name.startswith("finsent_"):
            names.update(family.name + s for s in suffixes.get(family.type, ("",)))
    return names


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DEPLOY / "grafana" / "dashboards" / "finsent.json").read_text())
    return data


def test_alerting_rules_pass_promtool_check() -> None:
    promtool = require_binary("promtool", PROMETHEUS_HINT)
    result = run(promtool, "check", "rules", "prometheus-rules.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 21 rules found" in result.stdout


def test_alerting_rules_fire_as_their_unit_tests_expect() -> None:
    promtool = require_binary("promtool", PROMETHEUS_HINT)
    result = run(promtool, "test", "rules", "prometheus-rules.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alerting_rule_is_shown_to_fire_by_the_rule_tests() -> None:
    """A rule only ever asserted silent may never fire (found by review: five were, one of them could not fire for a
    loss noticed at a start)."""
    rules = {r["alert"] for g in yaml.safe_load((DEPLOY / "prometheus-rules.yml").read_text())["groups"]
             for r in g["rules"]}
    fired = {case["alertname"] for test in yaml.safe_load((DEPLOY / "prometheus-rules.test.yml").read_text())["tests"]
             for case in test.get("alert_rule_test", []) if case.get("exp_alerts")}
    assert sorted(rules - fired) == []


def test_the_runbook_names_the_shipped_systemd_unit() -> None:
    units = {p.stem for p in DEPLOY.glob("*.service")}
    named = set(re.findall(r"systemctl \w+ ([\w-]+)", (DEPLOY / "RUNBOOK.md").read_text()))
    assert named and named <= units, f"RUNBOOK names {sorted(named - units)}; the kit ships {sorted(units)}"


def test_every_rule_links_its_runbook_section_and_every_section_is_a_rule_or_the_sentiment_alert() -> None:
    rules = [r for g in yaml.safe_load((DEPLOY / "prometheus-rules.yml").read_text())["groups"] for r in g["rules"]]
    sections = re.findall(r"^## (\w+)$", (DEPLOY / "RUNBOOK.md").read_text(), flags=re.MULTILINE)
    for rule in rules:
        assert rule["annotations"]["runbook_url"] == f"deploy/RUNBOOK.md#{rule['alert'].lower()}", rule["alert"]
    assert sorted(sections) == sorted([r["alert"] for r in rules] + ["FinsentNegativeSentiment"])


def test_prometheus_config_is_valid_with_the_rules_mounted(tmp_path: Path) -> None:
    promtool = require_binary("promtool", PROMETHEUS_HINT)
    config = (DEPLOY / "prometheus.yml").read_text()
    assert "/etc/prometheus/finsent-rules.yml" in config  # where compose.yml mounts the rules
    local = tmp_path / "prometheus.yml"
    local.write_text(config.replace("/etc/prometheus/finsent-rules.yml", str(DEPLOY / "prometheus-rules.yml")))
    result = run(promtool, "check", "config", local)
    assert result.returncode == 0, result.stdout + result.stderr


def test_example_alertmanager_config_passes_amtool() -> None:
    amtool = require_binary("amtool", "install it: apt-get install -y prometheus-alertmanager")
    result = run(amtool, "check-config", "alertmanager.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_rules_and_dashboard_only_reference_metrics_the_daemon_exports() -> None:
    exported = exported_names()
    rules = yaml.safe_load((DEPLOY / "prometheus-rules.yml").read_text())
    rule_exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    panel_exprs = [t["expr"] for p in dashboard()["panels"] for t in p["targets"]]
    referenced = {m for e in rule_exprs + panel_exprs for m in METRIC.findall(e)}
    assert referenced and referenced <= exported, sorted(referenced - exported)
    wanted = {"finsent_consumer_lag_records", "finsent_outbox_pending", "finsent_outbox_oldest_age_seconds",
              "finsent_alerts_firing", "finsent_build_info", "finsent_topic_negative_share", "finsent_ready"}
    assert wanted <= {m for e in panel_exprs for m in METRIC.findall(e)}


def test_the_process_metrics_the_rules_read_are_exported() -> None:
    """FinsentCrashLooping reads prometheus_client's process collector (served by /metrics with the rest)."""
    rules = yaml.safe_load((DEPLOY / "prometheus-rules.yml").read_text())
    exprs = " ".join(r["expr"] for g in rules["groups"] for r in g["rules"])
    assert "process_start_time_seconds" in exprs
    assert (REGISTRY.get_sample_value("process_start_time_seconds") or 0) > 0


def _post_alerts(base: str, alerts: list[dict[str, dict[str, str]]]) -> None:
    request = urllib.request.Request(f"{base}/api/v2/alerts", data=json.dumps(alerts).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200


def _sentiment_state(base: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{base}/api/v2/alerts?filter=alertname%3D%22FinsentNegativeSentiment%22",
                                timeout=5) as response:
        [alert] = json.loads(response.read())
    status: dict[str, Any] = alert["status"]
    return status


def test_example_alertmanager_config_inhibits_sentiment_pages_only_while_no_instance_is_ready(
        tmp_path: Path) -> None:
    """Found by review: the inhibit rule's source was FinsentNotReady, per instance and matched on nothing, so
    in cluster mode one follower that was not ready muted every sentiment page of the healthy leader."""
    binary = shutil.which("prometheus-alertmanager") or require_binary("alertmanager", ALERTMANAGER_HINT)
    port = free_port()
    args = [binary, f"--config.file={DEPLOY / 'alertmanager.yml'}", f"--storage.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=", "--log.level=error"]
    base = f"http://127.0.0.1:{port}"
    health = {"service": "finsent", "job": "finsent"}
    with serving(args, port, timeout_s=15.0):
        _post_alerts(base, [
            {"labels": {"alertname": "FinsentNegativeSentiment", "key": "ticker:BA", "ticker": "BA",
                        "severity": "warning"}},
            {"labels": {"alertname": "FinsentNotReady", "instance": "b:8080", "severity": "critical", **health}},
        ])
        assert _sentiment_state(base) == {"state": "active", "silencedBy": [], "inhibitedBy": []}
        _post_alerts(base, [{"labels": {"alertname": "FinsentNoInstanceReady", "severity": "none", **health}}])
        deadline = time.monotonic() + 5
        while not (status := _sentiment_state(base))["inhibitedBy"] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert status["state"] == "suppressed" and status["inhibitedBy"], status
    routes = run(require_binary("amtool", "install it: apt-get install -y prometheus-alertmanager"), "config",
                 "routes", "test", "--config.file=alertmanager.yml", "alertname=FinsentNoInstanceReady",
                 "service=finsent")
    assert routes.returncode == 0 and routes.stdout.strip() == "null", routes.stdout + routes.stderr


def test_grafana_dashboard_is_provisionable_json_with_unique_panels_on_the_grid() -> None:
    dash = dashboard()
    assert dash["uid"] and dash["title"]
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dash["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and panel["targets"], panel["title"]
        assert panel["datasource"]["uid"] == "prometheus"
    datasource = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text())
    assert datasource["datasources"][0]["uid"] == "prometheus"


def test_compose_stack_has_every_service_and_mounts_files_that_exist() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"kafka", "kafka-topics", "redis", "finsent", "prometheus", "alertmanager", "grafana"}
    created = services["kafka-topics"]["command"][0]
    for setting in ("news_topic", "comments_topic", "dead_letter_topic"):  # the daemon refuses missing topics
        assert KafkaSettings.model_fields[setting].default in created.split("for topic in ")[1].split(";")[0]
    assert services["finsent"]["depends_on"]["kafka-topics"] == {"condition": "service_completed_successfully"}
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name} mounts missing {source}"
    build = services["finsent"]["build"]
    assert (DEPLOY / build["context"] / build["dockerfile"]).is_file()
    env = services["finsent"]["environment"]
    assert json.loads(env["MONITOR_ALERTS__SINKS"])  # list settings from the environment are JSON


def test_dockerfile_copies_only_paths_that_exist_and_runs_the_production_config() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    sources = [line.split()[1:-1] for line in text.splitlines() if line.startswith("COPY ") and "--from" not in line]
    for paths in sources:
        for path in paths:
            assert (ROOT / path).exists(), path
    assert 'CMD ["run", "--config", "/etc/finsent/production.toml"]' in text


def test_systemd_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = require_binary("systemd-analyze", "install systemd")
    unit = tmp_path / "finsent-monitor.service"
    text = (DEPLOY / "finsent-monitor.service").read_text()
    assert "ExecStart=/opt/finsent/bin/monitor run" in text
    unit.write_text(text.replace("/opt/finsent/bin/monitor", "/usr/bin/true"))  # not installed here
    result = run(analyze, "verify", "--man=no", unit, cwd=tmp_path)
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


def test_the_systemd_unit_sets_a_umask_that_keeps_what_the_daemon_writes_from_other_users() -> None:
    """Found by review: dead letters (message text, Kafka headers) were created 0644 in 0755 directories."""
    service = (DEPLOY / "finsent-monitor.service").read_text().split("[Service]\n", 1)[1].split("\n[", 1)[0]
    umask = re.findall(r"^UMask=(0[0-7]{3})$", service, flags=re.MULTILINE)
    assert umask == ["0027"], service


@pytest.mark.parametrize("name", ["prometheus-rules.yml", "alertmanager.yml", "compose.yml", "prometheus.yml"])
def test_yaml_files_parse(name: str) -> None:
    assert yaml.safe_load((DEPLOY / name).read_text())
