"""Hiding secrets in what the daemon prints: URLs in logs and errors, and ``monitor config``.

Secrets hide in URLs in more places than the password: Slack and most webhook services put the
token in the *path* (``hooks.slack.com/services/T…/B…/<token>``), others in the query
(``?token=``, ``?key=``, ``?sig=``). ``redact_url`` masks all three, keeping what an operator needs to
recognise the target (scheme, user, host, port, non-secret path and query keys). It errs on the side
of hiding: a long random-looking path segment (letters *and* digits, 16+ characters: tokens, UUIDs)
is masked even when it is only an id. Where the path is known to carry the token, no digit is needed:
a Slack URL shows only its ``T…``/``B…`` ids after ``/services/`` (about 1.5% of Slack tokens are
letters only), and a webhook URL (``webhook+http(s)``, or the plain ``http(s)`` one its sink posts to)
masks every path segment of 16+ characters (``/api/v2/alerts`` stays readable).

``redact_settings`` applies it to every URL-looking string of a settings dump and replaces every
secret setting (a name ending in password / secret / token / api_key) by ``<set>`` or ``<unset>``;
``redact_setting`` does the same for one value (a config error's refused value).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import SplitResult, parse_qsl, quote, urlsplit, urlunsplit

MASK = "***"
SET, UNSET = "<set>", "<unset>"
_SECRET_NAME = re.compile(r"(pass|pwd|secret|token|key|sig|auth|credential|session|code)", re.IGNORECASE)
_NOT_SECRET_NAME = re.compile(r"(file|certs?|path|reqs|dir)$", re.IGNORECASE)
"""Query keys naming *where* a secret lives, not the secret (``ssl_keyfile``, ``ssl_ca_certs``)."""
_RANDOM_LOOKING = re.compile(r"^(?=[^/]*[A-Za-z])(?=[^/]*\d)[A-Za-z0-9_\-.~+=]{16,}$")
_LONG_SEGMENT = re.compile(r"^[A-Za-z0-9_\-.~+=]{16,}$")
"""A webhook path segment that may be its token: long, whatever its letters and digits."""
_SLACK_ID = re.compile(r"^[A-Z][A-Z0-9]{1,14}$")
"""A Slack workspace/channel id (``T0123ABCD``, ``B0456EFGH``): what tells an operator which webhook it is."""
_SECRET_SETTING = re.compile(r"(password|secret|token|api_key)$", re.IGNORECASE)
_PLAIN_PATH_SCHEMES = frozenset({"file", "log", "kafka", "memory", "unix"})
"""Schemes whose path is a file name or topic, never a token."""
_WEBHOOK_SCHEMES = frozenset({"webhook+http", "webhook+https"})
"""Schemes whose path may be a token with no digit in it."""
_POSTED_SCHEMES = frozenset({"http", "https"})
"""What an HTTP sink posts to (the webhook sink drops ``webhook+``): its delivery errors redact it with
``posted=True``, as a webhook URL; elsewhere (``http.public_url``) long readable segments stay readable."""


def _secret_query_key(key: str) -> bool:
    return bool(_SECRET_NAME.search(key)) and not _NOT_SECRET_NAME.search(key)


def _path(path: str, secret: re.Pattern[str] = _RANDOM_LOOKING) -> str:
    return "/".join(MASK if secret.match(segment) else segment for segment in path.split("/"))


def _slack_path(path: str) -> str:
    """``/services/T…/B…/<token>`` (or ``/triggers/…``, ``/workflows/…``): after the first segment, every segment is
    masked but the ids that name the webhook; the last one (the token) always, whatever it looks like."""
    segments = path.split("/")
    after = [i for i, segment in enumerate(segments) if segment and i >= (2 if path.startswith("/") else 1)]
    for i in after:
        if i == after[-1] or not _SLACK_ID.match(segments[i]):
            segments[i] = MASK
    return "/".join(segments)


def _redact_path(scheme: str, host: str, path: str, posted: bool) -> str:
    if scheme in _PLAIN_PATH_SCHEMES:
        return path
    if scheme.startswith("slack+") or host == "hooks.slack.com":
        return _slack_path(path)
    webhook = scheme in _WEBHOOK_SCHEMES or (posted and scheme in _POSTED_SCHEMES)
    return _path(path, _LONG_SEGMENT if webhook else _RANDOM_LOOKING)


def _query(query: str) -> str:
    pairs = parse_qsl(query, keep_blank_values=True)
    shown = [(k, MASK if v and (_secret_query_key(k) or _RANDOM_LOOKING.match(v)) else v) for k, v in pairs]
    return "&".join(f"{quote(k, safe='')}={v if v == MASK else quote(v, safe='@,:/')}" for k, v in shown)


def cut_short_by_password(parts: SplitResult) -> bool:
    """True when a '#' or '?' in the password cut the URL short: the netloc lost its '@' (the host after it landed
    in the query or fragment) and the password's first part was read as the port, or left no host (found by review:
    the message said the port was not a number, echoing that part). A password of digits reads as a port, so the
    '#' or '?' then follows the netloc with no path between (``redis://default:2024#Desk@host:6379/0``; accepted and
    echoed in full by the first fix, found by the regression review). A fragment, or an '@' in a query value after
    the path (``/0?ssl_ca_certs=/etc/redis@prod/ca.pem``), with a readable host:port is a valid URL."""
    if "@" in parts.netloc or ("@" not in parts.query and "@" not in parts.fragment):
        return False
    try:
        parts.port  # noqa: B018 -- the property raises on a port that is not a number
    except ValueError:
        return True
    return not parts.hostname or not parts.path


def redact_url(url: str, *, posted: bool = False) -> str:
    """``url`` with its password, secret-looking path segments and secret query values as ``***``.
    Safe for logs, error messages and ``monitor config``; a URL it cannot parse is masked whole. ``posted``: the
    plain http(s) URL an HTTP sink posts to, whose path may be a webhook's token."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return MASK
    if cut_short_by_password(parts):  # the password runs on into the query or fragment, past the netloc
        return f"{parts.scheme}://{MASK}@{url.rpartition('@')[2]}"
    if not parts.scheme or (not parts.netloc and not parts.path):
        return url
    netloc = parts.netloc
    if parts.password is not None or "@" in netloc:
        user = parts.username or ""
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        credentials = f"{user}:{MASK}" if parts.password is not None else user
        netloc = f"{credentials}@{host}" + (f":{port}" if port is not None else "")
    fragment = MASK if parts.fragment and _RANDOM_LOOKING.match(parts.fragment) else parts.fragment
    path = _redact_path(parts.scheme, (parts.hostname or "").lower(), parts.path, posted)
    return urlunsplit((parts.scheme, netloc, path, _query(parts.query) if parts.query else "", fragment))


