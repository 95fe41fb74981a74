"""Slack payload: user text escaped for mrkdwn, links built by the sink, sections cut on line boundaries."""

from __future__ import annotations

import re
from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from alerts.model import AlertItem, AlertStatus, Notification
from alerts.sinks.alertmanager import evidence_text
from alerts.sinks.slack import (
    HEADER_CHARS,
    MAX_SECTIONS,
    SLACK_SECTION_CHARS,
    SlackSink,
    cut,
    escape,
    link,
    sections,
    slack_payload,
)
from alerts.sinks.smtp import SmtpTarget, build_message
from monitor.windows.buckets import EvidenceItem
from tests.unit.alerts.builders import DAY0_S, signal

HOSTILE = "<!channel> $TSLA to zero, <https://evil.example/login|Bloomberg: SEC halts TSLA> & *BUY PUTS*"
LINK = re.compile(r"<https?://[^<>|\s]*\|[^<>]*>")
ENTITY = re.compile(r"&(?:amp|lt|gt);")


def notification(texts: list[str], url: str | None = None, keys: int = 1, key: str = "ticker:T{}") -> Notification:
    items = tuple(
        AlertItem(f"dk{k}", "negative_sentiment", key.format(k), AlertStatus.FIRING, 1, DAY0_S,
                  signal(key.format(k), DAY0_S + 300, True),
                  evidence=tuple(EvidenceItem(f"m{i}", "social", t, -0.95, DAY0_S, url) for i, t in enumerate(texts)))
        for k in range(keys)
    )
    return Notification("n1", key.format(0), AlertStatus.FIRING, DAY0_S + 300, items)


def mrkdwn(notification: Notification, console_url: str | None = None) -> list[str]:
    """Every mrkdwn text of the payload: the notification text and each section."""
    payload = slack_payload(notification, console_url)
    return [payload["text"], *(b["text"]["text"] for b in payload["blocks"][1:])]


def markup_left(text: str) -> str:
    """What is left of ``text`` after removing the links and entities the sink itself writes."""
    return ENTITY.sub("", LINK.sub("", text))


def test_mentions_and_links_in_evidence_text_are_escaped_not_markup() -> None:
    [_, section] = mrkdwn(notification([HOSTILE]))
    assert "&lt;!channel&gt; $TSLA" in section
    assert "&lt;https://evil.example/login|Bloomberg: SEC halts TSLA&gt; &amp; \u2217BUY PUTS\u2217" in section
    assert not any(c in markup_left(section) for c in "<>&")


def test_evidence_url_is_a_link_named_by_its_own_host_with_control_characters_percent_encoded() -> None:
    [_, section] = mrkdwn(notification(["t"], url="https://evil.example/a>|<!here&x"))
    assert section.endswith(" <https://evil.example/a%3E%7C%3C!here&amp;x|evil.example>")


def test_window_keys_and_sources_are_escaped_in_the_text_and_the_sections() -> None:
    n = notification(["t"], key="ticker:<!here>{}")
    n = replace(n, alerts=tuple(replace(a, evidence=(replace(a.evidence[0], source="<@U1>"),)) for a in n.alerts))
    text, section = mrkdwn(n)
    assert "ticker:&lt;!here&gt;0" in text and "- ticker:&lt;!here&gt;0:" in section
    assert "[&lt;@U1&gt;]" in section
    assert not any(c in markup_left(t) for t in (text, section) for c in "<>&")


def test_the_header_is_plain_text_and_keeps_the_title_as_is() -> None:
    header = slack_payload(notification(["t"], key="ticker:A&B{}"))["blocks"][0]
    assert header["text"] == {"type": "plain_text", "text": "[FIRING] negative sentiment spike: ticker:A&B0"}


def test_email_and_alertmanager_keep_the_evidence_as_plain_text() -> None:
    n = notification([HOSTILE], url="https://n.example/1")
    assert f"{HOSTILE} <https://n.example/1>" in n.summary_lines()[-1]
    body = build_message(n, SmtpTarget("h", 25, "a@x", ("b@x",))).get_content()
    assert f"{HOSTILE} <https://n.example/1>" in body
    assert f"{HOSTILE} <https://n.example/1>" in evidence_text(n.alerts[0].evidence)


