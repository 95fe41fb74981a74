"""``WindowStore`` on Redis: one atomic Lua call per batch, idempotent per message id.

Key layout (``P`` = ``key_prefix``; ``W`` = a window key such as ``ticker:TSLA``; ``B`` = bucket start)::

    {P}:seen:<message id>   string  dedup marker: the message's ``content_digest``, ``SET NX EX retention_s``
    {P}:b:W:B               hash    neg / neu / pos / rep (HINCRBY), score_sum (HINCRBYFLOAT)
    {P}:ev:W:B              zset    top-N most negative evidence; score = sentiment score
    {P}:idx:W               zset    bucket starts of W (member = score = B)
    {P}:active              zset    window key -> its newest bucket start (ZADD GT); its ZCARD: finsent_window_keys
    {P}:epoch               string  the namespace's marker, no TTL (monitor/windows/epoch.py)
    {P}:gen                 string  write generation, no TTL: INCR by every apply call (a rollback shows it lower)

Why it is shaped this way:

- **Atomic idempotency.** The script sets the seen marker and applies the increments of a message in
  one step, so a crash or redelivery can never count a message twice or half. Every key the script
  touches is passed in ``KEYS`` (as Redis Cluster requires) and the script is declared with a
  ``#!lua`` shebang, so an out-of-memory server rejects it *before* it writes anything (no partial
  batch). This needs Redis >= 7.0. Inputs that Redis would reject mid-script (non-finite scores)
  are refused in Python first, because Lua scripts are not rolled back on error. A batch larger
  than ``max_messages_per_call`` becomes several calls (bounding how long Redis is blocked); each is
  atomic, and a retry after a failure between them still counts nothing twice.
- **Conflicts, not silent drops.** The seen marker holds the message's ``content_digest``. When the
  ``SET NX`` finds a marker, the script reads it in the same step: the same digest is a redelivery,
  another one a different message under a reused id, returned as a conflict for the caller to
  dead-letter. A marker of another digest version (``1``, written before digests were kept) matches
  anything, so an upgrade does not turn every redelivery into a conflict.
- **Cluster-safe keys, at a price.** Every key carries the hash tag ``{P}``, so one batch (which
  touches many window keys) lives in one slot and one script call stays legal in Redis Cluster.
  The price: a whole namespace sits on one shard. Scale by giving independent deployments their
  own prefixes; tagging per window key instead would split a message's effects across slots and
  lose the atomic seen-marker-plus-increments step.
- **Retention.** ``EXPIRE retention_s`` is set on every key a batch touches, and it is wall-clock:
  when replaying old history the TTL counts from the write, not from the event time. Event-time
  retention is separate: after each batch the script drops index entries older than
  ``newest bucket start - retention_s`` (newest over the whole namespace, as in
  ``MemoryWindowStore``), and readers apply the same horizon to keys the batch did not touch.
- **Floats.** ``score_sum`` is summed by HINCRBYFLOAT (long double, stored with 17 significant
  digits). Scores travel as Python ``repr`` strings, never through Lua numbers (which print with
  14 digits). Sums therefore agree with a Python fold to rounding error, not bit for bit: the
  addition order and precision differ (the contract suite allows 1e-9 relative).
- **Evidence ties.** Members are ``<message id> NUL <compact JSON of EvidenceItem>``, so Redis'
  (score, member) order equals ``(score, message_id)`` order: among equal scores the smallest ids
  are kept, as in ``MemoryWindowStore`` (exact for ids without NUL characters).
- **Durability.** "Durable on return" means the script returned: the write is in Redis memory and
  visible to every reader. Whether it survives a Redis crash is decided by Redis persistence
  (``appendonly yes`` with ``appendfsync always|everysec``), not by this module.

- **Reads in two round trips, whatever the number of keys.** ``buckets_many`` (detection reads every
  active key's history per pass) runs two read-only scripts, each chunked to ``max_keys_per_read``
  keys per call and the chunks sent as one pipeline: first every key's bucket starts from its index,
  then the fields of every bucket hash found. Each script gets every key it reads in ``KEYS`` (the
  bucket hashes are named only once the first step returned their starts, hence two steps), so reads
  stay Cluster-legal; ``flags=no-writes`` lets them run on a replica or a full server. One command
  per chunk instead of one per key or bucket: redis-py's per-command cost, not Redis, was what
  detection spent its time on (benchmarks/RESULTS.md). Reads are not a snapshot: a batch landing
  between the two steps may show in the second.

AUTH and TLS come from the URL: ``redis://[user]:password@host:port/db``, ``rediss://`` for TLS,
``unix:///path/redis.sock?db=0`` for a local socket.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
from collections.abc import Sequence
from typing import Any, TypeVar, cast

from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisClusterException, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from monitor import metrics
from monitor.lifecycle import Service
from monitor.redact import redact_url
from monitor.redis_connect import RedisClient, config_value, connect
from monitor.retry import refusing_for_now, retrying
from monitor.types import ClassifiedMessage, Sentiment
from monitor.windows.base import Applied
from monitor.windows.buckets import BucketStats, EvidenceItem, content_digest, evidence_of, increments, is_key_prefix
from monitor.windows.epoch import (
    CHECK_EVERY_S,
    StoreEpoch,
    report_evictions,
    report_loss,
    report_loss_while_down,
    report_rollback,
    warn_if_evicting,
)

SENTIMENT_FIELDS: dict[Sentiment, str] = {
    Sentiment.NEGATIVE: "neg",
    Sentiment.NEUTRAL: "neu",
    Sentiment.POSITIVE: "pos",
}
REPEAT_FIELD = "rep"

# KEYS: active, seen x M, (bucket hash, evidence zset) x S, index zset x W
# ARGV: retention_s, top_n, M, S, W, (bucket start, window key, index no.) x S,
#       then per message: sentiment field (or "rep" for a repeat), score, evidence member or "",
#       content digest ("d1:" + 16 hex), n, n slot numbers (0-based)
# The last key is the write generation ({P}:gen).
# Returns {fresh, generation, conflict index, ...}: the number of messages counted, the generation after this
# call, then the 1-based index (among the M messages) of each one not counted because its seen marker holds
# another digest.
APPLY_LUA = """#!lua
local generation = redis.call('INCR', KEYS[#KEYS])
local retention = tonumber(ARGV[1])
local top_n = tonumber(ARGV[2])
local m, s = tonumber(ARGV[3]), tonumber(ARGV[4])
local slot_key0 = 1 + m
local idx_key0 = slot_key0 + 2 * s
local touched = {}
local fresh = 0
local out = {0, generation}
local pos = 6 + 3 * s
for i = 1, m do
  local field, score, member, digest = ARGV[pos], ARGV[pos + 1], ARGV[pos + 2], ARGV[pos + 3]
  local n = tonumber(ARGV[pos + 4])
  if redis.call('SET', KEYS[1 + i], digest, 'NX', 'EX', retention) then
    fresh = fresh + 1
    for j = 1, n do
      local slot = tonumber(ARGV[pos + 4 + j])
      local h = KEYS[slot_key0 + 2 * slot + 1]
      redis.call('HINCRBY', h, field, 1)
      if field ~= 'rep' then redis.call('HINCRBYFLOAT', h, 'score_sum', score) end
      if member ~= '' then
        local ev = KEYS[slot_key0 + 2 * slot + 2]
        redis.call('ZADD', ev, score, member)
        redis.call('ZREMRANGEBYRANK', ev, top_n, -1)
      end
      touched[slot] = true
    end
  else
    -- a marker of another digest version (or "1", written before digests were kept) matches anything
    local stored = redis.call('GET', KEYS[1 + i])
    if stored and stored ~= digest and #stored == #digest and string.sub(stored, 1, 3) == string.sub(digest, 1, 3) then
      out[#out + 1] = i
    end
  end
  pos = pos + 5 + n
end
out[1] = fresh
if fresh == 0 then return out end
local active = KEYS[1]
local indexes = {}
for slot, _ in pairs(touched) do
  local a = 6 + 3 * slot
  local start, window, idx = ARGV[a], ARGV[a + 1], KEYS[idx_key0 + tonumber(ARGV[a + 2])]
  redis.call('EXPIRE', KEYS[slot_key0 + 2 * slot + 1], retention)
  redis.call('EXPIRE', KEYS[slot_key0 + 2 * slot + 2], retention)
  redis.call('ZADD', idx, start, start)
  redis.call('ZADD', active, 'GT', start, window)
  indexes[idx] = true
end
local newest = redis.call('ZRANGE', active, -1, -1, 'WITHSCORES')
local horizon = '(' .. (tonumber(newest[2]) - retention)
for idx, _ in pairs(indexes) do
  redis.call('ZREMRANGEBYSCORE', idx, '-inf', horizon)
  redis.call('EXPIRE', idx, retention)
end
redis.call('ZREMRANGEBYSCORE', active, '-inf', horizon)
redis.call('EXPIRE', active, retention)
return out
"""


# KEYS: active, index zset x N; ARGV: start_s, end_s, retention_s. Per index, its bucket starts in
# [start_s, end_s) and not behind the event-time horizon (newest bucket start - retention_s); an empty
# reply when the namespace holds nothing.
STARTS_LUA = """#!lua flags=no-writes
local newest = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if #newest == 0 then return {} end
local lo = tonumber(newest[2]) - tonumber(ARGV[3])
if tonumber(ARGV[1]) > lo then lo = ARGV[1] end
local out = {}
for i = 2, #KEYS do
  out[i - 1] = redis.call('ZRANGEBYSCORE', KEYS[i], lo, '(' .. ARGV[2])
end
return out
"""

# KEYS: seen markers; -> each one's value, '' where there is none (a script, not MGET: Redis Cluster
# pipelines refuse multi-key commands)
MARKERS_LUA = """#!lua flags=no-writes
local out = {}
for i = 1, #KEYS do out[i] = redis.call('GET', KEYS[i]) or '' end
return out
"""

# KEYS: bucket hash x N; ARGV: the fields to read. The fields of every hash, flat (N x #ARGV; a
# missing field or hash is nil).
FIELDS_LUA = """#!lua flags=no-writes
local out, n = {}, 0
for i = 1, #KEYS do
  local row = redis.call('HMGET', KEYS[i], unpack(ARGV))
  for j = 1, #ARGV do
    n = n + 1
    out[n] = row[j]
  end
end
return out
"""
BUCKET_FIELDS = ("neg", "neu", "pos", "score_sum", REPEAT_FIELD)
"""The fields ``FIELDS_LUA`` reads, in ``stats_of_row``'s order."""


class StoreUnavailableError(ConnectionError):
    """Redis could not be reached or refused us at start; the message names ``windows.store_url``."""




_EVIDENCE_FIELDS = tuple(f.name for f in dataclasses.fields(EvidenceItem))


def encode_evidence(ev: EvidenceItem) -> str:
    """Sorted-set member: the id first (tie-break order), then the item as compact JSON.

    The dict is built field by field (the same keys in the same order as ``dataclasses.asdict``, so
    the bytes are identical): asdict deep-copies every value and was most of the per-message cost
    of a batch's encoding (it halved in a profile: benchmarks/RESULTS.md)."""
    payload = json.dumps({f: getattr(ev, f) for f in _EVIDENCE_FIELDS}, separators=(",", ":"), ensure_ascii=True)
    return f"{ev.message_id}\x00{payload}"


def decode_evidence(member: str) -> EvidenceItem:
    # JSON escapes NUL, so the last NUL always starts the payload, even if the id holds one.
    return EvidenceItem(**json.loads(member.rsplit("\x00", 1)[1]))


class KeySpace:
    """Names of every key under one prefix (see the module docstring for the layout)."""

    def __init__(self, prefix: str) -> None:
        if not is_key_prefix(prefix):
            raise ValueError(f"windows.key_prefix {prefix!r}: must be non-empty and contain no braces")
        self.tag = f"{{{prefix}}}"
        self.active = f"{self.tag}:active"
        self.epoch = f"{self.tag}:epoch"
        self.generation = f"{self.tag}:gen"

    def seen(self, message_id: str) -> str:
        return f"{self.tag}:seen:{message_id}"

    def bucket(self, window: str, start_s: int) -> str:
        return f"{self.tag}:b:{window}:{start_s}"

    def evidence(self, window: str, start_s: int) -> str:
        return f"{self.tag}:ev:{window}:{start_s}"

    def index(self, window: str) -> str:
        return f"{self.tag}:idx:{window}"


def build_apply_call(
    items: Sequence[ClassifiedMessage], keys: KeySpace, *, bucket_s: int, retention_s: int, top_n: int
) -> tuple[list[str], list[str]]:
    """``(KEYS, ARGV)`` for ``APPLY_LUA``; pure, so the encoding is unit-tested without Redis."""
    slots: dict[tuple[str, int], int] = {}
    windows: dict[str, int] = {}
    messages: list[str] = []
    for item in items:
        score = item.prediction.score
        if not math.isfinite(score):
            raise ValueError(f"message {item.message.id!r}: sentiment score {score!r} is not finite")
        repeat = item.repeat_of is not None  # a repeat only counts as ``rep``: no sentiment, score or evidence
        member = encode_evidence(evidence_of(item)) if top_n > 0 and score < 0 and not repeat else ""
        field = REPEAT_FIELD if repeat else SENTIMENT_FIELDS[item.prediction.sentiment]
        refs = [
            str(slots.setdefault((inc.key, inc.start_s), len(slots))) for inc in increments(item, bucket_s)
        ]
        messages += [field, repr(score), member, content_digest(item.message), str(len(refs)), *refs]
    slot_keys: list[str] = []
    slot_args: list[str] = []
    for window, start in slots:
        slot_keys += [keys.bucket(window, start), keys.evidence(window, start)]
        slot_args += [str(start), window, str(windows.setdefault(window, len(windows) + 1))]
    key_list = [keys.active, *(keys.seen(i.message.id) for i in items), *slot_keys]
    key_list += [keys.index(w) for w in windows]
    key_list.append(keys.generation)  # the script finds it last
    head = [str(retention_s), str(top_n), str(len(items)), str(len(slots)), str(len(windows))]
    return key_list, head + slot_args + messages


def stats_of_row(window: str, start_s: int, row: Sequence[str | None]) -> BucketStats | None:
    """A bucket from its ``BUCKET_FIELDS`` values; None when the hash is gone (every field nil)."""
    if all(value is None for value in row):
        return None
    neg, neu, pos, score_sum, rep = row
    return BucketStats(
        key=window,
        start_s=start_s,
        negative=int(neg or 0),
        neutral=int(neu or 0),
        positive=int(pos or 0),
        score_sum=float(score_sum or 0.0),
        repeats=int(rep or 0),
    )


T = TypeVar("T")


def chunked(items: Sequence[T], size: int) -> list[Sequence[T]]:
    return [items[first : first + size] for first in range(0, len(items), size)]


class RedisWindowStore(Service):
    """Event-time buckets in Redis shared by every daemon instance (same contract as memory)."""

    _apply: AsyncScript
    _starts: AsyncScript
    _fields: AsyncScript

    def __init__(
        self,
        url: str,
        *,
        key_prefix: str,
        bucket_s: int,
        retention_s: int,
        top_negative_per_bucket: int,
        max_messages_per_call: int = 1024,
        max_keys_per_read: int = 1024,
        connect_timeout_s: float = 5.0,
        epoch_check_every_s: float = CHECK_EVERY_S,
    ) -> None:
        if min(bucket_s, retention_s, max_messages_per_call, max_keys_per_read) < 1 or top_negative_per_bucket < 0:
            raise ValueError(
                "bucket_s, retention_s, max_messages_per_call, max_keys_per_read must be >= 1; top_n >= 0"
            )
        self.url = url
        self.keys = KeySpace(key_prefix)
        self.bucket_s = bucket_s
        self.retention_s = retention_s
        self.top_n = top_negative_per_bucket
        self.max_messages_per_call = max_messages_per_call
        """Larger batches are split into several script calls (bounds how long Redis is blocked)."""
        self.max_keys_per_read = max_keys_per_read
        """Keys one read-script call reads (bounds how long Redis is blocked and the reply size); a
        longer list becomes several calls, sent in one pipeline."""
        self.connect_timeout_s = connect_timeout_s
        self.epoch = StoreEpoch(self.keys.epoch, self.keys.generation, check_every_s=epoch_check_every_s)
        """Notices Redis losing the namespace under the running store (monitor/windows/epoch.py)."""
        self._client: RedisClient | None = None
        self._applying = asyncio.Lock()
        """One apply at a time: the write generation's replies must come back in Redis' order (two concurrent
        applies on one store reported false rollbacks in a review; the pipeline has a single writer anyway)."""

    async def _start(self) -> None:
        self._client = client = await retrying("window_store", self._open, retry_if=refusing_for_now)
        self._apply = client.register_script(APPLY_LUA)
        self._starts = client.register_script(STARTS_LUA)
        self._fields = client.register_script(FIELDS_LUA)
        self._markers = client.register_script(MARKERS_LUA)

    async def _open(self) -> RedisClient:
        """Connect, load the scripts, adopt the namespace marker. A Redis that answers but refuses for now (full,
        read-only, unable to persist, loading) is raised as is, for ``_start`` to wait for; anything else
        becomes one StoreUnavailableError that says what to check."""
        try:
            client = await connect(self.url, decode_responses=True, socket_connect_timeout=self.connect_timeout_s)
        except RedisClusterException as exc:
            raise StoreUnavailableError(
                f"windows.store_url {redact_url(self.url)}: cannot use this Redis Cluster ({exc}) -- every slot "
                "needs a live master: check it with `redis-cli --cluster check HOST:PORT`"
            ) from exc
        except (RedisConnectionError, RedisTimeoutError, ResponseError, OSError) as exc:
            if refusing_for_now(exc):
                raise
            raise self._unusable(exc) from exc
        try:
            for source in (APPLY_LUA, STARTS_LUA, FIELDS_LUA):
                await client.script_load(source)
            await self.epoch.adopt(client)
            await self.epoch.evictions(client)
            await self._report_size(client)
            warn_if_evicting(redact_url(self.url), await config_value(client, "maxmemory-policy"))
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            await client.aclose()
            if refusing_for_now(exc):
                raise
            raise self._unusable(exc) from exc
        except ResponseError as exc:
            await client.aclose()
            if refusing_for_now(exc):
                raise
            raise StoreUnavailableError(
                f"windows.store_url {redact_url(self.url)}: Redis rejected the window script ({exc}) "
                "-- RedisWindowStore needs Redis >= 7.0 and an ACL user allowed to run scripts"
            ) from exc
        return client

    def report_if_lost_while_down(self, partition: str, committed: int) -> None:
        """The Kafka group had read ``partition`` up to ``committed`` before this start: if this start found the
        namespace empty (it wrote the marker), Redis lost the data while the daemon was down."""
        if self.epoch.created_at_start:
            report_loss_while_down(redact_url(self.url), self.retention_s, partition, committed)

    async def _report_size(self, client: RedisClient) -> None:
        """``finsent_window_keys``: one ZCARD of ``{P}:active`` (pruned to retention by the apply script), read
        with the marker check, so the size costs nothing per message."""
        metrics.WINDOW_KEYS.set(await client.zcard(self.keys.active))

    def _unusable(self, exc: BaseException) -> StoreUnavailableError:
        """Redis unreachable at start: the setting, the error and what to check (TLS: where the CA goes)."""
        tls = " (TLS: a private CA goes in the URL, rediss://host:port/0?ssl_ca_certs=/path/ca.pem)"
        return StoreUnavailableError(
            f"windows.store_url {redact_url(self.url)}: cannot use Redis ({exc}) -- check that "
            "redis-server is running and the host/port/password in the URL"
            f"{tls if 'CERTIFICATE' in str(exc) else ''} (or set MONITOR_WINDOWS__STORE_URL)"
        )

    async def _stop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    @property
    def client(self) -> RedisClient:
        if self._client is None:
            raise RuntimeError("RedisWindowStore is not started: call start() or use `async with`")
        return self._client

    async def apply(self, items: Sequence[ClassifiedMessage]) -> Applied:
        client = self.client  # fails fast when not started, even for an empty batch
        async with self._applying:
            return await self._apply_all(client, items)

    async def _apply_all(self, client: RedisClient, items: Sequence[ClassifiedMessage]) -> Applied:
        checking = self.epoch.due()
        if checking:
            if await self.epoch.check(client):
                report_loss(redact_url(self.url), self.retention_s)
            evicted = await self.epoch.evictions(client)
            if evicted:
                report_evictions(redact_url(self.url), evicted)
        fresh = 0
        conflicts: list[int] = []
        for first in range(0, len(items), self.max_messages_per_call):
            chunk = items[first : first + self.max_messages_per_call]
            keys, args = build_apply_call(
                chunk, self.keys, bucket_s=self.bucket_s, retention_s=self.retention_s, top_n=self.top_n
            )
            counted, generation, *clashes = await self._apply(keys=keys, args=args, client=client)
            if lost_calls := self.epoch.went_back(int(generation)):
                await self._report_rollback(client, lost_calls)
            fresh += int(counted)
            conflicts += [first + int(index) - 1 for index in clashes]  # the script's are 1-based, per chunk
        if checking:
            await self._report_size(client)  # after the writes: the size this batch left
        return Applied(fresh, tuple(conflicts))

    async def _report_rollback(self, client: RedisClient, lost_calls: int) -> None:
        """The write generation went back: the namespace was emptied (the marker changed too: reported as a loss,
        sooner than the marker's own check would) or Redis went back to an older copy of it."""
        if await self.epoch.check(client):
            report_loss(redact_url(self.url), self.retention_s)
        else:
            report_rollback(redact_url(self.url), lost_calls)

    async def seen(self, message_ids: Sequence[str]) -> set[str]:
        return set(await self.digests(message_ids))

    async def digests(self, message_ids: Sequence[str]) -> dict[str, str]:
        """One read-only script over the seen markers per chunk, all in one round trip."""
        ids = list(dict.fromkeys(message_ids))
        if not ids:
            return {}
        chunks = chunked(ids, self.max_keys_per_read)
        replies = await self._read([(self._markers, [self.keys.seen(mid) for mid in chunk], []) for chunk in chunks])
        return {mid: str(value) for chunk, values in zip(chunks, replies, strict=True)
                for mid, value in zip(chunk, values, strict=True) if value}

    async def _read(self, calls: Sequence[tuple[AsyncScript, Sequence[str], Sequence[str]]]) -> list[Any]:
        """Read-script calls ``(script, keys, args)`` in one pipeline: one round trip for any number.
        A server that lost the scripts (restart, SCRIPT FLUSH) gets them again, once."""
        client = self.client
        for attempt in range(2):
            pipe = client.pipeline(transaction=False)
            for script, keys, args in calls:
                pipe.evalsha(script.sha, len(keys), *keys, *args)
            try:
                return await pipe.execute()
            except NoScriptError:
                if attempt:
                    raise
                for script in {script for script, _, _ in calls}:
                    await client.script_load(script.script)
        raise AssertionError("unreachable")

    async def _starts_many(self, windows: Sequence[str], start_s: int, end_s: int) -> dict[str, list[int]]:
        """Bucket starts of each window in ``[start_s, end_s)``, minus those past event-time retention."""
        chunks = chunked(windows, self.max_keys_per_read)
        args = [str(start_s), str(end_s), str(self.retention_s)]
        replies = await self._read(
            [(self._starts, [self.keys.active, *map(self.keys.index, chunk)], args) for chunk in chunks]
        )
        found: dict[str, list[int]] = {}
        for chunk, reply in zip(chunks, replies, strict=True):
            # an empty reply: the namespace is empty (nothing is active), so every window has nothing
            for window, starts in zip(chunk, reply, strict=False):
                found[window] = [int(s) for s in starts]
        return {window: found.get(window, []) for window in windows}

    async def buckets(self, key: str, start_s: int, end_s: int) -> list[BucketStats]:
        return (await self.buckets_many([key], start_s, end_s))[key]

    async def buckets_many(self, keys: Sequence[str], start_s: int, end_s: int) -> dict[str, list[BucketStats]]:
        windows = list(dict.fromkeys(keys))
        out: dict[str, list[BucketStats]] = {window: [] for window in windows}
        if not windows or start_s >= end_s:
            return out
        starts = await self._starts_many(windows, start_s, end_s)
        slots = [(window, start) for window in windows for start in starts[window]]
        chunks = chunked(slots, self.max_keys_per_read)
        replies = await self._read(
            [(self._fields, [self.keys.bucket(w, s) for w, s in chunk], BUCKET_FIELDS) for chunk in chunks]
        )
        width = len(BUCKET_FIELDS)
        for chunk, flat in zip(chunks, replies, strict=True):
            for n, (window, start) in enumerate(chunk):
                stats = stats_of_row(window, start, flat[n * width : (n + 1) * width])
                if stats is not None:
                    out[window].append(stats)
        return out

    async def active_keys(self, since_s: int, until_s: int | None = None) -> list[str]:
        # The script prunes this index whenever the horizon moves, so no horizon filter is needed.
        found = cast(list[str], await self.client.zrangebyscore(self.keys.active, since_s, "+inf"))
        if until_s is None or not found:
            return sorted(found)
        # {P}:active holds each key's newest bucket only: check each key's own bucket index for a
        # bucket inside the range (one round trip, no bucket data read).
        starts = await self._starts_many(found, since_s, until_s)
        return sorted(k for k in found if starts[k])

    async def top_negative(self, key: str, start_s: int, end_s: int, limit: int) -> list[EvidenceItem]:
        if limit <= 0:
            return []
        starts = (await self._starts_many([key], start_s, end_s))[key]
        if not starts:
            return []
        pipe = self.client.pipeline(transaction=False)
        for start in starts:
            pipe.zrange(self.keys.evidence(key, start), 0, limit - 1)
        members: list[list[str]] = await pipe.execute()
        items = [decode_evidence(m) for per_bucket in members for m in per_bucket]
        items.sort(key=lambda e: (e.score, e.message_id))
        return items[:limit]
