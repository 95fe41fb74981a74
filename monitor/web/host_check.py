"""Requests must be addressed to a host name this daemon is known by (DNS-rebinding guard).

The console's reads need no token. A web page the analyst opens elsewhere can point a host name of its own
at the daemon's address (DNS rebinding: at 127.0.0.1, or at a port a container publishes) and then read
the console's pages and API from the browser as same-origin: alert evidence, silences, the busiest keys.
Such a request carries the attacker's host name in ``Host``; a real one names loopback or the host under
which users reach the daemon, so anything else is refused with 421 and the fix. The allowed names:

* loopback names and addresses (``localhost``, ``127.0.0.1``, ``[::1]``);
* the names in ``http.allowed_hosts`` (the other names users reach it under: a short name and its FQDN, a
  load balancer's name beside the proxy's);
* ``http.public_url``'s host, when it is set (a reverse proxy passing the browser's ``Host``: nginx
  ``proxy_set_header Host $host``, Apache ``ProxyPreserveHost On``; or the name a container's published port
  is opened under). Ports are not compared: a rebinding page's name differs. Names are compared without
  case and without a trailing dot (``finsent.example.com.``), IP literals in canonical form
  (``[2001:DB8:0::1]`` is ``[2001:db8::1]``).

When the check applies:

* a loopback bind: always;
* any other bind with ``http.public_url`` or ``http.allowed_hosts`` set: always, except ``/healthz``,
  ``/readyz`` and ``/metrics``
  (no alert data), which Prometheus and orchestrators reach under names this process cannot know
  (``finsent:8080`` in deploy/compose.yml, a pod's IP);
* any other bind without either: never (the daemon is reached under names it cannot know). Set
  ``http.public_url`` (or ``http.allowed_hosts``) to get the check there.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})
OPS_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
"""Answered whatever the ``Host`` on a non-loopback bind: scrapers and probes hold no console data."""


def canonical_host(host: str) -> str:
    """``host`` (a name or an address, IPv6 with or without brackets) as compared: lower case, no trailing
    dot (an absolute DNS name), an IP literal in its canonical form without brackets."""
    name = host.strip("[]").lower()
    if len(name) > 1 and name.endswith("."):
        name = name[:-1]
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        return name


def is_loopback(host: str) -> bool:
    """``host`` (a name or an address, IPv6 with or without brackets) is this machine's loopback."""
    name = canonical_host(host)
    if name in LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _host_name(header: str) -> str | None:
    """The name of a ``Host`` header, without its port (``[::1]:8080`` -> ``::1``); "" when there is none (an
    HTTP/1.0 tool); None when it is not ``name[:port]`` (user info, a bad port, an unclosed bracket, a path): no
    browser sends one, and ``evil.example:80@127.0.0.1`` parsed as loopback (found by review)."""
    if not header:
        return ""
    try:
        parts = urlsplit(f"//{header}")
        _ = parts.port  # raises on a port that is not a number in range
    except ValueError:
        return None
    if "@" in header or not parts.hostname or parts.path or parts.query or parts.fragment:
        return None
    return parts.hostname.lower()


def allowed_hosts_only(bind_host: str, public_url: str = "", extra_hosts: Sequence[str] = ()) -> Middleware | None:
    """The guard for this bind, public URL and extra names, or None where nothing is checked (module doc)."""
    loopback_bind = is_loopback(bind_host)
    if not loopback_bind and not public_url and not extra_hosts:
        return None
    public = canonical_host(urlsplit(public_url).hostname or "") if public_url else ""
    known = frozenset(canonical_host(name) for name in extra_hosts) | ({public} if public else frozenset())
    exempt = frozenset() if loopback_bind else OPS_PATHS
    if loopback_bind:
        fix = ("open it as http://127.0.0.1:<port>/, or set http.public_url (MONITOR_HTTP__PUBLIC_URL) to the URL "
               "a reverse proxy serves it under, or add the name to http.allowed_hosts")
    else:
        opened = f"{public_url.rstrip('/')}/ or " if public_url else ""
        fix = (f"open it as {opened}http://localhost:<port>/, or set http.public_url (MONITOR_HTTP__PUBLIC_URL) to "
               "the URL users open, or add the name to http.allowed_hosts (MONITOR_HTTP__ALLOWED_HOSTS)")
    served = ", ".join(["127.0.0.1"] * loopback_bind + sorted(repr(name) for name in known)) or "loopback"

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        name = _host_name(request.headers.get("Host", ""))
        if name is None and request.path not in exempt:
            return web.json_response({"error": "malformed Host header -- send host[:port]"}, status=421)
        if name and not is_loopback(name) and canonical_host(name) not in known and request.path not in exempt:
            return web.json_response(
                {"error": f"this daemon serves {served} only, not host {name!r} -- {fix}"}, status=421)
        return await handler(request)

    return guard
