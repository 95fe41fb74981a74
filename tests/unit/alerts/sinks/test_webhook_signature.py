"""Receivers verify the webhook's HMAC with ``verify_signature``: a forged header is a rejection, never an exception."""

from __future__ import annotations

import pytest

from alerts.sinks.webhook import sign, verify_signature

SECRET = "s3cret"
BODY = b'{"id": "n1"}'


def test_the_signature_of_the_body_verifies() -> None:
    assert verify_signature(SECRET, BODY, sign(SECRET, BODY))


@pytest.mark.parametrize("header", [None, "", "sha256=00", sign("other", BODY), "sha256=\u00e9", "sha256=\udcff",
                                    sign(SECRET, BODY) + "\u00e9"])
def test_a_missing_wrong_or_non_ascii_signature_is_rejected_without_raising(header: str | None) -> None:
    assert verify_signature(SECRET, BODY, header) is False
