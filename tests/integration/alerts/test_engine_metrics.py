"""What the engine exports for dashboards: firing alerts and the per-topic negative share."""

from __future__ import annotations

from monitor import metrics
from tests.integration.alerts.test_engine import NORMAL, SPIKE, alert_settings, drive, window_store
from tests.unit.alerts.builders import DAY0_S, memory_engine


def value(name: str, **labels: str) -> float | None:
    return metrics.prometheus_client_value(name, **labels)


async def test_firing_gauge_and_topic_negative_share_follow_the_evaluated_buckets() -> None:
    store = window_store()
    engine = memory_engine(store, alert_settings(), [])
    async with engine:
        await drive(engine, store, DAY0_S, [NORMAL] * 30 + [SPIKE] * 2)
        assert (value("finsent_alerts_firing") or 0) >= 1
        assert value("finsent_topic_negative_share", topic="macro") == 0.1  # 12 of 120, steady
        assert (value("finsent_topic_negative_share", topic="earnings") or 0) > 0.5
        await drive(engine, store, DAY0_S + 32 * 300, [NORMAL] * 6)
        assert value("finsent_alerts_firing") == 0
        assert (value("finsent_topic_negative_share", topic="earnings") or 1) < 0.2


def test_topic_label_set_is_bounded_and_a_quiet_topic_disappears() -> None:
    metrics.observe_topic_negative_shares({f"t{i:03d}": 0.5 for i in range(metrics.MAX_TOPIC_LABELS + 20)})
    exported = metrics.exported_topics()
    assert len(exported) <= metrics.MAX_TOPIC_LABELS
    some = sorted(exported)[-1]
    metrics.observe_topic_negative_shares({some: None})
    assert value("finsent_topic_negative_share", topic=some) is None
    metrics.observe_topic_negative_shares(dict.fromkeys(metrics.exported_topics()))  # leave nothing behind
    assert metrics.exported_topics() == frozenset()
