"""Where alert states, silences and the evaluation cursor live, so a restart resumes, not re-fires.

``AlertStateStore`` has a memory and a Redis implementation passing one contract suite
(tests/unit/alerts/test_state_contract.py). ``commit`` writes states, deletions and the cursor
atomically (one script on Redis): after a crash either the whole evaluation is visible or none
of it, and re-running it yields the same notification ids, which the outbox drops as duplicates.
It is also a compare-and-set on the cursor: a pass that stalled while another instance judged its
buckets (a cluster leader past its lease) fails instead of moving the cursor back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Protocol

import structlog
from pydantic import TypeAdapter

from alerts.lifecycle import AlertState
from alerts.model import Silence
from alerts.redis_client import RedisBacked
from monitor.lifecycle import Service
from monitor.types import Lifecycle

_STATE: TypeAdapter[AlertState] = TypeAdapter(AlertState)


log = structlog.get_logger("alerts.state")


class SilenceLimitError(Exception):
    """Too many live silences; expire some first."""


class CursorMovedError(Exception):
    """A commit found the cursor moved since its pass read it: another instance (a new cluster leader, while
    this one stalled past its lease) judged those buckets meanwhile, so this pass's states are stale."""


ANY_CURSOR = -1
"""``commit(..., after_s=ANY_CURSOR)``: no check (repairs, tests, the first commit of a fresh start)."""


class AlertStateStore(Lifecycle, Protocol):
    async def load_states(self) -> dict[str, AlertState]:
        """Every stored alert state by dedup key."""
        ...

    async def get_cursor(self) -> int | None:
        """End (event time) of the last evaluated bucket, or None before the first evaluation."""
        ...

    async def commit(self, states: Sequence[AlertState], deleted: Sequence[str], cursor_s: int,
                     after_s: int | None = ANY_CURSOR) -> None:
        """Atomically upsert ``states``, delete the ``deleted`` dedup keys and move the cursor, only if the
        stored cursor is still ``after_s`` (None: none stored; ``ANY_CURSOR``: no check), else raise
        ``CursorMovedError`` and write nothing: a stale pass must not move the cursor back."""
        ...

    async def reset_cursor(self, deleted: Sequence[str]) -> None:
        """Atomically delete the ``deleted`` dedup keys and forget the cursor (repair of an
        implausible cursor: the next evaluation starts as the very first one did)."""
        ...

    async def add_silence(self, silence: Silence, now_s: int) -> None:
        """Store a silence (expired ones are pruned first); raise ``SilenceLimitError`` when full."""
        ...

    async def list_silences(self) -> list[Silence]:
        """All stored silences, by start time."""
        ...

    async def expire_silence(self, silence_id: str, now_s: int) -> bool:
        """End a silence at ``now_s``; False if no such silence exists."""
        ...


def _ended(silence: Silence, now_s: int) -> Silence:
    end = min(silence.ends_at_s, now_s)
    return replace(silence, starts_at_s=min(silence.starts_at_s, end), ends_at_s=end)


def _expired(silences: Sequence[Silence], now_s: int) -> list[str]:
    return [s.id for s in silences if s.ends_at_s <= now_s]


class MemoryAlertStateStore(Service):
    """In-process store (embedded default, tests). Silences here are visible to this process only."""

    def __init__(self, max_silences: int = 1_000) -> None:
        self.max_silences = max_silences
        self._states: dict[str, AlertState] = {}
        self._silences: dict[str, Silence] = {}
        self._cursor: int | None = None

    async def load_states(self) -> dict[str, AlertState]:
        return dict(self._states)

    async def get_cursor(self) -> int | None:
        return self._cursor

    async def commit(self, states: Sequence[AlertState], deleted: Sequence[str], cursor_s: int,
                     after_s: int | None = ANY_CURSOR) -> None:
        if after_s != ANY_CURSOR and self._cursor != after_s:
            raise CursorMovedError(f"cursor is {self._cursor}, the pass started at {after_s}")
        for st in states:
            self._states[st.dedup_key] = st
        for dk in deleted:
            self._states.pop(dk, None)
        self._cursor = cursor_s

    async def reset_cursor(self, deleted: Sequence[str]) -> None:
        for dk in deleted:
            self._states.pop(dk, None)
        self._cursor = None

    async def add_silence(self, silence: Silence, now_s: int) -> None:
        for sid in _expired(list(self._silences.values()), now_s):
            del self._silences[sid]
        if len(self._silences) >= self.max_silences:
            raise SilenceLimitError(f"{len(self._silences)} live silences (max {self.max_silences})")
        self._silences[silence.id] = silence

    async def list_silences(self) -> list[Silence]:
        return sorted(self._silences.values(), key=lambda s: (s.starts_at_s, s.id))

    async def expire_silence(self, silence_id: str, now_s: int) -> bool:
        current = self._silences.get(silence_id)
        if current is None:
            return False
        self._silences[silence_id] = _ended(current, now_s)
        return True


