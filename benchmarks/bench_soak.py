"""Live soak: a producer at a fixed rate → Kafka (tansu) → the real daemon → Redis windows, for minutes.

    python benchmarks/bench_soak.py                          # 10 minutes at 200 msg/s, bundled model
    python benchmarks/bench_soak.py --short                  # 45 s (CI smoke: `make bench-short`)
    python benchmarks/bench_soak.py --rate 300 --classifier lexicon

Starts redis-server and a tansu broker on 127.0.0.1 (tests/servers.py, tests/kafka_broker.py), creates
the news/comments topics (2 partitions each), runs ``monitor run`` exactly as in production
(configs/production.toml + MONITOR_* overrides, HTTP on a free port, log sink only) and produces the
demo stream's texts with fresh ids and *current* event times at ``--rate`` messages/s. Every
``--sample-s`` it prints: produced, processed (``finsent_messages_total`` from /metrics), lag
(= produced - processed), the processing rate over the interval, the daemon's RSS with its worker process (/proc)
and the event loop's lag (p99 of a probe waking every 0.25 s, ``finsent_event_loop_lag_seconds``).

Verdict at the end: **flat lag** = the lag over the second half never exceeds ``rate x 2 s`` above
its first value there (it keeps up rather than falling behind), **bounded memory** = RSS at the end is
within 15% of RSS at the half-way sample. Both are printed, not asserted: on a shared host a
neighbour's burst shows as lag, and the numbers say so. A daemon that processed nothing gets
"NO (nothing processed)" for both and the script exits 1: an idle daemon's flat lines prove nothing.
A /metrics scrape that fails (2 s timeout) is a missing sample ("no /metrics" in its row), not zero processed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiokafka import AIOKafkaProducer

from monitor.config import REPO_ROOT
from tests.kafka_broker import create_topics, kafka_broker
from tests.servers import free_port, redis_server

PRODUCTION_CONFIG = REPO_ROOT / "configs" / "production.toml"
DEMO_STREAM = REPO_ROOT / "data" / "demo_stream.jsonl"
PARTITIONS = 2


@dataclass
class Sample:
    at_s: float
    produced: int
    processed: int
    rss_mib: float
    loop_lag: dict[float, float]
    """Cumulative ``finsent_event_loop_lag_seconds`` bucket counts at this sample."""
    scraped: bool = True
    """False when /metrics did not answer (``scrape`` gave ""): ``processed`` and ``loop_lag`` are then unknown, not
    zero, and the sample is left out of lag and rate (one timed-out last scrape failed a good run: found by review)."""

    @property
    def lag(self) -> int:
        return self.produced - self.processed


def demo_messages() -> list[dict[str, object]]:
    out = []
    for line in DEMO_STREAM.read_text(encoding="utf-8").splitlines():
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict) and isinstance(obj.get("text"), str):
            out.append({k: obj[k] for k in ("source", "text", "tickers") if k in obj})
    return out


def rss_mib(pid: int) -> float:
    """RSS of the daemon and its descendants (the inference worker process, monitor/engine/inference_process.py)."""
    total_kib = 0
    for one in [pid, *descendants(pid)]:
        try:
            for line in Path(f"/proc/{one}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kib += int(line.split()[1])
        except OSError:
            pass
    return total_kib / 1024


def descendants(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):  # a child belongs to the thread that started it
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in map(int, children):
            found += [child, *descendants(child)]
    return found


def scrape(port: int) -> str:
    """The daemon's /metrics text ("" before it serves)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as reply:
            return str(reply.read().decode())
    except OSError:
        return ""


def processed(text: str) -> int:
    """Sum of ``finsent_messages_total`` over sources."""
    return int(sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("finsent_messages_total{")))


def loop_lag_buckets(text: str) -> dict[float, float]:
    """Cumulative counts of ``finsent_event_loop_lag_seconds`` by upper bound (s)."""
    prefix = 'finsent_event_loop_lag_seconds_bucket{le="'
    return {float(line[len(prefix):].split('"', 1)[0]): float(line.rsplit(" ", 1)[1])
            for line in text.splitlines() if line.startswith(prefix)}


