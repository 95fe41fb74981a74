"""What the memory store holds stays bounded and cheap: message ids are forgotten oldest first, at the cost of
what expires (it scanned every id of the retention on each write: 0.1 s per million ids, on the event loop),
and evidence keeps a bounded prefix of each text."""

from __future__ import annotations

import dataclasses

from monitor.windows.base import Applied
from monitor.windows.buckets import EVIDENCE_STORED_CHARS, EVIDENCE_URL_MAX_CHARS
from monitor.windows.memory import MemoryWindowStore
from tests.unit.alerts.builders import DAY0_S, messages


async def test_ids_expire_oldest_first_and_a_duplicate_inside_the_retention_counts_once() -> None:
    now = [0.0]
    store = MemoryWindowStore(bucket_s=300, retention_s=100, clock=lambda: now[0])
    first = messages(DAY0_S, 1, 2_000)
    assert await store.apply(first) == Applied(2_001)
    now[0] = 50.0
    assert await store.apply(first[:10]) == Applied(0)  # redelivered: counted once
    late = messages(DAY0_S, 0, 1)
    assert await store.apply(late) == Applied(1)
    now[0] = 120.0  # the first batch is past the retention, the late one is not
    assert await store.apply(first[:1]) == Applied(1)  # seen anew
    assert await store.apply(late) == Applied(0)
    assert list(store._seen) == [late[0].message.id, first[0].message.id]  # in the order seen


async def test_an_id_reused_with_other_content_is_a_conflict_only_inside_the_retention() -> None:
    now = [0.0]
    store = MemoryWindowStore(bucket_s=300, retention_s=100, clock=lambda: now[0])
    [first] = messages(DAY0_S, 1, 0)
    other = dataclasses.replace(first, message=dataclasses.replace(first.message, text="corrected story"))
    await store.apply([first])
    now[0] = 99.0
    assert await store.apply([other]) == Applied(0, (0,))
    now[0] = 100.0  # the id's marker expired: the other content is a new message, and is now what the id names
    assert await store.apply([other]) == Applied(1)
    assert await store.apply([first]) == Applied(0, (0,))


async def test_evidence_keeps_a_bounded_prefix_of_a_long_text() -> None:
    """A negative message is evidence in every window it counts in; kept whole, one long text cost megabytes."""
    store = MemoryWindowStore(bucket_s=300, retention_s=86_400)
    await store.apply(messages(DAY0_S, 1, 0, text="Bank fails. " * 2_000))
    [evidence] = await store.top_negative("ticker:TSLA", DAY0_S, DAY0_S + 300, 5)
    assert len(evidence.text) == EVIDENCE_STORED_CHARS and evidence.text.startswith("Bank fails.")


async def test_evidence_keeps_a_link_of_ordinary_length_and_drops_a_huge_one() -> None:
    """Found by review: one 63,000-character url on a comment with 32 tickers cost 4.4 MB of Redis for 14 days."""
    store = MemoryWindowStore(bucket_s=300, retention_s=86_400)
    ok = "https://news.example/" + "a" * 1_000
    await store.apply(messages(DAY0_S, 1, 0, url=ok))
    await store.apply(messages(DAY0_S + 300, 1, 0, url="https://x.example/" + "a" * (EVIDENCE_URL_MAX_CHARS + 1)))
    [kept] = await store.top_negative("ticker:TSLA", DAY0_S, DAY0_S + 300, 5)
    [dropped] = await store.top_negative("ticker:TSLA", DAY0_S + 300, DAY0_S + 600, 5)
    assert kept.url == ok and dropped.url is None
