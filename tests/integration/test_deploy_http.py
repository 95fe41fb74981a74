"""The deploy kit's HTTP side (deploy/compose.yml, Dockerfile, systemd unit): the console is not published
to the network by default, the DNS-rebinding guard applies in compose's container, Prometheus's scrape
still passes it, the image leaves it to the deployment (a reverse proxy's own Host is not refused), and
the process gets enough file descriptors (found by review)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from aiohttp.test_utils import TestClient, TestServer

from monitor.config import Settings
from monitor.web.host_check import allowed_hosts_only
from monitor.web.server import HttpServer
from monitor.windows.memory import MemoryWindowStore

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def _compose_finsent() -> dict[str, object]:
    service: dict[str, object] = yaml.safe_load((DEPLOY / "compose.yml").read_text())["services"]["finsent"]
    return service


def _compose_default(value: str) -> str:
    """``${VAR:-default}`` -> ``default`` (what compose uses when VAR is unset)."""
    match = re.fullmatch(r"\$\{\w+:-(.*)\}", value)
    return match.group(1) if match else value


def test_compose_publishes_the_console_on_loopback_only() -> None:
    # "8080:8080" published the token-less reads on every interface of the host
    assert _compose_finsent()["ports"] == ["127.0.0.1:8080:8080"]


def test_compose_publishes_every_service_on_loopback_only() -> None:
    # Prometheus, Alertmanager (anyone reaching it can silence the pages) and Grafana were on every interface
    services = yaml.safe_load((DEPLOY / "compose.yml").read_text())["services"]
    published = {name: svc["ports"] for name, svc in services.items() if "ports" in svc}
    assert {"finsent", "prometheus", "alertmanager", "grafana"} <= set(published)
    assert all(str(p).startswith("127.0.0.1:") for ports in published.values() for p in ports), published


async def test_compose_daemon_refuses_a_rebinding_host_and_still_answers_prometheus() -> None:
    env = _compose_finsent()["environment"]
    assert isinstance(env, dict)
    http = Settings(http={"host": env["MONITOR_HTTP__HOST"],
                          "public_url": _compose_default(env["MONITOR_HTTP__PUBLIC_URL"])}).http
    assert allowed_hosts_only(http.host, http.public_url) is not None
    [target] = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())["scrape_configs"][0]["static_configs"][0][
        "targets"]
    server = HttpServer(http.host, 0, MemoryWindowStore(60, 3600), lambda: True, public_url=http.public_url)
    async with TestClient(TestServer(server.app)) as client:
        assert (await client.get("/windows", headers={"Host": "rebind.attacker.test:8080"})).status == 421
        assert (await client.get("/windows", headers={"Host": "localhost:8080"})).status == 200
        assert (await client.get("/metrics", headers={"Host": target})).status == 200


async def test_the_image_sets_no_public_url_so_a_reverse_proxy_sending_its_own_host_is_answered() -> None:
    # the image set MONITOR_HTTP__PUBLIC_URL=http://localhost:8080: the Host check then refused nginx's default
    # `proxy_pass http://finsent:8080` (Host: finsent:8080) with 421, and the alerts linked to localhost.
    # compose.yml sets it (and publishes on loopback only); elsewhere it is set where the daemon is deployed
    env = dict(re.findall(r"^ENV (\w+)=(\S+)$", (DEPLOY / "Dockerfile").read_text(), flags=re.MULTILINE))
    assert "MONITOR_HTTP__PUBLIC_URL" not in env
    http = Settings(http={"host": env["MONITOR_HTTP__HOST"]}).http
    assert http.public_url == "" and allowed_hosts_only(http.host, http.public_url) is None
    server = HttpServer(http.host, 0, MemoryWindowStore(60, 3600), lambda: True, public_url=http.public_url)
    async with TestClient(TestServer(server.app)) as client:
        assert (await client.get("/windows", headers={"Host": "finsent:8080"})).status == 200


def test_the_systemd_unit_raises_the_open_file_limit_above_the_http_cap() -> None:
    text = (DEPLOY / "finsent-monitor.service").read_text()
    match = re.search(r"^LimitNOFILE=(\d+)$", text, flags=re.MULTILINE)
    assert match and int(match.group(1)) >= 16 * Settings().http.max_connections
