"""The Alertmanager sink against a real ``prometheus-alertmanager`` (subprocess on 127.0.0.1).

Checked through Alertmanager's own API (``GET /api/v2/alerts``) and through what Alertmanager itself
sends on to a webhook receiver (its resolved notification carries our ``endsAt``).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from alerts.engine import AlertEngine
from alerts.lifecycle import AlertState, LifecyclePolicy, step
from alerts.model import AlertStatus, Notification
from alerts.sinks import build_sink
from alerts.sinks.alertmanager import ALERTNAME, AlertmanagerSink
from monitor.config import ConfigError, Settings
from monitor.web.console import key_url
from monitor.windows.buckets import EvidenceItem
from tests.integration.alerts.receivers import Recorder, http_receiver
from tests.servers import alertmanager_server
from tests.unit.alerts.builders import DAY0_S, signal

PUBLIC_URL = "https://finsent.example.org"


class Clock:
    def __init__(self, now_s: float) -> None:
        self.now_s = now_s

    def __call__(self) -> float:
        return self.now_s


def lifecycle(key: str) -> tuple[Notification, dict[str, AlertState], Notification]:
    """A firing notification for ``key`` (with evidence), the states after it, and its resolution."""
    policy = LifecyclePolicy(resolve_after_buckets=1)
    t1 = DAY0_S + 300
    fired = step({}, [signal(key, t1, True)], t1, policy)
    evidence = (EvidenceItem(message_id="m1", source="news", text="Boeing halts deliveries", score=-0.9,
                             event_time_s=t1 - 100, url="https://n/1"),)
    note = fired.notifications[0]
    note = replace(note, alerts=tuple(replace(a, evidence=evidence) for a in note.alerts))
    resolved = step(fired.states, [signal(key, t1 + 300, False)], t1 + 300, policy)
    return note, fired.states, resolved.notifications[0]


@pytest.fixture
async def alertmanager(tmp_path: Path) -> AsyncIterator[tuple[str, Recorder]]:
    """A real Alertmanager forwarding to a local webhook recorder: (its URL, the recorder)."""
    recorder = Recorder()
    async with http_receiver(recorder) as hook:
        with alertmanager_server(tmp_path, f"{hook}/am") as url:
            yield url, recorder


async def am_alerts(base: str) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as session, session.get(f"{base}/api/v2/alerts") as resp:
        assert resp.status == 200
        result: list[dict[str, Any]] = await resp.json()
        return result


async def wait_for(check: Callable[[], Any], timeout_s: float = 15.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)


def sink_for(base: str, clock: Clock) -> AlertmanagerSink:
    settings = Settings(alerts={"sinks": [f"alertmanager+{base}"]}, http={"public_url": PUBLIC_URL})
    sink = build_sink(f"alertmanager+{base}", settings)
    assert isinstance(sink, AlertmanagerSink)
    sink._clock = clock
    return sink


def epoch(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


async def test_firing_alert_shows_up_in_alertmanager_with_labels_annotations_and_dashboard_link(
    alertmanager: tuple[str, Recorder],
) -> None:
    base, _ = alertmanager
    fired, _, _ = lifecycle("topic_ticker:earnings|BA")
    clock = Clock(time.time())
    async with sink_for(base, clock) as sink:
        await sink.send(fired)
    [alert] = await am_alerts(base)
    assert alert["labels"] == {"alertname": ALERTNAME, "key": "topic_ticker:earnings|BA", "ticker": "BA",
                               "topic": "earnings", "severity": "warning"}
    assert alert["status"]["state"] == "active"
    assert alert["generatorURL"] == f"{PUBLIC_URL}/keys/topic_ticker%3Aearnings%7CBA"
    assert alert["generatorURL"] == PUBLIC_URL + key_url("topic_ticker:earnings|BA")  # the console's key page
    assert "topic_ticker:earnings|BA" in alert["annotations"]["summary"]
    assert "neg_share 70% vs baseline 10%" in alert["annotations"]["numbers"]
    assert "Boeing halts deliveries <https://n/1>" in alert["annotations"]["evidence"]
    assert epoch(alert["startsAt"]) == fired.alerts[0].started_at_s
    assert epoch(alert["endsAt"]) == pytest.approx(clock.now_s + 240, abs=1)


async def test_refresh_keeps_a_firing_alert_alive_with_its_evidence_and_resolve_ends_it(
    alertmanager: tuple[str, Recorder],
) -> None:
    base, recorder = alertmanager
    fired, states, resolved = lifecycle("ticker:BA")
    clock = Clock(time.time())
    async with sink_for(base, clock) as sink:
        await sink.send(fired)
        first_end = epoch((await am_alerts(base))[0]["endsAt"])
        clock.now_s += 100
        await sink.refresh(list(states.values()))
        [alert] = await am_alerts(base)
        assert epoch(alert["endsAt"]) == pytest.approx(first_end + 100, abs=1)
        assert "Boeing halts deliveries" in alert["annotations"]["evidence"]  # not lost on re-post
        clock.now_s = time.time()
        await sink.send(resolved)
    assert await am_alerts(base) == []  # Alertmanager lists resolved alerts no more

    def resolved_hook() -> Any:
        async def check() -> list[dict[str, Any]]:
            bodies = [json.loads(r.body) for r in recorder.requests]
            return [b for b in bodies if b["status"] == "resolved"]
        return check()

    [notice] = await wait_for(resolved_hook)
    [sent] = notice["alerts"]
    assert sent["labels"]["key"] == "ticker:BA" and sent["status"] == "resolved"
    assert epoch(sent["endsAt"]) == pytest.approx(clock.now_s, abs=1)


async def test_refresh_skips_alerts_that_are_not_announced_or_not_firing(alertmanager: tuple[str, Recorder]) -> None:
    base, _ = alertmanager
    _, states, _ = lifecycle("ticker:NVDA")
    [state] = states.values()
    muted = replace(state, dedup_key="x", window_key="ticker:MUTED", notified=False)
    gone = replace(state, dedup_key="y", window_key="ticker:GONE", status=AlertStatus.RESOLVED)
    async with sink_for(base, Clock(time.time())) as sink:
        await sink.refresh([state, muted, gone])
    assert [a["labels"]["key"] for a in await am_alerts(base)] == ["ticker:NVDA"]


async def test_delivery_loop_re_posts_the_engines_firing_alerts_to_alertmanager(
    alertmanager: tuple[str, Recorder],
) -> None:
    """The wiring: the engine's state store feeds the outbox delivery loop's refresh of the sink."""
    from alerts.outbox import MemoryOutbox
    from alerts.state import MemoryAlertStateStore
    from monitor.windows.memory import MemoryWindowStore

    base, _ = alertmanager
    _, states, _ = lifecycle("ticker:WFC")
    settings = Settings(alerts={"sinks": [f"alertmanager+{base}"], "alertmanager_refresh_s": 0.2,
                                "alertmanager_ends_after_s": 5.0, "delivery_poll_interval_s": 0.05})
    sink = build_sink(f"alertmanager+{base}", settings)
    state = MemoryAlertStateStore(max_silences=10)
    engine = AlertEngine(MemoryWindowStore(bucket_s=300, retention_s=86_400), settings.alerts, state,
                         MemoryOutbox([sink.name]), [sink])
    async with engine:
        await state.commit(list(states.values()), [], DAY0_S + 300)
        [alert] = await wait_for(lambda: am_alerts(base))
        first_end = epoch(alert["endsAt"])

        async def later() -> bool:
            return epoch((await am_alerts(base))[0]["endsAt"]) > first_end + 0.3
        await wait_for(later)
    assert alert["labels"]["key"] == "ticker:WFC"


def test_a_sink_url_with_a_password_in_a_config_file_is_refused(tmp_path: Path) -> None:
    from monitor.config import load_settings

    config = tmp_path / "c.toml"
    config.write_text('[alerts]\nsinks = ["alertmanager+https://ops:hunter2@am.example:9093"]\n')
    with pytest.raises(ConfigError, match="MONITOR_ALERTS__SINKS"):
        load_settings(config)


async def test_an_episode_starting_ahead_of_the_wall_clock_is_accepted_firing_and_resolved(
    alertmanager: tuple[str, Recorder],
) -> None:
    """Event time may lead the wall clock (``source.max_future_s``): Alertmanager answered 400 to the
    ``endsAt`` before ``startsAt`` this gave, so the alert never showed and its resolution never landed."""
    base, _ = alertmanager
    now_s = time.time()
    fired, _, resolved = lifecycle("ticker:AHEAD")
    fired, resolved = (replace(n, alerts=tuple(replace(a, started_at_s=int(now_s) + 600) for a in n.alerts))
                       for n in (fired, resolved))
    async with sink_for(base, Clock(now_s)) as sink:
        await sink.send(fired)
        [alert] = await am_alerts(base)
        assert epoch(alert["startsAt"]) == pytest.approx(now_s, abs=1)
        await sink.send(resolved)
    assert await am_alerts(base) == []
