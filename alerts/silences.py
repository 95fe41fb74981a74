"""Silences: create, list and expire them (used by ``monitor silences ...``).

A silence mutes notifications whose window key or group key matches (``ticker:TSLA`` also mutes
``topic_ticker:earnings|TSLA``; ``topic:*`` mutes every topic). A prefix covers one kind of key at most:
``t*`` (every ticker, topic and pair key) and ``topic*`` (topics and pairs) are refused, as is ``*``; so are
spaces, control and format characters, which no key has. A silence starts ``lookback_s`` in the past
(allowed lateness + one bucket by default) because the buckets evaluated "now" ended that long ago in
event time, and a silence made now must mute the next notifications.
Silences need a shared store: with ``windows.store_url = memory://`` the CLI refuses. Times are event
time: the CLI anchors "now" to the detection cursor stored with the alert state (the wall clock only
before the first evaluation), so a silence made during a replay or a backlog mutes what is judged next.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import unicodedata
import uuid
from collections.abc import Sequence
from dataclasses import asdict

from redis.exceptions import RedisError

from alerts.factory import build_state_store, uses_redis
from alerts.model import Silence
from alerts.state import AlertStateStore, SilenceLimitError
from monitor.config import Settings
from monitor.durations import iso_utc, parse_duration_s
from monitor.redact import redact_url
from monitor.windows.buckets import KEY_FORMS, KEY_KINDS


def _shown(silence: Silence) -> str:
    """One JSON line per silence, with ISO times next to the epoch seconds."""
    return json.dumps({**asdict(silence), "starts_at": iso_utc(silence.starts_at_s),
                       "ends_at": iso_utc(silence.ends_at_s)})


_CATEGORY_NAMES = {"Cc": "a control character", "Cf": "a format character", "Co": "a private-use character",
                   "Cn": "an unassigned code point", "Cs": "a lone surrogate", "Zs": "a space",
                   "Zl": "a line separator", "Zp": "a paragraph separator"}


def matcher_character_problem(matcher: str) -> str | None:
    """Why ``matcher`` holds a character no window key has (None when it holds none): control, format (bidi
    overrides such as U+202E) and other invisible characters, and every separator but a plain space, mute
    nothing and make a listing lie. A plain space (U+0020) inside is kept: a taxonomy's topic names may hold
    one (``topic:M&A Investments``); at either end it is refused."""
    last = len(matcher) - 1
    for i, char in enumerate(matcher):
        if char == " " and 0 < i < last:
            continue
        category = unicodedata.category(char)
        if category[0] in "CZ":
            what = _CATEGORY_NAMES.get(category, "an invisible character")
            if char == " ":
                what += " at an end"
            return (f"it holds U+{ord(char):04X} ({what}) -- window keys have no control or format characters "
                    "and no spaces but a plain one inside a topic name: type the key again")
    if "*" in matcher[:-1]:
        return "'*' only works at the end, as a prefix (ticker:BR*)"
    return None


def matcher_breadth_problem(matcher: str) -> str | None:
    """Why a prefix matcher mutes more than one kind of window key (None when it does not).

    The rule is "no matcher that mutes everything": ``*`` is refused, and so is any prefix shorter than a
    kind name that covers several kinds (``t*`` is every ticker, topic and pair key; ``topic*`` topics and
    pairs). A prefix inside one kind (``ticker:*``, ``topic:*``, ``topic_ticker:earnings|*``, ``ticker*``) is
    a deliberate choice and allowed."""
    if not matcher.endswith("*"):
        return None
    prefix = matcher[:-1]
    covered = [k for k in KEY_KINDS if k.startswith(prefix)]
    if len(covered) < 2:
        return None
    return (f"--matcher {matcher!r} would mute more than one kind of key ({', '.join(covered)}) -- name one kind "
            f"({', '.join(k + '*' for k in covered)}) or one key (ticker:TSLA)")


def matcher_problem(matcher: str) -> str | None:
    """Why a matcher can match no window key (None when it can): a silence that mutes nothing looks, at
    3 a.m., exactly like one that works (``TSLA``, ``ticker:tsla`` and ``ticker:`` were accepted)."""
    if matcher in ("all", "all*"):
        return None
    kind = next((k for k in KEY_KINDS if matcher.startswith(k)), None)
    if kind is None:
        if any(k.startswith(matcher.removesuffix("*")) for k in KEY_KINDS) and matcher.endswith("*"):
            return None  # a prefix of a kind ("ticker*"; matcher_breadth_problem refuses "t*", "topic*")
        return f"window keys are {KEY_FORMS} -- did you mean ticker:{matcher.upper()}?"
    rest = matcher[len(kind):]
    if not rest:
        return f"name one after {kind!r}, or end it with '*' for every one"
    if kind == "topic:" and "|" in rest:
        return f"a topic and a ticker together is a topic_ticker key -- did you mean topic_ticker:{rest}?"
    symbol = rest.rsplit("|", 1)[1] if kind == "topic_ticker:" and "|" in rest else rest if kind == "ticker:" else ""
    if " " in symbol:
        joined = symbol.replace(" ", "")
        return f"tickers have no spaces -- did you mean {kind}{rest[:len(rest) - len(symbol)]}{joined}?"
    if symbol != symbol.upper():
        return f"tickers in keys are upper case -- did you mean {kind}{rest[:len(rest) - len(symbol)]}{symbol.upper()}?"
    return None


async def create_silence(
    store: AlertStateStore, matcher: str, duration_s: int, now_s: int, *,
    comment: str = "", created_by: str = "", lookback_s: int = 0, max_duration_s: int = 7 * 86_400,
    judged_from_s: int | None = None, wall_s: int | None = None,
) -> Silence:
    """Mute ``matcher`` from ``lookback_s`` before now (or before ``judged_from_s``, the detection cursor,
    when detection trails ``now_s``: the buckets it judges next are muted too) until ``duration_s`` after
    ``now_s``, or after ``wall_s`` (the wall clock) when event time trails it by at most ``max_duration_s``."""
    matcher = matcher.strip()
    if not matcher or matcher == "*":
        raise ValueError("--matcher must name a key or a prefix ending in '*', not everything")
    problem = matcher_character_problem(matcher)
    broad = None if problem else matcher_breadth_problem(matcher)
    if broad is not None:
        raise ValueError(broad)
    problem = problem or matcher_problem(matcher)
    if problem is not None:
        raise ValueError(f"--matcher {matcher!r} would mute nothing: {problem}")
    if not 0 < duration_s <= max_duration_s:
        raise ValueError(f"the duration ({duration_s} s) must be 1 s..{max_duration_s} s "
                         "(alerts.max_silence_duration_s)")
    # ends the duration after the wall clock while event time trails it by a backlog (downtime, a namespace rebuilt
    # from recent history): anchored to the cursor, a "2h" silence ended in event time the daemon passed within
    # minutes, and muted nothing (found by review). Not when event time is further behind than the longest silence:
    # that is history being replayed, and an hour past the wall clock muted the rest of it (regression review)
    behind_s = (wall_s or now_s) - now_s
    end_from_s = wall_s if wall_s is not None and 0 < behind_s <= max_duration_s else now_s
    judged_s = min(now_s, judged_from_s or now_s)
    silence = Silence(
        id=uuid.uuid4().hex[:12], matcher=matcher, starts_at_s=judged_s - lookback_s,
        ends_at_s=end_from_s + duration_s, comment=comment, created_by=created_by,
    )
    # pruned where detection judges next, not at a watermark ahead of it: a silence ending between the two still
    # mutes buckets detection has to judge, and a POST deleted it (found by review)
    await store.add_silence(silence, judged_s)
    return silence


async def list_silences(store: AlertStateStore, now_s: int, include_expired: bool = False) -> list[Silence]:
    return [s for s in await store.list_silences() if include_expired or s.ends_at_s > now_s]


async def expire_silence(store: AlertStateStore, silence_id: str, now_s: int) -> bool:
    return await store.expire_silence(silence_id, now_s)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="monitor silences", description="Mute alerts by window key.")
    sub = parser.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create", help="mute a key or key prefix for a while")
    create.add_argument("--matcher", required=True, help="exact key (ticker:TSLA) or prefix (topic:*)")
    how_long = create.add_mutually_exclusive_group(required=True)
    how_long.add_argument("--duration", type=parse_duration_s, dest="duration_s", help="how long: 30m, 1h, 2d ...")
    how_long.add_argument("--duration-s", type=parse_duration_s, dest="duration_s", help="the same, in seconds")
    create.add_argument("--comment", default="", help="why (shown in listings)")
    create.add_argument("--created-by", default="", help="who")
    lst = sub.add_parser("list", help="show live silences")
    lst.add_argument("--all", action="store_true", help="include expired ones")
    expire = sub.add_parser("expire", help="end a silence now")
    expire.add_argument("id")
    return parser


async def _run(args: argparse.Namespace, settings: Settings, now_s: int) -> int:
    store = build_state_store(settings, wait_at_start=False)
    async with store:
        # evaluation judges silences in event time: anchor to the stored detection cursor (the wall
        # clock only before the first evaluation), as the daemon's HTTP API does
        cursor = await store.get_cursor()
        wall_s, now_s = now_s, now_s if cursor is None else cursor
        if args.command == "create":
            lookback_s = settings.windows.allowed_lateness_s + settings.windows.bucket_s
            silence = await create_silence(
                store, args.matcher, args.duration_s, now_s, comment=args.comment,
                created_by=args.created_by, lookback_s=lookback_s, wall_s=wall_s,
                max_duration_s=settings.alerts.max_silence_duration_s,
            )
            print(_shown(silence))
            return 0
        if args.command == "list":
            found = await list_silences(store, now_s, include_expired=args.all)
            for s in found:
                print(_shown(s))
            if not found:  # on stderr: stdout stays one JSON object per line for scripts
                print("no silences" if args.all else "no live silences (--all lists expired ones too)",
                      file=sys.stderr)
            return 0
        if await expire_silence(store, args.id, now_s):
            print(f"expired {args.id}")
            return 0
        print(f"no silence with id {args.id!r} -- see 'monitor silences list --all'")
        return 1


def silence_command(argv: Sequence[str], settings: Settings) -> int:
    """``monitor silences create|list|expire``; returns the exit code (2 = usage/config error)."""
    try:
        args = _parser().parse_args(list(argv))
    except SystemExit as exc:
        return int(exc.code or 0)
    if not uses_redis(settings):
        print("error: silences need a shared store: set windows.store_url to redis://... (memory:// is per "
              "process)", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_run(args, settings, int(time.time())))
    except (ValueError, SilenceLimitError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (ConnectionError, RedisError, OSError) as exc:
        print(f"error: cannot reach the silence store {redact_url(settings.windows.store_url)} "
              f"(windows.store_url): {exc} -- start Redis or fix MONITOR_WINDOWS__STORE_URL", file=sys.stderr)
        return 1