def lag_quantile(new: dict[float, float], old: dict[float, float], q: float) -> str:
    """Upper bound of the bucket holding quantile ``q`` of the probes between two scrapes ("-": none)."""
    bounds = sorted(new)
    counts = [new[b] - old.get(b, 0.0) for b in bounds]
    if not counts or counts[-1] <= 0:
        return "-"
    bound = next(b for b, c in zip(bounds, counts, strict=True) if c >= q * counts[-1])
    return "> 10" if bound == float("inf") else f"<= {bound:g}"


async def produce(bootstrap: str, topics: dict[str, str], rate: float, stop: asyncio.Event, counter: list[int]) -> None:
    """``rate`` msg/s in 20 ms ticks, round-robin over partitions, event time = now."""
    messages = demo_messages()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        started, n = time.monotonic(), 0
        while not stop.is_set():
            due = int((time.monotonic() - started) * rate)
            while n < due:
                msg = messages[n % len(messages)]
                body = {**msg, "id": f"soak-{n}", "published_at": datetime.now(UTC).isoformat()}
                topic = topics["comments" if msg.get("source") == "comment" else "news"]
                await producer.send(topic, json.dumps(body).encode(), partition=n % PARTITIONS)
                n += 1
                counter[0] = n
            await asyncio.sleep(0.02)
        await producer.flush()
    finally:
        await producer.stop()


def daemon_env(
    bootstrap: str, redis_url: str, topics: dict[str, str], http_port: int, classifier: str
) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "PYTHONUNBUFFERED": "1",
        "MONITOR_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
        "MONITOR_KAFKA__NEWS_TOPIC": topics["news"],
        "MONITOR_KAFKA__COMMENTS_TOPIC": topics["comments"],
        "MONITOR_KAFKA__DEAD_LETTER_TOPIC": topics["dlq"],
        "MONITOR_KAFKA__GROUP_ID": "soak",
        "MONITOR_WINDOWS__STORE_URL": redis_url,
        "MONITOR_WINDOWS__KEY_PREFIX": "soak",
        "MONITOR_CLASSIFIER__KIND": classifier,
        "MONITOR_ALERTS__SINKS": json.dumps(["log://"]),
        "MONITOR_HTTP__HOST": "127.0.0.1",
        "MONITOR_HTTP__PORT": str(http_port),
        "MONITOR_LOG__FORMAT": "json",
        "MONITOR_LOG__LEVEL": "WARNING",
    }


async def soak(args: argparse.Namespace, bootstrap: str, redis_url: str, workdir: Path) -> int:
    topics = {"news": "soak-news", "comments": "soak-comments", "dlq": "soak-dlq"}
    await create_topics(bootstrap, {topics["news"]: PARTITIONS, topics["comments"]: PARTITIONS, topics["dlq"]: 1})
    port = free_port()
    log_path = workdir / "daemon.log"
    daemon = start_daemon(daemon_env(bootstrap, redis_url, topics, port, args.classifier), workdir, log_path)
    try:
        deadline = time.monotonic() + 120
        while not _serving(port):
            if daemon.poll() is not None or time.monotonic() > deadline:
                print(f"daemon did not start (exit {daemon.poll()}); log tail:\n{log_path.read_text()[-2000:]}")
                return 1
            await asyncio.sleep(0.2)
        samples = await run_producer(args, bootstrap, topics, port, daemon.pid)
    finally:
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(timeout=60)
    worked = print_verdict(args, samples)
    print(f"daemon exited {code} after SIGTERM")
    if not worked:
        print("FAILED: the daemon processed nothing", file=sys.stderr)
    return 0 if code == 0 and worked else 1


def start_daemon(env: dict[str, str], workdir: Path, log_path: Path) -> subprocess.Popen[bytes]:
    """``monitor run`` as in production; its output goes to ``log_path``."""
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "monitor.cli", "--config", str(PRODUCTION_CONFIG), "run"],
            cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
        )


