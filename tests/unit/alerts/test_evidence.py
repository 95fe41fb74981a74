"""PII masking of evidence, and evidence collection from the window store."""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from alerts.evidence import EVIDENCE_TEXT_CHARS, _mask_emails, collect_evidence, mask_pii, mask_url, shorten
from alerts.model import one_line
from monitor.windows.memory import MemoryWindowStore
from tests.unit.alerts.builders import DAY0_S, messages

SEPARATORS = st.sampled_from([" ", "-", ".", ""])


ISO_DATE = re.compile(r"(19|20)\d\d-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])")


@st.composite
def phone_numbers(draw: st.DrawFn) -> str:
    country = draw(st.one_of(st.just(""), st.from_regex(r"\+[1-9]\d{0,2}", fullmatch=True)))
    groups = draw(st.lists(st.from_regex(r"\d{2,4}", fullmatch=True), min_size=2, max_size=4))
    if sum(len(g) for g in groups) < 7:
        groups.append(draw(st.from_regex(r"\d{4}", fullmatch=True)))
    sep = draw(SEPARATORS)
    area = f"({groups[0]}) " if draw(st.booleans()) else groups[0] + sep
    phone = (country + " " if country else "") + area + sep.join(groups[1:])
    # written exactly like a real ISO date it *is* one to any reader: dates are kept by policy
    assume(not ISO_DATE.fullmatch(phone))
    return phone


surrounding = st.text(st.characters(codec="utf-8"), max_size=40)


@settings(max_examples=200, deadline=None)
@given(before=surrounding, email=st.emails(), phone=phone_numbers(), after=surrounding)
def test_masked_text_never_contains_the_original_email_or_phone(before: str, email: str, phone: str,
                                                                after: str) -> None:
    masked = mask_pii(f"{before} contact {email} or call {phone} {after}")
    assert email not in masked
    assert phone not in masked


def test_account_iban_and_card_numbers_are_masked() -> None:
    text = "IBAN DE89 3704 0044 0532 0130 00, card 4111-1111-1111-1111, acct 12345678, id AB1234567"
    masked = mask_pii(text)
    for secret in ("3704 0044", "4111-1111", "12345678", "1234567"):
        assert secret not in masked


def test_prices_amounts_and_dates_are_kept() -> None:
    text = "TSLA fell 12.5% to $182.40 on 2024-01-15 after a $1,250,000 fine in Q3 2023"
    assert mask_pii(text) == text


def test_a_date_shaped_number_that_is_no_calendar_date_is_masked() -> None:
    assert mask_pii("call 0000-00-00 or 2024-13-45") == "call [number] or [number]"


def test_url_keeps_path_but_drops_query_and_credentials() -> None:
    url = "https://user:pw@news.example.com/a/tsla-falls?email=jo@x.com&token=abc#frag"
    assert mask_url(url) == "https://news.example.com/a/tsla-falls"


def test_a_malformed_url_is_dropped_instead_of_raising() -> None:
    """``urlsplit(...).port`` raises on these: one such message failed the console and the alert quoting it."""
    for url in ("http://x:99999/", "http://x:abc/", "http://[::1/", "https://"):
        assert mask_url(url) is None, url


def test_only_http_links_are_kept() -> None:
    for url in ("JaVaScRiPt:alert(1)", "data:text/html,<script>alert(1)</script>", "file:///etc/passwd",
                "//evil.example/x", "news.example.com/a"):
        assert mask_url(url) is None, url
    assert mask_url("HTTP://News.example.com:8080/a") == "http://news.example.com:8080/a"
    assert mask_url("http://[2001:db8::1]:8443/a?q=1") == "http://[2001:db8::1]:8443/a"


async def test_collected_evidence_is_most_negative_first_and_masked() -> None:
    store = MemoryWindowStore(bucket_s=300, retention_s=86_400, top_negative_per_bucket=5)
    await store.apply(messages(DAY0_S, 6, 4, text="Call jane.doe@bank.com at +1 212 555 0100 re: TSLA",
                               url="https://n.example/x?u=jane.doe@bank.com"))
    evidence = await collect_evidence(store, "ticker:TSLA", DAY0_S, DAY0_S + 300, 3)
    assert len(evidence) == 3
    assert [e.score for e in evidence] == sorted(e.score for e in evidence)
    for e in evidence:
        assert "jane.doe" not in e.text and "555" not in e.text and "[email]" in e.text
        assert e.url == "https://n.example/x"


async def test_long_evidence_texts_are_cut_after_masking_so_a_notification_stays_deliverable() -> None:
    """Uncut 10,000-character articles across a market-wide alert outgrew a Kafka record (1 MiB)."""
    store = MemoryWindowStore(bucket_s=300, retention_s=86_400, top_negative_per_bucket=5)
    article = "Bank fails. " * 400 + "Call +1 212 555 0100 now"
    await store.apply(messages(DAY0_S, 2, 0, text=article))
    evidence = await collect_evidence(store, "ticker:TSLA", DAY0_S, DAY0_S + 300, 2)
    assert evidence and all(len(e.text) == EVIDENCE_TEXT_CHARS and e.text.endswith("\u2026") for e in evidence)
    short = await collect_evidence(store, "ticker:TSLA", DAY0_S, DAY0_S + 300, 2)
    assert short == evidence
    assert shorten("x" * 10) == "x" * 10


