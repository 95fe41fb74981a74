"""Sinks against real local servers: webhook (HMAC), Slack, SMTP (aiosmtpd), file, log, Kafka failure."""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from structlog.testing import capture_logs

from alerts.lifecycle import LifecyclePolicy, step
from alerts.model import Notification
from alerts.sinks import SinkError, build_sink, build_sinks
from alerts.sinks.kafka import KafkaSink
from alerts.sinks.webhook import ID_HEADER, SIGNATURE_HEADER, WebhookSink, verify_signature
from monitor.config import ConfigError, KafkaSettings, Settings
from tests.integration.alerts.receivers import Recorder, http_receiver, serving
from tests.servers import free_port, make_certificates
from tests.unit.alerts.builders import DAY0_S, signal

SECRET = "s3cret-for-tests"


def notification() -> Notification:
    now = DAY0_S + 300
    return step({}, [signal("ticker:TSLA", now, True)], now, LifecyclePolicy()).notifications[0]


def settings(*sinks: str, **alerts: Any) -> Settings:
    return Settings(alerts={"sinks": list(sinks), "webhook_secret": SECRET, "webhook_backoff_s": 0.01,
                            "sink_timeout_s": 2.0, **alerts})


async def test_webhook_signature_verifies_in_the_receiving_server() -> None:
    rec = Recorder(check=lambda body, h: verify_signature(SECRET, body, h.get(SIGNATURE_HEADER)))
    n = notification()
    async with http_receiver(rec) as base:
        sink = build_sink(f"webhook+{base}/hooks/risk", settings())
        async with sink:
            await sink.send(n)
    [req] = rec.requests
    assert req.status == 200 and req.headers[ID_HEADER] == n.id
    assert Notification.from_json(req.body) == n


async def test_webhook_signed_with_another_secret_is_rejected_and_raises() -> None:
    rec = Recorder(check=lambda body, h: verify_signature(SECRET, body, h.get(SIGNATURE_HEADER)))
    async with http_receiver(rec) as base:
        sink = build_sink(f"webhook+{base}/h", settings(webhook_secret="wrong", webhook_max_attempts=3))
        async with sink:
            with pytest.raises(SinkError, match="HTTP 401"):
                await sink.send(notification())
    assert len(rec.requests) == 1  # a permanent 4xx is not retried


async def test_webhook_retries_a_5xx_in_line_then_succeeds() -> None:
    rec = Recorder(statuses=[503, 200])
    async with http_receiver(rec) as base:
        sink = build_sink(f"webhook+{base}/h", settings(webhook_max_attempts=3))
        async with sink:
            await sink.send(notification())
    assert [r.status for r in rec.requests] == [503, 200]


async def test_a_redirected_webhook_is_a_failure_that_names_the_location_not_a_silent_delivery() -> None:
    """aiohttp would follow a 302 with a bodiless GET; a target answering that GET with 200 (an alert list,
    a login page) made the alert look delivered. Real server: POST answers 302, GET answers 200."""
    got: list[str] = []

    async def redirect(request: web.Request) -> web.Response:
        got.append(request.method)
        raise web.HTTPFound("/landing")

    async def landing(request: web.Request) -> web.Response:
        got.append(f"{request.method} landing")
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", redirect)
    app.router.add_get("/landing", landing)
    async with serving(app) as base:
        sink = build_sink(f"webhook+{base}/hook", settings())
        async with sink:
            with pytest.raises(SinkError, match=r"HTTP 302 redirect to 'http://127\.0\.0\.1:\d+/landing'.*final URL in "
                               "alerts.sinks"):
                await sink.send(notification())
    assert got == ["POST"]


@pytest.mark.parametrize("location", ["https://hooks.example.com/services/T0/B0/s3cr3tT0kenXYZ123",
                                      "/services/T0/B0/s3cr3tT0kenXYZ123"], ids=["absolute", "relative"])
