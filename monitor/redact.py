"""Hiding secrets in what the daemon prints: URLs in logs and errors, and ``monitor config``.

Secrets hide in URLs in more places than the password: Slack and most webhook services put the
token in the *path* (``hooks.slack.com/services/T…/B…/<token>``), others in the query
(``?token=``, ``?key=``, ``?sig=``). ``redact_url`` masks all three, keeping what an operator needs to
recognise the target (scheme, user, host, port, non-secret path and query keys). It errs on the side
of hiding: a long random-looking path segment (letters *and* digits, 16+ characters: tokens, UUIDs)
is masked even when it is only an id.

``redact_settings`` applies it to every URL-looking string of a settings dump and replaces every
secret setting (a name ending in password / secret / token / api_key) by ``<set>`` or ``<unset>``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

MASK = "***"
SET, UNSET = "<set>", "<unset>"
_SECRET_NAME = re.compile(r"(pass|pwd|secret|token|key|sig|auth|credential|session|code)", re.IGNORECASE)
_NOT_SECRET_NAME = re.compile(r"(file|certs?|path|reqs|dir)$", re.IGNORECASE)
"""Query keys naming *where* a secret lives, not the secret (``ssl_keyfile``, ``ssl_ca_certs``)."""
_RANDOM_LOOKING = re.compile(r"^(?=[^/]*[A-Za-z])(?=[^/]*\d)[A-Za-z0-9_\-.~+=]{16,}$")
_SECRET_SETTING = re.compile(r"(password|secret|token|api_key)$", re.IGNORECASE)
_PLAIN_PATH_SCHEMES = frozenset({"file", "log", "kafka", "memory", "unix"})
"""Schemes whose path is a file name or topic, never a token."""


def _secret_query_key(key: str) -> bool:
    return bool(_SECRET_NAME.search(key)) and not _NOT_SECRET_NAME.search(key)


def _path(path: str) -> str:
    return "/".join(MASK if _RANDOM_LOOKING.match(segment) else segment for segment in path.split("/"))


def _query(query: str) -> str:
    pairs = parse_qsl(query, keep_blank_values=True)
    shown = [(k, MASK if v and (_secret_query_key(k) or _RANDOM_LOOKING.match(v)) else v) for k, v in pairs]
    return "&".join(f"{quote(k, safe='')}={v if v == MASK else quote(v, safe='@,:/')}" for k, v in shown)


def redact_url(url: str) -> str:
    """``url`` with its password, secret-looking path segments and secret query values as ``***``.
    Safe for logs, error messages and ``monitor config``; a URL it cannot parse is masked whole."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return MASK
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
    path = parts.path if parts.scheme in _PLAIN_PATH_SCHEMES else _path(parts.path)
    return urlunsplit((parts.scheme, netloc, path, _query(parts.query) if parts.query else "", fragment))


def _redact_value(path: tuple[str, ...], value: Any, secrets: frozenset[tuple[str, ...]]) -> Any:
    if (path in secrets or _SECRET_SETTING.search(path[-1])) and not isinstance(value, dict | list):
        return SET if value else UNSET
    if isinstance(value, dict):
        return {k: _redact_value((*path, str(k)), v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_value(path, v, secrets) for v in value]
    if isinstance(value, str) and "://" in value:
        return redact_url(value)
    return value


def redact_settings(dump: dict[str, Any], secret_keys: Iterable[tuple[str, ...]] = ()) -> dict[str, Any]:
    """A settings dump (``model_dump(mode="json")``) safe to print: every URL redacted, every secret
    setting (the ``(section, key)`` pairs in ``secret_keys``, and any name ending in password /
    secret / token / api_key) shown only as ``<set>`` / ``<unset>``."""
    secrets = frozenset(tuple(k) for k in secret_keys)
    return {k: _redact_value((str(k),), v, secrets) for k, v in dump.items()}
