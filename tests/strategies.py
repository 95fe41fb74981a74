"""Hypothesis strategies for hostile input: what producers, fuzzers and bugs put on the wire.

Every shape here once crashed (or could crash) the daemon: integers past Python's 4,300-digit
conversion limit, times that overflow ``datetime``, lone surrogate escapes (``"\\ud800"``) in any
string, wrong types, junk nested past any sane depth, payloads over the byte limit, NUL bytes,
broken UTF-8. Two families:

- ``invalid_payloads()``: wire bytes that are invalid *by construction* (each must be dead-lettered);
- ``valid_messages()`` / ``valid_payloads()``: messages that must be accepted (odd but legal: NUL and
  emoji in text, epoch ms, offsets);
- ``any_payloads()``: both, plus raw junk, for "never raises anything but InvalidMessage" properties;
- ``mixed_streams()``: a list of ``(bytes, valid?)`` in event-time order for whole-pipeline properties.

Event times of valid messages lie in ``[NOW - 2 days, NOW - 1 day]`` (``NOW`` = a fixed instant by
default); implausible ones are far outside the default bounds (``source.max_future_s`` = 1 h ahead,
``source.min_event_time`` = 2000-01-01), so the verdict does not depend on when the test runs.
Huge integers are written as JSON text directly (``json.dumps`` itself refuses to print them).
"""

from __future__ import annotations

import calendar
import json
import time
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from consumers.schema import has_visible_text

MAX_MESSAGE_BYTES = 16_000
MAX_TEXT_CHARS = 1_000
DAY_S = 86_400


@dataclass(frozen=True)
class RawJson:
    """A JSON literal written verbatim (e.g. a 5,000-digit integer that ``json.dumps`` cannot print)."""

    text: str


def to_wire(obj: Any) -> bytes:
    """``obj`` as JSON bytes; ``RawJson`` values are spliced in verbatim; strings are ``\\u``-escaped
    (so a lone surrogate becomes the ``"\\ud800"`` escape a hostile producer sends)."""
    literals: list[str] = []

    def swap(value: Any) -> Any:
        if isinstance(value, RawJson):
            literals.append(value.text)
            return f"@@raw{len(literals) - 1}@@"
        if isinstance(value, dict):
            return {k: swap(v) for k, v in value.items()}
        if isinstance(value, list):
            return [swap(v) for v in value]
        return value

    text = json.dumps(swap(obj))
    for i, literal in enumerate(literals):
        text = text.replace(f'"@@raw{i}@@"', literal, 1)
    return text.encode("utf-8")


def _iso(epoch_s: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch_s))


# --- building blocks --------------------------------------------------------------------------------

surrogates = st.integers(0xD800, 0xDFFF).map(chr)
"""One lone surrogate (never valid UTF-8)."""

huge_integers = st.integers(4_301, 6_000).map(lambda n: RawJson("9" * n))
"""Integers past Python's int-to-str limit: ``json.loads`` itself raises ``ValueError`` on them."""

long_integers = st.integers(300, 4_000).map(lambda n: RawJson("1" + "0" * n))
"""Integers that parse but overflow ``float`` (a 400-digit epoch) or any id/epoch range."""

bad_times = st.one_of(
    st.sampled_from([
        "0001-01-01T00:00:00+05:00", "9999-12-31T23:00:00-05:00", "9999-12-31T23:59:00Z",
        "0001-01-01T00:00:00Z", "1969-12-31T23:59:59Z", "2100-01-02T00:00:00Z", "soon", "", "  ",
        "2026-13-01T00:00:00Z", "2026-11-24T25:00:00Z", "2026-11-24T14:03:00+24:00", "NaN", "1e400",
    ]),
    huge_integers, long_integers,
    st.sampled_from([RawJson("1e400"), RawJson("-1e400"), RawJson("NaN"), RawJson("Infinity"), True, False, None]),
    st.integers(max_value=-1), st.integers(min_value=4_102_444_801_000 * 1000, max_value=10**30),
    st.floats(max_value=-0.001), st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=3), st.none()),
    surrogates.map(lambda s: f"2026-11-24T14:03:00{s}"),
)
"""``published_at`` values that are not a representable time in 1970 .. 2100 (``bad_timestamp``)."""


def deep_junk(depth: int) -> Any:
    """A list nested ``depth`` levels deep (``meta`` junk past ``MAX_NESTING``)."""
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return value


wrong_types = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=False),
                        st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=2), st.integers(),
                                                                              max_size=2))


@st.composite
def valid_messages(draw: st.DrawFn, now_s: float | None = None) -> dict[str, Any]:
    """A message that must be accepted: odd but legal text (NUL, emoji, RTL, control characters),
    ISO/epoch-s/epoch-ms times in ``[now - 2 days, now - 1 day]``. ``id`` is a placeholder: streams
    number their messages so ids are unique."""
    now = time.time() if now_s is None else now_s
    event_s = int(now) - draw(st.integers(DAY_S, 2 * DAY_S))  # an offset: draws must not depend on the clock
    published: Any = draw(st.sampled_from([_iso(event_s), event_s, event_s * 1000]))
    text = draw(st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=60)
                .filter(lambda t: has_visible_text(t.strip())))  # not only zero-width/control/marks
    text = draw(st.sampled_from(["", "\x00", "\U0001f4c9 ", "\u202e"])) + text
    msg: dict[str, Any] = {"id": "?", "text": text, "published_at": published, "source": "news"}
    if draw(st.booleans()):
        msg["tickers"] = draw(st.lists(st.from_regex(r"\$?[A-Za-z]{1,5}", fullmatch=True), max_size=3))
    if draw(st.booleans()):
        msg["meta"] = draw(st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=3))
    return msg