def is_secret_setting(path: Iterable[str], secret_keys: Iterable[tuple[str, ...]] = ()) -> bool:
    """Whether the setting at ``path`` holds a secret: listed in ``secret_keys``, or named ``…password`` /
    ``…secret`` / ``…token`` / ``…api_key``."""
    where = tuple(path)
    return where in {tuple(k) for k in secret_keys} or bool(where and _SECRET_SETTING.search(where[-1]))


def _redact_value(path: tuple[str, ...], value: Any, secrets: frozenset[tuple[str, ...]]) -> Any:
    if is_secret_setting(path, secrets) and not isinstance(value, dict | list):
        return SET if value else UNSET
    if isinstance(value, dict):
        return {k: _redact_value((*path, str(k)), v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_value(path, v, secrets) for v in value]
    if isinstance(value, str) and "://" in value:
        return redact_url(value)
    return value


def redact_setting(path: Iterable[str], value: Any, secret_keys: Iterable[tuple[str, ...]] = ()) -> Any:
    """One setting's value at ``path`` (``("kafka", "sasl_password")``) safe to print, e.g. in a config error: a
    secret setting is ``<set>`` / ``<unset>`` whatever its type (a number or a list too), else as in
    ``redact_settings``."""
    where, secrets = tuple(path), frozenset(tuple(k) for k in secret_keys)
    if is_secret_setting(where, secrets):
        return SET if value else UNSET
    return _redact_value(where, value, secrets)


def redact_settings(dump: dict[str, Any], secret_keys: Iterable[tuple[str, ...]] = ()) -> dict[str, Any]:
    """A settings dump (``model_dump(mode="json")``) safe to print: every URL redacted, every secret
    setting (the ``(section, key)`` pairs in ``secret_keys``, and any name ending in password /
    secret / token / api_key) shown only as ``<set>`` / ``<unset>``."""
    secrets = frozenset(tuple(k) for k in secret_keys)
    return {k: _redact_value((str(k),), v, secrets) for k, v in dump.items()}
