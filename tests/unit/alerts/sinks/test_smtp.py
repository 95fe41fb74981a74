"""SMTP sink configuration checks and message building; delivery to a real server is in tests/integration."""

from __future__ import annotations

from dataclasses import replace
from email import message_from_bytes

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alerts.model import AlertItem, AlertStatus, Notification
from alerts.sinks import SinkError, build_sink
from alerts.sinks.smtp import SmtpSink, SmtpTarget, build_message
from monitor.config import ConfigError, Settings
from monitor.windows.buckets import EvidenceItem
from tests.unit.alerts.builders import DAY0_S, signal

TARGET = SmtpTarget("relay.example", 25, "alerts@x.example", ("desk@x.example",))


def settings(url: str, **alerts: str) -> Settings:
    return Settings(alerts={"sinks": [url], **alerts})


def notification(key: str = "ticker:TSLA", text: str = "Guidance cut") -> Notification:
    item = AlertItem("dk", "negative_sentiment", key, AlertStatus.FIRING, 1, DAY0_S, signal(key, DAY0_S + 300, True),
                     evidence=(EvidenceItem("m1", "news", text, -0.9, DAY0_S),))
    return Notification("n1", key, AlertStatus.FIRING, DAY0_S + 300, (item,))


def test_a_login_without_starttls_to_a_remote_relay_is_a_config_error_naming_the_setting_and_the_fix() -> None:
    with pytest.raises(ConfigError, match=r"smtp_username.*in the clear.*add &starttls=1 to the smtp:// URL"):
        build_sink("smtp://relay.example:25?from=a@x.example&to=b@x.example",
                   settings("log://", smtp_username="desk", smtp_password="hunter2"))


@pytest.mark.parametrize("host_and_query", ["relay.example:587?starttls=1&", "127.0.0.1:25?", "localhost:25?",
                                            "[::1]:25?"])
def test_a_login_over_starttls_or_to_a_loopback_relay_is_accepted(host_and_query: str) -> None:
    sink = build_sink(f"smtp://{host_and_query}from=a@x.example&to=b@x.example",
                      settings("log://", smtp_username="desk", smtp_password="hunter2"))
    assert isinstance(sink, SmtpSink)


def test_an_smtps_url_without_a_port_connects_to_465_with_implicit_tls() -> None:
    target = SmtpTarget.from_url("smtps://relay.example?from=a@x.example&to=b@x.example&ca=/etc/ca.pem")
    assert (target.port, target.implicit_tls, target.starttls, target.ca_file) == (465, True, False, "/etc/ca.pem")
    assert SmtpTarget.from_url("smtp://relay.example?from=a@x.example&to=b@x.example").port == 25


def test_starttls_on_an_smtps_url_is_a_config_error_naming_the_setting_and_the_fix() -> None:
    with pytest.raises(ConfigError, match=r"alerts\.sinks: smtps sink URL.*starttls=1.*remove &starttls=1"):
        build_sink("smtps://relay.example:465?from=a@x.example&to=b@x.example&starttls=1", settings("log://"))


def test_a_login_over_smtps_to_a_remote_relay_is_accepted_and_never_shows_the_password() -> None:
    sink = build_sink("smtps://desk:urlpw9@relay.example?from=a@x.example&to=b@x.example",
                      settings("log://", smtp_username="desk", smtp_password="hunter2"))
    assert isinstance(sink, SmtpSink) and sink.target.implicit_tls
    assert "urlpw9" not in sink.name


def test_an_smtps_url_missing_a_recipient_is_a_config_error_showing_an_smtps_example() -> None:
    with pytest.raises(ConfigError, match=r"smtps sink URL.*needs host, from= and to=: smtps://host:465"):
        build_sink("smtps://relay.example?from=a@x.example", settings("log://"))


@pytest.mark.parametrize(("login", "match"), [
    ({"smtp_username": "desk"}, "smtp_password is empty.*MONITOR_ALERTS__SMTP_PASSWORD"),
    ({"smtp_username": "desk", "smtp_password": ""}, "smtp_password is empty.*MONITOR_ALERTS__SMTP_PASSWORD"),
    ({"smtp_password": "hunter2"}, "smtp_username is empty.*MONITOR_ALERTS__SMTP_USERNAME"),
])
def test_half_a_login_is_a_config_error_not_a_silently_skipped_login(login: dict[str, str], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        build_sink("smtp://relay.example:587?from=a@x.example&to=b@x.example&starttls=1", settings("log://", **login))


def test_a_line_break_in_a_window_key_becomes_a_space_in_the_subject_not_a_header() -> None:
    msg = build_message(notification("ticker:ACME\r\nBCC: x@evil.example"), TARGET)
    parsed = message_from_bytes(msg.as_bytes())
    assert parsed["Subject"] == "[FIRING] negative sentiment spike: ticker:ACME BCC: x@evil.example"
    assert parsed["Bcc"] is None


@given(st.text(max_size=60))
def test_any_window_key_gives_a_message_with_a_one_line_subject(key: str) -> None:
    msg = build_message(notification(f"ticker:{key}"), TARGET)
    msg.as_bytes()
    assert len(str(msg["Subject"]).splitlines()) == 1


async def test_a_message_that_cannot_be_built_is_a_refusal_before_any_connection() -> None:
    sink = SmtpSink(replace(TARGET, host="127.0.0.1", port=9), "smtp", timeout_s=0.5)
    with pytest.raises(SinkError, match=r"cannot build the email.*surrogates") as info:
        await sink.send(notification(text="lone surrogate \ud800"))
    assert info.value.refused


def test_the_email_has_a_date_header_times_and_a_link_to_the_console() -> None:
    """Found by review: no time anywhere in the email and no way to the console."""
    msg = build_message(notification(), TARGET, "https://finsent.example/keys/ticker%3ATSLA", sent_at_s=DAY0_S + 310)
    assert msg["Date"] == "Wed, 15 Nov 2023 00:05:10 +0000"
    body = msg.get_content().splitlines()
    assert body[1] == "- ticker:TSLA: firing since 00:00 UTC"
    assert body[3].startswith("    00:00 UTC -0.90 [news] Guidance cut")
    assert body[-1] == "console: https://finsent.example/keys/ticker%3ATSLA"


def test_the_sink_links_the_console_only_under_an_explicit_public_url() -> None:
    url = "smtp://relay.example:25?from=a@x.example&to=b@x.example"
    linked = build_sink(url, Settings(alerts={"sinks": [url]}, http={"public_url": "https://finsent.example"}))
    assert isinstance(linked, SmtpSink)
    assert linked._message(notification()).get_content().splitlines()[-1] == \
        "console: https://finsent.example/keys/ticker%3ATSLA"
    unlinked = build_sink(url, settings("log://"))
    assert isinstance(unlinked, SmtpSink) and "console:" not in unlinked._message(notification()).get_content()


def test_a_long_subject_keeps_whole_keys_and_counts_the_ones_left_out() -> None:
    keys = [f"topic_ticker:mergers_acquisitions|GOO{i}" for i in range(8)]
    items = tuple(replace(notification(k).alerts[0], window_key=k) for k in keys)
    subject = build_message(replace(notification(), alerts=items), TARGET)["Subject"]
    assert len(subject) <= 200 and subject.endswith("topic_ticker:mergers_acquisitions|GOO2 +5 more")
