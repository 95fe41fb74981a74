"""The one line a Kafka error ends the process with: only a connection or timeout error is about the broker being
up. Before, every ``aiokafka.*`` error said "check that the Kafka broker is up and reachable": a missing codec
package, a refused ACL or rejected credentials sent operators to a broker that was fine (found by review)."""

from __future__ import annotations

from aiokafka.errors import (
    GroupAuthorizationFailedError,
    KafkaConnectionError,
    PolicyViolationError,
    SaslAuthenticationFailed,
    TopicAuthorizationFailedError,
    UnsupportedCodecError,
)

from monitor.fatal import fatal_line

REACHABILITY = "up and reachable"


def test_an_unsupported_codec_names_the_package_to_install_not_the_broker() -> None:
    line = fatal_line(ExceptionGroup("pipeline", [UnsupportedCodecError("Libraries for zstd compression codec not "
                                                                        "found")]), "run")
    assert line.startswith("monitor run failed: kafka: UnsupportedCodecError: Libraries for zstd")
    assert "pip install cramjam" in line and "aiokafka[lz4,snappy,zstd]" in line
    assert REACHABILITY not in line


def test_a_refused_acl_names_the_acl_and_the_topic_and_group_settings_not_the_broker() -> None:
    for error in (TopicAuthorizationFailedError("finsent.dead-letter"), GroupAuthorizationFailedError("finsent")):
        line = fatal_line(error, "run")
        assert "ACLs" in line and "kafka.dead_letter_topic" in line and "kafka.group_id" in line
        assert REACHABILITY not in line


def test_rejected_sasl_credentials_name_the_credential_settings() -> None:
    line = fatal_line(SaslAuthenticationFailed("Authentication failed: Invalid username or password"), "run")
    assert "kafka.sasl_username" in line and "kafka.sasl_password" in line and REACHABILITY not in line


def test_a_request_the_broker_refuses_is_not_called_a_reachability_problem() -> None:
    line = fatal_line(PolicyViolationError(), "run")
    assert REACHABILITY not in line and "MONITOR_LOG__LEVEL=DEBUG" in line


def test_a_connection_error_still_names_the_bootstrap_servers_and_reachability() -> None:
    line = fatal_line(KafkaConnectionError("Unable to bootstrap from [('kafka', 9092)]"), "run")
    assert "kafka.bootstrap_servers" in line and REACHABILITY in line
