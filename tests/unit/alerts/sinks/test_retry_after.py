"""HTTP ``Retry-After`` in both of its forms; anything else is ignored rather than trusted."""

from __future__ import annotations

import pytest

from alerts.sinks.http import retry_after


@pytest.mark.parametrize(("value", "expected"), [
    ("7", 7.0), (" 120 ", 120.0), ("Wed, 21 Oct 2015 07:28:30 GMT", 30.0), ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),
    (None, None), ("", None), ("soon", None), ("-5", None), ("1.5", None), ("\u00b2", None), ("\u0663", None),
])
def test_retry_after_reads_seconds_and_http_dates(value: str | None, expected: float | None) -> None:
    now_s = 1445412480.0  # Wed, 21 Oct 2015 07:28:00 GMT
    assert retry_after(value, now_s=now_s) == expected
