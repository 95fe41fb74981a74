"""The end-of-replay summary (monitor/replay.py)."""

from __future__ import annotations

import gzip
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from monitor.config import Settings, SourceSettings
from monitor.durations import iso_utc
from monitor.engine.pipeline import PipelineStats
from monitor.replay import count_lines, isolated_settings, replay_summary


def test_replay_summary_counts_duplicates_and_rejected_rows_and_names_the_dead_letter_file(tmp_path: Path) -> None:
    """Found by review: 293 records printed as "replayed 223 messages (216 new, 5 late)", nothing about the 70
    rejected rows, the 2 duplicates or where the rejected ones were kept."""
    dead_path = tmp_path / "replay.dead-letter.jsonl"
    # source.kind stays kafka in a Kafka range replay: the rows are in the file all the same, not on the topic
    settings = isolated_settings(Settings(source=SourceSettings(kind="kafka")), sinks=["file://r.jsonl"],
                                 dead_letter_path=dead_path)
    stats = PipelineStats(read=223, applied=216, duplicates=2, late=5, dead_letters=75, notifications=1,
                          evaluated_until_s=1_794_279_600)
    head, rejected, alerts = replay_summary(settings, stats, tmp_path / "r.jsonl")
    assert head == (f"replayed 223 messages (216 new, 2 duplicates, 5 late); 1 alert notifications -> "
                    f"{tmp_path / 'r.jsonl'}; detection evaluated until {iso_utc(1_794_279_600)}")
    assert rejected == f"75 input rows were rejected (5 of them late); each is kept with its reason in {dead_path}"
    assert alerts.startswith("alerts went to: file://r.jsonl")


def test_replay_summary_counts_rows_the_pipeline_refused_so_the_breakdown_adds_up_to_what_was_read(
    tmp_path: Path,
) -> None:
    """Found by review: 302 rows, 2 refused by the event-time jump guard, printed "replayed 302 messages (300 new,
    0 duplicates, 0 late)" and "2 input rows were rejected": the 2 were in neither breakdown."""
    dead_path = tmp_path / "r.dead-letter.jsonl"
    settings = isolated_settings(Settings(), sinks=["file://r.jsonl"], dead_letter_path=dead_path)
    stats = PipelineStats(read=306, applied=300, late=1, refused={"implausible_time": 2, "id_conflict": 3},
                          dead_letters=7)
    head, rejected, *_ = replay_summary(settings, stats, tmp_path / "r.jsonl")
    assert head.startswith("replayed 306 messages (300 new, 0 duplicates, 1 late, 3 id_conflict, 2 implausible_time);")
    assert rejected.startswith("7 input rows were rejected (1 of them late, 3 id_conflict, 2 implausible_time); ")
    only_refused = PipelineStats(read=2, refused={"implausible_time": 2}, dead_letters=2)
    assert replay_summary(settings, only_refused, tmp_path / "r.jsonl")[1].startswith(
        "2 input rows were rejected (2 of them implausible_time); ")


def test_a_replay_with_nothing_rejected_prints_no_dead_letter_line(tmp_path: Path) -> None:
    settings = isolated_settings(Settings(), sinks=[], dead_letter_path=tmp_path / "dl.jsonl")
    assert replay_summary(settings, PipelineStats(read=3, applied=3), tmp_path / "r.jsonl") == [
        f"replayed 3 messages (3 new, 0 duplicates, 0 late); 0 alert notifications -> {tmp_path / 'r.jsonl'}; "
        f"detection evaluated until {iso_utc(None)}"]


