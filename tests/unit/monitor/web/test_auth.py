from __future__ import annotations

import pytest

from monitor.web.auth import token_matches


@pytest.mark.parametrize(("header", "ok"), [
    ("Bearer s3cret", True),
    ("bearer s3cret", True),
    ("Bearer  s3cret ", True),
    ("Bearer s3cre", False),
    ("Bearer s3cret2", False),
    ("Basic s3cret", False),
    ("s3cret", False),
    ("", False),
    (None, False),
])
def test_only_the_exact_bearer_token_matches(header: str | None, ok: bool) -> None:
    assert token_matches(header, "s3cret") is ok


def test_a_header_whose_bytes_are_not_utf8_is_a_wrong_token_not_an_error() -> None:
    """aiohttp hands such bytes over as lone surrogates (surrogateescape); encode() raised on them (a 500)."""
    raw = b"Bearer \xff\xfe".decode("utf-8", "surrogateescape")
    assert token_matches(raw, "s3cret") is False
    assert token_matches(b"Bearer s3cr\xc3\xa9t".decode("utf-8", "surrogateescape"), "s3cr\u00e9t") is True


def test_production_config_binds_loopback_and_leaves_the_token_to_the_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from monitor.config import REPO_ROOT, load_settings

    production = REPO_ROOT / "configs" / "production.toml"
    settings = load_settings(production)
    assert (settings.http.host, settings.http.api_token) == ("127.0.0.1", None)
    monkeypatch.setenv("MONITOR_HTTP__HOST", "0.0.0.0")
    monkeypatch.setenv("MONITOR_HTTP__API_TOKEN", "from-env")
    settings = load_settings(production)
    assert (settings.http.host, settings.http.api_token) == ("0.0.0.0", "from-env")


async def _statuses(token: str | None, header: str | None) -> dict[str, int]:
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    from monitor.web.auth import bearer_auth

    async def ok(_: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application(middlewares=[bearer_auth(token)])
    app.add_routes([web.get("/r", ok), web.post("/r", ok), web.put("/r", ok), web.patch("/r", ok),
                    web.delete("/r", ok)])
    headers = {} if header is None else {"Authorization": header}
    async with TestClient(TestServer(app)) as client:
        out = {}
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            async with client.request(method, "/r", headers=headers) as resp:
                out[method] = resp.status
        return out


async def test_every_mutating_method_is_guarded_and_reads_are_not() -> None:
    assert await _statuses("s3cret", "Bearer s3cret") == dict.fromkeys(("GET", "POST", "PUT", "PATCH", "DELETE"), 200)
    assert await _statuses("s3cret", "Bearer nope") == {"GET": 200, "POST": 401, "PUT": 401, "PATCH": 401,
                                                         "DELETE": 401}
    assert await _statuses("s3cret", None) == {"GET": 200, "POST": 401, "PUT": 401, "PATCH": 401, "DELETE": 401}


async def test_without_a_token_writes_are_forbidden_whatever_is_sent() -> None:
    for header in (None, "Bearer ", "Bearer anything"):
        assert await _statuses(None, header) == {"GET": 200, "POST": 403, "PUT": 403, "PATCH": 403, "DELETE": 403}
    assert await _statuses("", "Bearer ") == {"GET": 200, "POST": 403, "PUT": 403, "PATCH": 403, "DELETE": 403}
