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