def test_a_number_at_the_cut_is_masked_whole_before_the_cut() -> None:
    text = "a" * (EVIDENCE_TEXT_CHARS - 5) + " +1 212 555 0100"
    assert "555" not in shorten(mask_pii(text)) and "21" not in shorten(mask_pii(text))[-8:]


def test_short_numbers_side_by_side_are_not_joined_into_one_masked_number() -> None:
    """Found by review: ``MAY 17 2014 77.50 C`` (an option) read ``MAY [number] C`` and ``2016/2017`` ``[number]``."""
    for text in ("AAPL MAY 17 2014 77.50 C", "guidance for 2016/2017", "filed 05/17/2014", "on 2024-01-15 77.50"):
        assert mask_pii(text) == text


def test_phones_written_with_dots_slashes_or_next_to_a_price_stay_masked() -> None:
    cases = {"call 212.555.0100": "call [number]", "tel 01.23.45.67.89": "tel [number]",
             "(212) 555.0100": "[number]", "030/1234567": "[number]", "212 555-0100 12.50": "[number] 12.50",
             "+1 12.34.5678": "[number]"}
    assert {text: mask_pii(text) for text in cases} == cases


async def test_collected_evidence_text_is_one_line() -> None:
    """Found by review: a line break in a tweet broke every sink's layout and could forge a finding line."""
    store = MemoryWindowStore(bucket_s=300, retention_s=86_400, top_negative_per_bucket=5)
    text = "Apple beats\r\n- ticker:TSLA: burst@30m\t\u2028 forged\u2029\x85end"
    await store.apply(messages(DAY0_S, 1, 0, text=text))
    [item] = await collect_evidence(store, "ticker:TSLA", DAY0_S, DAY0_S + 300, 1)
    assert item.text.startswith("Apple beats - ticker:TSLA: burst@30m forged end #")


@pytest.mark.parametrize("phone", ["tel 0711/12 34 56", "089/123 456", "06/12/34/56/78", "acct 1234/5678/9012",
                                   "ref 123/4567/890", "0171/123 45 67", "06/12/34 56 78", "1234/56/78",
                                   "ID 1980/05/17-1234"])
def test_slashes_join_phone_and_account_numbers_unless_the_run_reads_as_a_date_or_ratio(phone: str) -> None:
    """Found by the regression review: splitting at every '/' between short parts showed these in full."""
    assert "[number]" in mask_pii(phone) and not re.search(r"\d{3}", mask_pii(phone)), mask_pii(phone)
    for kept in ("2016/2017", "05/17/2014", "17/5/14", "3/4", "2026/11/03", "11/03/2026 10:30 ET",
                 "05/17/2014 2 analysts", "77.50/82.25"):
        assert mask_pii(f"from {kept} on") == f"from {kept} on"


def test_a_link_path_cannot_forge_a_second_link_in_plain_text() -> None:
    # found by review: in an e-mail "https://evil/a> <https://reuters.com/x" read as two links
    assert mask_url("https://evil.com/a> <https://reuters.com/x") == "https://evil.com/a%3E%20%3Chttps://reuters.com/x"


def test_evidence_text_loses_invisible_direction_controls() -> None:
    # found by review: a U+202E reversed the rest of the line in Slack and e-mail, the engine's link label too
    assert one_line("\u202eevil \u200b text\u2066!") == "evil text!"


def test_evidence_text_keeps_the_joiners_emoji_and_scripts_need() -> None:
    text = "Family \U0001f468\u200d\U0001f469\u200d\U0001f467 rally; \u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"
    assert one_line(text) == text


def test_hostile_links_and_texts_without_an_address_are_masked_in_linear_time() -> None:
    """Found by review: an ``@`` with no dotted domain after it made the address pattern rescan from every
    position, 20-50 ms a 2,026-character link and over a second for a console view of 40 such evidence items."""
    url = "https://news.example.com/" + "a" * 1_000 + "@" + "b" * 1_000  # under EVIDENCE_URL_MAX_CHARS
    text = "!" * 300 + "@" + "b" * 299  # EVIDENCE_STORED_CHARS
    started = time.process_time()
    for _ in range(100):
        assert mask_url(url) == url
        assert mask_pii(text) == text
        assert mask_url("https://x.com/" + "a." * 1_000) == "https://x.com/" + "a." * 1_000
    assert time.process_time() - started < 1.0  # about 0.05 s; the quadratic pattern took 3-5 s


def test_an_address_in_a_link_path_or_after_a_long_run_is_still_masked() -> None:
    assert mask_url("https://x.com/u/jane.doe@bank.com/profile") == "https://x.com/[email]/profile"
    assert mask_pii("to: " + "x." * 250 + "@bank.co.uk wrote") == "to: [email] wrote"


PLAIN_EMAIL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
"""The address pattern stated plainly (quadratic on hostile input): the masking must match what it masks."""


@given(st.text(st.sampled_from("ab1.-!/@ :"), max_size=200)
       | st.lists(st.sampled_from(["a" * 70, "x.", "@", "b.c", ".", "@b", "-", " ", "é"]), max_size=30).map("".join))
def test_addresses_are_masked_exactly_where_the_plain_pattern_finds_them(text: str) -> None:
    assert _mask_emails(text) == PLAIN_EMAIL.sub("[email]", text)
