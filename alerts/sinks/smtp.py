"""smtp://host:port?from=alerts@x&to=desk@x,oncall@x[&starttls=1[&ca=/path/ca.pem]] -- plain-text email.

``smtps://host[:465]?from=..&to=..[&ca=/path/ca.pem]`` speaks TLS from the first byte (implicit TLS, the
port-465 relays that offer no STARTTLS); ``starttls=1`` with it is a config error, not silently ignored.
Both verify the server's certificate and host name (the system CAs, or ``ca=`` for a private CA):
smtplib's default context verified nothing, so anyone in the path could read the login and the alerts.
A login (``alerts.smtp_username``/``alerts.smtp_password``, password from the environment only) needs
both settings and STARTTLS or smtps://, except to a relay on a loopback host: the sink is refused at start
rather than sending the password in the clear or skipping the login silently.

Uses stdlib ``smtplib`` in a worker thread (no extra dependency). ``timeout_s`` bounds the whole dialogue,
not each socket operation: a worker thread cannot be cancelled, so a slow relay kept sending after the
delivery loop had given up, and the outbox's resend made a second email. A subject is one line (window
keys are user text); a message that cannot be built is a refusal, not an error retried for hours.
Recipients the relay refuses while it accepts others are logged, not retried: a resend would reach the
accepted ones twice.
"""

from __future__ import annotations

import asyncio
import email.errors
import ipaddress
import re
import smtplib
import ssl
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

import structlog

from alerts.model import Notification
from alerts.sinks.base import SinkError, console_url
from monitor.lifecycle import Service
from monitor.redact import redact_url

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

log = structlog.get_logger("alerts.sinks.smtp")
SUBJECT_CHARS = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
"""Characters a header value may not hold: line breaks (every one ``str.splitlines`` knows) and the
other control characters."""


@dataclass(frozen=True, slots=True)
class SmtpTarget:
    host: str
    port: int
    sender: str
    recipients: tuple[str, ...]
    starttls: bool = False
    ca_file: str | None = None
    implicit_tls: bool = False
    """``smtps://``: TLS from the first byte (port 465), no plain-text greeting to upgrade."""

    @property
    def encrypted(self) -> bool:
        return self.starttls or self.implicit_tls

    @classmethod
    def from_url(cls, url: str) -> SmtpTarget:
        parts = urlsplit(url)
        implicit_tls = parts.scheme == "smtps"
        default_port = 465 if implicit_tls else 25
        query = parse_qs(parts.query)
        recipients = tuple(r.strip() for v in query.get("to", []) for r in v.split(",") if r.strip())
        sender = query.get("from", [""])[0]
        if not parts.hostname or not recipients or not sender:
            raise ValueError(f"{parts.scheme} sink URL {redact_url(url)!r} needs host, from= and to=: "
                             f"{parts.scheme}://host:{default_port}?from=a@x&to=b@x")
        starttls = query.get("starttls", ["0"])[0].lower() in {"1", "true", "yes"}
        if implicit_tls and starttls:
            raise ValueError(f"smtps sink URL {redact_url(url)!r} sets starttls=1, but smtps:// is TLS from the "
                             "first byte and has no plain connection to upgrade -- remove &starttls=1 (or use "
                             "smtp://host:587?...&starttls=1 for a STARTTLS relay)")
        return cls(
            host=parts.hostname,
            port=parts.port or default_port,
            sender=sender,
            recipients=recipients,
            starttls=starttls,
            ca_file=query.get("ca", [None])[0],
            implicit_tls=implicit_tls,
        )


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_login(target: SmtpTarget, username: str | None, password: str | None) -> None:
    """Raise ``ValueError`` (a config error at start) for a login that would be skipped or sent in the clear."""
    if not username and not password:
        return
    if not password:
        raise ValueError("alerts.smtp_username is set but alerts.smtp_password is empty, so no login would be "
                         "made -- set MONITOR_ALERTS__SMTP_PASSWORD (or unset the username to send without one)")
    if not username:
        raise ValueError("alerts.smtp_password is set but alerts.smtp_username is empty, so no login would be "
                         "made -- set MONITOR_ALERTS__SMTP_USERNAME (or unset the password)")
    if not target.encrypted and not is_loopback(target.host):
        raise ValueError(f"smtp sink to {target.host}:{target.port} logs in (alerts.smtp_username) without "
                         "STARTTLS, so the password would cross the network in the clear -- add &starttls=1 "
                         "to the smtp:// URL, or use smtps:// for a port-465 relay (only a relay on a loopback "
                         "host may go without)")


def tls_context(target: SmtpTarget) -> ssl.SSLContext:
    """Verifies the server's certificate and host name against the system CAs or ``ca=``, for STARTTLS and
    smtps:// alike: smtplib's default context accepted any certificate."""
    return ssl.create_default_context(cafile=target.ca_file)


