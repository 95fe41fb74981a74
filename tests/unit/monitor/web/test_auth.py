from __future__ import annotations

import pytest

from monitor.web.auth import token_matches


@pytest.mark.parametrize(("header", "ok"), [
    ("Bearer s3cret", True),
    ("bearer s3cret", True),
    ("Bearer  s3cret ", True),
    ("Bearer s3cre", False),
    ("Bearer s3cret2", False),
    ("Basic s3cret", False),
    ("s3cret", False),
    ("", False),
    (None, False),
])
def test_only_the_exact_bearer_token_matches(header: str | None, ok: bool) -> None:
    assert token_matches(header, "s3cret") is ok