async def test_a_redirect_is_a_refusal_at_the_first_answer_that_never_shows_the_locations_token(location: str) -> None:
    """The Location of a moved webhook carries its token; the error (logged by the outbox) showed it whole, and
    a redirect, a configuration error, was retried like a network blip."""
    rec = Recorder(statuses=[301], headers={"Location": location})
    async with http_receiver(rec) as base:
        sink = build_sink(f"slack+{base}/services/T0/B0/OLD", settings(webhook_max_attempts=3))
        async with sink:
            with pytest.raises(SinkError, match=r"refused \(HTTP 301 redirect to '.*/services/T0/B0/\*\*\*'") as info:
                await sink.send(notification())
    assert info.value.refused and len(rec.requests) == 1
    assert "s3cr3tT0kenXYZ123" not in str(info.value)


async def test_a_rate_limited_webhook_is_not_hammered_and_passes_retry_after_to_the_outbox() -> None:
    rec = Recorder(statuses=[429], headers={"Retry-After": "7"})
    async with http_receiver(rec) as base:
        sink = build_sink(f"webhook+{base}/hook", settings(webhook_max_attempts=3))
        async with sink:
            with pytest.raises(SinkError, match="Retry-After 7 s") as info:
                await sink.send(notification())
    assert info.value.retry_after_s == 7.0 and len(rec.requests) == 1


async def test_a_webhook_that_refuses_the_request_is_a_refusal_at_the_first_answer() -> None:
    rec = Recorder(statuses=[404])
    async with http_receiver(rec) as base:
        sink = build_sink(f"slack+{base}/services/T0/B0/REVOKED", settings(webhook_max_attempts=3))
        async with sink:
            with pytest.raises(SinkError, match=r"refused \(HTTP 404\).*URL and its token") as info:
                await sink.send(notification())
    assert info.value.refused and len(rec.requests) == 1


async def test_slack_sink_posts_incoming_webhook_json() -> None:
    rec = Recorder()
    async with http_receiver(rec) as base:
        sink = build_sink(f"slack+{base}/services/T0/B0/XYZ", settings())
        async with sink:
            await sink.send(notification())
    payload = json.loads(rec.requests[0].body)
    assert payload["text"].startswith("[FIRING]") and "ticker:TSLA" in payload["text"]
    assert payload["blocks"][0]["type"] == "header"
    assert "neg_share 70%" in payload["blocks"][1]["text"]["text"]


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


async def test_smtp_message_is_received_by_a_real_smtp_server() -> None:
    inbox = _Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        sink = build_sink(f"smtp://127.0.0.1:{port}?from=alerts@desk.example&to=risk@desk.example,"
                          "oncall@desk.example", settings())
        async with sink:
            await sink.send(notification())
    finally:
        controller.stop()
    [(sender, rcpts, raw)] = inbox.messages
    assert sender == "alerts@desk.example" and rcpts == ["risk@desk.example", "oncall@desk.example"]
    msg = message_from_bytes(raw)
    assert msg["Subject"].startswith("[FIRING]") and "ticker:TSLA" in msg.get_payload()


@pytest.mark.parametrize("trusted", [True, False], ids=["private-ca-given", "certificate-not-trusted"])
async def test_smtp_starttls_verifies_the_servers_certificate(tmp_path: Path, trusted: bool) -> None:
    """A real STARTTLS server with a certificate from a private CA: delivered when ``ca=`` names that CA,
    refused when it does not (smtplib's default context accepted any certificate)."""
    ca, tls = _server_tls(tmp_path)
    inbox = _Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, tls_context=tls, require_starttls=True)
    controller.start()
    ca_query = f"&ca={ca}" if trusted else ""
    try:
        await _send_or_refused(f"smtp://127.0.0.1:{port}?from=a@desk.example&to=b@desk.example&starttls=1{ca_query}",
                               settings(), trusted)
    finally:
        controller.stop()
    assert len(inbox.messages) == (1 if trusted else 0)


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
@pytest.mark.parametrize("trusted", [True, False], ids=["private-ca-given", "certificate-not-trusted"])
async def test_smtps_speaks_implicit_tls_and_verifies_the_servers_certificate(tmp_path: Path, trusted: bool) -> None:
    """A real implicit-TLS (port-465 style) server with a certificate from a private CA: delivered, with the
    login, when ``ca=`` names that CA; refused when it does not (the system CAs do not know it)."""
    ca, tls = _server_tls(tmp_path)
    inbox = _Inbox()
    port = free_port()
    # auth_require_tls=False: aiosmtpd counts only STARTTLS as TLS, and this server speaks nothing but TLS
    controller = Controller(inbox, hostname="127.0.0.1", port=port, ssl_context=tls, authenticator=_accept_desk,
                            auth_required=True, auth_require_tls=False)
    controller.start()
    ca_query = f"&ca={ca}" if trusted else ""
    try:
        await _send_or_refused(f"smtps://127.0.0.1:{port}?from=a@desk.example&to=b@desk.example{ca_query}",
                               settings(smtp_username="desk", smtp_password="hunter2"), trusted)
    finally:
        controller.stop()
    assert [rcpts for _, rcpts, _ in inbox.messages] == ([["b@desk.example"]] if trusted else [])


