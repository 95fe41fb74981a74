"""``make chaos``: the long fault drills (the CI suite in tests/chaos runs short versions).

Each drill runs the real daemon (``monitor run``: Kafka in, Redis windows, lexicon classifier, file
sink) over the same ~10k-message stream with malformed records mixed in, against its own redis-server
and tansu broker, while injecting one kind of fault repeatedly: kill -9 + restart loops, Redis
freezes (SIGSTOP), Redis restarts, a minute without Redis, Redis at its maxmemory, broker freezes. It ends with a table:
fault, runs survived, messages lost (must be 0), double-counted (must be 0), valid messages judged
late, notifications vs an uninterrupted in-process reference run, child processes left behind. The
kill -9 drill keeps the classifier in a worker process (as a transformer is by default), so a worker
that outlives its killed daemon shows up there. Exit status 1 if any drill lost, double-counted,
diverged or left a process behind.

    python scripts/chaos.py [--loops 5] [--buckets 200] [--only kill9,redis-freeze]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.chaos.harness import (  # noqa: E402
    BrokerProcess,
    ChaosScenario,
    RedisProcess,
    closed_by_data_s,
    metric,
    port_of,
    reference,
)
from tests.integration.daemon import Daemon  # noqa: E402
from tests.integration.streams import BUCKET_S, stream  # noqa: E402
from tests.kafka_broker import create_topics  # noqa: E402
from tests.processes import wait_gone  # noqa: E402

LATENESS_S = 60
MALFORMED = [b"{not json", json.dumps({"id": "x", "text": "no time"}).encode(),
             json.dumps({"id": "y", "text": "bad time", "published_at": "soon"}).encode(),
             json.dumps({"id": "z", "published_at": "2026-03-02T14:00:00Z"}).encode(), b"\xff\xfe", b"[]"]


@dataclass
class Outcome:
    fault: str
    injected: int = 0
    survived: int = 0
    lost: int = 0
    double_counted: int = 0
    late: int = 0
    orphans: int = 0
    """Child processes (the inference worker) still running 15 s after their daemon was killed."""
    notifications: str = ""
    ok: bool = False
    note: str = ""


class Drill:
    def __init__(self, workdir: Path, fault: str, messages: list[dict[str, object]], loops: int) -> None:
        self.workdir, self.fault, self.messages, self.loops = workdir, fault, messages, loops
        self.redis = RedisProcess(workdir / "redis")
        self.broker = BrokerProcess(workdir / "tansu.log")
        self.outcome = Outcome(fault)
        self.late = 0.0

    async def run(self, expected: list[tuple[str, str, int]], until: int) -> Outcome:
        (self.workdir / "redis").mkdir(parents=True)
        self.redis.start()
        self.broker.start()
        try:
            await self._run(expected, until)
        except (AssertionError, TimeoutError) as exc:
            self.outcome.note = str(exc)[:4000]  # with the daemon's log tail: the diagnosis
        finally:
            self.broker.stop()
            self.redis.stop()
        return self.outcome

    async def _run(self, expected: list[tuple[str, str, int]], until: int) -> None:
        worker = {"MONITOR_CLASSIFIER__WORKER": "process"} if self.fault == FAULTS["kill9"] else {}
        scenario = ChaosScenario(self.workdir, self.broker.bootstrap, self.redis.url,
                                 MONITOR_KAFKA__MAX_POLL_RECORDS="50", MONITOR_BATCHING__MAX_BATCH_SIZE="32",
                                 MONITOR_KAFKA__MAX_BUFFERED_RECORDS="1000", **worker)
        await create_topics(self.broker.bootstrap, {scenario.news: 3, scenario.comments: 1, scenario.dlq: 1})
        raw = [json.dumps(m).encode() for m in self.messages]
        rnd = random.Random(7)
        for bad in MALFORMED * 5:
            raw.insert(rnd.randrange(len(raw)), bad)
        from tests.kafka_broker import produce_round_robin

        await produce_round_robin(self.broker.bootstrap, scenario.news, raw, 3)
        daemon = scenario.start()
        port_of(daemon)
        total = len(self.messages)
        for i in range(self.loops):
            target = total * (i + 1) // (self.loops + 2)
            await _wait(lambda t=target: _at_least(scenario, t), 120, daemon)  # type: ignore[misc]
            self.outcome.injected += 1
            daemon = await self.inject(scenario, daemon)
            self.outcome.survived += 1
        await scenario.wait_volume(total, 300, daemon)
        await scenario.wait_cursor(until, 120, daemon)
        got = await scenario.wait_notifications(expected, until, 30)
        self.late += metric(port_of(daemon), "finsent_late_messages_total")
        code = daemon.terminate()
        assert code == 0, f"the daemon did not stop cleanly (exit {code})\n{daemon.tail(15)}"
        volume = await scenario.volume()
        self.outcome.lost = max(0, total - volume)
        self.outcome.double_counted = max(0, volume - total)
        self.outcome.late = int(self.late)
        self.outcome.notifications = f"{len(got)} / {len(expected)}" + (" equal" if got == expected else " DIFFER")
        self.outcome.ok = got == expected and volume == total and self.outcome.orphans == 0

    async def inject(self, scenario: ChaosScenario, daemon: Daemon) -> Daemon:
        if self.fault == "kill -9 + restart":
            self.late += _late(daemon)
            children = daemon.children()
            daemon.kill()
            self.outcome.orphans += len(wait_gone(children, 15))
            return scenario.start()
        if self.fault == "redis freeze 5 s":
            self.redis.freeze()
            await asyncio.sleep(5)
            self.redis.thaw()
        elif self.fault == "redis restart (3 s down)":
            self.redis.stop()
            await asyncio.sleep(3)
            self.redis.start()
        elif self.fault == "redis down 60 s":
            self.redis.stop()
            await asyncio.sleep(60)
            self.redis.start()
        elif self.fault == "redis full 10 s":
            await self.redis.set_maxmemory("1")
            await asyncio.sleep(10)
            await self.redis.set_maxmemory("0")
        elif self.fault == "broker freeze 10 s":
            self.broker.freeze()
            await asyncio.sleep(10)
            self.broker.thaw()
        daemon.assert_alive()
        return daemon


def _late(daemon: Daemon) -> float:
    try:
        return metric(port_of(daemon, 5), "finsent_late_messages_total")
    except OSError:
        return 0.0


async def _at_least(scenario: ChaosScenario, n: int) -> bool:
    return await scenario.volume() >= n


async def _wait(predicate: Callable[[], Awaitable[bool]], timeout_s: float, daemon: Daemon) -> None:
    deadline = time.monotonic() + timeout_s
    while not await predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"stream stalled\n{daemon.tail(5)}")
        daemon.assert_alive()
        await asyncio.sleep(0.05)


FAULTS = {"kill9": "kill -9 + restart", "redis-freeze": "redis freeze 5 s",
          "redis-restart": "redis restart (3 s down)", "broker-freeze": "broker freeze 10 s",
          "redis-down-60s": "redis down 60 s", "redis-full": "redis full 10 s"}
ONCE = {"redis-down-60s"}
"""Drills injected once whatever ``--loops`` says (they are long)."""


async def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loops", type=int, default=5, help="fault injections per drill")
    parser.add_argument("--buckets", type=int, default=210, help="stream length in 1-minute buckets (48 msg each)")
    parser.add_argument("--only", default=",".join(FAULTS), help=f"comma-separated subset of {list(FAULTS)}")
    args = parser.parse_args(argv)
    from monitor.logging import configure_logging

    configure_logging("ERROR", "console")  # the reference run's and the checks' logs would bury the table
    messages = stream(buckets=args.buckets, surge=range(args.buckets - 30, args.buckets - 27), per_bucket=48)
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="finsent-chaos-") as tmp:
        root = Path(tmp)
        until = closed_by_data_s(messages, BUCKET_S, LATENESS_S)
        expected = await reference(messages, root, BUCKET_S, LATENESS_S, until)
        for key in args.only.split(","):
            started = time.monotonic()
            loops = 1 if key in ONCE else args.loops
            outcome = await Drill(root / key, FAULTS[key], messages, loops).run(expected, until)
            outcome.note = outcome.note or f"{time.monotonic() - started:.0f} s"
            outcomes.append(outcome)
            print(f"{outcome.fault}: {'ok' if outcome.ok else 'FAILED'} ({outcome.note})", file=sys.stderr)
    print(f"\n{len(messages)} valid + {len(MALFORMED) * 5} malformed messages, 3 partitions, lexicon classifier\n")
    print("| fault | runs survived | messages lost | double-counted | valid judged late | processes left behind "
          "| notifications vs reference |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for o in outcomes:
        cells = [o.fault, f"{o.survived}/{o.injected}", o.lost, o.double_counted, o.late, o.orphans, o.notifications]
        print("| " + " | ".join(str(c) for c in cells) + " |")
    return 0 if all(o.ok for o in outcomes) else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main(sys.argv[1:])))
