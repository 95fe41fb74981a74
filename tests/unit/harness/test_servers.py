"""The test harness must fail, never skip, when a real backend binary is missing."""

from __future__ import annotations

import pytest

from tests.kafka_broker import tansu_binary
from tests.servers import require_binary


def test_missing_server_binary_fails_the_test_instead_of_skipping_it() -> None:
    with pytest.raises(pytest.fail.Exception, match="no-such-server-binary not found"):
        require_binary("no-such-server-binary", "install it")


def test_missing_tansu_fails_the_test_instead_of_skipping_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(pytest.fail.Exception, match="tansu"):
        tansu_binary()