@st.composite
def invalid_messages(draw: st.DrawFn, now_s: float | None = None) -> bytes:
    """Wire bytes of a message that must be rejected: a valid message with one hostile mutation,
    or raw junk."""
    base = draw(valid_messages(now_s))
    base["id"] = draw(st.uuids()).hex
    now = time.time() if now_s is None else now_s
    mutation = draw(st.sampled_from([
        "bad_time", "future_time", "past_time", "huge_id", "long_id", "surrogate_text", "surrogate_id",
        "surrogate_ticker", "surrogate_meta", "text_type", "id_type", "deep_meta", "oversized", "no_text",
        "junk",
    ]))
    if mutation == "bad_time":
        base["published_at"] = draw(bad_times)
    elif mutation == "future_time":
        base["published_at"] = _iso(now + draw(st.integers(10 * DAY_S, 3_000 * DAY_S)))
    elif mutation == "past_time":
        base["published_at"] = draw(st.sampled_from(["1999-12-31T23:59:59Z", "1970-01-01T00:00:00Z", 946_684_799]))
    elif mutation == "huge_id":
        base["id"] = draw(huge_integers)
    elif mutation == "long_id":
        base["id"] = draw(long_integers)
    elif mutation == "surrogate_text":
        base["text"] = base["text"] + draw(surrogates)
    elif mutation == "surrogate_id":
        base["id"] = base["id"] + draw(surrogates)
    elif mutation == "surrogate_ticker":
        base["tickers"] = ["ACME" + draw(surrogates)]
    elif mutation == "surrogate_meta":
        base["meta"] = {"k": [draw(surrogates)]}
    elif mutation == "text_type":
        base["text"] = draw(wrong_types.filter(lambda v: not isinstance(v, str)) | st.just(RawJson("9" * 5000)))
    elif mutation == "id_type":
        base["id"] = draw(st.sampled_from([None, True, 1.5, [1], {"a": 1}, ""]))
    elif mutation == "deep_meta":
        base["meta"] = {"x": deep_junk(draw(st.integers(70, 900)))}
    elif mutation == "oversized":
        base["text"] = "x" * draw(st.integers(MAX_MESSAGE_BYTES, 2 * MAX_MESSAGE_BYTES))
    elif mutation == "no_text":
        del base["text"]
    else:
        return draw(junk_payloads)
    return to_wire(base)


junk_payloads = st.one_of(
    st.sampled_from([b"", b" ", b"\x00", b"{", b"[]", b"null", b'"text"', b"{\x00}", b"\xff\xfe{}", b"\xed\xa0\x80",
                     b'{"id": "a", "text": "b", "published_at": 1}' + b"\x00"]),
    st.binary(max_size=80).filter(lambda b: not b.strip().startswith(b"{")),
    st.integers(1, 900).map(lambda n: b"[" * n + b"]" * n),
    st.integers(1, 3000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
)
"""Bytes that are not one JSON object at all."""


def valid_payloads(now_s: float | None = None) -> st.SearchStrategy[bytes]:
    return st.tuples(valid_messages(now_s), st.uuids()).map(lambda mu: to_wire({**mu[0], "id": mu[1].hex}))


def any_payloads(now_s: float | None = None) -> st.SearchStrategy[bytes]:
    """Anything at all: valid, invalid by construction, junk, arbitrary bytes and arbitrary JSON."""
    json_junk = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(st.characters(), max_size=8) | huge_integers,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
        max_leaves=10,
    )
    fields = st.sampled_from(["id", "source", "text", "published_at", "tickers", "lang", "url", "meta"])
    return st.one_of(valid_payloads(now_s), invalid_messages(now_s), junk_payloads, st.binary(max_size=200),
                     st.dictionaries(fields, json_junk).map(to_wire))


@st.composite
def mixed_streams(draw: st.DrawFn, now_s: float | None = None, max_size: int = 30) -> list[tuple[bytes, bool]]:
    """``(wire bytes, must be accepted)`` pairs: valid messages (unique ids, event-time order) with
    invalid ones interleaved at random places. None of them contains a newline (JSONL-safe)."""
    valid = draw(st.lists(valid_messages(now_s), max_size=max_size))
    valid.sort(key=lambda m: _event_s(m["published_at"]))
    # unique ids that are odd but legal: NUL, braces (Redis hash tags), colons, any script
    odd = st.text(st.characters(blacklist_categories=("Cs",)), max_size=8)
    items: list[tuple[bytes, bool]] = [(to_wire({**m, "id": f"v{i}:{draw(odd)}"}), True) for i, m in enumerate(valid)]
    for _ in range(draw(st.integers(0, max_size))):
        bad = draw(invalid_messages(now_s)).replace(b"\n", b" ")
        if not bad.strip():  # a blank line is skipped by JSONL readers, not dead-lettered
            bad = b"\x00"
        items.insert(draw(st.integers(0, len(items))), (bad, False))
    return items


def _event_s(published: Any) -> float:
    if isinstance(published, str):
        return float(calendar.timegm(time.strptime(published, "%Y-%m-%dT%H:%M:%SZ")))
    return float(published) / 1000 if published > 10**11 else float(published)
