"""Alert evidence: the most negative messages of the alerting bucket, PII-masked.

Masking runs here, before a notification is built, so nothing unmasked ever reaches the outbox,
a sink or a log line. It deliberately over-masks: any run of 7+ digits (phones, account, card and
ID numbers) is masked, because a masked share price costs nothing and a leaked account number does.
Thousands separators with commas ("1,250,000") and ISO dates (1900-2099) are left alone, and so are short
numbers that merely stand next to each other: a ``/`` between two short parts (``2016/2017``, ``05/17/2014``)
and a space or dash beside a decimal (``MAY 17 2014 77.50 C``) do not join them into one run, as no phone,
card or account number is written that way (``212.555.0100`` and ``01.23.45.67.89`` are: a run whose
separators are all dots stays one number). Texts are one line (``one_line``): a line break in a tweet
broke every sink's layout and could forge a line that read as a finding.
"""

from __future__ import annotations

import re
import string
from dataclasses import replace
from urllib.parse import quote, urlsplit, urlunsplit

from alerts.model import one_line
from monitor.windows.base import WindowStore
from monitor.windows.buckets import EvidenceItem

EMAIL_MASK = "[email]"
NUMBER_MASK = "[number]"
IBAN_MASK = "[iban]"

_LOCAL_PART = string.ascii_letters + string.digits + "!#$%&'*+/=?^_`{|}~.-"
"""RFC 5322 dot-atom characters (all of its specials), the local part of an address."""
# Local part at a dotted domain, every run possessive and the local part bounded (RFC 5321 allows 64; the rest of a
# longer run is masked with it, see _mask_emails): unbounded, a 2,000-character link path or text of local-part
# characters was rescanned from every position (quadratic, worst with an '@' and no dot after it), 20-50 ms a link
# and over a second a console view of hostile evidence, all on the event loop (found by review).
_EMAIL = re.compile(f"[{re.escape(_LOCAL_PART)}]{{1,64}}+@[A-Za-z0-9-]++(?:\\.[A-Za-z0-9-]++)+")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]){11,30}\b")
# A digit run with phone/account separators; kept only if it holds 7+ digits (see _mask_number).
_NUMBER = re.compile(r"\+?\(?\d(?:[\d ().\-/]*\d)?")
_DIGITS = re.compile(r"(\d+)")
_ISO_DATE = re.compile(r"(?:19|20)\d{2}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])")
"""A plausible calendar date (kept); ``0000-00-00`` and friends are digit runs like any other."""
MIN_MASKED_DIGITS = 7
EVIDENCE_TEXT_CHARS = 500
"""Each evidence text is cut to this (after masking, so no number is half-masked): a notification carries up
to ``evidence_top_n`` texts per key, and uncut 10,000-character articles across a market-wide alert
outgrew a Kafka record (1 MiB) or a receiver's body limit, so that alert could never be delivered."""


SHORT_PART_DIGITS = 4
"""Parts of a ``/``-only number that may be a ratio or a pair of years (``2016/2017``, ``3/4``)."""


def _plausible_date(parts: list[str]) -> bool:
    """``05/17/2014``, ``17/5/14`` (day and month either way) or ``2026/11/03``: real months and days."""
    if len(parts[0]) == 4:
        if len(parts[1]) > 2 or len(parts[2]) > 2:
            return False
        year, month, day = (int(x) for x in parts)
        return 1900 <= year <= 2099 and 1 <= month <= 12 and 1 <= day <= 31
    if len(parts[0]) > 2 or len(parts[1]) > 2 or len(parts[2]) not in (2, 4):
        return False
    first, second = int(parts[0]), int(parts[1])
    return 1 <= min(first, second) <= 12 and max(first, second) <= 31


