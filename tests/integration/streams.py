"""Synthetic ACME streams for end-to-end tests: a steady baseline with a negative surge."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

BUCKET_S = 60
T0 = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
NEGATIVE = "ACME shares plunge after fraud probe, analysts downgrade"
NEUTRAL = "ACME to hold annual meeting on Tuesday"
POSITIVE = "ACME beats estimates, raises guidance"


def stream(buckets: int = 40, surge: range = range(30, 33), per_bucket: int = 24) -> list[dict[str, object]]:
    """A steady ACME stream (~8% negative) with a negative surge in ``surge`` buckets."""
    out: list[dict[str, object]] = []
    for b in range(buckets):
        for i in range(per_bucket):
            if b in surge:
                text = NEGATIVE if i % 10 else NEUTRAL
            else:
                text = NEGATIVE if i % 12 == 0 else (POSITIVE if i % 3 == 0 else NEUTRAL)
            ts = T0 + timedelta(seconds=b * BUCKET_S + i * (BUCKET_S // per_bucket))
            out.append({"id": f"m-{b}-{i}", "source": "news", "text": f"{text} #{b}-{i}",
                        "published_at": ts.isoformat().replace("+00:00", "Z"), "tickers": ["ACME"],
                        "url": f"https://news.example.com/{b}/{i}"})
    return out