_COMMIT = """
-- KEYS: states, cursor ; ARGV: check (1/0), expected cursor ('' = none), new cursor, n deleted, deleted...,
--       then dedup key, state pairs -> 1, or 0 (cursor moved: nothing written)
if ARGV[1] == '1' and (redis.call('GET', KEYS[2]) or '') ~= ARGV[2] then return 0 end
local n = tonumber(ARGV[4])
for i = 5, 4 + n do redis.call('HDEL', KEYS[1], ARGV[i]) end
for i = 5 + n, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('SET', KEYS[2], ARGV[3])
return 1
"""


class RedisAlertStateStore(RedisBacked):
    """Redis hashes under one hash tag (``{prefix}``), so it also works on Redis Cluster."""

    def __init__(self, url: str, key_prefix: str, max_silences: int = 1_000) -> None:
        self.url = url
        self.max_silences = max_silences
        tag = "{" + key_prefix + "}"
        self.states_key = f"{tag}:states"
        self.cursor_key = f"{tag}:cursor"
        self.silences_key = f"{tag}:silences"

    async def _start(self) -> None:
        await super()._start()
        self._commit = self.redis.register_script(_COMMIT)

    async def load_states(self) -> dict[str, AlertState]:
        """Unreadable entries (written by another version) are left out with an error, not raised: that
        failed every evaluation pass, so detection stopped for every key. Such an alert starts afresh."""
        states: dict[str, AlertState] = {}
        for key, raw in (await self.redis.hgetall(self.states_key)).items():
            try:
                states[str(key)] = _STATE.validate_json(raw)
            except ValueError as exc:
                log.error("alert_state_unreadable", dedup_key=str(key), error=str(exc)[:300])
        return states

    async def get_cursor(self) -> int | None:
        raw = await self.redis.get(self.cursor_key)
        return None if raw is None else int(raw)

    async def commit(self, states: Sequence[AlertState], deleted: Sequence[str], cursor_s: int,
                     after_s: int | None = ANY_CURSOR) -> None:
        args: list[str | int | bytes] = [
            "0" if after_s == ANY_CURSOR else "1", "" if after_s is None else str(after_s), cursor_s, len(deleted),
            *deleted,
        ]
        for st in states:
            args += [st.dedup_key, _STATE.dump_json(st)]
        if not int(await self._commit(keys=[self.states_key, self.cursor_key], args=args)):
            current = await self.get_cursor()
            raise CursorMovedError(f"cursor is {current}, the pass started at {after_s}")

    async def reset_cursor(self, deleted: Sequence[str]) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            if deleted:
                pipe.hdel(self.states_key, *deleted)
            pipe.delete(self.cursor_key)
            await pipe.execute()

    async def add_silence(self, silence: Silence, now_s: int) -> None:
        expired = _expired(await self.list_silences(), now_s)
        if expired:
            await self.redis.hdel(self.silences_key, *expired)
        if await self.redis.hlen(self.silences_key) >= self.max_silences:
            raise SilenceLimitError(f"too many live silences (max {self.max_silences})")
        await self.redis.hset(self.silences_key, silence.id, silence.to_json())

    async def list_silences(self) -> list[Silence]:
        raw = await self.redis.hgetall(self.silences_key)
        return sorted((Silence.from_json(v) for v in raw.values()), key=lambda s: (s.starts_at_s, s.id))

    async def expire_silence(self, silence_id: str, now_s: int) -> bool:
        raw = await self.redis.hget(self.silences_key, silence_id)
        if raw is None:
            return False
        await self.redis.hset(self.silences_key, silence_id, _ended(Silence.from_json(raw), now_s).to_json())
        return True
