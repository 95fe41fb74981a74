"""Dead-lettered notifications: list them and queue them again (``monitor alerts dead-letters|redrive``);
and a changed sink URL's backlog: list it and hand it to the new sink (``monitor alerts sinks|adopt``).

A notification a sink refused past ``alerts.delivery_max_attempts`` waits in that sink's dead-letter
outbox (alerts/outbox/) until an operator fixed the sink and re-drives it; the running daemon
then delivers it like any other entry (same id, so a receiver can still deduplicate).
Needs the shared store (``windows.store_url = redis://...``): a memory outbox lives in the daemon.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Sequence

from alerts.factory import build_outbox, uses_redis
from alerts.outbox import DeadLetter, RedisOutbox
from alerts.sinks import sink_name
from monitor.config import Settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="monitor alerts", description="Dead-lettered alert notifications.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (("dead-letters", "list notifications a sink never accepted"),
                            ("redrive", "queue dead-lettered notifications for delivery again")):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--sink", default=None, help="one sink by name (as in the listing); default: all")
        p.add_argument("--id", default=None, help="one notification id; default: all of the sink(s)")
    sub.add_parser("sinks", help="the configured sinks, and old sink names that still hold notifications")
    adopt = sub.add_parser("adopt", help="move what an old sink name holds (its URL changed) to a configured sink")
    adopt.add_argument("--from-sink", required=True, help="the old name, as `monitor alerts sinks` lists it")
    adopt.add_argument("--sink", required=True, help="the configured sink that takes its notifications over")
    return parser


def _row(letter: DeadLetter) -> str:
    n = letter.notification
    return json.dumps({"sink": letter.sink, "id": n.id, "status": str(n.status), "title": n.title,
                       "event_time_s": n.event_time_s, "attempts": letter.attempts,
                       "dead_at_s": round(letter.dead_at_s, 3)})


async def _run(args: argparse.Namespace, settings: Settings, sinks: list[str]) -> int:
    listing = args.command in ("sinks", "dead-letters")
    async with build_outbox(settings, sinks, wait_at_start=False, read_only=listing) as outbox:
        assert isinstance(outbox, RedisOutbox)  # alerts_command checked uses_redis
        if args.command == "sinks":
            for name in sinks:
                print(json.dumps({"sink": name, "configured": True, "pending": await outbox.pending(name)}))
            for name, held in (await outbox.orphaned_sinks()).items():
                print(json.dumps({"sink": name, "configured": False, "held": held}))
            return 0
        if args.command == "adopt":
            if args.from_sink not in await outbox.orphaned_sinks():
                print(f"error: --from-sink {args.from_sink!r} holds nothing, or is still configured -- see "
                      "`monitor alerts sinks`", file=sys.stderr)
                return 2
            moved = await outbox.adopt(args.from_sink, args.sink, time.time())
            print(f"moved {moved} notification(s) from {args.from_sink} to {args.sink}")
            return 0
        if args.command == "dead-letters":
            letters = [d for d in await outbox.dead_letters(args.sink) if args.id in (None, d.notification.id)]
            for letter in letters:
                print(_row(letter))
            if not letters:  # on stderr: stdout stays one JSON object per line for scripts
                print("no dead-lettered notifications", file=sys.stderr)
            return 0
        moved = await outbox.redrive(time.time(), args.sink, args.id)
        print(f"re-queued {moved} notification(s)")
        return 0 if moved or args.id is None else 1


def alerts_command(argv: Sequence[str], settings: Settings) -> int:
    """``monitor alerts dead-letters|redrive [--sink S] [--id ID]``; 2 = usage or config error."""
    try:
        args = _parser().parse_args(list(argv))
    except SystemExit as exc:
        return int(exc.code or 0)
    if not uses_redis(settings):
        print(f"error: monitor alerts {args.command} reads the shared outbox: set windows.store_url to redis://... "
              "(memory:// is per process, so a memory store has no outbox to read)", file=sys.stderr)
        return 2
    sinks = [sink_name(url) for url in settings.alerts.sinks]
    if getattr(args, "sink", None) is not None and args.sink not in sinks:
        print(f"error: --sink {args.sink!r} is not a configured sink -- one of {sinks} (alerts.sinks)", file=sys.stderr)
        return 2
    return asyncio.run(_run(args, settings, sinks))
