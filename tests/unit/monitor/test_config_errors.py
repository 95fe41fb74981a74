"""Config errors name the key and the fix; an unknown key that looks like a typo gets the likely name."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.config import ConfigError, load_settings
from monitor.redact import SET


def error_of(tmp_path: Path, toml: str) -> str:
    path = tmp_path / "c.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    return str(info.value)


def test_a_misspelled_setting_is_answered_with_the_closest_valid_name_and_no_variable(tmp_path: Path) -> None:
    """A walkthrough found the answer also offered MONITOR_ALERTS__BURST_MIN_NEGATIVE, a variable that is itself
    refused as unknown, and pydantic's 'Extra inputs are not permitted'."""
    text = error_of(tmp_path, "[alerts]\nburst_min_negative = 3\n")
    assert ("alerts.burst_min_negative = 3: no such setting -- did you mean "
            "alerts.burst_min_negatives? (or remove it; see docs/settings.md) (in the file)") in text
    assert "MONITOR_ALERTS__BURST_MIN_NEGATIVE" not in text


def test_a_misspelled_section_is_answered_with_the_closest_section(tmp_path: Path) -> None:
    assert "did you mean windows?" in error_of(tmp_path, "[windowz]\nbucket_s = 300\n")


def test_an_unknown_name_like_no_setting_gets_the_generic_fix(tmp_path: Path) -> None:
    text = error_of(tmp_path, "[alerts]\ntotally_unknown = 1\n")
    assert "did you mean" not in text
    assert "remove it or check its spelling against docs/settings.md" in text


def test_a_malformed_sink_url_in_the_file_is_a_config_error_naming_alerts_sinks(tmp_path: Path) -> None:
    text = error_of(tmp_path, '[alerts]\nsinks = ["webhook+https://[::1/x"]\n')
    assert "alerts.sinks in" in text and "malformed (Invalid IPv6 URL)" in text and "[::1]" in text


@pytest.mark.parametrize("toml", ["windows = 5\n", 'alerts = "x"\n'])
def test_a_section_given_as_a_value_is_a_config_error_asking_for_a_table(tmp_path: Path, toml: str) -> None:
    section = toml.split(" ")[0]
    assert f"{section} in {tmp_path / 'c.toml'} is " in error_of(tmp_path, toml)
    assert f"[{section}]" in error_of(tmp_path, toml)


@pytest.mark.parametrize(("name", "suggested"), [
    ("MONITOR_ALERT__SINKS", "MONITOR_ALERTS__SINKS"),
    ("MONITOR_WINDOWS_BUCKET_S", "MONITOR_WINDOWS__BUCKET_S"),
])
def test_a_misspelled_environment_variable_is_refused_with_the_closest_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, suggested: str,
) -> None:
    monkeypatch.setenv(name, "5")
    text = error_of(tmp_path, "")
    assert f"{name} -- did you mean {suggested}?" in text


def test_the_projects_own_and_nested_variables_are_not_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MONITOR_CONFIG", "MONITOR_DATASET_DIR", "MONITOR_TOPIC_DATASET_DIR"):
        monkeypatch.setenv(name, str(tmp_path))
    monkeypatch.setenv("MONITOR_SHUTDOWN_TIMEOUT_S", "10")
    monkeypatch.setenv("MONITOR_ALERTS__THRESHOLDS", '{"ticker:TSLA": {"z_threshold": 4}}')
    path = tmp_path / "c.toml"
    path.write_text("")
    assert load_settings(path).shutdown_timeout_s == 10


@pytest.mark.parametrize(("name", "value"), [("MONITOR_ALERTS__SWEEP_INTERVAL_S", "inf"),
                                             ("MONITOR_ALERTS__Z_THRESHOLD", "nan"),
                                             ("MONITOR_SHUTDOWN_TIMEOUT_S", "inf")])
def test_infinite_or_nan_float_settings_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str,
) -> None:
    monkeypatch.setenv(name, value)
    assert "finite number" in error_of(tmp_path, "")


