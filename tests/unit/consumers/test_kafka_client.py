from __future__ import annotations

import ssl
from pathlib import Path
from types import SimpleNamespace

import pytest

from consumers.kafka import KafkaSource
from consumers.kafka_client import client_kwargs, parse_record
from consumers.kafka_range import KafkaRangeReader
from consumers.schema import InvalidMessage
from monitor.config import ConfigError, KafkaSettings, Settings, SourceSettings
from monitor.types import SourceKind
from tests.fakes import CollectingDeadLetter


def test_plaintext_clients_get_no_tls_or_sasl_options() -> None:
    kwargs = client_kwargs(KafkaSettings(bootstrap_servers="k:9092"), "source")
    assert kwargs["bootstrap_servers"] == "k:9092"
    assert kwargs["client_id"] == "finsent-monitor-source"
    assert "ssl_context" not in kwargs and "sasl_mechanism" not in kwargs


def test_sasl_ssl_clients_get_a_verifying_tls_context_and_credentials() -> None:
    settings = KafkaSettings(security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512",
                             sasl_username="monitor", sasl_password="pw")
    kwargs = client_kwargs(settings, "alerts")
    assert isinstance(kwargs["ssl_context"], ssl.SSLContext)
    assert kwargs["ssl_context"].verify_mode is ssl.CERT_REQUIRED
    assert (kwargs["sasl_mechanism"], kwargs["sasl_plain_username"], kwargs["sasl_plain_password"]) == (
        "SCRAM-SHA-512", "monitor", "pw")


def test_sasl_without_a_mechanism_defaults_to_plain() -> None:
    kwargs = client_kwargs(KafkaSettings(security_protocol="SASL_PLAINTEXT", sasl_username="u"), "x")
    assert kwargs["sasl_mechanism"] == "PLAIN"
    assert "ssl_context" not in kwargs


def test_kafka_sources_are_partitioned_so_the_pipeline_tracks_a_watermark_per_partition() -> None:
    from consumers.kafka import KafkaSource
    from consumers.kafka_range import KafkaRangeReader
    from consumers.replay import FileReplaySource
    from monitor.config import Settings
    from monitor.types import PartitionedSource
    from tests.fakes import CollectingDeadLetter

    dead = CollectingDeadLetter()
    assert isinstance(KafkaSource(Settings(), dead), PartitionedSource)
    assert isinstance(KafkaRangeReader(Settings()), PartitionedSource)
    assert not isinstance(FileReplaySource([], dead, max_message_bytes=1, max_text_chars=1), PartitionedSource)


def test_an_unforeseen_parser_error_on_a_record_becomes_a_parse_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import consumers.kafka_client

    def broken(raw: bytes, **kwargs: object) -> None:
        raise IndexError("validator bug")

    monkeypatch.setattr(consumers.kafka_client, "parse_message", broken)
    record = SimpleNamespace(value=b"{}", key=None, topic="news", partition=0, offset=3, timestamp=0)
    with pytest.raises(InvalidMessage) as info:
        parse_record(record, SourceSettings(), SourceKind.NEWS)
    assert info.value.reason == "parse_error" and "IndexError" in info.value.detail


def test_kafka_sources_take_their_event_time_bounds_from_the_source_settings() -> None:
    settings = Settings(source=SourceSettings(max_future_s=60, min_event_time=None))
    for source in (KafkaSource(settings, CollectingDeadLetter()), KafkaRangeReader(settings)):
        assert (source.bounds.max_future_s, source.bounds.min_event_time) == (60, None)


@pytest.mark.parametrize("setting", ["ssl_cafile", "ssl_certfile", "ssl_keyfile"])
def test_a_missing_kafka_tls_file_is_a_config_error_naming_the_setting_and_the_path(
    tmp_path: Path, setting: str,
) -> None:
    """ssl said only "[Errno 2] No such file or directory": no path, no setting."""
    missing = tmp_path / "nope.pem"
    settings = KafkaSettings(security_protocol="SSL", **{setting: str(missing)})
    expected = rf"kafka.{setting} '{missing}': not found -- .*MONITOR_KAFKA__{setting.upper()}"
    with pytest.raises(ConfigError, match=expected):
        client_kwargs(settings, "source")