def _slash_splits(groups: list[str], joints: list[str]) -> set[int]:
    """Indexes of the ``/`` joints that separate numbers, judged per run of ``/``-joined parts: a plausible date
    standing alone or followed only by a short number (``05/17/2014``, ``2026/11/03``, ``11/03/2026 10``:30), two
    short numbers making up the whole run (``2016/2017``, ``3/4``), or two prices (``77.50/82.25``). Any other ``/``
    joins one number (``0711/12 34 56``, ``06/12/34 56 78``, ``1234/5678/9012``, ``1980/05/17-1234``: phone, account
    and ID forms; found by reviews, as was judging the whole run at once, which masked ``11/03/2026 10:30``)."""
    out: set[int] = set()
    i = 0
    while i < len(joints):
        if joints[i] != "/":
            i += 1
            continue
        end = i
        while end < len(joints) and joints[end] == "/":
            end += 1
        parts = groups[i:end + 1]
        alone = i == 0 and (end == len(joints) or (end == len(joints) - 1 and joints[end] == " "
                                                   and len(groups[-1]) <= 2))
        date = len(parts) == 3 and alone and _plausible_date(parts)
        pair = len(parts) == 2 and max(map(len, parts)) <= SHORT_PART_DIGITS and i == 0 and end == len(joints)
        prices = len(parts) == 2 and i > 0 and joints[i - 1] == "." and end < len(joints) and joints[end] == "."
        if date or pair or prices:
            out.update(range(i, end))
        i = end
    return out


def _masked(text: str) -> str:
    digits = sum(c.isdigit() for c in text)
    if digits < MIN_MASKED_DIGITS or _ISO_DATE.fullmatch(text):
        return text
    return NUMBER_MASK


def _is_prefix(i: int, joint: str, lead: str) -> bool:
    """A country code's space (``+1 212``) or an area code's parentheses: a phone's own, whatever else it uses."""
    return "(" in joint or ")" in joint or (i == 0 and lead.startswith("+") and joint == " ")


def _splits(groups: list[str], joints: list[str], lead: str) -> list[bool]:
    """For each joint between digit groups, whether it separates two numbers rather than joining one."""
    seps = [j for i, j in enumerate(joints) if not _is_prefix(i, j, lead)]
    dotted = all(j == "." for j in seps)

    def decimal(k: int) -> bool:  # "77.50": one dot in a run that separates its numbers otherwise
        return (0 <= k < len(joints) and joints[k] == "." and not dotted
                and not (k > 0 and joints[k - 1] == ".") and not (k + 1 < len(joints) and joints[k + 1] == "."))

    slashed = _slash_splits(groups, joints)
    out = []
    for i, joint in enumerate(joints):
        if "/" in joint:
            out.append(i in slashed)
        else:
            out.append(joint != "." and not _is_prefix(i, joint, lead) and (decimal(i - 1) or decimal(i + 1)))
    return out


def _mask_number(match: re.Match[str]) -> str:
    """Mask each number of a digit run that holds 7+ digits, the run cut where it only lists numbers side by
    side (module doc)."""
    lead, *rest = _DIGITS.split(match.group(0))  # lead, group, joint, group, ..., group, "" (ends in a digit)
    groups, joints = rest[0::2], rest[1:-1:2]
    out, current = [], lead + groups[0]
    for joint, group, split in zip(joints, groups[1:], _splits(groups, joints, lead), strict=True):
        if split:
            out += [_masked(current), joint]
            current = group
        else:
            current += joint + group
    return "".join([*out, _masked(current)])


def _mask_emails(text: str) -> str:
    """Each address masked from where its run of local-part characters starts, however long (the pattern matches
    only the last 64, which keeps it linear). No ``@``, no address: the common case skips the scan."""
    if "@" not in text:
        return text
    out, done = [], 0
    for match in _EMAIL.finditer(text):
        out += [text[done : match.start()].rstrip(_LOCAL_PART), EMAIL_MASK]
        done = match.end()
    return "".join([*out, text[done:]])


def mask_pii(text: str) -> str:
    """Mask emails, IBANs and long digit runs (phones, accounts, cards, IDs)."""
    text = _mask_emails(text)
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
    # characters a URL may not hold (<, >, spaces, quotes) percent-encoded: in an e-mail "https://evil/a> <https://
    # reuters.com/x" read as two links, the second forged (found by review)
    path = _mask_emails(quote(parts.path, safe="/:@!$&'()*+,;=-._~%"))
    return urlunsplit((parts.scheme.lower(), netloc, path, "", ""))


async def collect_evidence(
    store: WindowStore, key: str, start_s: int, end_s: int, limit: int
) -> tuple[EvidenceItem, ...]:
    """Top ``limit`` most negative messages of ``key`` in ``[start_s, end_s)``, masked."""
    if limit <= 0:
        return ()
    items = await store.top_negative(key, start_s, end_s, limit)
    return tuple(
        replace(item, text=shorten(one_line(mask_pii(item.text))), url=mask_url(item.url)) for item in items
    )


def shorten(text: str, limit: int = EVIDENCE_TEXT_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "\u2026"