def test_a_min_baseline_above_the_baseline_that_would_never_alert_is_refused_naming_both_keys(tmp_path: Path) -> None:
    text = error_of(tmp_path, "[alerts]\nmin_baseline_buckets = 60\nbaseline_buckets = 10\n")
    assert "alerts.min_baseline_buckets (60)" in text and "alerts.baseline_buckets (10)" in text


@pytest.mark.parametrize("days", [1, 2])
def test_seasonal_days_below_the_default_seasonal_min_days_is_accepted_as_the_rolling_baseline(
    tmp_path: Path, days: int,
) -> None:
    """Found by review: harmless before (the seasonal baseline is never used, the rolling one is), then refused."""
    path = tmp_path / "c.toml"
    path.write_text(f"[alerts]\nseasonal_days = {days}\n")
    assert load_settings(path).alerts.seasonal_days == days


def test_seasonal_min_days_above_zero_seasonal_days_is_the_rolling_baseline_and_accepted(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[alerts]\nseasonal_days = 0\nseasonal_min_days = 3\n")
    assert load_settings(path).alerts.seasonal_days == 0


def test_a_bad_environment_value_is_blamed_on_its_variable_not_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MONITOR_ALERTS__BURST_LOG10P", "abc")
    text = error_of(tmp_path, "")
    assert "(from MONITOR_ALERTS__BURST_LOG10P, which overrides the file)" in text
    assert "in the file, or via" not in text


@pytest.mark.parametrize(("value", "says"), [
    ("", "is empty"), ("  ", "is empty"), ("a:9092,,b:9092", "has an empty entry"), ("a:9092,", "has an empty entry"),
])
def test_a_blank_kafka_bootstrap_servers_or_entry_is_refused_at_load_naming_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str, says: str,
) -> None:
    """Found by review: ``''`` was accepted and failed later as ``('', 9092)``. The default is not blank, so a
    blank value is refused whatever the source and sinks."""
    monkeypatch.setenv("MONITOR_KAFKA__BOOTSTRAP_SERVERS", value)
    text = error_of(tmp_path, "")
    assert f"kafka.bootstrap_servers = {value!r}: {says}" in text and "e.g." in text
    assert "Value error" not in text and "fix the value" not in text  # the validator's own fix, once
    assert "(from MONITOR_KAFKA__BOOTSTRAP_SERVERS, which overrides the file)" in text


def test_bootstrap_servers_with_surrounding_blanks_is_accepted_stripped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MONITOR_KAFKA__BOOTSTRAP_SERVERS", " k1:9092,k2:9092 ")
    path = tmp_path / "c.toml"
    path.write_text("")
    assert load_settings(path).kafka.bootstrap_servers == "k1:9092,k2:9092"


@pytest.mark.parametrize(("toml", "says"), [
    ('[alerts]\ncooldown_s = "30m"\n', "cooldown_s is whole seconds: 30m = 1800"),
    ('[windows]\nbucket_s = "1h30m"\n', "bucket_s is whole seconds: 1h30m = 5400"),
    ('[alerts]\nscales_s = ["2h"]\n', "scales_s is whole seconds: 2h = 7200"),
    ('[alerts]\nsweep_interval_s = "1m"\n', "sweep_interval_s is seconds: 1m = 60"),
])
def test_a_duration_given_to_a_seconds_setting_says_it_is_seconds_with_the_value_converted(
    tmp_path: Path, toml: str, says: str,
) -> None:
    """Found by review: ``cooldown_s = "30m"`` only got "fix the value". Any ``*_s`` setting, by its unit suffix."""
    assert says in error_of(tmp_path, toml)


@pytest.mark.parametrize("toml", ['[alerts]\ncooldown_s = "abc"\n', '[alerts]\ncooldown_s = "1.5"\n'])
def test_a_non_duration_for_a_seconds_setting_keeps_the_generic_fix(tmp_path: Path, toml: str) -> None:
    text = error_of(tmp_path, toml)
    assert "fix the value" in text and "seconds:" not in text


