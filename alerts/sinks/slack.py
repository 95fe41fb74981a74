"""slack+https://hooks.slack.com/services/... -- Slack incoming-webhook message (text + blocks)."""

from __future__ import annotations

import json
from typing import Any

from alerts.model import Notification
from alerts.sinks.http import HttpPoster
from monitor.lifecycle import Service

SLACK_SECTION_CHARS = 2900  # Slack rejects section text over 3000 characters


def slack_payload(notification: Notification) -> dict[str, Any]:
    lines = notification.summary_lines()
    body = "\n".join(lines[1:])
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": lines[0][:150]}},
    ]
    for start in range(0, min(len(body), SLACK_SECTION_CHARS * 10), SLACK_SECTION_CHARS):
        chunk = body[start : start + SLACK_SECTION_CHARS]
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": chunk}})
    return {"text": lines[0], "blocks": blocks}


class SlackSink(Service):
    def __init__(self, url: str, name: str, poster: HttpPoster) -> None:
        self.url = url.removeprefix("slack+")
        self.name = name
        self._poster = poster

    async def _stop(self) -> None:
        await self._poster.stop()

    async def send(self, notification: Notification) -> None:
        body = json.dumps(slack_payload(notification)).encode()
        await self._poster.post(self.url, body, {"Content-Type": "application/json"})
