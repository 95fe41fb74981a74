"""webhook+http(s)://... -- the notification JSON, signed with HMAC-SHA256.

Headers: ``X-Finsent-Signature: sha256=<hex hmac of the raw body>`` (key: ``alerts.webhook_secret``)
and ``X-Finsent-Notification-Id`` (receivers dedupe on it: delivery is at least once).
Receivers verify with ``verify_signature`` (constant-time compare) on the raw body.
"""

from __future__ import annotations

import hashlib
import hmac

from alerts.model import Notification
from alerts.sinks.http import HttpPoster
from monitor.lifecycle import Service

SIGNATURE_HEADER = "X-Finsent-Signature"
ID_HEADER = "X-Finsent-Notification-Id"


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(secret: str, body: bytes, header: str | None) -> bool:
    """Compared as bytes: ``compare_digest`` raises on a ``str`` with non-ASCII characters, so a forged header such as
    ``sha256=é`` was an exception in the receiver instead of a rejection (found by review)."""
    return header is not None and hmac.compare_digest(sign(secret, body).encode(),
                                                      header.encode("utf-8", "surrogateescape"))


class WebhookSink(Service):
    def __init__(self, url: str, name: str, secret: str, poster: HttpPoster) -> None:
        self.url = url.removeprefix("webhook+")
        self.name = name
        self._secret = secret
        self._poster = poster

    async def _stop(self) -> None:
        await self._poster.stop()

    async def send(self, notification: Notification) -> None:
        body = notification.to_json()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(self._secret, body),
            ID_HEADER: notification.id,
        }
        await self._poster.post(self.url, body, headers)
