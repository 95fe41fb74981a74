"""Headers every HTTP answer carries, whichever handler (or error path) made it.

Found by review: alert, silence and evidence data (``/``, ``/alerts``, ``/silences``, ``/api/overview``) went
out with no ``Cache-Control``, so a browser or a proxy in between could keep a desk's alerts on disk and show
a stale page; ``nosniff`` and ``Referrer-Policy`` were only on template pages, not on the 503 page, a 400 or a
redirect; and ``/static/console.js`` had no cache header, so a browser could keep running an old script after
an upgrade. One ``on_response_prepare`` hook covers every answer, raised HTTP errors included.
"""

from __future__ import annotations

from aiohttp import web

STATIC_PREFIX = "/static/"
BASE_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


async def add_headers(request: web.Request, response: web.StreamResponse) -> None:
    """``no-store`` for data (it is live and may be sensitive), ``no-cache`` for static files (revalidated by
    their ETag, so an upgrade's script is fetched); a handler's own ``Cache-Control`` is kept."""
    for name, value in BASE_HEADERS.items():
        response.headers.setdefault(name, value)
    response.headers.setdefault("Cache-Control",
                                "no-cache" if request.path.startswith(STATIC_PREFIX) else "no-store")


def install_headers(app: web.Application) -> None:
    app.on_response_prepare.append(add_headers)