def _serving(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
            return True
    except OSError:
        return False


async def run_producer(args: argparse.Namespace, bootstrap: str, topics: dict[str, str], port: int,
                       pid: int) -> list[Sample]:
    stop, counter = asyncio.Event(), [0]
    producer = asyncio.create_task(produce(bootstrap, topics, args.rate, stop, counter))
    samples: list[Sample] = []
    started = time.monotonic()
    print("| t (s) | produced | processed | lag | processed msg/s | RSS MiB | event-loop lag p99 (s) |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    while (elapsed := time.monotonic() - started) < args.duration_s:
        await asyncio.sleep(min(args.sample_s, max(0.1, args.duration_s - elapsed)))
        text = await asyncio.to_thread(scrape, port)
        s = Sample(time.monotonic() - started, counter[0], processed(text), rss_mib(pid), loop_lag_buckets(text),
                   scraped=bool(text))
        prev = next((p for p in reversed(samples) if p.scraped), Sample(0.0, 0, 0, 0.0, {}))
        samples.append(s)
        if not s.scraped:
            print(f"| {s.at_s:.0f} | {s.produced:,} | no /metrics | - | - | {s.rss_mib:,.0f} | - |", flush=True)
            continue
        rate = (s.processed - prev.processed) / max(s.at_s - prev.at_s, 1e-9)
        print(f"| {s.at_s:.0f} | {s.produced:,} | {s.processed:,} | {s.lag:,} | {rate:,.0f} | {s.rss_mib:,.0f} "
              f"| {lag_quantile(s.loop_lag, prev.loop_lag, 0.99)} |", flush=True)
    stop.set()
    await producer
    return samples


def verdict(ok: bool, worked: bool) -> str:
    """The verdict word: "yes" or "NO", and never "yes" for a daemon that did no work."""
    return ("yes" if ok else "NO") if worked else "NO (nothing processed)"


def print_verdict(args: argparse.Namespace, samples: Sequence[Sample]) -> bool:
    """Print the verdicts; False when the daemon processed nothing (a flat RSS and lag of an idle daemon
    prove nothing, so both verdicts are then NO and the run fails). A sample whose scrape failed is left out of
    lag, rate and the event loop (its RSS, read from /proc, still counts)."""
    counted = [s for s in samples if s.scraped]
    worked = any(s.processed > 0 for s in counted)
    if len(samples) > len(counted):
        print(f"{len(samples) - len(counted)} of {len(samples)} /metrics scrapes failed: left out of lag and rate")
    if len(counted) < 2:
        print("too few samples for a verdict" + ("" if worked else " (nothing processed)"))
        return worked
    half = counted[len(counted) // 2 :]
    growth = max(s.lag for s in half) - half[0].lag
    flat = growth <= args.rate * 2
    rss_half = samples[len(samples) // 2 :]
    memory = samples[-1].rss_mib / max(rss_half[0].rss_mib, 1e-9)
    overall = (counted[-1].processed - counted[0].processed) / max(counted[-1].at_s - counted[0].at_s, 1e-9)
    print(f"\nproducer {args.rate:,.0f} msg/s for {samples[-1].at_s:.0f} s; daemon processed {overall:,.0f} msg/s "
          f"(first to last sample); final lag {counted[-1].lag:,}")
    print(f"flat lag: {verdict(flat, worked)} (second half grew by {growth:,} messages; bound {args.rate * 2:,.0f})")
    print(f"bounded memory: {verdict(memory <= 1.15, worked)} (RSS {rss_half[0].rss_mib:,.0f} -> "
          f"{samples[-1].rss_mib:,.0f} MiB over the second half, max {max(s.rss_mib for s in samples):,.0f} MiB)")
    last, first = counted[-1].loop_lag, counted[0].loop_lag
    stalls = last.get(float("inf"), 0.0) - last.get(1.0, 0.0) - (first.get(float("inf"), 0.0) - first.get(1.0, 0.0))
    print(f"event loop: p99 lag {lag_quantile(last, first, 0.99)} s, p99.9 {lag_quantile(last, first, 0.999)} s, "
          f"{stalls:,.0f} stalls over 1 s (probe every 0.25 s)")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cpus")
    return worked


def main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rate", type=float, default=200.0, help="producer messages/s")
    p.add_argument("--duration-s", type=float, default=600.0)
    p.add_argument("--sample-s", type=float, default=30.0)
    p.add_argument("--short", action="store_true", help="45 s, samples every 5 s")
    p.add_argument("--classifier", choices=["transformer", "lexicon"], default="transformer")
    args = p.parse_args(list(argv))
    if args.short:
        args.duration_s, args.sample_s = min(args.duration_s, 45.0), min(args.sample_s, 5.0)
    with tempfile.TemporaryDirectory(prefix="finsent-soak-") as tmp, redis_server(Path(tmp)) as redis_url, \
            kafka_broker() as bootstrap:
        return asyncio.run(soak(args, bootstrap, redis_url, Path(tmp)))


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
