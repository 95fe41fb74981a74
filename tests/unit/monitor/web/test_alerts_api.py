"""The ``/alerts`` API's alert rows."""

from __future__ import annotations

from dataclasses import asdict, replace

from alerts.lifecycle import AlertState
from alerts.model import AlertStatus
from monitor.web.alerts_api import alert_json, parse_silence_request
from tests.unit.alerts.builders import DAY0_S, signal


def test_a_firing_alert_row_carries_the_signal_it_fired_on_beside_its_latest_quiet_bucket() -> None:
    """Found by review: only ``last_signal`` was returned: a firing alert waiting to resolve read ``triggered: []``."""
    fired = signal("ticker:X", DAY0_S, active=True)
    state = AlertState("d", "negative_sentiment", "ticker:X", AlertStatus.FIRING, started_at_s=DAY0_S,
                       last_signal=signal("ticker:X", DAY0_S + 300, active=False), firing_signal=fired)
    row = alert_json(state, [], DAY0_S + 300)
    assert row["firing_signal"] == asdict(fired) and row["firing_signal"]["triggered"] == ("spike",)
    assert row["last_signal"]["triggered"] == ()
    assert alert_json(AlertState("d", "r", "ticker:X"), [], DAY0_S)["firing_signal"] is None


def test_an_alert_says_whether_its_episode_was_paged() -> None:
    """A firing episode from old data (alerts.max_page_age_s), silenced or in cooldown is not paged: the desk must
    be able to tell it from one it was paged for."""
    fired = signal("ticker:X", DAY0_S, active=True)
    state = AlertState("d", "r", "ticker:X", AlertStatus.FIRING, started_at_s=DAY0_S, last_signal=fired)
    assert alert_json(state, [], DAY0_S)["paged"] is False
    assert alert_json(replace(state, notified=True), [], DAY0_S)["paged"] is True


def test_a_silence_comment_and_author_lose_direction_controls_as_evidence_text_does() -> None:
    """Found by review: ``"x \\u202eevil"`` was stored as is and reversed the rest of its row in the overview's
    silences table."""
    fields = parse_silence_request({"matcher": "ticker:WFC", "duration_s": 60, "comment": "x \u202eevil\u202c",
                                    "created_by": "\u2066ann\u2069\u200f"})
    assert (fields["comment"], fields["created_by"]) == ("x evil", "ann")
    assert fields["matcher"] == "ticker:WFC"
