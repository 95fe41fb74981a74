from __future__ import annotations

import pytest

from monitor.config import ConfigError, load_settings
from monitor.web.auth import token_matches

STRONG = "6f1c0e9a4b7d2e8f3a5c1b9d0e7f4a2c"


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
    from monitor.config import REPO_ROOT

    production = REPO_ROOT / "configs" / "production.toml"
    settings = load_settings(production)
    assert (settings.http.host, settings.http.api_token) == ("127.0.0.1", None)
    monkeypatch.setenv("MONITOR_HTTP__HOST", "0.0.0.0")
    monkeypatch.setenv("MONITOR_HTTP__API_TOKEN", STRONG)
    settings = load_settings(production)
    assert (settings.http.host, settings.http.api_token) == ("0.0.0.0", STRONG)


async def _statuses(token: str | None, header: str | None,
                    content_type: str | None = "application/json") -> dict[str, int]:
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    from monitor.web.auth import bearer_auth

    async def ok(_: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application(middlewares=[bearer_auth(token)])
    app.add_routes([web.get("/r", ok), web.post("/r", ok), web.put("/r", ok), web.patch("/r", ok),
                    web.delete("/r", ok)])
    headers = {} if header is None else {"Authorization": header}
    if content_type is not None:
        headers["Content-Type"] = content_type
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


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", "application/jsonp"])
async def test_a_write_with_a_body_needs_a_json_content_type_else_415(content_type: str | None) -> None:
    # a cross-site form can send these three types without a preflight: with a proxy that adds Authorization
    # for the user, a JSON-only write API stays out of a form's reach (the token is still checked first)
    assert await _statuses("s3cret", "Bearer s3cret", content_type) == {
        "GET": 200, "POST": 415, "PUT": 415, "PATCH": 415, "DELETE": 200}
    assert await _statuses("s3cret", "Bearer nope", content_type) == {
        "GET": 200, "POST": 401, "PUT": 401, "PATCH": 401, "DELETE": 401}
    assert await _statuses("s3cret", "Bearer s3cret", "application/json; charset=utf-8") == dict.fromkeys(
        ("GET", "POST", "PUT", "PATCH", "DELETE"), 200)


@pytest.mark.parametrize("token", ["x", "t0ken-xyz", "0123456789abcde", " abc-123\n"])
def test_a_token_shorter_than_16_characters_is_refused_at_start_without_repeating_it(
        monkeypatch: pytest.MonkeyPatch, token: str) -> None:
    monkeypatch.setenv("MONITOR_HTTP__API_TOKEN", token)  # "x" enabled writes
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert "MONITOR_HTTP__API_TOKEN" in message and "at least 16" in message and "openssl rand -hex 32" in message
    assert len(token) < 4 or token.strip() not in message


def test_the_configured_token_is_stripped_so_a_trailing_newline_still_matches(monkeypatch: pytest.MonkeyPatch) -> None:
    # "echo $TOKEN > env-file" or a secret store adds a newline: the header (stripped) could never match it
    monkeypatch.setenv("MONITOR_HTTP__API_TOKEN", f"  {STRONG}\n")
    token = load_settings().http.api_token
    assert token == STRONG and token_matches(f"Bearer {STRONG}", token)


@pytest.mark.parametrize("value", ["", "  ", "\n"])
def test_an_empty_or_blank_token_leaves_the_api_read_only(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("MONITOR_HTTP__API_TOKEN", value)  # deploy/compose.yml passes "" when none is set
    assert load_settings().http.api_token is None
