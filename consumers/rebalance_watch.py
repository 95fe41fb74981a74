"""Says when the consumer group's rebalance does not complete: the daemon reads nothing meanwhile.

aiokafka's ``start()`` and ``getmany()`` wait for the group's assignment with no timeout, so a rebalance that
never completes (a member stuck in it, a broker that kept a departed leader: tansu does, see README "Kafka in
tests") left the daemon silent: no batch, no error, only ``FinsentDetectionLag`` half an hour later. A check
placed in the read loop never ran, because the loop itself was the thing blocked (found by review). So this
watch has its own task: the source marks a rebalance's ``begin`` (before joining, at each revocation) and
``end`` (at each assignment, even an empty one), and a rebalance still open after ``grace_s`` is an ERROR
``kafka_rebalance_stuck`` and the ``kafka_assignment`` readiness reason until it completes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import structlog

from monitor.lifecycle import Service, cancel_and_wait
from monitor.retry import DEPENDENCIES

log = structlog.get_logger(__name__)

COMPONENT = "kafka_assignment"
"""The readiness component of a rebalance that has not completed within the grace."""
CHECK_EVERY_S = 1.0
"""How often the watch looks; the grace is what decides when it speaks."""
FIX = ("look for a member of the group that holds the rebalance (kafka-consumer-groups --bootstrap-server ... "
       "--describe --group <kafka.group_id> --members) and stop it, or give this daemon its own kafka.group_id; if "
       "the group has no other member, restart the daemon; if that does not help, the broker's group coordinator is "
       "at fault")


class RebalanceWatch(Service):
    """Reports a consumer-group rebalance open longer than ``grace_s``, once, and its completion."""

    def __init__(self, group_id: str, grace_s: float, check_every_s: float = CHECK_EVERY_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.group_id = group_id
        self.grace_s = grace_s
        self.check_every_s = check_every_s
        self._clock = clock
        self._since: float | None = None
        """``clock()`` when the open rebalance began (None: none open)."""
        self._reported = False
        self._task: asyncio.Task[None] | None = None

    @property
    def open_s(self) -> float | None:
        """How long the open rebalance has lasted (None: none open)."""
        return None if self._since is None else self._clock() - self._since

    def begin(self) -> None:
        """A join or rebalance starts (an open one keeps its start)."""
        if self._since is None:
            self._since = self._clock()

    def end(self) -> None:
        """The group assigned this member its partitions (possibly none), or it left the group on purpose."""
        waited_s, self._since = self.open_s, None
        if self._reported:
            self._reported = False
            DEPENDENCIES.up(COMPONENT)
            log.warning("kafka_rebalance_completed", group_id=self.group_id, waited_s=round(waited_s or 0.0))

    def check(self) -> None:
        """The ERROR and the readiness reason, once per rebalance open past the grace."""
        waited_s = self.open_s
        if waited_s is None or waited_s < self.grace_s or self._reported:
            return
        self._reported = True
        why = (f"the consumer group {self.group_id!r} has not completed its rebalance for {waited_s:.0f} s: "
               f"no partition is assigned, nothing is read")
        DEPENDENCIES.down(COMPONENT, f"{why}; {FIX}")
        log.error("kafka_rebalance_stuck", group_id=self.group_id, waited_s=round(waited_s), why=why, fix=FIX)

    async def _start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="kafka-rebalance-watch")

    async def _stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
        self._since = None
        if self._reported:  # stopped, not completed: only the readiness reason goes
            self._reported = False
            DEPENDENCIES.up(COMPONENT)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.check_every_s)
            self.check()
