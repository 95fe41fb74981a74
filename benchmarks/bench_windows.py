"""Throughput of ``RedisWindowStore.apply``: one message per call (naive) vs batched script calls.

Starts its own throwaway redis-server (``tests/servers.py``), so the numbers include a real
loopback round trip but no network. Run from the repo root::

    python -m benchmarks.bench_windows [--messages 20000] [--batch-sizes 1,256]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from monitor.types import ClassifiedMessage, Sentiment
from monitor.windows.redis import RedisWindowStore
from tests.contract.messages import T0, classified
from tests.servers import redis_server

TICKERS = ["TSLA", "AAPL", "MSFT", "NVDA", "AMZN", "META", "GOOG", "JPM"]
TOPICS = ["earnings", "mna", "macro", "regulation", "product"]


def stream(count: int, seed: int = 7) -> list[ClassifiedMessage]:
    """``count`` distinct messages over ~an hour: 0-2 tickers each, a third of them negative."""
    rng = random.Random(seed)
    out = []
    for n in range(count):
        sentiment = rng.choice(list(Sentiment))
        sign = {Sentiment.NEGATIVE: -1, Sentiment.NEUTRAL: 0, Sentiment.POSITIVE: 1}[sentiment]
        out.append(
            classified(
                f"msg-{n}",
                at_s=T0 + n * 3600 // count,
                sentiment=sentiment,
                score=sign * rng.random(),
                topic=rng.choice(TOPICS),
                tickers=rng.sample(TICKERS, rng.randint(0, 2)),
                text="Shares slid after the company cut its full-year guidance " * 2,
            )
        )
    return out


async def run_one(url: str, messages: list[ClassifiedMessage], batch_size: int) -> dict[str, float]:
    latencies_s: list[float] = []
    store = RedisWindowStore(url, key_prefix=f"bench-{batch_size}", bucket_s=300, retention_s=86_400,
                             top_negative_per_bucket=5)  # fmt: skip
    async with store:
        began = time.perf_counter()
        for first in range(0, len(messages), batch_size):
            t = time.perf_counter()
            await store.apply(messages[first : first + batch_size])
            latencies_s.append(time.perf_counter() - t)
        elapsed_s = time.perf_counter() - began
    cuts = statistics.quantiles(latencies_s, n=100, method="inclusive")
    return {
        "batch": batch_size,
        "messages": len(messages),
        "msgs_per_s": len(messages) / elapsed_s,
        "p50_ms": cuts[49] * 1e3,
        "p99_ms": cuts[98] * 1e3,
    }


async def main_async(total: int, batch_sizes: list[int]) -> None:
    messages = stream(total)
    with tempfile.TemporaryDirectory() as workdir, redis_server(Path(workdir)) as url:
        print(f"{'batch':>6} {'messages':>9} {'msgs/s':>10} {'p50 ms/batch':>13} {'p99 ms/batch':>13}")
        for size in batch_sizes:
            # the naive case is slow by design: give it a tenth of the messages
            sample = messages[: max(total // 10, 100)] if size == 1 else messages
            row = await run_one(url, sample, size)
            print(f"{row['batch']:>6.0f} {row['messages']:>9.0f} {row['msgs_per_s']:>10.0f} "
                  f"{row['p50_ms']:>13.3f} {row['p99_ms']:>13.3f}")  # fmt: skip


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--batch-sizes", default="1,256", help="comma-separated, e.g. 1,16,256")
    args = parser.parse_args(argv)
    asyncio.run(main_async(args.messages, [int(s) for s in args.batch_sizes.split(",")]))


if __name__ == "__main__":
    main(sys.argv[1:])
