"""``monitor check`` fails what ``run`` would refuse at start, through the same validation functions."""

from __future__ import annotations

import socket

import pytest

from monitor.config import AlertSettings, Settings, SourceSettings, WindowSettings
from monitor.preflight import check_http, check_sinks, check_startup
from tests.servers import free_port


@pytest.mark.parametrize(("settings", "what", "says"), [
    (Settings(windows=WindowSettings(store_url="bogus://x")), "window store", "unknown scheme 'bogus'"),
    (Settings(source=SourceSettings(watchlist_path="/nope.csv")), "watchlist", "source.watchlist_path /nope.csv"),
    (Settings(windows=WindowSettings(bucket_s=900_000)), "retention", "windows.retention_s"),
])
def test_check_fails_the_settings_that_run_refuses_at_start(settings: Settings, what: str, says: str) -> None:
    [finding] = check_startup(settings)
    assert (finding.status, finding.what) == ("FAIL", what) and says in finding.detail


def test_check_passes_the_start_up_validations_of_the_default_settings() -> None:
    assert check_startup(Settings()) == []


async def test_check_fails_a_sink_url_that_run_refuses() -> None:
    [finding] = await check_sinks(Settings(alerts=AlertSettings(sinks=["slack+https://"])))
    assert finding.status == "FAIL" and "has no host" in finding.detail


async def test_check_warns_that_alerts_go_nowhere_when_alerts_sinks_is_empty() -> None:
    """Found by review: ``sinks = []`` passed with "0 failed" and alerts went nowhere. A warning, not a failure:
    the daemon runs (a replay or backtest sets its own sinks)."""
    [finding] = await check_sinks(Settings(alerts=AlertSettings(sinks=[])))
    assert (finding.status, finding.what) == ("warn", "alert sink")
    assert "alerts.sinks is empty" in finding.detail and "go nowhere" in finding.detail
    assert "MONITOR_ALERTS__SINKS" in finding.detail


def test_a_free_port_is_ok_and_one_in_use_is_a_warning_naming_the_setting() -> None:
    port = free_port()
    assert check_http("127.0.0.1", port).status == "ok"
    with socket.socket() as held:
        held.bind(("127.0.0.1", port))
        held.listen()
        finding = check_http("127.0.0.1", port)
    assert finding.status == "warn" and "is in use" in finding.detail and "MONITOR_HTTP__PORT" in finding.detail


def test_an_address_that_is_not_this_hosts_fails() -> None:
    finding = check_http("192.0.2.1", free_port())  # TEST-NET-1: never a local address
    assert finding.status == "FAIL" and "is not an address of this host" in finding.detail
