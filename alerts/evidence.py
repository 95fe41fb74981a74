"""Alert evidence: the most negative messages of the alerting bucket, PII-masked.

Masking runs here, before a notification is built, so nothing unmasked ever reaches the outbox,
a sink or a log line. It deliberately over-masks: any run of 7+ digits (phones, account, card and
ID numbers) is masked, because a masked share price costs nothing and a leaked account number does.
Thousands separators with commas ("1,250,000") and ISO dates (1900-2099) are left alone.
"""

from __future__ import annotations

import re
from dataclasses import replace
from urllib.parse import urlsplit, urlunsplit

from monitor.windows.base import WindowStore
from monitor.windows.buckets import EvidenceItem

EMAIL_MASK = "[email]"
NUMBER_MASK = "[number]"
IBAN_MASK = "[iban]"

# RFC 5322 dot-atom local part (all of its specials) at a dotted domain.
_EMAIL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]){11,30}\b")
# A digit run with phone/account separators; kept only if it holds 7+ digits (see _mask_number).
_NUMBER = re.compile(r"\+?\(?\d(?:[\d ().\-/]*\d)?")
_ISO_DATE = re.compile(r"(?:19|20)\d{2}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])")
"""A plausible calendar date (kept); ``0000-00-00`` and friends are digit runs like any other."""
MIN_MASKED_DIGITS = 7
EVIDENCE_TEXT_CHARS = 500
"""Each evidence text is cut to this (after masking, so no number is half-masked): a notification carries up
to ``evidence_top_n`` texts per key, and uncut 10,000-character articles across a market-wide alert
outgrew a Kafka record (1 MiB) or a receiver's body limit, so that alert could never be delivered."""


def _mask_number(match: re.Match[str]) -> str:
    text = match.group(0)
    digits = sum(c.isdigit() for c in text)
    if digits < MIN_MASKED_DIGITS or _ISO_DATE.fullmatch(text):
        return text
    return NUMBER_MASK


def mask_pii(text: str) -> str:
    """Mask emails, IBANs and long digit runs (phones, accounts, cards, IDs)."""
    text = _EMAIL.sub(EMAIL_MASK, text)
    text = _IBAN.sub(IBAN_MASK, text)
    return _NUMBER.sub(_mask_number, text)


LINK_SCHEMES = frozenset({"http", "https"})
"""The only links evidence keeps: a message's ``url`` is untrusted input, and ``javascript:`` / ``data:``
links would reach the console's ``href`` and every sink."""


def mask_url(url: str | None) -> str | None:
    """Keep the link usable but drop query and fragment (where tokens and emails ride along). None for
    anything but a well-formed http(s) URL: a malformed one (a port out of range, an unclosed ``[``)
    made ``urlsplit`` raise, which failed the console's pages and the alert that quoted it."""
    if not url:
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme.lower() not in LINK_SCHEMES or not parts.hostname:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname  # IPv6 keeps its brackets
    netloc = f"{host}:{port}" if port else host
    return urlunsplit((parts.scheme.lower(), netloc, _EMAIL.sub(EMAIL_MASK, parts.path), "", ""))


async def collect_evidence(
    store: WindowStore, key: str, start_s: int, end_s: int, limit: int
) -> tuple[EvidenceItem, ...]:
    """Top ``limit`` most negative messages of ``key`` in ``[start_s, end_s)``, masked."""
    if limit <= 0:
        return ()
    items = await store.top_negative(key, start_s, end_s, limit)
    return tuple(
        replace(item, text=shorten(mask_pii(item.text)), url=mask_url(item.url)) for item in items
    )


def shorten(text: str, limit: int = EVIDENCE_TEXT_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "\u2026"
