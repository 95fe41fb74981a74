"""A daemon bound to loopback answers only requests addressed to loopback (DNS-rebinding guard).

The console binds 127.0.0.1 by default and its reads need no token. A web page the analyst opens
elsewhere can point a host name of its own at 127.0.0.1 (DNS rebinding) and then read the console's
pages and API from the browser as same-origin: alert evidence, silences, the busiest keys. Such a
request carries the attacker's host name in ``Host``; a real one names the loopback address, so on a
loopback bind anything else is refused with 421 and the fix. Behind a reverse proxy that passes its own
public host name, ``http.public_url``'s host is accepted too. A daemon bound to another interface is
reached under names this process cannot know, and is not checked.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


def is_loopback(host: str) -> bool:
    """``host`` (a name or an address, IPv6 with or without brackets) is this machine's loopback."""
    name = host.strip("[]").lower()
    if name in LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _host_name(header: str) -> str:
    """The name of a ``Host`` header, without its port (``[::1]:8080`` -> ``::1``)."""
    try:
        return (urlsplit(f"//{header}").hostname or "").lower()
    except ValueError:
        return ""


def loopback_hosts_only(bind_host: str, public_url: str = "") -> Middleware | None:
    """The middleware for a loopback bind, else None (nothing to check)."""
    if not is_loopback(bind_host):
        return None
    extra = (urlsplit(public_url).hostname or "").lower() if public_url else ""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        name = _host_name(request.headers.get("Host", ""))
        if name and not is_loopback(name) and name != extra:
            return web.json_response(
                {"error": f"this daemon serves 127.0.0.1 only, not host {name!r} -- open it as "
                          "http://127.0.0.1:<port>/, or set http.public_url to the name a reverse proxy uses"},
                status=421)
        return await handler(request)

    return guard
