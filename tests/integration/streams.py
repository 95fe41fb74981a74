"""Synthetic ACME streams for end-to-end tests: a steady baseline with a negative surge.

Every message is a story of its own (novelty would fold copies of one text into one story): the
three base texts carry a per-message reference of digit groups, which no classifier reads as
sentiment and which keeps any two messages far below the near-duplicate threshold.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

BUCKET_S = 60
T0 = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
NEGATIVE = "ACME shares plunge after fraud probe, analysts downgrade"
NEUTRAL = "ACME to hold annual meeting on Tuesday"
POSITIVE = "ACME beats estimates, raises guidance"


def reference(mid: str) -> str:
    """Six groups of four digits derived from the message id (deterministic, distinct per message)."""
    digits = str(int.from_bytes(hashlib.blake2b(mid.encode(), digest_size=16).digest(), "big")).zfill(24)
    return " ".join(digits[k : k + 4] for k in range(0, 24, 4))


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
            out.append({"id": f"m-{b}-{i}", "source": "news", "text": f"{text} #{b}-{i} ref {reference(f'm-{b}-{i}')}",
                        "published_at": ts.isoformat().replace("+00:00", "Z"), "tickers": ["ACME"],
                        "url": f"https://news.example.com/{b}/{i}"})
    return out


