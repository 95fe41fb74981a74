from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from monitor.backtest.runner import parse_sweep
from monitor.backtest.scoring import FiredAlert, Incident, load_incidents, score
from monitor.config import InputError

DAY = 86_400
INCIDENTS = [Incident("ticker:BA", 10_000, 14_000), Incident("ticker:NVDA", 50_000, 53_000)]


def test_alert_on_incident_key_inside_its_window_is_a_hit_with_delay() -> None:
    s = score([FiredAlert(10_600, ("ticker:BA",))], INCIDENTS, span_s=DAY)
    assert (s.hits, s.false_alarms, s.detected) == (1, 0, 1)
    assert s.precision == 1.0
    assert s.recall == 0.5
    assert s.lead_times_s == (600, None)


def test_grouped_topic_ticker_key_counts_for_its_ticker_incident() -> None:
    s = score([FiredAlert(50_100, ("topic_ticker:earnings|NVDA",))], INCIDENTS, span_s=DAY)
    assert s.hits == 1 and s.lead_times_s == (None, 100)


def test_alert_on_another_key_or_outside_the_window_is_a_false_alarm() -> None:
    alerts = [FiredAlert(10_600, ("ticker:TSLA",)), FiredAlert(30_000, ("ticker:BA",))]
    s = score(alerts, INCIDENTS, span_s=2 * DAY, late_s=3600)
    assert s.false_alarms == 2
    assert s.false_alarms_per_day == 1.0
    assert s.precision == 0.0


def test_aggregate_key_during_an_incident_is_attributed_not_a_false_alarm() -> None:
    s = score([FiredAlert(11_000, ("all",)), FiredAlert(90_000, ("all",))], INCIDENTS, span_s=DAY)
    assert (s.attributed, s.false_alarms, s.hits) == (1, 1, 0)


def test_lead_time_percentiles_use_the_first_hit_per_incident() -> None:
    alerts = [FiredAlert(10_300, ("ticker:BA",)), FiredAlert(10_900, ("ticker:BA",)),
              FiredAlert(51_200, ("ticker:NVDA",))]
    s = score(alerts, INCIDENTS, span_s=DAY)
    assert s.lead_times_s == (300, 1200)
    assert s.lead_time_median_s == 750
    assert s.lead_time_p90_s == pytest.approx(300 + 0.9 * 900)


def test_incident_times_without_an_offset_are_read_in_the_feeds_zone_and_date_only_times_are_refused(
    tmp_path: Path,
) -> None:
    """Found by review: labelled in the feed's local clock (source.naive_time_zone), every incident was shifted by
    its UTC offset; a date alone became a zero-length incident at midnight."""
    path = tmp_path / "incidents.csv"
    path.write_text("key,start,end\nticker:BA,2026-11-03T09:00:00,2026-11-03T10:10:00\n")
    [inc] = load_incidents(path, naive_zone=ZoneInfo("America/New_York"))
    assert (inc.start_s, inc.end_s) == (1_793_714_400, 1_793_718_600)  # 14:00 and 15:10 UTC
    path.write_text("key,start,end\nticker:BA,2026-11-03,2026-11-03\n")
    with pytest.raises(InputError, match=r"'start' = '2026-11-03' has no time of day -- give one"):
        load_incidents(path)