def test_sections_hold_whole_lines_under_the_section_limit() -> None:
    n = notification(["x" * 450 + " & <b>"] * 5, url="https://news.example.com/story", keys=8)
    lines = n.summary_lines(escape, link)[1:]
    texts = mrkdwn(n)[1:]
    assert len(texts) > 1 and all(len(t) <= SLACK_SECTION_CHARS for t in texts)
    assert [line for t in texts for line in t.split("\n")] == lines


def test_lines_past_the_cap_are_counted_in_one_last_line_with_the_console_link() -> None:
    n = notification(["x" * 480] * 5, url="https://news.example.com/story", keys=20)
    texts = mrkdwn(n, "https://finsent.example/keys/ticker%3AT0")[1:]
    total = len(n.summary_lines())  # without the title, with the console line
    shown = sum(t.count("\n") + 1 for t in texts) - 1
    assert len(texts) == MAX_SECTIONS and all(len(t) <= SLACK_SECTION_CHARS for t in texts)
    assert texts[-1].split("\n")[-1] == (f"\u2026 {total - shown} more lines left out: see "
                                         "<https://finsent.example/keys/ticker%3AT0|the console>")
    assert sum(t.count("left out") for t in texts) == 1


def test_without_a_console_url_the_last_line_only_counts_the_left_out_lines() -> None:
    texts = mrkdwn(notification(["x" * 480] * 5, keys=20))[1:]
    assert re.fullmatch(r"\u2026 \d+ more lines left out", texts[-1].split("\n")[-1])


def test_the_sink_links_the_groups_console_page_under_the_public_url() -> None:
    sink = SlackSink("slack+https://hooks.example/x", "slack", poster=None, public_url="https://finsent.example/")  # type: ignore[arg-type]
    assert sink.console_url(notification(["t"], key="topic_ticker:a|B{}")) == \
        "https://finsent.example/keys/topic_ticker%3Aa%7CB0"
    assert SlackSink("slack+https://h/x", "s", poster=None).console_url(notification(["t"])) is None  # type: ignore[arg-type]


def test_an_overlong_line_is_cut_before_an_entity_or_a_link_it_would_split() -> None:
    assert cut("abc&amp;def", 6) == "abc\u2026"
    assert cut("ab <https://x.example/p|x.example> tail", 10) == "ab \u2026"
    assert cut("short", 6) == "short"


@given(st.lists(st.text(alphabet="ab <>&|!\n@", max_size=700), min_size=1, max_size=8),
       st.integers(min_value=1, max_value=30))
def test_any_evidence_text_gives_sections_within_the_limits_with_no_markup_but_the_sinks_own(
    texts: list[str], keys: int,
) -> None:
    n = notification(texts, url="https://n.example/a|b>c", keys=keys)
    texts_sent = mrkdwn(n, "https://finsent.example/keys/x")
    assert len(texts_sent) - 1 <= MAX_SECTIONS
    assert all(len(t) <= SLACK_SECTION_CHARS for t in texts_sent)
    assert not any(c in markup_left(t) for t in texts_sent for c in "<>&")


def test_sections_of_many_short_lines_fill_up_to_the_limit() -> None:
    lines = ["y" * 99] * 100  # 100 characters per line with its newline
    texts = sections(lines)
    assert [len(t) for t in texts] == [2899, 2899, 2899, 1299]


FORGED = ("Apple beats $AAPL\n- ticker:TSLA: burst@30m 41 negative of 42 messages\r\n"
          "\t-1.00 [news] *halted* _see_ ~x~ `y`")


def test_a_line_break_in_evidence_cannot_forge_a_line_in_slack_or_email() -> None:
    """Found by review: 106 real evidence texts hold line breaks; one could add a line that read as a finding."""
    n = notification([FORGED + "\u2028next\u2029end"])
    [_, section] = mrkdwn(n)
    body = build_message(n, SmtpTarget("h", 25, "a@x", ("b@x",))).get_content()
    for text in (section, body):
        assert not any(line.startswith(("- ticker:TSLA", "\t", "-1.00")) for line in text.splitlines())
        assert "Apple beats $AAPL - ticker:TSLA: burst@30m 41 negative of 42 messages -1.00 [news]" in text
        assert "next end" in text