def _server_tls(tmp_path: Path) -> tuple[Path, ssl.SSLContext]:
    """A private CA and a server context holding a certificate it signed for 127.0.0.1."""
    ca, cert, key = make_certificates(tmp_path)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    return ca, tls


async def _send_or_refused(url: str, sink_settings: Settings, trusted: bool) -> None:
    """One notification through the sink at ``url``: delivered when the server is ``trusted``, else refused
    for its certificate."""
    sink = build_sink(url, sink_settings)
    async with sink:
        if trusted:
            await sink.send(notification())
        else:
            with pytest.raises(SinkError, match="CERTIFICATE_VERIFY_FAILED"):
                await sink.send(notification())


def _accept_desk(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    """aiosmtpd authenticator: only ``desk`` / ``hunter2``."""
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (b"desk", b"hunter2")
    return AuthResult(success=ok)


class _PickyInbox(_Inbox):
    """Refuses the recipients in ``unknown``; answers MAIL FROM and each RCPT TO after ``delay_s``, QUIT
    with ``goodbye`` after ``quit_delay_s``."""

    def __init__(self, unknown: tuple[str, ...] = (), delay_s: float = 0.0, quit_delay_s: float = 0.0,
                 goodbye: str = "221 Bye") -> None:
        super().__init__()
        self.unknown = unknown
        self.delay_s = delay_s
        self.quit_delay_s = quit_delay_s
        self.goodbye = goodbye

    async def handle_QUIT(self, server: Any, session: Any, envelope: Any) -> str:
        await asyncio.sleep(self.quit_delay_s)
        return self.goodbye

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        await asyncio.sleep(self.delay_s)
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        await asyncio.sleep(self.delay_s)
        if address in self.unknown:
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"


async def test_smtp_recipients_the_server_refuses_are_logged_and_the_others_get_the_email_once() -> None:
    inbox = _PickyInbox(unknown=("gone@desk.example",))
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        sink = build_sink(f"smtp://127.0.0.1:{port}?from=a@desk.example&to=risk@desk.example,gone@desk.example",
                          settings())
        with capture_logs() as logs:
            await sink.send(notification())
    finally:
        controller.stop()
    assert [rcpts for _, rcpts, _ in inbox.messages] == [["risk@desk.example"]]
    [event] = [e for e in logs if e["event"] == "smtp_recipients_refused"]
    assert event["log_level"] == "warning" and event["refused"] == {"gone@desk.example": "550 5.1.1 no such user"}


async def test_a_slow_smtp_server_fails_the_send_at_the_sink_timeout_before_the_email_is_handed_over() -> None:
    """Each answer comes well inside the 1 s timeout, the dialogue not: the send used to go on after the
    delivery loop gave up (a worker thread is not cancelled), and the outbox's resend made a second email."""
    inbox = _PickyInbox(delay_s=0.4)
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        sink = build_sink(f"smtp://127.0.0.1:{port}?from=a@desk.example&to=b@desk.example,c@desk.example",
                          settings(sink_timeout_s=1.0))
        started_s = time.monotonic()
        with pytest.raises(SinkError, match="timed out"):
            await sink.send(notification())
        assert time.monotonic() - started_s < 1.3
        await asyncio.sleep(0.5)  # the server's pending answers go out; nothing is handed over
    finally:
        controller.stop()
    assert inbox.messages == []


@pytest.mark.parametrize(("quit_delay_s", "goodbye"), [(2.0, "221 Bye"), (0.0, "421 4.3.2 shutting down")],
                         ids=["slower-than-the-timeout", "not-221"])
async def test_an_email_the_smtp_server_accepted_is_delivered_whatever_its_goodbye(
    quit_delay_s: float, goodbye: str,
) -> None:
    """smtplib's ``with`` raised for a QUIT answered with anything but 221: the outbox resent an accepted email."""
    inbox = _PickyInbox(quit_delay_s=quit_delay_s, goodbye=goodbye)
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        sink = build_sink(f"smtp://127.0.0.1:{port}?from=a@desk.example&to=b@desk.example",
                          settings(sink_timeout_s=1.0))
        await sink.send(notification())
    finally:
        controller.stop()
    assert len(inbox.messages) == 1


async def test_smtp_server_down_raises_sink_error() -> None:
    sink = build_sink(f"smtp://127.0.0.1:{free_port()}?from=a@x.example&to=b@x.example", settings())
    with pytest.raises(SinkError):
        await sink.send(notification())


async def test_file_sink_appends_one_json_line_per_notification(tmp_path: Path) -> None:
    path = tmp_path / "out" / "alerts.jsonl"
    sink = build_sink(f"file://{path}", settings())
    n = notification()
    await sink.send(n)
    await sink.send(n)
    lines = path.read_bytes().splitlines()
    assert [Notification.from_json(line) for line in lines] == [n, n]


async def test_file_sink_url_with_host_part_is_a_relative_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    sink = build_sink("file://var/alerts.jsonl", settings())
    await sink.send(notification())
    assert len((tmp_path / "var" / "alerts.jsonl").read_bytes().splitlines()) == 1


async def test_log_sink_emits_structured_event() -> None:
    sink = build_sink("log://", settings())
    with capture_logs() as logs:
        await sink.send(notification())
    [event] = [e for e in logs if e["event"] == "alert_notified"]
    assert event["keys"] == ["ticker:TSLA"] and event["status"] == "firing"


async def test_kafka_sink_with_unreachable_broker_raises_sink_error() -> None:
    kafka = KafkaSettings(bootstrap_servers=f"127.0.0.1:{free_port()}")
    sink = KafkaSink("alerts", "kafka://alerts", kafka, timeout_s=1.0)
    with pytest.raises(SinkError):
        await asyncio.wait_for(sink.send(notification()), 10)
    await sink.stop()


def test_sink_names_never_contain_url_secrets() -> None:
    sinks = build_sinks(settings("slack+https://hooks.slack.com/services/T0/B0/SECRETTOKEN",
                                 "webhook+https://hooks.example/risk?token=SECRETTOKEN", "kafka://finsent.alerts",
                                 "file:///var/alerts.jsonl", "log://"))
    names = [s.name for s in sinks]
    assert not any("SECRETTOKEN" in n for n in names)
    assert names[2:] == ["kafka://finsent.alerts", "file:///var/alerts.jsonl", "log://"]
    assert isinstance(sinks[1], WebhookSink)


def test_bad_sink_configuration_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="webhook_secret"):
        build_sinks(Settings(alerts={"sinks": ["webhook+https://h.example/x"]}))
    with pytest.raises(ConfigError, match="unknown scheme"):
        build_sinks(settings("pagerduty://x"))
    with pytest.raises(ConfigError, match="to="):
        build_sinks(settings("smtp://localhost:25?from=a@x.example"))
    with pytest.raises(ConfigError, match="max_mb"):
        build_sinks(settings("file:///var/alerts.jsonl?max_mb=0"))
    with pytest.raises(ConfigError, match="duplicate"):
        build_sinks(settings("log://", "log://"))
