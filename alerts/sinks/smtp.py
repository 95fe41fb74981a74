"""smtp://host:port?from=alerts@x&to=desk@x,oncall@x[&starttls=1[&ca=/path/ca.pem]] -- plain-text email.

STARTTLS verifies the server's certificate and host name (the system CAs, or ``ca=`` for a private CA):
smtplib's default context verified nothing, so anyone in the path could read the login and the alerts.

Uses stdlib ``smtplib`` in a worker thread (no extra dependency); login with
``alerts.smtp_username``/``alerts.smtp_password`` when set (password from the environment only).
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import parse_qs, urlsplit

from alerts.model import Notification
from alerts.sinks.base import SinkError
from monitor.lifecycle import Service
from monitor.redact import redact_url


@dataclass(frozen=True, slots=True)
class SmtpTarget:
    host: str
    port: int
    sender: str
    recipients: tuple[str, ...]
    starttls: bool = False
    ca_file: str | None = None

    @classmethod
    def from_url(cls, url: str) -> SmtpTarget:
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        recipients = tuple(r.strip() for v in query.get("to", []) for r in v.split(",") if r.strip())
        sender = query.get("from", [""])[0]
        if not parts.hostname or not recipients or not sender:
            raise ValueError(f"smtp sink URL {redact_url(url)!r} needs host, from= and to=: "
                             "smtp://host:25?from=a@x&to=b@x")
        return cls(
            host=parts.hostname,
            port=parts.port or 25,
            sender=sender,
            recipients=recipients,
            starttls=query.get("starttls", ["0"])[0].lower() in {"1", "true", "yes"},
            ca_file=query.get("ca", [None])[0],
        )


def build_message(notification: Notification, target: SmtpTarget) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = notification.title[:200]
    msg["From"] = target.sender
    msg["To"] = ", ".join(target.recipients)
    msg["X-Finsent-Notification-Id"] = notification.id
    msg.set_content("\n".join(notification.summary_lines()) + "\n")
    return msg


class SmtpSink(Service):
    def __init__(
        self, target: SmtpTarget, name: str, timeout_s: float,
        username: str | None = None, password: str | None = None,
    ) -> None:
        self.target = target
        self.name = name
        self._timeout_s = timeout_s
        self._username = username
        self._password = password

    def _deliver(self, msg: EmailMessage) -> None:
        with smtplib.SMTP(self.target.host, self.target.port, timeout=self._timeout_s) as smtp:
            if self.target.starttls:
                smtp.starttls(context=ssl.create_default_context(cafile=self.target.ca_file))
            if self._username and self._password:
                smtp.login(self._username, self._password)
            smtp.send_message(msg)

    async def send(self, notification: Notification) -> None:
        try:
            await asyncio.to_thread(self._deliver, build_message(notification, self.target))
        except (OSError, smtplib.SMTPException) as exc:
            raise SinkError(f"{self.name}: {type(exc).__name__}: {exc}") from exc
