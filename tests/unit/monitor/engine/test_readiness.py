"""/readyz says why it is not ready, and the app is not ready while a dependency is being retried."""

from __future__ import annotations

import aiohttp

from monitor.config import load_settings
from monitor.engine.app import MonitorApp
from monitor.retry import DEPENDENCIES
from monitor.web.server import HttpServer
from monitor.windows.memory import MemoryWindowStore
from tests.fakes import ListSource, RecordingClassifier


async def test_readyz_is_503_with_the_reasons_while_not_ready() -> None:
    reasons = ["window_store unreachable: ConnectionError: redis down"]
    server = HttpServer("127.0.0.1", 0, MemoryWindowStore(60, 3600), lambda: False,
                        not_ready_reasons=lambda: list(reasons))
    async with server, aiohttp.ClientSession() as session:
        resp = await session.get(f"http://127.0.0.1:{server.bound_port}/readyz")
        assert resp.status == 503
        assert await resp.json() == {"ready": False, "reasons": reasons}


def test_the_app_is_not_ready_while_a_dependency_fails_and_ready_again_after_it_recovers() -> None:
    settings = load_settings(classifier={"kind": "lexicon"}, http={"enabled": False}, alerts={"sinks": []})
    app = MonitorApp(settings, classifier=RecordingClassifier(), source=ListSource([]))
    app._ready = True
    try:
        assert app.ready() and app.not_ready_reasons() == []
        DEPENDENCIES.down("detection", ConnectionError("redis down"))
        assert not app.ready()
        assert app.not_ready_reasons() == ["detection unreachable: ConnectionError: redis down"]
        DEPENDENCIES.up("detection")
        assert app.ready()
    finally:
        DEPENDENCIES.clear()