def test_a_replay_stopped_by_a_signal_says_its_report_is_partial_and_exits_non_zero(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    import signal

    from monitor import replay

    async def interrupted(settings: Settings, *, progress: bool, kafka: object = None,
                          stopped_by: list[int] | None = None) -> PipelineStats:
        assert stopped_by is not None
        stopped_by.append(signal.SIGINT)
        stats = PipelineStats()
        stats.read = 7
        return stats

    data = tmp_path / "in.jsonl"
    data.write_text('{"id": "a"}\n')  # an empty input is refused before the run
    monkeypatch.setattr(replay, "run_replay", interrupted)
    code = replay.replay_command(["--no-progress", "--input", str(data), "--report", str(tmp_path / "r.jsonl")],
                                 Settings())
    assert code == 130
    assert "stopped by SIGINT after 7 rows; the report is partial" in capsys.readouterr().err


def test_ctrl_c_outside_the_engine_is_one_line_and_exit_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    from monitor import cli

    def interrupted(args: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "cmd_run", interrupted)
    assert cli.main(["run"]) == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "interrupted (Ctrl-C)" in err and "Traceback" not in err


def test_the_progress_total_counts_the_rows_of_gzipped_files_not_their_compressed_bytes(tmp_path: Path) -> None:
    plain, jsonl_gz, csv_gz, damaged = (tmp_path / n for n in ("a.jsonl", "b.jsonl.gz", "c.csv.gz", "d.jsonl.gz"))
    plain.write_text("{}\n\n{}")  # a blank line counts, and so does a last line without a newline
    jsonl_gz.write_bytes(gzip.compress(b"{}\n" * 1000))
    csv_gz.write_bytes(gzip.compress(b"id,source,text,published_at\n" + b"1,news,x,1767225600\n" * 500))
    damaged.write_bytes(gzip.compress(b"{}\n" * 1000)[:-5])  # reading it dead-letters the damage
    assert count_lines([plain, jsonl_gz, csv_gz, damaged]) == 3 + 1000 + 500


def test_the_progress_total_of_a_gzip_bomb_line_is_counted_in_bounded_memory(tmp_path: Path) -> None:
    """A 510 KB gzip file holding one 512 MiB line took 1.2 GB to count (found by review)."""
    bomb = tmp_path / "bomb.jsonl.gz"
    bomb.write_bytes(gzip.compress(b"x" * (64 << 20) + b"\n{}\n", compresslevel=1))
    tracemalloc.start()
    try:
        assert count_lines([bomb]) == 2
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20


def _refused(argv: list[str], settings: Settings, capsys: pytest.CaptureFixture[str]) -> str:
    from monitor import replay

    with pytest.raises(SystemExit) as exit_:
        replay.replay_command(["--no-progress", *argv], settings)
    assert exit_.value.code == 2
    return capsys.readouterr().err


def test_a_report_that_is_an_input_is_refused_and_the_input_kept(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """Found by review: --report in.jsonl deleted the input, then said it was not found."""
    data = tmp_path / "in.jsonl"
    data.write_text('{"id": "a"}\n')
    link = tmp_path / "link.jsonl"
    link.symlink_to(data)
    for report in (data, link):
        err = _refused(["--input", str(data), "--report", str(report)], Settings(), capsys)
        assert "is also the --report file" in err and "choose another --report" in err
        assert data.read_text() == '{"id": "a"}\n'


def test_replaying_its_own_dead_letter_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Found by review: every rejected row was written back into the file being read (100 MB until rotation)."""
    dead = tmp_path / "r.dead-letter.jsonl"
    dead.write_text('{"reason": "bad_json"}\n')
    err = _refused(["--input", str(dead), "--report", str(tmp_path / "r.jsonl")], Settings(), capsys)
    assert "is also this replay's dead-letter file" in err


def test_a_replay_starts_its_dead_letter_file_and_its_rotations_afresh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Found by review: rerun with the same --report, the report was replaced but the dead-letter file kept every
    earlier run's rows (3, 6, 9 lines) while the summary counted this run's 3."""
    from monitor import replay

    seen: list[bool] = []

    async def run(settings: Settings, *, progress: bool, kafka: object = None,
                  stopped_by: list[int] | None = None) -> PipelineStats:
        seen.append(settings.source.dead_letter_path.exists())
        return PipelineStats(read=1, applied=1)

    data, report = tmp_path / "in.jsonl", tmp_path / "r.jsonl"
    data.write_text('{"id": "a"}\n')
    stale = [tmp_path / "r.dead-letter.jsonl", tmp_path / "r.dead-letter.jsonl.1", tmp_path / "r.dead-letter.jsonl.5"]
    for path in stale:
        path.write_text('{"reason": "bad_json"}\n')
    monkeypatch.setattr(replay, "run_replay", run)
    assert replay.replay_command(["--no-progress", "--input", str(data), "--report", str(report)], Settings()) == 0
    assert seen == [False] and not any(path.exists() for path in stale)


def test_replaying_a_rotation_of_its_own_dead_letter_file_is_refused_and_the_input_kept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """Found by review: clearing the run's dead-letter rotations deleted the --input that was one of them, then
    said the replay file was not found."""
    rotation = tmp_path / "r.dead-letter.jsonl.1"
    rotation.write_text('{"id": "a"}\n' * 50)
    err = _refused(["--input", str(rotation), "--report", str(tmp_path / "r.jsonl")], Settings(), capsys)
    assert "is also a rotation (r.dead-letter.jsonl.1) of this replay's dead-letter file" in err
    assert "choose another --report" in err and rotation.read_text() == '{"id": "a"}\n' * 50


def test_a_report_whose_dead_letter_file_is_the_daemons_is_refused_and_the_daemons_files_kept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """Found by review: the run's dead-letter file and rotations were deleted at start even where they were the
    daemon's source.dead_letter_path, to which a running daemon then kept writing through an unlinked inode."""
    data = tmp_path / "in.jsonl"
    data.write_text('{"id": "a"}\n')
    daemon = [tmp_path / "r.dead-letter.jsonl", tmp_path / "r.dead-letter.jsonl.2"]
    for path in daemon:
        path.write_text('{"reason": "bad_json"}\n')
    settings = Settings.model_validate({"source": {"dead_letter_path": str(daemon[0])}})
    err = _refused(["--input", str(data), "--report", str(tmp_path / "r.jsonl")], settings, capsys)
    assert "would be the daemon's (source.dead_letter_path" in err and "choose another --report" in err
    assert all(path.read_text() == '{"reason": "bad_json"}\n' for path in daemon)


def test_a_report_that_is_the_daemons_dead_letter_file_is_refused_and_the_file_kept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """Found by review: the report is replaced at start, so --report var/dead-letter.jsonl deleted the daemon's
    dead letters."""
    data = tmp_path / "in.jsonl"
    data.write_text('{"id": "a"}\n')
    daemon = tmp_path / "dead-letter.jsonl"
    daemon.write_text('{"reason": "bad_json"}\n')
    settings = Settings.model_validate({"source": {"dead_letter_path": str(daemon)}})
    err = _refused(["--input", str(data), "--report", str(daemon)], settings, capsys)
    assert "is a file of the daemon's dead letters" in err and "choose another --report" in err
    assert daemon.read_text() == '{"reason": "bad_json"}\n'


def test_a_kafka_range_without_an_offset_is_read_in_source_naive_time_zone_and_printed_in_utc(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    """Found by review: ``--from 2026-11-03T09:30`` was 09:30 UTC while the same text in a message or in --events
    is 09:30 in source.naive_time_zone (14:30 UTC in New York)."""
    from datetime import UTC, datetime

    from monitor import replay

    ranges: list[tuple[object, object]] = []

    async def run(settings: Settings, *, progress: bool, kafka: Any = None,
                  stopped_by: list[int] | None = None) -> PipelineStats:
        ranges.append((kafka.start, kafka.end))
        return PipelineStats(read=1, applied=1)

    monkeypatch.setattr(replay, "run_replay", run)
    settings = Settings(source=SourceSettings(naive_time_zone="America/New_York"))
    argv = ["--no-progress", "--kafka-topic", "news", "--report", str(tmp_path / "r.jsonl"),
            "--from", "2026-11-03T09:30", "--to", "2026-11-03T16:00:00Z"]
    assert replay.replay_command(argv, settings) == 0
    assert ranges == [(datetime(2026, 11, 3, 14, 30, tzinfo=UTC), datetime(2026, 11, 3, 16, 0, tzinfo=UTC))]
    assert ("event time range: 2026-11-03T14:30:00Z to 2026-11-03T16:00:00Z (UTC; times without an offset are read "
            "in America/New_York, source.naive_time_zone)") in capsys.readouterr().err


def test_a_report_that_is_a_production_file_sink_is_refused_before_that_file_is_touched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """Found by review: the desk's alert log was deleted, then the duplicate-sink error stopped the run."""
    data = tmp_path / "in.jsonl"
    data.write_text('{"id": "a"}\n')
    log = tmp_path / "alerts.jsonl"
    log.write_text("the desk's alerts\n")
    settings = Settings.model_validate({"alerts": {"sinks": ["log://", f"file://{log}"]}})
    err = _refused(["--input", str(data), "--report", str(log), "--production-sinks"], settings, capsys)
    assert "alerts.sinks already writes there" in err and log.read_text() == "the desk's alerts\n"
    err = _refused(["--input", str(log), "--report", str(tmp_path / "r.jsonl"), "--production-sinks"], settings,
                   capsys)
    assert "is also the alerts.sinks file" in err and "without --production-sinks" in err


def test_a_store_url_redis_py_would_misread_and_a_namespace_without_redis_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """Found by review: --store .../7x replayed into db 0; --namespace with the memory store did nothing."""
    data = tmp_path / "in.jsonl"
    data.write_text('{"id": "a"}\n')
    err = _refused(["--input", str(data), "--store", "redis://:pw@127.0.0.1:6379/7x"], Settings(), capsys)
    assert "argument --store: what follows host:port/ is not a database number" in err and ":pw@" not in err
    err = _refused(["--input", str(data), "--store", "http://127.0.0.1:6379"], Settings(), capsys)
    assert "use memory:// or redis://" in err
    err = _refused(["--input", str(data), "--namespace", "foo"], Settings(), capsys)
    assert "--namespace names a Redis key namespace: it needs --store redis://" in err


def test_a_store_url_whose_password_holds_a_hash_says_to_percent_encode_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """Found by review: the password's first part was read as the port ("Port could not be cast ... 'x'")."""
    data = tmp_path / "in.jsonl"
    data.write_text('{"id": "a"}\n')
    err = _refused(["--input", str(data), "--store", "redis://:Zk9p#Vm1S@127.0.0.1:6379/0"], Settings(), capsys)
    assert "argument --store: " in err and "%23, %3F, %2F" in err and "Zk9p" not in err and "Vm1S" not in err


def test_a_file_replay_of_no_rows_fails_and_an_idle_live_run_does_not(capsys: pytest.CaptureFixture[str]) -> None:
    """Found by review: an empty input exited 0 ("detected 0/3" in a backtest), read as a detector missing all."""
    from monitor.replay import run_verdict

    assert run_verdict(PipelineStats(), rows_expected=True) == 1
    assert "the input held no rows" in capsys.readouterr().err
    assert run_verdict(PipelineStats()) == 0, "a Kafka run stopped before any traffic is not a failure"


def test_the_summary_says_which_sink_did_not_get_its_alerts(tmp_path: Path) -> None:
    """Found by review: a sink that failed every send was listed as where the alerts went, above the error."""
    settings = isolated_settings(Settings(), sinks=["log://", "file:///sys/a.jsonl"], dead_letter_path=tmp_path / "d")
    stats = PipelineStats(read=10, applied=10, notifications=3, undelivered={"file:///sys/a.jsonl": 3})
    [*_, alerts] = replay_summary(settings, stats, tmp_path / "r.jsonl")
    assert alerts.startswith("alerts went to: log://, file:///sys/a.jsonl (3 not delivered)")


def test_a_namespace_that_cannot_be_a_key_prefix_is_refused_as_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    data = tmp_path / "in.jsonl"
    data.write_text('{"id": "a"}\n')
    err = _refused(["--input", str(data), "--store", "redis://127.0.0.1:6379/0", "--namespace", "a{b}"], Settings(),
                   capsys)
    assert "argument --namespace: 'a{b}'" in err


def test_a_replay_with_a_file_cut_off_fails(capsys: pytest.CaptureFixture[str]) -> None:
    """Found by review: 4 of 50 rows read from a truncated .gz, 1 dead letter, exit 0."""
    from monitor.replay import run_verdict

    stats = PipelineStats(read=4, applied=4, dead_letters=1, inputs_cut_off=["in.jsonl.gz"])
    assert run_verdict(stats, rows_expected=True) == 1
    assert "in.jsonl.gz: the gzip data breaks off" in capsys.readouterr().err


def test_a_unix_socket_store_is_accepted() -> None:
    """Found by review: the --store check refused unix:// URLs, which the window store supports."""
    from monitor.replay import store_url

    assert store_url("unix:///var/run/redis/redis.sock?db=2") == "unix:///var/run/redis/redis.sock?db=2"


def test_a_store_it_cannot_use_is_reported_as_the_store_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by review: a wrong --store password was reported under windows.store_url and its variable."""
    from monitor import replay
    from monitor.windows.redis import StoreUnavailableError

    async def refused(*_: object, **__: object) -> PipelineStats:
        raise StoreUnavailableError("windows.store_url redis://:***@h:6379/0: cannot use Redis (bad password) -- "
                                    "check the password in the URL (or set MONITOR_WINDOWS__STORE_URL)")

    data = tmp_path / "in.jsonl"
    data.write_text('{"id": "a"}\n')
    monkeypatch.setattr(replay, "run_replay", refused)
    with pytest.raises(StoreUnavailableError) as info:
        replay.replay_command(["--no-progress", "--input", str(data), "--store", "redis://h:6379/0", "--report",
                               str(tmp_path / "r.jsonl")], Settings())
    assert str(info.value).startswith("--store redis://:***@h:6379/0: cannot use Redis")
    assert "MONITOR_WINDOWS__STORE_URL" not in str(info.value)


@pytest.mark.parametrize("name", ["in.jsonl", "in.csv", "in.jsonl.gz"])
def test_an_empty_input_is_refused_before_the_classifier_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], name: str,
) -> None:
    """Found by review: "the input held no rows" came after ~25 s of model loading."""
    from monitor import replay

    async def never(*_: object, **__: object) -> PipelineStats:
        raise AssertionError("the run started")

    data = tmp_path / name
    if name.endswith(".gz"):
        data.write_bytes(gzip.compress(b"\n\n"))
    else:
        data.write_text("id,source,text,published_at\n" if name.endswith(".csv") else "\n")
    monkeypatch.setattr(replay, "run_replay", never)
    assert replay.replay_command(["--no-progress", "--input", str(data), "--report", str(tmp_path / "r.jsonl")],
                                 Settings()) == 1
    assert "error: the input held no rows -- check the --input files" in capsys.readouterr().err


def test_a_csv_header_lacking_a_column_is_refused_before_the_classifier_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Found by review: the header of the last --input file was judged only after ~25 s of model loading."""
    from monitor import replay
    from monitor.config import InputError

    async def never(*_: object, **__: object) -> PipelineStats:
        raise AssertionError("the run started")

    good, bad = tmp_path / "a.jsonl", tmp_path / "b.csv"
    good.write_text('{"id": "a", "source": "news", "text": "x", "published_at": 1767225600}\n')
    bad.write_text("id,source,text\n1,news,hello\n")
    monkeypatch.setattr(replay, "run_replay", never)
    with pytest.raises(InputError, match=r"b\.csv: the CSV header lacks column\(s\) published_at"):
        replay.replay_command(["--no-progress", "--input", str(good), str(bad), "--report",
                               str(tmp_path / "r.jsonl")], Settings())


def test_an_input_with_a_row_or_a_missing_file_goes_on_to_the_run(tmp_path: Path) -> None:
    from monitor.replay import inputs_hold_rows

    blank, row = tmp_path / "blank.jsonl", tmp_path / "row.csv"
    blank.write_text("\n")
    row.write_text("id,source,text,published_at\n1,news,ok,1767225600\n")
    assert inputs_hold_rows([blank, row], 10_000)
    assert not inputs_hold_rows([blank], 10_000)
    assert inputs_hold_rows([blank, tmp_path / "missing.jsonl"], 10_000)  # the source names the missing file
