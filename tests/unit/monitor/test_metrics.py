"""Metric series that must exist before their first event (``rate()`` and ``increase()`` miss a series born at N)."""

from __future__ import annotations

import re
from pathlib import Path

from monitor.metrics import DEAD_LETTER_REASONS, prometheus_client_value
from monitor.types import SourceKind

ROOT = Path(__file__).resolve().parents[3]
REASON_IN_CODE = re.compile(
    r'InvalidMessage\(\s*"([a-z_]+)"|Unreadable\([^)"]*"([a-z_]+)"|_dead_letter\(\s*rec,\s*"([a-z_]+)"')


def test_every_dead_letter_reason_and_every_message_source_has_a_series_from_the_start() -> None:
    """Found by review: 200 bad messages made the reason's series at 200, its rate() stayed 0 and
    FinsentDeadLetters never fired; the messages series born at N made FinsentLateMessages see 100% late."""
    for reason in DEAD_LETTER_REASONS:
        assert prometheus_client_value("finsent_dead_letters_total", reason=reason) is not None, reason
    for source in SourceKind:
        assert prometheus_client_value("finsent_messages_total", source=source.value) is not None, source
    for state in ("firing", "resolved"):  # the dashboard's increase() missed each state's first notification
        assert prometheus_client_value("finsent_notifications_total", state=state) is not None, state


def test_every_reason_the_code_dead_letters_with_is_pre_created_and_in_the_readme_table() -> None:
    found = {next(g for g in m.groups() if g)
             for package in ("consumers", "monitor") for path in (ROOT / package).rglob("*.py")
             for m in REASON_IN_CODE.finditer(path.read_text(encoding="utf-8"))}
    assert found == set(DEAD_LETTER_REASONS)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("| reason | what |"):]
    table = table[:table.index("\n\n")]
    assert set(re.findall(r"`([a-z_]+)`", "\n".join(line.split("|")[1] for line in table.splitlines()))) \
        == set(DEAD_LETTER_REASONS)
