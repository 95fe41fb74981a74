"""``build_sink`` refuses sink URLs that could never deliver, at start, naming alerts.sinks and the fix."""

from __future__ import annotations

import pytest

from alerts.sinks import build_sink
from monitor.config import AlertSettings, ConfigError, Settings


@pytest.mark.parametrize("url", ["slack+https://", "webhook+https:///hook", "alertmanager+http://:9093"])
def test_an_http_sink_url_without_a_host_is_refused_at_start(url: str) -> None:
    settings = Settings(alerts=AlertSettings(sinks=[url], webhook_secret="s" * 32))
    with pytest.raises(ConfigError, match=r"alerts\.sinks: .* has no host -- write the server's address"):
        build_sink(url, settings)


def test_a_malformed_sink_url_from_the_environment_is_a_config_error_naming_alerts_sinks() -> None:
    with pytest.raises(ConfigError, match=r"alerts\.sinks: a sink URL is malformed \(Invalid IPv6 URL\)"):
        build_sink("webhook+https://[::1/x", Settings())
