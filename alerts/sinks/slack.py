"""slack+https://hooks.slack.com/services/... -- Slack incoming-webhook message (text + blocks).

Section text is Slack mrkdwn, where ``<...>`` is markup: ``<!channel>`` pings a channel and
``<https://evil|Bloomberg>`` shows a link under a false name. Evidence texts, tickers and sources are
untrusted, so every user-derived piece is escaped (``&`` ``<`` ``>`` as Slack's entities) and links are
built here, never taken from the text. Evidence text and source also lose mrkdwn's formatting: ``*`` ``_``
``~`` and backquotes become look-alikes (Slack has no escape for them), so a tweet cannot bold, strike or
code-format itself. The body is cut into sections on line boundaries after escaping
(a cut never splits an entity or a link); lines past Slack's limits are left out and counted in a last
line that points to the console.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from alerts.model import Notification, one_line
from alerts.sinks.base import console_url
from alerts.sinks.http import HttpPoster
from monitor.lifecycle import Service

SLACK_SECTION_CHARS = 2900  # Slack rejects section text over 3000 characters
MAX_SECTIONS = 10
"""Sections per message: caps the whole body at MAX_SECTIONS * SLACK_SECTION_CHARS characters."""
HEADER_CHARS = 150  # Slack's limit for a header block's plain text
_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
_FORMATTING = str.maketrans({"*": "\u2217", "_": "\u02cd", "~": "\u223c", "`": "\u02cb"})
"""mrkdwn's bold, italic, strike and code markers -> look-alikes that Slack shows as they are."""
_URL_UNSAFE = str.maketrans({"<": "%3C", ">": "%3E", "|": "%7C", " ": "%20"})


def escape(text: str) -> str:
    """``text`` as literal mrkdwn: Slack reads ``&``, ``<`` and ``>`` as markup, nothing else."""
    return text.translate(_ESCAPES)


_URL_IN_TEXT = re.compile(r"https?://\S+")


def quote(text: str) -> str:
    """Untrusted free text (evidence) as literal mrkdwn: escaped, and its formatting markers made inert outside the
    URLs it holds (look-alikes inside one made Slack auto-link a broken target; found by review)."""
    parts, at = [], 0
    for url in _URL_IN_TEXT.finditer(text):
        parts += [escape(text[at:url.start()]).translate(_FORMATTING), escape(url.group(0))]
        at = url.end()
    return "".join([*parts, escape(text[at:]).translate(_FORMATTING)])


def link(url: str, label: str | None = None) -> str:
    """``<url|label>`` (label: the URL's host): the characters that would end the URL part are
    percent-encoded, so the text a reader sees always names where the link goes."""
    if label is None:
        try:
            label = urlsplit(url).hostname or url
        except ValueError:  # evidence URLs are checked (alerts/evidence.py), but a payload must never fail
            label = url
    return f"<{escape(url.translate(_URL_UNSAFE))}|{escape(label)}>"


def cut(line: str, limit: int) -> str:
    """``line`` (escaped mrkdwn) cut to ``limit`` characters, never inside an entity or a link."""
    if len(line) <= limit:
        return line
    head = line[: limit - 1]
    if head.rfind("<") > head.rfind(">"):  # escaped text has "<" only where a link starts
        head = head[: head.rfind("<")]
    if head.rfind("&") > head.rfind(";"):  # ... and "&" only where an entity starts
        head = head[: head.rfind("&")]
    return head + "\u2026"


def pack(lines: Sequence[str], max_sections: int = MAX_SECTIONS) -> tuple[list[str], int]:
    """Whole lines joined into at most ``max_sections`` texts of at most SLACK_SECTION_CHARS; returns
    them and how many lines (from the end) did not fit."""
    sections: list[str] = []
    for i, line in enumerate(lines):
        if sections and len(sections[-1]) + 1 + len(line) <= SLACK_SECTION_CHARS:
            sections[-1] += "\n" + line
        elif len(sections) < max_sections:
            sections.append(line)
        else:
            return sections, len(lines) - i
    return sections, 0


def left_out_line(count: int, console_url: str | None) -> str:
    line = f"\u2026 {count} more line{'s' if count != 1 else ''} left out"
    return line + (f": see {link(console_url, 'the console')}" if console_url else "")


def sections(lines: Sequence[str], console_url: str | None = None) -> list[str]:
    """Section texts for ``lines`` (escaped); when some do not fit, the last line says how many."""
    lines = [cut(line, SLACK_SECTION_CHARS) for line in lines]
    packed, left = pack(lines)
    kept = len(lines) - left
    while left:  # make room for the closing line: each pass drops one more line until it fits
        closing = cut(left_out_line(len(lines) - kept, console_url), SLACK_SECTION_CHARS)
        packed, left = pack([*lines[:kept], closing])
        if left:
            kept -= 1
    return packed


def slack_payload(notification: Notification, console_url: str | None = None) -> dict[str, Any]:
    """The message: a plain-text header (whole keys, ``+N more``), the lines in mrkdwn sections ending in a link
    to the console, and a ``text`` (the phone's push) of the title, the first alert's state and its top finding."""
    lines = notification.summary_lines(escape, link, quote)
    if console_url:
        lines.append(f"console: {link(console_url, one_line(notification.group_key))}")
    blocks: list[dict[str, Any]] = [  # plain_text is not parsed for mentions or links: the raw title
        {"type": "header", "text": {"type": "plain_text", "text": notification.headline(max_chars=HEADER_CHARS)}},
    ]
    blocks += [{"type": "section", "text": {"type": "mrkdwn", "text": text}}
               for text in sections(lines[1:], console_url)]
    return {"text": cut("\n".join(lines[:3]), SLACK_SECTION_CHARS), "blocks": blocks}


class SlackSink(Service):
    def __init__(self, url: str, name: str, poster: HttpPoster, public_url: str = "") -> None:
        self.url = url.removeprefix("slack+")
        self.name = name
        self._poster = poster
        self._public_url = public_url.rstrip("/")

    async def _stop(self) -> None:
        await self._poster.stop()

    def console_url(self, notification: Notification) -> str | None:
        return console_url(self._public_url, notification)

    async def send(self, notification: Notification) -> None:
        body = json.dumps(slack_payload(notification, self.console_url(notification))).encode()
        await self._poster.post(self.url, body, {"Content-Type": "application/json"})
