"""log:// -- notifications as structured log events (the embedded default)."""

from __future__ import annotations

import structlog

from alerts.model import Notification
from monitor.lifecycle import Service

log = structlog.get_logger("alerts")


class LogSink(Service):
    def __init__(self, name: str = "log://") -> None:
        self.name = name

    async def send(self, notification: Notification) -> None:
        log.warning(
            "alert_notified",
            notification_id=notification.id,
            status=str(notification.status),
            group=notification.group_key,
            keys=[a.window_key for a in notification.alerts],
            neg_share=[round(a.signal.neg_share, 4) for a in notification.alerts],
            baseline_neg_share=[round(a.signal.baseline_neg_share, 4) for a in notification.alerts],
            detectors=[list(a.signal.triggered) for a in notification.alerts],
            findings=[[f"{f.name}: {f.negatives} neg vs {f.expected:.2f} expected, -log10p {f.log10p:.1f}"
                       for f in a.signal.findings[:3]] for a in notification.alerts],
        )