KUBERNETES_SERVICE_LINKS = {  # what kubelet injects for a Service named `monitor` (and `monitor-kafka`)
    "MONITOR_SERVICE_HOST": "10.0.0.11", "MONITOR_SERVICE_PORT": "8080", "MONITOR_SERVICE_PORT_HTTP": "8080",
    "MONITOR_PORT": "tcp://10.0.0.11:8080", "MONITOR_PORT_8080_TCP": "tcp://10.0.0.11:8080",
    "MONITOR_PORT_8080_TCP_PROTO": "tcp", "MONITOR_PORT_8080_TCP_PORT": "8080",
    "MONITOR_PORT_8080_TCP_ADDR": "10.0.0.11",
    "MONITOR_KAFKA_SERVICE_HOST": "fd00::12", "MONITOR_KAFKA_PORT": "tcp://[fd00::12]:9092",
    "MONITOR_KAFKA_PORT_9092_TCP_ADDR": "fd00::12",
}
DOCKER_LINKS = {"MONITOR_NAME": "/web/monitor", "MONITOR_ENV_PYTHONUNBUFFERED": "1",
                "MONITOR_ENV_MONITOR_WINDOWS__BUCKET_S": "60", "MONITOR_PORT": "tcp://172.17.0.5:8080"}


@pytest.mark.parametrize("variables", [KUBERNETES_SERVICE_LINKS, DOCKER_LINKS], ids=["kubernetes", "docker-link"])
def test_kubernetes_and_docker_link_variables_for_a_service_named_monitor_are_ignored_with_one_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, variables: dict[str, str],
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr("monitor.config._WARNED_VARIABLES", set())
    path = tmp_path / "c.toml"
    path.write_text("")
    with caplog.at_level("WARNING", logger="monitor.config"):
        load_settings(path)
        load_settings(path)
    warnings = [r.getMessage() for r in caplog.records if r.name == "monitor.config"]
    assert len(warnings) == 1
    assert all(name in warnings[0] for name in variables)
    assert "10.0.0.11" not in warnings[0] and "tcp://" not in warnings[0]  # names only, never values


@pytest.mark.parametrize("name", ["MONITOR_WEB_URL", "MONITOR_VERSION", "MONITOR_ENV"])
def test_an_unknown_monitor_variable_that_names_no_section_is_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str,
) -> None:
    monkeypatch.setenv(name, "x")
    path = tmp_path / "c.toml"
    path.write_text("")
    load_settings(path)


@pytest.mark.parametrize(("name", "value", "suggested"), [
    ("MONITOR_ALERT_SINKS", '["log://"]', "MONITOR_ALERTS__SINKS"),
    ("MONITOR_HTTP_PORT", "8080", "MONITOR_HTTP__PORT"),  # not a service link: its value is a bare port
    ("MONITOR_KAFKA_BOOTSTRAP_SERVERS", "k:9092", "MONITOR_KAFKA__BOOTSTRAP_SERVERS"),
    ("MONITOR_SHUTDOWN_TIMEOUT_S_", "5", "MONITOR_SHUTDOWN_TIMEOUT_S"),
    ("MONITOR_HTTP__PROT", "8080", "MONITOR_HTTP__PORT"),
])
def test_a_variable_meant_as_a_setting_is_still_refused_with_the_closest_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str, suggested: str,
) -> None:
    monkeypatch.setenv(name, value)
    assert f"{name} -- did you mean {suggested}?" in error_of(tmp_path, "")


@pytest.mark.parametrize(("url", "says"), [
    ("redis://127.0.0.1:6379/3x", "what follows host:port/ is not a database number"),
    ("redis://127.0.0.1:6379/0?sockettimeout=5", "unknown query option(s) ['sockettimeout']"),
    ("rediss://127.0.0.1:6379/0?socket_timeout=abc", "Invalid value for 'socket_timeout'"),
])
def test_a_redis_url_redis_py_would_misread_is_a_config_error_naming_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str, says: str,
) -> None:
    """Found by review: a db that is not a number was ignored (db 0: another run's data), a misspelt or mistyped
    query option failed at connect as a bare TypeError/ValueError."""
    monkeypatch.setenv("MONITOR_WINDOWS__STORE_URL", url.replace("//", "//:s3cretpw@", 1))
    text = error_of(tmp_path, "")
    assert "windows.store_url = 'redis" in text and says in text and " -- " in text
    assert "s3cretpw" not in text, "a refused URL is echoed without its password"


