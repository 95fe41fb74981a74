"""What the HTTP side answers and logs when a request cannot be served.

Without this, aiohttp answers any exception with a bare ``500 Server got itself in trouble`` and logs a
multi-line traceback, per request. Measured before this module: with Redis down, every console page and
API call did exactly that (the console's 30 s refresh stopped on the error page, and the log filled with
tracebacks), and a 5,000-character ``/static/`` name was a 500 too (ENAMETOOLONG). Now:

* a dependency that is unreachable (the same transient errors the retry loops wait for) is a **503** that
  says which error, with ``Retry-After``; a browser gets a page that retries by itself, an API client JSON.
  One warning line per ``LOG_EVERY_S`` at most, with the count of the ones left out: an outage during
  a dashboard's polling does not flood the log. Readiness stays the retry loops' business (they own the
  ``/readyz`` reasons), so a request never marks a dependency up or down.
* a static file name the filesystem refuses is a 404, like any missing file.
* anything else is a bug: a JSON 500 and one ``http_handler_failed`` log line with the exception.
* a malformed HTTP request (a line too long, a bad method) is the client's error: aiohttp logs those at
  ERROR with a traceback; ``quiet_client_errors`` turns that into one INFO line.
"""

from __future__ import annotations

import html
import logging
import re

import structlog
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Handler, Middleware

from monitor import metrics
from monitor.logging import LogThrottle
from monitor.retry import describe, is_transient

log = structlog.get_logger(__name__)

RETRY_AFTER_S = 10
"""What a 503 asks the client to wait; the error page reloads itself after it."""
LOG_EVERY_S = 30.0
"""At most one ``http_dependency_unavailable`` line per this many seconds."""
MAX_REASON_CHARS = 300


def reason_of(exc: BaseException) -> str:
    """The same words ``/readyz`` uses (with the fix, for a known condition such as a full Redis)."""
    return describe(exc)[:MAX_REASON_CHARS]


def wants_html(request: web.Request) -> bool:
    """A browser navigating (pages), as opposed to an API client or the console's own fetch calls."""
    return "text/html" in request.headers.get("Accept", "")


def unavailable_response(request: web.Request, reason: str) -> web.Response:
    headers = {"Retry-After": str(RETRY_AFTER_S), "Cache-Control": "no-store"}
    if not wants_html(request):
        return web.json_response({"error": f"a dependency is unreachable: {reason}",
                                  "retry_after_s": RETRY_AFTER_S}, status=503, headers=headers)
    page = (
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<meta http-equiv=\"refresh\" content=\"{RETRY_AFTER_S}\">"
        "<title>finsent monitor: unavailable</title><link rel=\"stylesheet\" href=\"/static/console.css\">"
        "</head><body><main><h1>A dependency is unreachable</h1>"
        f"<p class=\"err\">{html.escape(reason)}</p>"
        "<p>The daemon keeps its place in the stream and carries on when the dependency is back "
        f"(<a href=\"/readyz\">/readyz</a> lists what is failing). This page retries every {RETRY_AFTER_S} s.</p>"
        "</main></body></html>"
    )
    return web.Response(text=page, status=503, content_type="text/html", headers=headers)


def contain_errors(throttle: LogThrottle | None = None) -> Middleware:
    """The outermost middleware: every failure becomes a deliberate answer and at most one log line."""
    throttle = throttle or LogThrottle(LOG_EVERY_S)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException:
            raise
        except Exception as exc:  # the point of this middleware: no bare 500s
            if isinstance(exc, OSError) and request.path.startswith("/static/"):
                raise web.HTTPNotFound() from exc  # e.g. a name longer than the filesystem allows
            if is_transient(exc):
                return _unavailable(request, exc, throttle)
            return _internal_error(request, exc)

    return middleware


def _unavailable(request: web.Request, exc: BaseException, throttle: LogThrottle) -> web.Response:
    metrics.HTTP_FAILURES.labels("dependency").inc()
    reason = reason_of(exc)
    held_back = throttle.allow()
    if held_back is not None:
        log.warning("http_dependency_unavailable", method=request.method, path=request.path[:200],
                    error=reason, status=503, left_out_since_last=held_back)
    return unavailable_response(request, reason)


def _internal_error(request: web.Request, exc: BaseException) -> web.Response:
    metrics.HTTP_FAILURES.labels("internal").inc()
    log.error("http_handler_failed", method=request.method, path=request.path[:200], exc_info=exc)
    return web.json_response({"error": "internal error (logged by the daemon as http_handler_failed)"},
                             status=500)


_QUOTED_BYTES = re.compile(r"""b(['"]).*""")
"""aiohttp's pure-Python parser puts the offending header value on the first line (``Invalid HTTP header:
b'Bearer ...'``): everything from a quoted bytes literal on is left out (found by the regression review)."""


class _ClientErrorFilter(logging.Filter):
    """Rewrites aiohttp's ERROR + traceback for a malformed request into one INFO line (or drops it).

    Only the first line of aiohttp's reason is kept, without quoted bytes: the C parser quotes the offending
    bytes on the next lines, and for a bad header that is the header line itself, so a token read with a
    stray ``\r`` landed in the log as ``Authorization: Bearer <token>`` (found by review)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, HttpProcessingError) or not 400 <= int(exc.code or 0) < 500:
            return True
        metrics.HTTP_FAILURES.labels("bad_request").inc()
        if not logging.getLogger(record.name).isEnabledFor(logging.INFO):
            return False
        message = _QUOTED_BYTES.sub("<bytes left out>", str(exc.message).strip().split("\n", 1)[0])[:200]
        record.levelno, record.levelname = logging.INFO, "INFO"
        record.msg, record.args = f"http_bad_request status={exc.code} reason={message!r}", ()
        record.exc_info, record.exc_text = None, None
        return True


CLIENT_ERROR_FILTER = _ClientErrorFilter()


def quiet_client_errors() -> None:
    """Install the filter on aiohttp's server logger (idempotent: a filter is kept once)."""
    logging.getLogger("aiohttp.server").addFilter(CLIENT_ERROR_FILTER)