def subject(title: str) -> str:
    """``title`` as one header line: a line break in a ticker raised ValueError from the email library."""
    return _CONTROL.sub(" ", title)[:SUBJECT_CHARS]


def build_message(notification: Notification, target: SmtpTarget, console_url: str | None = None,
                  sent_at_s: float | None = None) -> EmailMessage:
    """The email: a subject of whole keys (``+N more``), a ``Date`` (``sent_at_s``, default now: when it was
    sent, as mail clients sort by it), the summary lines and a link to the console page when there is one."""
    msg = EmailMessage()
    msg["Subject"] = subject(notification.headline(max_chars=SUBJECT_CHARS))
    msg["From"] = target.sender
    msg["To"] = ", ".join(target.recipients)
    msg["Date"] = formatdate(time.time() if sent_at_s is None else sent_at_s, usegmt=True)
    msg["X-Finsent-Notification-Id"] = notification.id
    link = [f"console: {console_url}"] if console_url else []
    msg.set_content("\n".join([*notification.summary_lines(), *link]) + "\n")
    return msg


class DeadlineSMTP(smtplib.SMTP):
    """``smtplib.SMTP`` whose every command and reply gets only the time left before ``deadline_s``
    (``time.monotonic``): its own ``timeout`` bounds each socket operation, not the dialogue."""

    def __init__(self, host: str, port: int, deadline_s: float) -> None:
        self.deadline_s = deadline_s
        super().__init__(host, port, timeout=self.left_s())

    def left_s(self) -> float:
        left_s = self.deadline_s - time.monotonic()
        if left_s <= 0:
            raise TimeoutError("timed out: the SMTP dialogue outlasted the sink timeout")
        return left_s

    def send(self, s: ReadableBuffer | str) -> None:
        if self.sock is not None:
            self.sock.settimeout(self.left_s())
        super().send(s)

    def getreply(self) -> tuple[int, bytes]:
        if self.sock is not None:
            self.sock.settimeout(self.left_s())
        return super().getreply()


class DeadlineSMTPSSL(DeadlineSMTP, smtplib.SMTP_SSL):
    """``DeadlineSMTP`` over implicit TLS (smtps://): ``SMTP_SSL`` wraps the socket in ``context`` before
    the greeting, so the handshake, too, gets only the time left."""

    def __init__(self, host: str, port: int, deadline_s: float, context: ssl.SSLContext) -> None:
        self.deadline_s = deadline_s
        # SMTP_SSL's own __init__, not DeadlineSMTP's: only it takes the context (its default verifies nothing)
        smtplib.SMTP_SSL.__init__(self, host, port, timeout=self.left_s(), context=context)


class SmtpSink(Service):
    def __init__(
        self, target: SmtpTarget, name: str, timeout_s: float,
        username: str | None = None, password: str | None = None, public_url: str = "",
    ) -> None:
        check_login(target, username, password)
        self.target = target
        self.name = name
        self._timeout_s = timeout_s
        self._username = username
        self._password = password
        self._public_url = public_url

    def _message(self, notification: Notification) -> EmailMessage:
        """The email, rendered once here: a message the email library cannot write will never send."""
        try:
            msg = build_message(notification, self.target, console_url(self._public_url, notification))
            msg.as_bytes()
        except (ValueError, TypeError, email.errors.MessageError) as exc:
            raise SinkError(f"{self.name}: cannot build the email ({type(exc).__name__}: {exc})",
                            refused=True) from exc
        return msg

    def _connect(self, deadline_s: float) -> DeadlineSMTP:
        if self.target.implicit_tls:
            return DeadlineSMTPSSL(self.target.host, self.target.port, deadline_s, tls_context(self.target))
        return DeadlineSMTP(self.target.host, self.target.port, deadline_s)

    def _deliver(self, msg: EmailMessage) -> dict[str, tuple[int, bytes]]:
        """Send ``msg``; returns the recipients the relay refused (it accepted the others)."""
        smtp = self._connect(time.monotonic() + self._timeout_s)
        try:
            if self.target.starttls:
                smtp.starttls(context=tls_context(self.target))
            if self._username and self._password:
                smtp.login(self._username, self._password)
            refused = smtp.send_message(msg)
        except BaseException:
            smtp.close()
            raise
        try:  # accepted: a slow or failed goodbye must not turn it into a resend
            smtp.quit()
        except (OSError, smtplib.SMTPException):
            smtp.close()
        return refused

    async def send(self, notification: Notification) -> None:
        msg = self._message(notification)
        try:
            refused = await asyncio.to_thread(self._deliver, msg)
        except (OSError, smtplib.SMTPException) as exc:
            raise SinkError(f"{self.name}: {type(exc).__name__}: {exc}") from exc
        if refused:
            log.warning("smtp_recipients_refused", sink=self.name, notification_id=notification.id,
                        refused={rcpt: f"{code} {reply.decode(errors='replace')}"
                                 for rcpt, (code, reply) in refused.items()})