def test_a_password_with_a_slash_does_not_leak_through_the_database_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Found by review: the path part echoed half of a base64 password holding an unencoded '/'."""
    monkeypatch.setenv("MONITOR_WINDOWS__STORE_URL", "redis://:Zk9pQ2x/Vm1SeW5hbGx5U2VjcmV0@redis.internal:6379/0")
    text = error_of(tmp_path, "")
    assert "Zk9p" not in text and "Vm1S" not in text and "%2F" in text


@pytest.mark.parametrize("url", ["redis://:Zk9p#Vm1S@redis.internal:6379/0", "redis://:Zk9p?Vm1S@redis.internal:6379/0",
                                 "rediss://:Zk9p?Vm1S=x@redis.internal:6379/0",
                                 "redis://default:Zk9p#Vm1S@127.0.0.1:6379/0",
                                 "redis://default:2024#Vm1S@redis.prod:6379/0",
                                 "redis://default:2024?Zk9p=x@redis.prod:6379/0"])
def test_a_password_with_a_hash_or_question_mark_is_said_to_need_percent_encoding_without_echoing_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str,
) -> None:
    """Found by review: the part before the '#' or '?' was read as the port, so the message said the port was not a
    number (echoing that part of the password) and advised fixing a timeout."""
    monkeypatch.setenv("MONITOR_WINDOWS__STORE_URL", url)
    text = error_of(tmp_path, "")
    assert "windows.store_url" in text and "%23, %3F, %2F" in text
    assert "Zk9p" not in text and "Vm1S" not in text and "Port" not in text


def test_a_password_cut_short_where_its_first_part_reads_as_a_port_leaves_no_host_and_is_refused() -> None:
    """``redis://:9135#...@host/0``: the port is a number, but no host is left before the '#' (redis-py would try
    localhost:9135); the message says to percent-encode without echoing any part of the password."""
    from monitor.config import check_redis_url

    with pytest.raises(ValueError, match="cuts the URL short") as info:
        check_redis_url("redis://:9135#Vm1S@redis.internal/0")
    assert "%23, %3F, %2F" in str(info.value) and "9135" not in str(info.value) and "Vm1S" not in str(info.value)


def test_a_percent_encoded_hash_in_the_password_passes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = "redis://:Zk9p%23Vm1S@redis.internal:6379/0"
    monkeypatch.setenv("MONITOR_WINDOWS__STORE_URL", url)
    path = tmp_path / "c.toml"
    path.write_text("")
    assert load_settings(path).windows.store_url == url


@pytest.mark.parametrize("url", ["rediss://default:abc@cache.corp:6380/0?ssl_ca_certs=/etc/redis@prod/ca.pem",
                                 "redis://cache:6379/0?client_name=finsent@riskdesk", "redis://host:6379/0#frag"])
def test_an_at_sign_in_a_query_value_or_a_fragment_after_a_readable_host_port_passes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str,
) -> None:
    """Found by review: any fragment, or an '@' anywhere in the query, was refused as a password cut short by '#' or
    '?', though redis-py reads these URLs (host, port, db and options) as written."""
    from redis.asyncio.connection import parse_url

    monkeypatch.setenv("MONITOR_WINDOWS__STORE_URL", url)
    path = tmp_path / "c.toml"
    path.write_text("")
    assert load_settings(path).windows.store_url == url
    options = parse_url(url)
    assert options["host"] in {"cache.corp", "cache", "host"} and options["db"] == 0


@pytest.mark.parametrize("url", ["redis://h:6379", "redis://h:6379/", "redis://h:6379/2",
                                 "rediss://h:6380/0?ssl_ca_certs=/ca.pem&ssl_cert_reqs=none&socket_timeout=1.5"])
def test_usual_redis_urls_pass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("MONITOR_WINDOWS__STORE_URL", url)
    path = tmp_path / "c.toml"
    path.write_text("")
    assert load_settings(path).windows.store_url == url


@pytest.mark.parametrize("servers", ["kafka:9092:x", "127.0.0.1:99999", "PLAINTEXT://127.0.0.1:9092",
                                     '["127.0.0.1:9092"]', "k1:9092 k2:9092"])
def test_a_bootstrap_server_that_is_not_host_port_is_a_config_error_not_a_broker_blamed(
    tmp_path: Path, servers: str,
) -> None:
    """Found by review: a bare ValueError/OverflowError at start, or 'check that the broker is up'."""
    text = error_of(tmp_path, f"[kafka]\nbootstrap_servers = '{servers}'\n")
    assert "kafka.bootstrap_servers" in text and "is not host:port" in text and "e.g. kafka1:9092" in text


@pytest.mark.parametrize("servers", ["kafka", "k1:9092,k2:9093", "[::1]:9092", "b-1.msk.example.amazonaws.com:9098",
                                     "::1", "[fe80::1%eth0]:9092"])
def test_usual_bootstrap_servers_pass(tmp_path: Path, servers: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f"[kafka]\nbootstrap_servers = '{servers}'\n")
    assert load_settings(path).kafka.bootstrap_servers == servers


def test_a_missing_config_file_names_what_chose_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by review: a MONITOR_CONFIG naming a missing file was answered "pass --config"."""
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match="point --config at an existing file"):
        load_settings(missing)
    monkeypatch.setenv("MONITOR_CONFIG", str(missing))
    with pytest.raises(ConfigError, match=r"point MONITOR_CONFIG \(the environment\) at an existing file"):
        load_settings(missing)