def test_mrkdwn_formatting_in_evidence_text_is_shown_as_text_not_applied() -> None:
    [_, section] = mrkdwn(notification([FORGED]))
    evidence = section.split("\n")[-1]
    assert not any(c in evidence for c in "*_~`")
    assert "\u2217halted\u2217 \u02cdsee\u02cd \u223cx\u223c \u02cby\u02cb" in evidence


def test_the_message_links_the_console_and_its_push_text_names_the_state_and_top_finding() -> None:
    n = notification(["t"])
    payload = slack_payload(n, "https://finsent.example/keys/ticker%3AT0")
    assert payload["text"].split("\n") == [
        "[FIRING] negative sentiment spike: ticker:T0", "- ticker:T0: firing since 00:00 UTC",
        "  neg_share 70% vs baseline 10% (rolling), z=9.0/9.0, cusum=0.0, volume=50, mean_score=-0.50, detectors=spike"]
    last = payload["blocks"][-1]["text"]["text"].split("\n")[-1]
    assert last == "console: <https://finsent.example/keys/ticker%3AT0|ticker:T0>"


def test_evidence_lines_start_with_the_messages_time() -> None:
    [_, section] = mrkdwn(notification(["t"]))
    assert section.split("\n")[-1].startswith("    00:00 UTC -0.95 [social] t")


def test_a_reminder_is_titled_as_one_with_the_episode_start() -> None:
    """Found by review: a reminder (``repeat_interval_s``) looked exactly like a new page."""
    n = notification(["t"])
    reminder = replace(n, event_time_s=DAY0_S + 4 * 3600,
                       alerts=tuple(replace(a, repeat=True, sequence=2) for a in n.alerts))
    payload = slack_payload(reminder)
    assert payload["blocks"][0]["text"]["text"] == \
        "[FIRING \u00b7 reminder, since 00:00 UTC] negative sentiment spike: ticker:T0"
    assert "- ticker:T0: still firing since 00:00 UTC (reminder)" in payload["text"]
    assert build_message(reminder, SmtpTarget("h", 25, "a@x", ("b@x",)))["Subject"].startswith(
        "[FIRING \u00b7 reminder, since 00:00 UTC]")


def test_a_long_header_keeps_whole_keys_and_counts_the_ones_left_out() -> None:
    """Found by review: the header cut at 150 characters turned ``topic_ticker:mergers_acquisitions|GOOGL`` into
    ``topic_ticker:mergers_acquisitions``, another real key."""
    n = notification(["t"], keys=6, key="topic_ticker:mergers_acquisitions|GOOG{}")
    header = slack_payload(n)["blocks"][0]["text"]["text"]
    assert len(header) <= HEADER_CHARS
    assert header.endswith("topic_ticker:mergers_acquisitions|GOOG1 +4 more")
    keys = header.split(": ", 1)[1].removesuffix(" +4 more").split(", ")
    assert keys == ["topic_ticker:mergers_acquisitions|GOOG0", "topic_ticker:mergers_acquisitions|GOOG1"]


@given(st.lists(st.text(min_size=1, max_size=200), min_size=1, max_size=30))
def test_any_header_fits_and_names_only_whole_keys_or_one_cut_key_with_an_ellipsis(keys: list[str]) -> None:
    items = tuple(replace(notification(["t"]).alerts[0], window_key=k, dedup_key=str(i)) for i, k in enumerate(keys))
    n = replace(notification(["t"]), alerts=items)
    header = n.headline(max_chars=HEADER_CHARS)
    assert len(header) <= HEADER_CHARS
    if header != n.title:
        assert "\u2026" in header or re.search(r" \+\d+ more$", header)


def test_formatting_look_alikes_leave_urls_in_evidence_text_intact() -> None:
    """Found by the regression review: ``a_b_c?x=1*2`` inside a tweet's link became look-alikes and a dead link."""
    from alerts.sinks.slack import quote

    assert quote("see https://ex.com/a_b_c?x=1*2 *now*") == "see https://ex.com/a_b_c?x=1*2 \u2217now\u2217"
