"""``redact_url`` / ``redact_settings``: no secret in any URL or setting reaches a log or ``monitor config``."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.redact import MASK, SET, UNSET, redact_setting, redact_settings, redact_url

SLACK_TOKEN = "xoxbQ2w8Er4Ty6Ui9OpAsDf3"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:s3cret@host:6380/0", "redis://:***@host:6380/0"),
        ("rediss://user:s3cret@host/1", "rediss://user:***@host/1"),
        ("redis://host:6379/0", "redis://host:6379/0"),
        ("rediss://:pw@h:6380/0?ssl_ca_certs=/etc/ssl/redis-ca.pem", "rediss://:***@h:6380/0?ssl_ca_certs=/etc/ssl/redis-ca.pem"),
        (f"slack+https://hooks.slack.com/services/T0001/B0002/{SLACK_TOKEN}",
         "slack+https://hooks.slack.com/services/T0001/B0002/***"),
        ("webhook+https://hooks.example.com/alerts?token=abc", "webhook+https://hooks.example.com/alerts?token=***"),
        ("webhook+https://h.example.com/in?key=k1&team=risk&api_key=zz&sig=1",
         "webhook+https://h.example.com/in?key=***&team=risk&api_key=***&sig=***"),
        ("webhook+https://h.example.com/in?id=9f86d081884c7d659a2feaa0c55ad015", "webhook+https://h.example.com/in?id=***"),
        ("smtp://alerts:hunter2@mail.example.com:587?from=a@x.com&to=b@x.com,c@x.com&starttls=1",
         "smtp://alerts:***@mail.example.com:587?from=a@x.com&to=b@x.com,c@x.com&starttls=1"),
        ("smtps://alerts:hunter2@mail.example.com?from=a@x.com&to=b@x.com&ca=/etc/ssl/mail-ca.pem",
         "smtps://alerts:***@mail.example.com?from=a@x.com&to=b@x.com&ca=/etc/ssl/mail-ca.pem"),
        ("kafka://finsent.alerts", "kafka://finsent.alerts"),
        ("file:///var/log/alerts-2026-11-24.jsonl?max_mb=100&keep=5", "file:///var/log/alerts-2026-11-24.jsonl?max_mb=100&keep=5"),
        ("log://", "log://"),
        ("memory://", "memory://"),
        ("redis://[::1]:6379/0", "redis://[::1]:6379/0"),
        ("redis://:pw@[::1]:6379/0", "redis://:***@[::1]:6379/0"),
        ("redis://host:notaport/0", MASK),
    ],
)
def test_url_secrets_are_masked_and_everything_else_is_kept(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@given(secret=st.text(st.characters(min_codepoint=48, max_codepoint=122).filter(str.isalnum), min_size=6, max_size=30),
       where=st.sampled_from(["password", "token", "key", "secret", "signature", "access_token"]))
def test_a_secret_in_the_password_or_a_secret_query_key_never_survives(secret: str, where: str) -> None:
    assert secret not in redact_url(f"webhook+https://user:{secret}@h.example.com/p?{where}={secret}")


def test_config_dump_masks_every_url_and_shows_secret_settings_as_set_or_unset() -> None:
    dump = {
        "kafka": {"bootstrap_servers": "b:9092", "sasl_password": "pw", "sasl_username": "svc"},
        "alerts": {"sinks": [f"slack+https://hooks.slack.com/services/T1/B2/{SLACK_TOKEN}",
                             "webhook+https://h/x?token=t0k"], "webhook_secret": None, "smtp_password": "",
                   "smtp_username": "alerts", "thresholds": {"ticker:*": {"z_threshold": 4.0}}},
        "windows": {"store_url": "redis://:hunter2@r:6379/0"},
        "extra": {"api_key": "k", "github_token": "t"},
    }
    shown = redact_settings(dump)
    text = repr(shown)
    for secret in ("pw", SLACK_TOKEN, "t0k", "hunter2", "'k'", "'t'"):
        assert secret not in text
    assert shown["kafka"] == {"bootstrap_servers": "b:9092", "sasl_password": SET, "sasl_username": "svc"}
    assert (shown["alerts"]["webhook_secret"], shown["alerts"]["smtp_password"]) == (UNSET, UNSET)
    assert shown["alerts"]["smtp_username"] == "alerts"
    assert shown["alerts"]["thresholds"] == dump["alerts"]["thresholds"]
    assert shown["extra"] == {"api_key": SET, "github_token": SET}


def test_listed_secret_keys_are_hidden_whatever_their_name() -> None:
    shown = redact_settings({"kafka": {"sasl_password": "pw"}, "http": {"bearer": "b", "port": 1}},
                            [("http", "bearer")])
    assert shown == {"kafka": {"sasl_password": SET}, "http": {"bearer": SET, "port": 1}}


@pytest.mark.parametrize("url", [
    "slack+https://hooks.slack.com/services/T0001/B0002/{token}",
    "https://hooks.slack.com/services/T0001/B0002/{token}",  # as the Slack sink posts it
    "slack+https://hooks.slack.com/services/T0001/B0002/{token}/",
])
@given(token=st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"),
                     min_size=1, max_size=32))
def test_a_slack_webhook_token_is_masked_even_with_no_digit_while_its_ids_stay_readable(url: str, token: str) -> None:
    """Found by review: a token of 24 letters (about 1.5% of Slack's) was printed in full by monitor config."""
    shown = redact_url(url.format(token=token))
    assert shown.startswith(url.split("/services/")[0] + "/services/T0001/B0002/***")
    assert token not in shown.removeprefix(url.split("/services/")[0] + "/services/T0001/B0002/")


@pytest.mark.parametrize(("url", "shown"), [
    ("webhook+https://example.com/api/webhooks/secrettokenvalueonlyletters", "webhook+https://example.com/api/webhooks/***"),
    ("webhook+https://discord.example/api/webhooks/123456789012345678/AbCdEfGhIjKlMnOpQr",
     "webhook+https://discord.example/api/webhooks/***/***"),
    ("webhook+https://hooks.example.com/api/v2/alerts", "webhook+https://hooks.example.com/api/v2/alerts"),
    ("webhook+http://10.0.0.5:8080/finsent/incoming", "webhook+http://10.0.0.5:8080/finsent/incoming"),
    ("alertmanager+https://am.example:9093/alertmanagerprod", "alertmanager+https://am.example:9093/alertmanagerprod"),
])
def test_a_webhook_path_segment_of_16_or_more_characters_is_masked_even_when_it_is_letters_only(
    url: str, shown: str,
) -> None:
    """Found by review: a letters-only token in a webhook's path was printed in full (only letters *and* digits were
    masked); ordinary short paths stay readable, and other schemes keep the letters-and-digits rule."""
    assert redact_url(url) == shown


def test_the_url_a_webhook_sink_posts_to_is_masked_as_a_webhook_and_other_http_urls_stay_readable() -> None:
    # the webhook sink posts without webhook+, and its delivery errors show that URL; an Alertmanager or the
    # console's public URL with a long readable segment was masked everywhere (found by a regression review)
    posted = "https://example.com/api/webhooks/secrettokenvalueonlyletters"
    assert redact_url(posted, posted=True) == "https://example.com/api/webhooks/***"
    readable = "https://alertmanager.internal:9093/alertmanager-production/api/v2/alerts"
    assert redact_url(readable) == readable


@pytest.mark.parametrize("value", ["hunter2", 98765432123, ["hunter2"], {"nested": "hunter2"}])
def test_one_secret_setting_is_shown_as_set_whatever_the_type_of_its_value(value: object) -> None:
    assert redact_setting(("kafka", "sasl_password"), value, [("kafka", "sasl_password")]) == SET
    assert redact_setting(("http", "bearer"), value, [("http", "bearer")]) == SET


def test_one_non_secret_setting_is_shown_with_its_urls_redacted() -> None:
    assert redact_setting(("alerts", "sinks"), ["log://", "redis://:pw@h/0"]) == ["log://", "redis://:***@h/0"]
    assert redact_setting(("alerts", "cooldown_s"), 30) == 30


def test_a_password_cut_short_by_a_hash_or_question_mark_is_masked_up_to_its_host() -> None:
    """Found by the regression review: with no '@' left in the netloc, the whole password (a digit run read as a
    port, the rest in the fragment) was printed in every error naming the URL."""
    from monitor.redact import redact_url

    assert redact_url("redis://default:2024#Desk@redis.prod:6379/0") == "redis://***@redis.prod:6379/0"
    assert redact_url("redis://:Zk9p?Vm1S=x@redis.prod:6379/0") == "***"  # the port is not even a number
    assert redact_url("redis://cache:6379/0?client_name=finsent@riskdesk") == (
        "redis://cache:6379/0?client_name=finsent@riskdesk")