def test_settings_the_configured_detection_never_reads_are_named(tmp_path: Path) -> None:
    """Found by review: z_threshold under detection = "multiscale" was ignored without a word."""
    path = tmp_path / "c.toml"
    path.write_text('[alerts]\ndetection = "multiscale"\nz_threshold = 2.0\nburst_log10p = 5.0\n')
    assert load_settings(path).alerts.ignored_by_detection() == ["z_threshold"]
    path.write_text('[alerts]\ndetection = "both"\nz_threshold = 2.0\nburst_log10p = 5.0\n')
    assert load_settings(path).alerts.ignored_by_detection() == []
    path.write_text('[alerts]\nburst_log10p = 5.0\n')
    assert load_settings(path).alerts.ignored_by_detection() == ["burst_log10p"]


@pytest.mark.parametrize("prefix", ["", "a{b}", "x}"])
def test_a_key_prefix_that_cannot_be_a_hash_tag_is_a_config_error(tmp_path: Path, prefix: str) -> None:
    """Found by review: accepted by monitor config, then a crash-style ValueError when the Redis store started."""
    text = error_of(tmp_path, f"[windows]\nkey_prefix = '{prefix}'\n")
    assert "windows.key_prefix" in text and "no braces" in text


def test_a_whole_section_variable_that_is_not_json_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by review: 'cannot parse a MONITOR_* environment variable: error parsing value for field "windows"'."""
    monkeypatch.setenv("MONITOR_WINDOWS", '{"bucket_s": 60')
    text = error_of(tmp_path, "")
    assert text.startswith("MONITOR_WINDOWS is not JSON (Expecting ',' delimiter at char 15 of 15) -- a whole "
                           "[windows] section") and "MONITOR_WINDOWS__KEY" in text


def test_onnxruntime_on_cuda_is_refused_when_the_config_loads(tmp_path: Path) -> None:
    """Found by review: monitor config showed a CUDA precision for it; only loading the model refused it."""
    text = error_of(tmp_path, '[classifier]\nruntime = "onnxruntime"\ndevice = "cuda"\n')
    assert "classifier.runtime = 'onnxruntime' runs on CPU here" in text


SLACK = "slack+https://hooks.slack.com/services/T0001/B0002/XXSECRETSLACKTOKEN123"


@pytest.mark.parametrize(("name", "value", "says"), [
    ("MONITOR_ALERTS__SINKS", f'["{SLACK}"', "MONITOR_ALERTS__SINKS is not JSON (Expecting ',' delimiter at char 75 "
     "of 75) -- alerts.sinks is a list; write it as JSON, e.g. MONITOR_ALERTS__SINKS='["),
    ("MONITOR_KAFKA", '{"sasl_password": "hunter2SECRET",', "MONITOR_KAFKA is not JSON (Expecting property name "
     "enclosed in double quotes at char 34 of 34) -- a whole [kafka] section in one variable is a JSON object"),
    ("MONITOR_ALERTS__THRESHOLDS", '{"ticker:*": {"z_threshold": 4}, "k": "XXSECRETSLACKTOKEN123"',
     "MONITOR_ALERTS__THRESHOLDS is not JSON (Expecting ',' delimiter at char 61 of 61) -- alerts.thresholds is a "
     "dict"),
])
def test_an_environment_value_that_is_not_json_is_named_with_the_json_error_never_echoed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str, says: str,
) -> None:
    """Found by review: the not-JSON error printed the raw value, a sink's token or a section's password included."""
    monkeypatch.setenv(name, value)
    text = error_of(tmp_path, "")
    assert text.startswith(says)
    assert "XXSECRETSLACKTOKEN123" not in text and "hunter2SECRET" not in text


def test_a_lone_sink_url_that_is_not_a_json_list_is_shown_redacted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MONITOR_ALERTS__SINKS", SLACK)
    text = error_of(tmp_path, "")
    assert text.startswith("MONITOR_ALERTS__SINKS='slack+https://hooks.slack.com/services/T0001/B0002/***' is not JSON "
                           "-- alerts.sinks is a list")
    assert "XXSECRETSLACKTOKEN" not in text


@pytest.mark.parametrize(("section", "value", "shown"), [
    ('{"sasl_password": 98765432123}', "98765432123", f"kafka.sasl_password = {SET}: Input should be a valid string"),
    ('{"sasl_password": ["hunter2SECRET"]}', "hunter2SECRET",
     f"kafka.sasl_password = {SET}: Input should be a valid string"),
    ('{"sasl_pasword": "hunter2SECRET"}', "hunter2SECRET",
     f"kafka.sasl_pasword = {SET}: no such setting -- did you mean kafka.sasl_password?"),
    ('["hunter2SECRET"]', "hunter2SECRET", "kafka = <list>: Input should be a valid dictionary"),
])
def test_a_refused_secret_setting_is_shown_as_set_whatever_the_type_of_its_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, section: str, value: str, shown: str,
) -> None:
    """Found by review: only a secret that was a URL was hidden (kafka.sasl_password = 98765432123 was printed)."""
    monkeypatch.setenv("MONITOR_KAFKA", section)
    text = error_of(tmp_path, "")
    assert shown in text and value not in text


def test_a_refused_secret_in_a_misspelled_section_is_hidden(tmp_path: Path) -> None:
    text = error_of(tmp_path, '[kafak]\nsasl_password = "hunter2SECRET"\nbootstrap_servers = "b:9092"\n')
    assert "did you mean kafka?" in text and "hunter2SECRET" not in text and "'b:9092'" in text


def test_an_unknown_key_in_a_section_variable_is_blamed_on_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by the regression review: MONITOR_WINDOWS='{"bucket_z": 60}' was reported as '(in the file)'."""
    monkeypatch.setenv("MONITOR_WINDOWS", '{"bucket_z": 60}')
    text = error_of(tmp_path, "[alerts]\nz_threshold = 3.0\n")
    assert "windows.bucket_z = 60: no such setting -- did you mean windows.bucket_s?" in text
    assert "(from MONITOR_WINDOWS, which overrides the file)" in text
