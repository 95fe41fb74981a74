"""Bearer-token guard for every mutating HTTP request (silences today, anything added later).

The token comes from the environment only (``MONITOR_HTTP__API_TOKEN``; config files may not hold it,
see ``SECRET_KEYS``). Without one the API is read-only: writes answer 403 and say how to enable them,
so a daemon deployed without thought never accepts anonymous writes. The check is a middleware, not a
per-handler decorator, so a new POST route cannot forget it. Comparison is constant-time.
No cookies are involved (the dashboard sends the header from a script), so there is no CSRF surface. In
depth all the same: a write with a body (POST, PUT, PATCH) must be ``Content-Type: application/json``
(else 415), a type no cross-site form can send, so a proxy that adds ``Authorization`` on the user's
behalf still cannot be driven by another site's form.
"""

from __future__ import annotations

import hmac

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
JSON_ONLY_MESSAGE = "writes take a JSON body -- send 'Content-Type: application/json'"
READ_ONLY_MESSAGE = ("this API is read-only: no write token is configured -- set MONITOR_HTTP__API_TOKEN "
                     "in the daemon's environment to enable writes")
UNAUTHORIZED_MESSAGE = "missing or wrong bearer token -- send 'Authorization: Bearer <MONITOR_HTTP__API_TOKEN>'"


def token_matches(header: str | None, token: str) -> bool:
    """``header`` is ``Bearer <token>`` (scheme case-insensitive), compared in constant time."""
    if not header:
        return False
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    # surrogateescape: aiohttp decodes header bytes that are not UTF-8 to lone surrogates, which a plain
    # encode() raised on (a 500 and a traceback per request) instead of a 401
    return hmac.compare_digest(given.strip().encode("utf-8", "surrogateescape"), token.encode())


def bearer_auth(token: str | None) -> Middleware:
    """Middleware: safe methods pass; others need the token (403 when none is configured, else 401), and
    POST/PUT/PATCH a JSON content type (415)."""
    configured = token or None

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method in SAFE_METHODS:
            return await handler(request)
        if configured is None:
            return web.json_response({"error": READ_ONLY_MESSAGE}, status=403)
        if not token_matches(request.headers.get("Authorization"), configured):
            return web.json_response({"error": UNAUTHORIZED_MESSAGE}, status=401,
                                     headers={"WWW-Authenticate": 'Bearer realm="finsent-monitor"'})
        if request.method in BODY_METHODS and request.content_type != "application/json":
            return web.json_response({"error": JSON_ONLY_MESSAGE, "field": "Content-Type"}, status=415)
        return await handler(request)

    return guard
