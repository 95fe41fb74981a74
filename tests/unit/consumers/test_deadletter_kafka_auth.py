"""A dead-letter topic the daemon may not write (an ACL, an MSK IAM policy): ``KafkaDeadLetter.send`` waits with
a readiness reason naming ``kafka.dead_letter_topic`` instead of ending the daemon, and sends once it may.
Before, the daemon exited, restarted into the same record, and the valid records before it were never committed.
"""

from __future__ import annotations

import asyncio

from aiokafka.errors import TopicAuthorizationFailedError

from consumers.deadletter import KafkaDeadLetter
from monitor.config import Settings
from monitor.retry import DEPENDENCIES


class DenyingProducer:
    """Refuses every send as a broker whose ACLs do not allow the topic does, until ``allow`` is set."""

    def __init__(self) -> None:
        self.allow = asyncio.Event()
        self.refused = 0
        self.sent: list[bytes] = []

    async def send_and_wait(self, topic: str, value: bytes, key: bytes | None = None,
                            headers: list[tuple[str, bytes]] | None = None) -> None:
        if not self.allow.is_set():
            self.refused += 1
            raise TopicAuthorizationFailedError(topic)
        self.sent.append(value)


async def test_a_dead_letter_topic_the_daemon_may_not_write_is_waited_for_with_the_setting_to_fix() -> None:
    DEPENDENCIES.clear()
    settings = Settings().kafka
    sink = KafkaDeadLetter(settings)
    producer = DenyingProducer()
    sink._producer = producer  # type: ignore[assignment]
    task = asyncio.create_task(sink.send(b"{not json", "bad_json", "not JSON", {"topic": "news", "offset": 7}))
    for _ in range(100):
        await asyncio.sleep(0.01)
        if producer.refused and DEPENDENCIES.reasons():
            break
    assert not task.done()  # waiting, not ended
    [reason] = DEPENDENCIES.reasons()
    assert reason.startswith("dead_letter unreachable: TopicAuthorizationFailedError")
    assert settings.dead_letter_topic in reason and "kafka.dead_letter_topic" in reason
    producer.allow.set()  # the ACL granted: no restart needed
    await asyncio.wait_for(task, 15)
    assert producer.sent == [b"{not json"] and sink.count == 1
    assert DEPENDENCIES.reasons() == []