def test_incident_csv_accepts_iso_and_epoch_times(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text("key,start,end,description\nticker:BA,2026-11-03T14:00:00Z,1793718600,grounding\n")
    [inc] = load_incidents(path)
    assert (inc.key, inc.start_s, inc.end_s, inc.description) == ("ticker:BA", 1793714400, 1793718600, "grounding")


@pytest.mark.parametrize(("body", "message"), [
    ("key,start,end\nticker:BA,2026-11-03T14:00:00Z\n", r"events.csv:2: column 'end' is empty"),
    ("key,start,end\nticker:BA,yesterday,2026-11-03T15:00:00Z\n", r"events.csv:2: column 'start' = 'yesterday'"),
    ("key,start,end\nticker:BA,2026-11-03T15:00:00Z,2026-11-03T14:00:00Z\n", r"events.csv:2: end .* is before start"),
    ("key,start,end\nBA,2026-11-03T14:00:00Z,2026-11-03T15:00:00Z\n", r"did you mean ticker:BA\?"),
    ("key,start,end\n", None),
    ("key;start;end\n", r"needs a header with columns key,start,end"),
])
def test_a_bad_incident_row_names_the_file_line_column_and_fix(tmp_path: Path, body: str, message: str | None) -> None:
    """Found by review: a missing cell was an AttributeError, a bad time blamed published_at, and an end before
    its start or a bare ``BA`` key were accepted and scored recall 0."""
    path = tmp_path / "events.csv"
    path.write_text(body)
    if message is None:
        assert load_incidents(path) == []  # a header alone: no incident, not "missing columns"
        return
    with pytest.raises(ValueError, match=message):
        load_incidents(path)


def test_an_incident_file_saved_by_a_spreadsheet_with_a_byte_order_mark_reads(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_bytes("key,start,end\nticker:BA,2026-11-03T14:00:00Z,1793718600\n".encode("utf-8-sig"))
    assert [i.key for i in load_incidents(path)] == ["ticker:BA"]


def test_incident_csv_header_names_are_read_without_case_and_surrounding_spaces(tmp_path: Path) -> None:
    """Found by review: "Key, Start, End, Description" was "missing ['end', 'key', 'start']" while a messages CSV
    reads its header that way."""
    path = tmp_path / "inc.csv"
    path.write_text("Key, Start, End, Description\nticker:BA,2026-11-03T14:00:00Z,2026-11-03T15:10:00Z,grounding\n")
    assert load_incidents(path) == [Incident("ticker:BA", 1_793_714_400, 1_793_718_600, "grounding")]


def test_an_incident_csv_header_naming_a_column_twice_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "inc.csv"
    path.write_text("key,start,end,Key\nticker:BA,2026-11-03T14:00:00Z,2026-11-03T15:10:00Z,\n")
    with pytest.raises(InputError, match=r"names column\(s\) key more than once"):
        load_incidents(path)


def test_sweep_is_the_cartesian_product_of_axes() -> None:
    grid = parse_sweep(["z_threshold=2,3", "min_volume=10,20,30"])
    assert len(grid) == 6
    assert {"z_threshold": 3.0, "min_volume": 30.0} in grid
    with pytest.raises(ValueError, match="NAME=V1"):
        parse_sweep(["z_threshold"])


def test_false_alarms_are_listed_by_position_for_the_report() -> None:
    alerts = [FiredAlert(10_600, ("ticker:BA",)), FiredAlert(30_000, ("ticker:TSLA",)), FiredAlert(31_000, ("all",))]
    s = score(alerts, INCIDENTS, span_s=2 * DAY)
    assert s.false_alarm_indices == (1, 2)
    assert s.alerts_per_day == 1.5


def test_delay_is_also_measured_from_the_first_negative_message() -> None:
    alerts = [FiredAlert(12_000, ("ticker:BA",)), FiredAlert(52_000, ("ticker:NVDA",))]
    s = score(alerts, INCIDENTS, span_s=DAY, first_negative_s=[11_000, None])
    assert s.lead_times_s == (2_000, 2_000)
    assert s.from_first_negative_s == (1_000, None)
    assert s.from_first_negative_median_s == 1_000.0


def test_sweeping_a_setting_the_configured_detection_does_not_read_is_refused() -> None:
    """Found by a walkthrough: burst_log10p on the default per-bucket detection gave identical rows and a 'best'."""
    from monitor.backtest.runner import settings_with
    from monitor.config import DETECTION_ONLY_SETTINGS, AlertSettings, load_settings

    assert all(name in AlertSettings.model_fields for names in DETECTION_ONLY_SETTINGS.values() for name in names)
    with pytest.raises(ValueError, match=r"only alerts\.detection = 'multiscale' reads it"):
        settings_with(load_settings(), {"burst_log10p": 4.0})
    assert settings_with(load_settings(), {"z_threshold": 4.0}).alerts.z_threshold == 4.0
    multiscale = load_settings(alerts={"detection": "multiscale"})
    assert settings_with(multiscale, {"burst_log10p": 4.0}).alerts.burst_log10p == 4.0
    with pytest.raises(ValueError, match=r"only alerts\.detection = 'bucket' reads it"):
        settings_with(multiscale, {"z_threshold": 4.0})


def test_a_reminder_of_an_episode_that_detected_an_incident_is_not_a_false_alarm() -> None:
    """Found by review: the default re-announces a firing alert every 4 h; the reminder after the late
    margin was scored as a false alarm of its own."""
    first = FiredAlert(10_600, ("ticker:BA",), ("burst:ticker:BA@10600",))
    reminder = FiredAlert(10_600 + 4 * 3600, ("ticker:BA",), ("burst:ticker:BA@10600",))
    s = score([first, reminder], INCIDENTS, span_s=DAY)
    assert (s.hits, s.false_alarms, s.detected) == (2, 0, 1)
    assert s.lead_times_s == (600, None)


def test_an_episode_firing_before_the_labelled_start_and_still_firing_detects_it_early() -> None:
    """Found by review: the first notice (20 min before the label) was a false alarm and a reminder 220 min
    into the incident the detection."""
    early = FiredAlert(10_000 - 1_200, ("ticker:BA",), ("burst:ticker:BA@8800",))
    reminder = FiredAlert(10_000 + 13_200, ("ticker:BA",), ("burst:ticker:BA@8800",))
    s = score([early, reminder], INCIDENTS, span_s=DAY)
    assert (s.hits, s.false_alarms) == (2, 0)
    assert s.lead_times_s == (-1_200, None)
    resolved_before = score([early], INCIDENTS, span_s=DAY, resolved_at_s={"burst:ticker:BA@8800": 9_500})
    assert (resolved_before.hits, resolved_before.false_alarms, resolved_before.detected) == (0, 1, 0)


def test_an_episode_that_detected_one_incident_is_not_credited_with_the_next_on_its_key() -> None:
    """Found by review: a story firing for a day "detected" a follow-up label with no burst in the data, 20 h early."""
    first, follow_up = Incident("ticker:BA", 36_000, 43_200), Incident("ticker:BA", 72_000, 79_200)
    alert = FiredAlert(37_800, ("ticker:BA",), ("burst:ticker:BA@37800",))
    s = score([alert], [first, follow_up], span_s=DAY, resolved_at_s={"burst:ticker:BA@37800": 82_800})
    assert (s.detected, s.lead_times_s) == (1, (1_800, None))


def test_one_alert_detects_one_incident_even_where_the_late_margin_reaches_the_next() -> None:
    """Found by review: an alert inside the second incident also counted for the first one, just ended."""
    incidents = [Incident("ticker:BA", 36_000, 39_600), Incident("ticker:BA", 41_400, 43_200)]
    s = score([FiredAlert(42_000, ("ticker:BA",))], incidents, span_s=DAY)
    assert (s.detected, s.lead_times_s) == (1, (None, 600))
    duplicate_labels = [Incident("ticker:BA", 36_000, 39_600)] * 2
    assert score([FiredAlert(37_000, ("ticker:BA",))], duplicate_labels, span_s=DAY).detected == 1


def test_a_notification_that_also_names_an_unrelated_ticker_is_a_hit_and_a_false_alarm() -> None:
    """Found by review: grouping puts keys that share a topic in one notification; a TSLA alert hid behind
    the BA hit it was grouped with."""
    keys = ("ticker:BA", "topic_ticker:earnings|BA", "topic_ticker:earnings|TSLA", "topic:earnings")
    grouped = FiredAlert(10_600, keys)
    s = score([grouped], INCIDENTS, span_s=DAY)
    assert (s.hits, s.false_alarms, s.detected, s.false_alarm_indices) == (1, 1, 1, (0,))
    only_related = FiredAlert(10_600, ("ticker:BA", "topic:earnings", "all"))
    assert score([only_related], INCIDENTS, span_s=DAY).false_alarms == 0


def test_an_incident_key_with_a_lower_case_ticker_matches_the_upper_case_window_key(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text("key,start,end\nticker:ba,10000,14000\ntopic_ticker:earnings|nvda,50000,53000\n")
    assert [i.key for i in load_incidents(path)] == ["ticker:BA", "topic_ticker:earnings|NVDA"]


def test_the_best_sweep_row_has_fewer_false_alarms_a_day_at_equal_recall() -> None:
    """Found by review: precision per notification picked a setting with 3x the false alarms that paged more
    often on its hits."""
    from monitor.backtest.command import _rank

    hit = [FiredAlert(10_600 + 60 * n, ("ticker:BA",)) for n in range(12)]
    noisy = score([*hit, *(FiredAlert(60_000 + n, ("ticker:TSLA",)) for n in range(3))], INCIDENTS, span_s=4 * DAY)
    quiet = score([hit[0], FiredAlert(60_000, ("ticker:TSLA",))], INCIDENTS, span_s=4 * DAY)
    assert noisy.precision > quiet.precision
    assert _rank(quiet) > _rank(noisy)


def test_a_swept_value_is_validated_and_a_fraction_of_a_whole_number_setting_is_refused() -> None:
    from monitor.backtest.runner import settings_with
    from monitor.config import load_settings

    with pytest.raises(ValueError, match=r"min_volume=15.2: min_volume is a whole number"):
        settings_with(load_settings(), {"min_volume": 15.2})
    with pytest.raises(ValueError, match=r"--sweep z_threshold: Input should be greater than 0"):
        settings_with(load_settings(), {"z_threshold": -1.0})


def test_precision_without_scored_alerts_and_recall_without_incidents_read_not_applicable() -> None:
    nothing = score([], [], span_s=DAY)
    assert (nothing.precision_text, nothing.recall_text) == ("n/a", "n/a")
    missed = score([FiredAlert(30_000, ("ticker:TSLA",))], INCIDENTS, span_s=DAY)
    assert (missed.precision_text, missed.recall_text) == ("0.00", "0.00")


def test_a_sweep_value_that_is_not_a_number_is_an_input_error_naming_the_flag() -> None:
    from monitor.config import ConfigError

    with pytest.raises(ConfigError, match=r"--sweep 'burst_log10p=a': every value must be a number"):
        parse_sweep(["burst_log10p=a"])


def test_a_bad_incident_row_is_an_input_error_naming_the_events_flag(tmp_path: Path) -> None:
    from monitor.config import ConfigError

    path = tmp_path / "events.csv"
    path.write_text("key,start,end\nticker:BA,notadate,1793718600\n")
    with pytest.raises(ConfigError, match=r"--events .*events\.csv:2: column 'start'"):
        load_incidents(path)


def test_an_invalid_sweep_is_refused_before_the_classifier_loads_or_the_first_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import asyncio

    from monitor.backtest import command
    from monitor.config import ConfigError, Settings

    def no_classifier(*args: object) -> None:
        raise AssertionError("the classifier was built before the sweep was checked")

    monkeypatch.setattr(command, "build_classifier", no_classifier)
    with pytest.raises(ConfigError, match="--sweep burst_log10: not an"):
        asyncio.run(command.run_backtest(Settings(), [], ["z_threshold=3", "burst_log10=1,2"], early_s=0, late_s=0))


def test_a_duplicate_incident_row_is_refused_naming_its_line_and_the_line_it_repeats(tmp_path: Path) -> None:
    """Found by review: a repeated row counted as a second incident (``detected 0/2`` for one). The same incident
    written another way (lower-case ticker, epoch time) is a duplicate too."""
    path = tmp_path / "events.csv"
    path.write_text("key,start,end\nticker:BA,2026-11-03T14:00:00Z,1793718600\nticker:NVDA,1793714400,1793718600\n"
                    "ticker:ba,1793714400,2026-11-03T15:10:00Z,again\n")
    with pytest.raises(ValueError, match=r"events.csv:4: repeats line 2 \(same key, start and end\) -- remove"):
        load_incidents(path)


def test_incidents_on_one_key_with_different_times_are_all_kept(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text("key,start,end\nticker:BA,1793714400,1793718600\nticker:BA,1793714400,1793718601\n")
    assert len(load_incidents(path)) == 2


def _fake_runs(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, float]]:
    from monitor.backtest import command

    ran: list[dict[str, float]] = []

    async def run_once(settings: object, classifier: object, params: dict[str, float], **kw: object) -> object:
        ran.append(params)
        return object()

    async def spans_s(result: object) -> tuple[int, int]:
        return 86_400, 86_400

    monkeypatch.setattr(command, "build_classifier", lambda *a: None)
    monkeypatch.setattr(command, "CachedClassifier", lambda c: c)
    monkeypatch.setattr(command, "run_once", run_once)
    monkeypatch.setattr(command, "_spans_s", spans_s)
    monkeypatch.setattr(command, "fired_alerts", lambda r: [])
    monkeypatch.setattr(command, "resolved_at_s", lambda r: {})
    monkeypatch.setattr(command, "score", lambda *a, **k: None)
    return ran


def test_a_sweep_crossing_baseline_buckets_with_min_baseline_buckets_skips_only_the_contradictory_combinations(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    """Found by review: the whole grid was refused because some combinations have min above the baseline."""
    import asyncio

    from monitor.backtest import command
    from monitor.config import Settings

    ran = _fake_runs(monkeypatch)
    sweep = ["baseline_buckets=6,24", "min_baseline_buckets=4,12"]
    results = asyncio.run(command.run_backtest(Settings(), [], sweep, early_s=0, late_s=0))
    assert ran == [{"baseline_buckets": 6, "min_baseline_buckets": 4},
                   {"baseline_buckets": 24, "min_baseline_buckets": 4},
                   {"baseline_buckets": 24, "min_baseline_buckets": 12}]
    assert len(results) == 3
    [line] = [line for line in capsys.readouterr().err.splitlines() if "skipping" in line]
    assert "1 contradictory combination" in line and "baseline_buckets=6, min_baseline_buckets=12" in line


def test_a_sweep_whose_every_combination_is_contradictory_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from monitor.backtest import command
    from monitor.config import ConfigError, Settings

    ran = _fake_runs(monkeypatch)
    with pytest.raises(ConfigError, match="min_baseline_buckets"):
        asyncio.run(command.run_backtest(Settings(), [], ["baseline_buckets=3"], early_s=0, late_s=0))
    assert ran == []


@pytest.mark.parametrize(("written", "key"), [
    ("ticker:$ZQA", "ticker:ZQA"), ("TICKER: zqa", "ticker:ZQA"), ("ticker:BRK-B", "ticker:BRK.B"),
    ("ticker:BRK/B", "ticker:BRK.B"), ("topic_ticker:earnings|brk-b", "topic_ticker:earnings|BRK.B"), ("ALL", "all"),
])
def test_an_incident_key_is_spelt_as_the_windows_spell_a_messages_ticker(
    tmp_path: Path, written: str, key: str
) -> None:
    """Found by review: ``ticker:$ZQA`` or ``ticker:BRK-B`` matched no window, so the real detections scored as
    false alarms and the incident as missed."""
    path = tmp_path / "events.csv"
    path.write_text(f"key,start,end\n{written},10000,14000\n")
    assert [i.key for i in load_incidents(path)] == [key]


@pytest.mark.parametrize(("written", "hint"), [
    ("$ZQA", "did you mean ticker:ZQA?"), ("cashtag:ZQA", "did you mean ticker:ZQA?"),
    ("ticker:AAPL US Equity", "names no window -- use all"),
])
def test_a_key_naming_no_window_gets_a_hint_built_from_its_symbol(tmp_path: Path, written: str, hint: str) -> None:
    """The hint said ``ticker:$ZQA`` and ``ticker:CASHTAG:ZQA``."""
    path = tmp_path / "events.csv"
    path.write_text(f"key,start,end\n{written},10000,14000\n")
    with pytest.raises(ValueError, match=hint.replace("?", r"\?")) as refused:
        load_incidents(path)
    assert "ticker:$" not in str(refused.value) and "CASHTAG" not in str(refused.value)


def test_a_sweep_hint_names_a_config_that_uses_the_detection_the_setting_needs() -> None:
    """Found by review: sweeping a per-bucket setting on production.toml suggested passing production.toml."""
    from monitor.backtest.runner import settings_with
    from monitor.config import load_settings

    with pytest.raises(ValueError, match=r"configs/default\.toml") as refused:
        settings_with(load_settings(alerts={"detection": "multiscale"}), {"z_threshold": 4.0})
    assert "production.toml" not in str(refused.value)
    with pytest.raises(ValueError, match="whole number") as refused:
        settings_with(load_settings(), {"min_volume": 15.2})
    assert "it ran as" not in str(refused.value), "the value was refused, not run"


@pytest.mark.parametrize(("written", "key"), [
    ("topic:Earnings", "topic:earnings"),
    ("topic: M_AND_A ", "topic:m_and_a"),
    ("topic_ticker:Earnings|ba", "topic_ticker:earnings|BA"),
    ("TOPIC_TICKER: Guidance |BA", "topic_ticker:guidance|BA"),
])
def test_an_incident_topic_is_lower_cased_as_topic_names_are(tmp_path: Path, written: str, key: str) -> None:
    """``topic:Earnings`` kept its case, matched no window and scored recall 0 (found by review)."""
    path = tmp_path / "events.csv"
    path.write_text(f"key,start,end\n{written},2026-11-03T14:00:00Z,1793718600\n")
    assert [i.key for i in load_incidents(path)] == [key]


def test_an_unclosed_quote_that_swallows_the_next_incident_is_an_error_naming_the_line(tmp_path: Path) -> None:
    """Found by review: the WFC incident became BA's description, and recall was computed over one incident."""
    path = tmp_path / "events.csv"
    path.write_text('key,start,end,description\nticker:BA,2026-11-01T00:00:00Z,2026-11-01T06:00:00Z,"Boeing\n'
                    'ticker:WFC,2026-11-02T03:00:00Z,2026-11-02T09:00:00Z,Wells\n')
    with pytest.raises(InputError, match=r"events\.csv:2: a quote opened here closes only on line 3"):
        load_incidents(path)


def test_a_description_over_several_lines_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text('key,start,end,description\nticker:BA,2026-11-01T00:00:00Z,2026-11-01T06:00:00Z,"Boeing:\n'
                    'door plug, grounding"\n')
    [incident] = load_incidents(path)
    assert incident.description == "Boeing:\ndoor plug, grounding"


@pytest.mark.parametrize("content", ["key,start,end\nticker:BA,2026-11-01,caf\u00e9\n".encode("latin-1"),
                                     "key,start,end\n".encode("utf-16")])
def test_a_file_that_is_not_utf8_csv_is_an_error_naming_events(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "events.csv"
    path.write_bytes(content)
    with pytest.raises(InputError, match=r"^--events .*events\.csv: not a UTF-8 CSV file"):
        load_incidents(path)


def test_a_setting_swept_twice_is_refused_not_reduced_to_its_last_values() -> None:
    """Found by review: --sweep z_threshold=2,3 --sweep z_threshold=4 ran 4.0 twice and never 2 or 3."""
    with pytest.raises(InputError, match="z_threshold is swept twice"):
        parse_sweep(["z_threshold=2,3", " z_threshold=4"])


def test_a_description_line_with_a_colon_and_commas_is_not_taken_for_a_swallowed_incident(tmp_path: Path) -> None:
    """Found by review: the unclosed-quote check refused this well-formed file."""
    path = tmp_path / "events.csv"
    path.write_text('key,start,end,description\nticker:BA,2026-11-01T00:00:00Z,2026-11-01T06:00:00Z,"Door plug.\n'
                    'Timeline: FAA grounding at 02:00, shares -8% premarket, per Reuters"\n')
    [incident] = load_incidents(path)
    assert incident.description.endswith("per Reuters")


def test_a_reminder_never_detects_a_later_incident_so_recall_does_not_depend_on_the_repeat_interval() -> None:
    """Found by review: with the default 4-hourly reminders the episode of the first incident "detected" the
    follow-up one too (2/2), with repeat_interval_s = 0 it did not (1/2)."""
    first, follow_up = Incident("ticker:BA", 36_000, 43_200), Incident("ticker:BA", 72_000, 79_200)
    episode = "burst:ticker:BA@37800"
    for interval in (0, 3 * 3600, 4 * 3600):
        reminders = [FiredAlert(t, ("ticker:BA",), (episode,)) for t in range(37_800 + interval, 82_800, interval)
                     ] if interval else []
        s = score([FiredAlert(37_800, ("ticker:BA",), (episode,)), *reminders], [first, follow_up], span_s=DAY,
                  resolved_at_s={episode: 82_800})
        assert (s.detected, s.lead_times_s, s.false_alarms) == (1, (1_800, None), 0), interval


def test_a_reminder_in_the_early_margin_of_an_episode_that_ended_before_the_incident_is_a_false_alarm() -> None:
    """The reminder takes its episode's verdict: its first notice, before the margin, was a false alarm."""
    episode = "burst:ticker:BA@1000"
    alerts = [FiredAlert(1_000, ("ticker:BA",), (episode,)), FiredAlert(8_200, ("ticker:BA",), (episode,))]
    s = score(alerts, INCIDENTS, span_s=DAY, early_s=3_600, resolved_at_s={episode: 9_000})
    assert (s.hits, s.false_alarms, s.detected) == (0, 2, 0)


def test_an_episode_firing_before_unsorted_incidents_is_credited_to_the_earliest() -> None:
    """Found by review: the episode was credited to the first row of the file, 18 h early instead of 8."""
    earlier, later = Incident("ticker:BA", 36_000, 39_600, "A"), Incident("ticker:BA", 72_000, 75_600, "B")
    alert = FiredAlert(7_200, ("ticker:BA",), ("e@7200",))
    for incidents in ([earlier, later], [later, earlier]):
        s = score([alert], incidents, span_s=DAY, resolved_at_s={"e@7200": 79_200})
        leads = dict(zip((inc.description for inc in incidents), s.lead_times_s, strict=True))
        assert leads == {"A": -28_800, "B": None}


@pytest.mark.parametrize(("incident_key", "keys", "expected"), [
    ("topic_ticker:earnings|BA", ("ticker:BA", "topic_ticker:earnings|BA"), (1, 0, 0, 1)),
    ("topic_ticker:earnings|BA", ("ticker:BA",), (0, 1, 0, 0)),
    ("topic_ticker:earnings|BA", ("topic_ticker:guidance|BA",), (0, 1, 0, 0)),
    ("topic_ticker:earnings|BA", ("topic_ticker:earnings|BA", "topic_ticker:earnings|TSLA"), (1, 0, 1, 1)),
    ("topic:earnings", ("topic:earnings", "topic_ticker:earnings|BA"), (1, 0, 0, 1)),
    ("topic:earnings", ("topic_ticker:earnings|BA",), (0, 1, 0, 0)),
    ("topic:earnings", ("ticker:BA",), (0, 0, 1, 0)),
])
def test_a_key_sharing_the_incidents_ticker_or_topic_is_attributed_to_it_not_a_false_alarm(
    incident_key: str, keys: tuple[str, ...], expected: tuple[int, int, int, int]
) -> None:
    """Found by review: the engine pages ``ticker:BA`` with ``topic_ticker:earnings|BA``; the notification that
    detected a topic_ticker incident was also a false alarm, and ``ticker:BA`` alone was a miss and a false alarm.
    Only the incident's key (or, for a ticker incident, a topic_ticker key of its ticker) detects it."""
    s = score([FiredAlert(36_600, keys)], [Incident(incident_key, 36_000, 39_600)], span_s=DAY)
    assert (s.hits, s.attributed, s.false_alarms, s.detected) == expected
