from __future__ import annotations

import ssl

from consumers.kafka_client import client_kwargs
from monitor.config import KafkaSettings


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
