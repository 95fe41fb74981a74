"""Alert sinks, chosen by URL scheme from ``alerts.sinks`` (see ``SINK_FACTORIES``)."""

from __future__ import annotations

from collections.abc import Callable

from alerts.sinks.alertmanager import AlertmanagerSink
from alerts.sinks.base import Sink, SinkError, sink_name
from alerts.sinks.file import FileSink
from alerts.sinks.http import HttpPoster
from alerts.sinks.kafka import KafkaSink
from alerts.sinks.log import LogSink
from alerts.sinks.slack import SlackSink
from alerts.sinks.smtp import SmtpSink, SmtpTarget
from alerts.sinks.webhook import WebhookSink
from monitor.config import ConfigError, Settings, split_sink_url
from monitor.redact import redact_url

__all__ = ["NO_SINKS", "SINK_FACTORIES", "Sink", "SinkError", "build_sink", "build_sinks", "sink_name"]


NO_SINKS = ("alerts.sinks is empty: alerts are detected but go nowhere -- add a sink, e.g. "
            "MONITOR_ALERTS__SINKS='[\"log://\"]' or [alerts] sinks = [\"log://\"] (the default)")
"""``sinks = []`` is allowed (a replay or backtest sets its own sinks), but a daemon started with it alerts nobody:
``monitor check`` warns and ``monitor run`` logs ``alerts_go_nowhere`` with this."""


def _poster(name: str, settings: Settings) -> HttpPoster:
    a = settings.alerts
    return HttpPoster(name, a.sink_timeout_s, a.webhook_max_attempts, a.webhook_backoff_s)


def _webhook(url: str, name: str, settings: Settings) -> Sink:
    secret = settings.alerts.webhook_secret
    if not secret:
        raise ConfigError(
            "alerts.sinks has a webhook sink but alerts.webhook_secret is empty -- "
            "set MONITOR_ALERTS__WEBHOOK_SECRET (webhooks are always signed)"
        )
    return WebhookSink(url, name, secret, _poster(name, settings))


def _alertmanager(url: str, name: str, settings: Settings) -> Sink:
    a = settings.alerts
    if a.alertmanager_ends_after_s <= a.alertmanager_refresh_s:
        raise ConfigError(
            "alerts.alertmanager_ends_after_s must exceed alerts.alertmanager_refresh_s (or firing alerts "
            "resolve between re-posts) -- raise MONITOR_ALERTS__ALERTMANAGER_ENDS_AFTER_S"
        )
    return AlertmanagerSink(
        url, name, _poster(name, settings), public_url=settings.http.base_url(), severity=a.alertmanager_severity,
        refresh_interval_s=a.alertmanager_refresh_s, ends_after_s=a.alertmanager_ends_after_s,
    )


def _slack(url: str, name: str, settings: Settings) -> Sink:
    # only an explicit http.public_url: the default loopback address means nothing in a Slack channel
    return SlackSink(url, name, _poster(name, settings), public_url=settings.http.public_url)


def _smtp(url: str, name: str, settings: Settings) -> Sink:
    a = settings.alerts
    # only an explicit http.public_url, as for Slack
    return SmtpSink(SmtpTarget.from_url(url), name, a.sink_timeout_s,
                    username=a.smtp_username, password=a.smtp_password, public_url=settings.http.public_url)


SINK_FACTORIES: dict[str, Callable[[str, str, Settings], Sink]] = {
    "log": lambda url, name, s: LogSink(name),
    "file": lambda url, name, s: FileSink.from_url(url, name),
    "webhook+http": _webhook,
    "webhook+https": _webhook,
    "slack+http": _slack,
    "slack+https": _slack,
    "alertmanager+http": _alertmanager,
    "alertmanager+https": _alertmanager,
    "kafka": lambda url, name, s: KafkaSink.from_url(url, name, s.kafka, s.alerts.sink_timeout_s),
    "smtp": _smtp,
    "smtps": _smtp,
}


NEEDS_HOST = ("webhook+http", "webhook+https", "slack+http", "slack+https", "alertmanager+http",
              "alertmanager+https")
"""Sinks that POST to a server: a URL without a host (``slack+https://``) started, and every send then failed."""


def build_sink(url: str, settings: Settings) -> Sink:
    parts = split_sink_url(url)
    scheme = parts.scheme
    factory = SINK_FACTORIES.get(scheme)
    if factory is None:
        raise ConfigError(
            f"alerts.sinks: unknown scheme {scheme!r} in {sink_name(url)}"
            f" -- use one of {sorted(SINK_FACTORIES)}"
        )
    if scheme in NEEDS_HOST and not parts.hostname:
        raise ConfigError(
            f"alerts.sinks: {redact_url(url)!r} has no host -- write the server's address, e.g. "
            f"{scheme}://host.example/path (set via MONITOR_ALERTS__SINKS or [alerts] sinks)"
        )
    try:
        return factory(url, sink_name(url), settings)
    except ValueError as exc:
        raise ConfigError(f"alerts.sinks: {exc}") from exc


def build_sinks(settings: Settings) -> list[Sink]:
    sinks = [build_sink(url, settings) for url in settings.alerts.sinks]
    names = [s.name for s in sinks]
    if len(set(names)) != len(names):
        raise ConfigError(f"alerts.sinks: duplicate sinks {names} -- list each sink once")
    return sinks
