"""Cluster mode: an evaluated-until cursor stored out of range (9999) is cleared at start (issue 10)."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from monitor.cluster.watermark import ClusterWatermark
from monitor.time_bounds import EventTimeBounds
from tests.kafka_broker import unique_name

pytestmark = pytest.mark.integration

NOW_S = 1_795_000_000
BOUNDS = EventTimeBounds(max_future_s=3600, clock=lambda: float(NOW_S))


@pytest.mark.parametrize(("stored", "repaired"), [
    (253_402_297_200, True), (NOW_S + 3600 + 86_401, True), (NOW_S + 3600 + 86_400, False), (NOW_S - 600, False),
    (900_000_000, True),  # 1998: before source.min_event_time
])
async def test_an_implausible_cluster_cursor_is_cleared_with_one_warning(
    redis_url: str, stored: int, repaired: bool
) -> None:
    prefix = unique_name("cw")
    async with ClusterWatermark(redis_url, prefix, lease_s=5, instance_id="old") as old:
        await old.set_evaluated_until(stored)
        await old.publish_first(stored)
    with capture_logs() as logs:
        async with ClusterWatermark(redis_url, prefix, lease_s=5, instance_id="new", time_bounds=BOUNDS) as new:
            cursor, first = await new.evaluated_until_s(), await new.first_boundary_s()
    warnings = [e for e in logs if e["event"] == "cluster_cursor_repaired"]
    if repaired:
        assert (cursor, first) == (None, None) and len(warnings) == 1
        assert "source.max_future_s=3600" in warnings[0]["problem"] or "source.min_event_time" in warnings[0]["problem"]
    else:
        assert (cursor, first) == (stored, stored) and warnings == []
