"""Requests addressed to another host name (a DNS-rebinding page in the analyst's browser) are refused with
421 on a loopback bind, and on any bind once ``http.public_url`` names the host; loopback names, addresses
and the public host pass."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import ValidationError

from monitor.config import HttpSettings
from monitor.web.host_check import allowed_hosts_only, is_loopback
from monitor.web.server import HttpServer
from monitor.windows.memory import MemoryWindowStore


async def _status(bind: str, host_header: str, public_url: str = "", path: str = "/healthz",
                  allowed_hosts: tuple[str, ...] = ()) -> int:
    http = HttpServer(bind, 0, MemoryWindowStore(60, 3600), lambda: True, public_url=public_url,
                      allowed_hosts=allowed_hosts)
    async with TestClient(TestServer(http.app)) as client:
        return (await client.get(path, headers={"Host": host_header})).status


async def test_a_loopback_bind_refuses_other_host_names_with_421() -> None:
    assert await _status("127.0.0.1", "evil.example:8080") == 421
    assert await _status("127.0.0.1", "rebind.attacker.test") == 421
    assert await _status("127.0.0.1", "rebind.attacker.test", path="/windows") == 421


async def test_a_malformed_host_is_refused_not_read_as_loopback() -> None:
    for header in ("evil.example:80@127.0.0.1", "[::1", "127.0.0.1:99999", "127.0.0.1/x", "127.0.0.1:port"):
        assert await _status("127.0.0.1", header) == 421, header
    assert await _status("0.0.0.0", "evil.example:80@127.0.0.1", public_url="https://finsent.desk.example/",
                         path="/metrics") == 200, "probes and scrapes answer any host on a non-loopback bind"


async def test_loopback_names_and_the_public_host_pass() -> None:
    for header in ("127.0.0.1:8080", "localhost:8080", "[::1]:8080", "127.0.0.2", "LOCALHOST"):
        assert await _status("127.0.0.1", header) == 200, header
    assert await _status("127.0.0.1", "finsent.desk.example", public_url="https://finsent.desk.example/") == 200


async def test_a_non_loopback_bind_with_a_public_url_refuses_other_host_names_with_421() -> None:
    # deploy/compose.yml: 0.0.0.0 in the container, PUBLIC_URL=http://localhost:8080; a rebinding page read
    # the console through the published port (reads need no token)
    for bind in ("0.0.0.0", "::", "10.1.2.3"):
        for header in ("evil.example:8080", "rebind.attacker.test", "localhost.evil.example"):
            assert await _status(bind, header, "http://localhost:8080", "/windows") == 421, (bind, header)
    http = HttpServer("0.0.0.0", 0, MemoryWindowStore(60, 3600), lambda: True,
                      public_url="https://finsent.desk.example/")
    async with TestClient(TestServer(http.app)) as client:
        resp = await client.get("/windows", headers={"Host": "evil.example"})
        assert resp.status == 421
        error = (await resp.json())["error"]
        assert "not host 'evil.example'" in error and "https://finsent.desk.example/" in error
        assert "MONITOR_HTTP__PUBLIC_URL" in error


async def test_a_non_loopback_bind_with_a_public_url_serves_its_host_and_loopback_names() -> None:
    for header in ("localhost:8080", "127.0.0.1:8080", "[::1]:8080", "finsent.desk.example",
                   "FINSENT.desk.example:443"):
        assert await _status("0.0.0.0", header, "https://finsent.desk.example", "/windows") == 200, header


async def test_the_public_host_passes_with_a_trailing_dot_and_ip_literals_compare_canonically() -> None:
    # were refused with 421: an absolute DNS name, and the same IPv6 address written another way
    assert await _status("0.0.0.0", "finsent.desk.example.", "https://finsent.desk.example", "/windows") == 200
    assert await _status("0.0.0.0", "finsent.desk.example", "https://finsent.desk.example./", "/windows") == 200
    assert await _status("0.0.0.0", "[2001:db8::1]:8080", "http://[2001:DB8:0::1]:8080", "/windows") == 200
    assert await _status("0.0.0.0", "[2001:0DB8::0:1]", "http://[2001:db8::1]:8080", "/windows") == 200
    assert await _status("127.0.0.1", "localhost.:8080") == 200
    for header in ("[2001:db8::2]", "finsent.desk.example.evil.test.", "."):  # still refused
        assert await _status("0.0.0.0", header, "http://[2001:db8::1]:8080", "/windows") == 421, header


async def test_on_a_non_loopback_bind_probes_and_scrapes_answer_any_host() -> None:
    # Prometheus scrapes finsent:8080 in compose, a kubelet probes the pod's IP: names this process cannot know
    for path in ("/healthz", "/readyz", "/metrics"):
        for header in ("finsent:8080", "10.42.0.17:8080"):
            assert await _status("0.0.0.0", header, "http://localhost:8080", path) == 200, (path, header)
    assert await _status("0.0.0.0", "finsent:8080", "http://localhost:8080", "/windows") == 421


async def test_a_non_loopback_bind_without_a_public_url_is_not_checked() -> None:
    # documented: set http.public_url to get the check there
    assert allowed_hosts_only("0.0.0.0") is None
    assert await _status("0.0.0.0", "finsent.internal:8080", path="/windows") == 200


def test_loopback_is_told_by_name_and_address() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "::1", "[::1]", "localhost", "a.localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "10.0.0.1", "example.com", "127.0.0.1.evil.com"))


async def test_the_names_in_allowed_hosts_pass_besides_the_public_one_and_turn_the_check_on_by_themselves() -> None:
    names = ("finsent", "finsent.desk.example", "10.1.2.3")
    for header in ("finsent:8080", "FINSENT.desk.example.", "10.1.2.3:8080", "localhost"):
        assert await _status("0.0.0.0", header, path="/windows", allowed_hosts=names) == 200, header
        assert await _status("127.0.0.1", header, path="/windows", allowed_hosts=names) == 200, header
    assert await _status("0.0.0.0", "rebind.attacker.test", path="/windows", allowed_hosts=names) == 421
    assert await _status("0.0.0.0", "rebind.attacker.test", path="/metrics", allowed_hosts=names) == 200
    assert await _status("0.0.0.0", "lb.desk.example", "https://finsent.desk.example", "/windows",
                         allowed_hosts=("lb.desk.example",)) == 200


def test_allowed_hosts_take_bare_names_only() -> None:
    for bad in ("https://finsent.example", "finsent.example:8080", "*.example", "finsent.example/x", "[::1]:8080"):
        with pytest.raises(ValidationError, match="bare host names"):
            HttpSettings(allowed_hosts=[bad])
    assert HttpSettings(allowed_hosts=[" finsent ", "", "2001:db8::1"]).allowed_hosts == ["finsent", "2001:db8::1"]
