"""On a loopback bind, requests addressed to another host name (a DNS-rebinding page in the analyst's
browser) are refused; loopback names, addresses and the configured public host pass."""

from __future__ import annotations

from aiohttp.test_utils import TestClient, TestServer

from monitor.web.host_check import is_loopback, loopback_hosts_only
from monitor.web.server import HttpServer
from monitor.windows.memory import MemoryWindowStore


async def _status(bind: str, host_header: str, public_url: str = "") -> int:
    http = HttpServer(bind, 0, MemoryWindowStore(60, 3600), lambda: True, public_url=public_url)
    async with TestClient(TestServer(http.app)) as client:
        return (await client.get("/healthz", headers={"Host": host_header})).status


async def test_a_loopback_bind_refuses_other_host_names_with_421() -> None:
    assert await _status("127.0.0.1", "evil.example:8080") == 421
    assert await _status("127.0.0.1", "rebind.attacker.test") == 421


async def test_loopback_names_and_the_public_host_pass() -> None:
    for header in ("127.0.0.1:8080", "localhost:8080", "[::1]:8080", "127.0.0.2", "LOCALHOST"):
        assert await _status("127.0.0.1", header) == 200, header
    assert await _status("127.0.0.1", "finsent.desk.example", public_url="https://finsent.desk.example/") == 200


async def test_a_daemon_bound_elsewhere_is_not_checked() -> None:
    assert loopback_hosts_only("0.0.0.0") is None
    assert await _status("0.0.0.0", "finsent.internal:8080") == 200


def test_loopback_is_told_by_name_and_address() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "::1", "[::1]", "localhost", "a.localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "10.0.0.1", "example.com", "127.0.0.1.evil.com"))
