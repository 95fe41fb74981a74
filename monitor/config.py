"""Settings: ``configs/*.toml`` overridden by ``MONITOR_*`` environment variables.

Nested keys use ``__`` in the environment: ``MONITOR_WINDOWS__BUCKET_S=60`` overrides
``[windows] bucket_s``. Secrets (passwords, webhook keys) come from the environment only.
Every setting carries its unit in its name.
"""

from __future__ import annotations

import argparse
import difflib
import ipaddress
import json
import logging
import os
import re
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, get_origin
from urllib.parse import SplitResult, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveInt,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError

from monitor.bundled import DEFAULT_CONFIG, DEMO_STREAM
from monitor.durations import parse_duration_s
from monitor.engine.time_jumps import DEFAULT_CONFIRMATIONS, DEFAULT_MAX_JUMP_S
from monitor.redact import SET, UNSET, cut_short_by_password, is_secret_setting, redact_setting, redact_url
from monitor.time_bounds import DEFAULT_MAX_FUTURE_S, DEFAULT_MIN_EVENT_TIME
from monitor.windows.buckets import is_key_prefix

REPO_ROOT = Path(__file__).resolve().parent.parent
"""The source checkout (tests use it); installed code finds its files through monitor/bundled.py."""


class ConfigError(Exception):
    """A configuration problem, phrased as: which key, what is wrong, how to fix it."""


class InputError(ConfigError, ValueError):
    """A wrong flag value or row of a file the user passed (``--sweep``, ``--events``): reported like a config
    error (one line naming the flag, exit 2), not as a crash; a ValueError too, for callers that catch those."""


class _Section(BaseModel):
    """Sections reject unknown keys, so a typo fails at start instead of being silently ignored."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, allow_inf_nan=False)
    """``allow_inf_nan=False``: ``inf`` in a float setting crashed later (``OverflowError``) without naming it."""


_BROKER_ADDRESS = re.compile(r"(?P<host>\[[0-9A-Fa-f:.]+(?:%[\w.-]+)?\]|[^\s:/\[\]\"',]+)(?::(?P<port>\d{1,5}))?")


def _check_broker_address(entry: str) -> None:
    """One ``host[:port]`` of ``kafka.bootstrap_servers``: a scheme (``PLAINTEXT://``), a JSON list, spaces or a bad
    port were taken for host names (or crashed with a bare ``ValueError``/``OverflowError``), and the error blamed
    the broker (found by review)."""
    try:
        ipaddress.IPv6Address(entry.split("%", 1)[0])
        return  # a bare IPv6 literal (aiokafka reads it as the host, port 9092)
    except ValueError:
        pass
    match = _BROKER_ADDRESS.fullmatch(entry)
    if match is None or (match["port"] is not None and not 0 < int(match["port"]) < 65536):
        raise ValueError(f"entry {entry!r} is not host:port -- write a comma-separated list of host:port, e.g. "
                         "kafka1:9092,kafka2:9092 (no scheme, quotes, brackets or spaces; the port 1-65535)")


class KafkaSettings(_Section):
    """Connection and consumer-group settings for the Kafka source and Kafka sinks."""

    bootstrap_servers: str = "127.0.0.1:9092"
    """Comma-separated host:port list."""
    group_id: str = "finsent-monitor"
    """Consumer group; backtests use their own group so they never move production offsets."""
    news_topic: str = "news"
    """News records (``source`` defaults to ``news``)."""
    comments_topic: str = "comments"
    """Comment records (``source`` defaults to ``comment``)."""
    dead_letter_topic: str = "finsent.dead-letter"
    """Invalid records are produced here with the reason in headers (live Kafka source)."""
    client_id: str = "finsent-monitor"
    """Client id reported to the brokers (their logs and quotas)."""
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    """Kafka transport security; SSL/SASL_SSL use the ``ssl_*`` files below."""
    sasl_mechanism: str | None = None
    """SASL mechanism, e.g. ``PLAIN``, ``SCRAM-SHA-512`` (with SASL_PLAINTEXT / SASL_SSL)."""
    sasl_username: str | None = None
    """SASL login (the password comes from ``MONITOR_KAFKA__SASL_PASSWORD``)."""
    sasl_password: str | None = None
    """From the environment only (``MONITOR_KAFKA__SASL_PASSWORD``)."""
    ssl_cafile: str | None = None
    """CA bundle for SSL/SASL_SSL; empty = the system CAs."""
    ssl_certfile: str | None = None
    """Client certificate (mutual TLS)."""
    ssl_keyfile: str | None = None
    """Client private key (mutual TLS)."""
    max_poll_records: int = Field(500, ge=1, le=10_000)
    """Upper bound on records fetched per poll (bounded prefetch)."""
    max_buffered_records: int = Field(5_000, ge=1)
    """Partitions are paused while this many records wait downstream."""
    session_timeout_ms: int = Field(10_000, ge=1_000)
    """Consumer-group session: an instance silent this long loses its partitions to the others."""
    max_poll_interval_ms: int = Field(300_000, ge=1_000)
    """Longest gap between two polls before the group gives this consumer's partitions away. A store
    outage does not count: the daemon keeps polling (paused partitions) while it waits."""
    request_timeout_ms: int = Field(30_000, ge=1_000)
    """Timeout of one request to a broker."""
    rebalance_report_after_s: float = Field(60.0, gt=0)
    """A consumer-group join or rebalance still open after this long is an ERROR ``kafka_rebalance_stuck`` and a
    readiness reason until it completes: meanwhile nothing is read. A healthy group completes in seconds; one
    member slow to rejoin can hold it up to its ``max_poll_interval_ms``."""
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    """Where a group with no committed offset starts, and where a partition resumes when its committed offset
    fell below the log start (records expired: ``kafka_records_expired``): ``earliest`` reads the retained history."""

    @field_validator("bootstrap_servers")
    @classmethod
    def _servers_not_blank(cls, value: str) -> str:
        """A blank value (or entry) was accepted and failed later as ``('', 9092)``; the default is not blank,
        so a blank one is a mistake whether or not Kafka is used."""
        if not value.strip():
            raise ValueError("is empty -- set a comma-separated host:port list, e.g. 127.0.0.1:9092 "
                             "(or unset it for the default)")
        if any(not entry.strip() for entry in value.split(",")):
            raise ValueError("has an empty entry in its comma-separated list -- remove the extra comma, "
                             "e.g. host1:9092,host2:9092")
        for entry in value.split(","):
            _check_broker_address(entry.strip())
        return value.strip()


class SourceSettings(_Section):
    """Where messages come from."""

    kind: Literal["replay", "kafka"] = "replay"
    """``replay`` reads JSONL/CSV files (embedded default); ``kafka`` consumes the topics in [kafka]."""
    replay_paths: list[Path] = Field(default_factory=lambda: [DEMO_STREAM])
    """JSONL/CSV files replayed in order when ``kind = "replay"``; relative paths are relative to the config file;
    default: the bundled demo stream."""
    replay_speed: float = Field(0.0, ge=0.0)
    """0 = as fast as possible; 1 = real time; 10 = ten times faster than real time. A gap that would take
    more than a minute of wall time is skipped (logged as ``replay_gap_skipped``)."""
    dead_letter_path: Path = Path("var/dead-letter.jsonl")
    """Dead-letter file used when the source is not Kafka."""
    dead_letter_max_mb: int = Field(100, gt=0)
    """The dead-letter file rotates to ``<path>.1`` before it would grow past this many MiB."""
    dead_letter_keep_files: int = Field(5, gt=0)
    """Rotated dead-letter files kept (``<path>.1`` … ``<path>.N``); the oldest is deleted."""
    max_message_bytes: int = Field(64_000, ge=256)
    """Larger payloads are dead-lettered as ``oversized``."""
    max_text_chars: int = Field(10_000, ge=16)
    """Longer texts are dead-lettered as ``oversized`` (the model reads only the first tokens anyway)."""
    max_future_s: int = Field(DEFAULT_MAX_FUTURE_S, ge=0)
    """An event time (``published_at``) more than this far ahead of the wall clock at ingest is
    dead-lettered as ``implausible_time`` (clock skew of producers fits well inside); 0 = no limit, for
    streams dated in the future. In ``monitor replay`` and ``monitor backtest`` 0 also lifts the cap that keeps
    event time (what closes buckets) within 30 s of the wall clock, so history dated ahead is evaluated to its
    end; ``monitor run`` always keeps that cap."""
    naive_time_zone: str = "UTC"
    """The zone of a ``published_at`` written without an offset (``2026-11-24T14:03:00``): an IANA name such as
    ``America/New_York`` when a producer writes local time (read as UTC, its alerts came hours late or its
    messages were judged late; found by review). The first such time is logged once
    (``published_at_without_offset``)."""
    min_event_time: datetime | None = DEFAULT_MIN_EVENT_TIME
    """Event times before this (ISO-8601, naive = UTC) are dead-lettered as ``implausible_time``; a
    fixed floor, so replays of years-old history pass. Empty = no floor (replaying older history)."""
    max_event_time_jump_s: int = Field(DEFAULT_MAX_JUMP_S, ge=0)
    """A message dated more than this far ahead of its partition's event time is held, not counted, until
    ``event_time_jump_confirmations`` messages of the partition jump too (a real gap in the data: they are
    then counted, except one dated far past the others) or as many after it do not (a mistyped date:
    dead-lettered as ``implausible_time``). One such row used to close every bucket up to its date, so the rest
    of a replay was late. 0 = off (event time follows every message); raise it for sparse streams (messages
    further apart than this)."""
    event_time_jump_confirmations: int = Field(DEFAULT_CONFIRMATIONS, ge=1, le=100)
    """Messages that confirm an event-time jump (the first included), or that refute it (after it); 1 =
    every jump is believed at once. A partition holds fewer than this many messages while it decides, and the
    stream's first ``2 * this - 1`` messages wait until its start is fixed (their median)."""
    watchlist_path: str = ""
    """Companies whose names link messages to tickers (``.csv`` or ``.toml``: ticker, names, aliases,
    ambiguous, optional blockers and symbols, the company's other tickers; see monitor/entities/watchlist.py);
    empty = the bundled list of ~285 large listed companies."""
    link_names: bool = True
    """Link watchlist company names and aliases in the text to their tickers."""
    link_cashtags: bool = True
    """Link ``$CASHTAGS`` (and ``NYSE:XYZ`` symbols) in the text to tickers (payload tickers: see
    ``payload_ticker_scope``)."""
    cashtag_scope: Literal["watchlist", "any"] = "watchlist"
    """``watchlist``: a cashtag links only when its ticker is in the watchlist (the monitored universe; a
    stream names thousands of small symbols, each would become an alerting key); ``any``: every cashtag."""
    payload_ticker_scope: Literal["any", "watchlist"] = "any"
    """``any``: every payload ticker counts (a news vendor's tags); ``watchlist``: only watchlist tickers (and their
    other symbols) count, the rest are dropped from the message, which still counts for ``all`` and its topic. It
    bounds the window keys to the monitored universe: a wave of spam payload tickers cannot grow the store."""
    max_cashtags_per_message: int = Field(4, ge=0, le=32)
    """A message with more distinct cashtags than this is a ticker list (screener spam, ETF holdings): none
    of its cashtags is linked (payload tickers and company names still are)."""

    @field_validator("naive_time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}: use an IANA name such as UTC or America/New_York") from exc
        return value

    @field_validator("min_event_time", mode="before")
    @classmethod
    def _empty_is_no_floor(cls, value: Any) -> Any:
        return None if value in ("", 0) else value

    @field_validator("min_event_time")
    @classmethod
    def _naive_is_utc(cls, value: datetime | None) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


class ClassifierSettings(_Section):
    """Which model labels messages and how inference is batched."""

    kind: Literal["transformer", "lexicon"] = "transformer"
    """``transformer``: two-head encoder (bundled default or any local/hub path). ``lexicon``: keyword
    baseline, fast and dependency-free, used by tests and as a degraded mode."""
    model_path: str | None = None
    """Local directory or hub id for ``from_pretrained``; empty = the bundled default model."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """``auto`` = CUDA when available, else CPU."""
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    """``auto`` = bf16/fp16 on CUDA; on CPU bf16 weights or bf16 autocast where the CPU has AMX-BF16 /
    AVX512-BF16 and a load-time probe measures it faster than float32, else float32."""
    quantize_int8: bool = False
    """CPU only: dynamic int8 quantization of Linear layers (see benchmarks/RESULTS.md for its cost)."""
    max_length_tokens: int = Field(128, ge=8, le=512)
    """Tokens per text at inference; longer texts are truncated."""
    num_threads: int = Field(0, ge=0)
    """Intra-op threads on CPU (torch or ONNX Runtime); 0 = number of cores."""
    runtime: Literal["torch", "onnxruntime"] = "torch"
    """``torch``: CUDA (bf16/fp16) or CPU. ``onnxruntime``: CPU only; the model is exported to ONNX once
    and cached in ``onnx_cache_dir`` (needs the ``onnx`` extra; see monitor/classify/onnx_runtime.py)."""
    onnx_cache_dir: str = "var/onnx-cache"
    """Where exported (and int8-quantized) ONNX graphs are kept, one per model fingerprint."""

    @model_validator(mode="after")
    def _runtime_runs_on_the_device(self) -> ClassifierSettings:
        """Refused when loading only, so ``monitor config`` showed a CUDA precision for it (found by review)."""
        if self.runtime == "onnxruntime" and self.device == "cuda":
            raise ValueError("classifier.runtime = 'onnxruntime' runs on CPU here -- set classifier.device = 'cpu' "
                             "(or 'auto'), or classifier.runtime = 'torch' for CUDA")
        return self
    worker: Literal["auto", "thread", "process"] = "auto"
    """Where the daemon runs the model. ``process``: a spawned worker process with its own GIL, so the
    forward pass never waits on the event loop's Python work (detection, window writes); ``thread``: an
    inference thread in the daemon. ``auto`` = ``process`` for a transformer on a host with >= 2 usable
    cores (benchmarks/RESULTS.md measures both), else ``thread``."""
    batch_timeout_s: float = Field(120.0, gt=0)
    """Longest one micro-batch may take in the worker process. Past it the worker is taken as hung: it is
    killed and respawned and the batch retried once, then its texts one by one, so a text that hangs the
    model twice is dead-lettered (``classifier_error``) instead of blocking its partition. A batch takes
    well under a second on a CPU; the default leaves room for a loaded host. With ``worker = "thread"``
    the model cannot be interrupted: the daemon reports not ready (``/readyz`` 503, dependency
    ``classifier`` down) until the batch returns, so a supervisor can restart it."""


class BatchingSettings(_Section):
    """Dynamic micro-batching in front of the classifier."""

    max_batch_size: int = Field(64, ge=1, le=4096)
    """Most texts per classifier call."""
    max_wait_ms: int = Field(20, ge=0, le=10_000)
    """Longest a message waits for its micro-batch to fill before the batch runs anyway."""
    max_in_flight_batches: int = Field(2, ge=1, le=64)
    """Source batches classified or being written but not yet committed (bounds memory and redelivery)."""
    max_queue_messages: int = Field(10_000, ge=1)
    """Messages queued in front of the classifier; the source waits when it is full (backpressure)."""
    gil_switch_interval_ms: float = Field(0.5, ge=0, le=100)
    """Python's GIL switch interval while the batcher runs (``sys.setswitchinterval``); 0 = leave the
    interpreter's 5 ms. The inference thread needs the GIL between model ops: next to a busy Python
    thread (detection) each op waits up to the interval (benchmarks/bench_gil.py: 29% of the classifier
    alone at 5 ms, 37% at 1 ms, 42% at 0.5 ms)."""


def _redis_url_options() -> frozenset[str]:
    """The query options a ``redis://`` URL may carry: what redis-py's connection classes take."""
    import inspect

    from redis.asyncio import connection

    names: set[str] = set(connection.URL_QUERY_ARGUMENT_PARSERS)
    for cls in (connection.AbstractConnection, connection.Connection, connection.SSLConnection):
        names |= set(inspect.signature(cls.__init__).parameters)
    return frozenset(names - {"self", "kwargs", "host", "port"})


PASSWORD_ESCAPES = "a '#', '?' or '/' in the password must be percent-encoded: %23, %3F, %2F"


def check_redis_url(url: str) -> None:
    """``ValueError`` naming what is wrong in a ``redis://``/``rediss://`` URL (its db, a query option) and the fix."""
    from urllib.parse import parse_qs, urlsplit

    from redis.asyncio.connection import parse_url

    parts = urlsplit(url)
    if cut_short_by_password(parts):  # not echoed: the query or fragment holds part of the password
        raise ValueError(f"a '#' or '?' cuts the URL short -- {PASSWORD_ESCAPES}")
    db = parts.path.strip("/")
    if db and not db.isdigit():  # not echoed: with a '/' in the password, the "path" holds part of it
        raise ValueError("what follows host:port/ is not a database number -- write redis://host:6379/0 (a db number "
                         "after the port, or nothing for 0); a '/' in the password must be written %2F")
    unknown = sorted(set(parse_qs(parts.query)) - _redis_url_options())
    if unknown:
        raise ValueError(f"unknown query option(s) {unknown} -- redis-py takes e.g. socket_timeout, "
                         "socket_connect_timeout, ssl_ca_certs, ssl_cert_reqs, health_check_interval")
    try:
        parse_url(url)
    except ValueError as exc:
        raise ValueError(f"{exc} -- fix the option's value (a number of seconds for the timeouts)") from None


class WindowSettings(_Section):
    """Event-time buckets kept per topic, per ticker and per (topic, ticker)."""

    store_url: str = "memory://"
    """``memory://`` or ``redis://[:password@]host:port/db`` (``rediss://`` for TLS; a private CA as
    ``rediss://host:port/0?ssl_ca_certs=/path/ca.pem``)."""
    key_prefix: str = "finsent"
    """Redis key namespace (non-empty, no braces: it becomes the keys' hash tag); backtests use their own prefix."""
    bucket_s: int = Field(300, ge=1)
    """Width of the event-time buckets; detection judges one closed bucket at a time."""
    retention_s: int = Field(7 * 24 * 3600, ge=60)
    """Buckets (and message-id dedup markers) expire after this long."""
    allowed_lateness_s: int = Field(600, ge=0)
    """Messages older than watermark - allowed lateness are late (dead-lettered as ``late``)."""
    idle_timeout_s: float = Field(30.0, gt=0)
    """Wall-clock silence after which a partition stops holding the watermark; when every partition
    is silent this long, event time advances with the wall clock (live mode only)."""
    top_negative_per_bucket: int = Field(5, ge=0, le=100)
    """How many most-negative messages each bucket keeps as alert evidence."""
    novelty_window_s: int = Field(86_400, ge=0)
    """Near-duplicates (retweets, syndicated copies, "UPDATE n-" reissues) of a story seen this long before
    or after count as repeats, not as new stories; 0 = novelty off (every message is a story)."""
    novelty_max_entries: int = Field(20_000, ge=1, le=2_000_000)
    """Stories the per-process novelty index remembers (oldest forgotten first; about 3 KiB each with the
    decision memory). The novelty horizon is min(``novelty_window_s``, this many stories): past it a copy
    counts again, so size it to the stories per window at peak (``finsent_novelty_evicted_in_window_total``
    counts stories forgotten early)."""
    novelty_min_similarity: float = Field(0.6, gt=0, le=1)
    """Estimated Jaccard similarity (words and word pairs of the normalised text) that makes a copy."""
    novelty_min_tokens: int = Field(4, ge=1)
    """Messages with fewer words are never folded ("sell $TSLA" from two people is two opinions)."""

    @field_validator("key_prefix")
    @classmethod
    def _prefix_is_a_hash_tag(cls, value: str) -> str:
        """Checked here, not first by the Redis store at start (a crash-style ``ValueError``; found by review)."""
        if not is_key_prefix(value):
            raise ValueError("must be non-empty and contain no braces (it becomes the keys' {hash tag}) -- e.g. "
                             "finsent-prod")
        return value

    @field_validator("store_url")
    @classmethod
    def _redis_url_is_usable(cls, value: str) -> str:
        """A Redis URL redis-py would misread: a db that is not a number was ignored (db 0, another run's data), a
        misspelt or mistyped query option failed at connect as a bare ``TypeError``/``ValueError`` (found by review)."""
        if value.lower().startswith(("redis://", "rediss://")):
            check_redis_url(value)
        return value


DETECTION_ONLY_SETTINGS: dict[str, frozenset[str]] = {
    "multiscale": frozenset({
        "scales_s", "baseline_half_life_s", "prior_strength", "min_history_s", "max_tracked_keys", "burst_log10p",
        "burst_min_negatives", "burst_short_min_negatives", "burst_short_log10p", "burst_short_max_scale_s",
        "burst_share_gate_log10p",
        "dispersion_shape", "share_concentration", "cusum_rate_ratio", "cusum_threshold_nats", "shift_log10p",
        "shift_min_volume"}),
    "bucket": frozenset({
        "baseline_buckets", "min_baseline_buckets", "min_volume", "z_threshold", "ewma_alpha", "min_sigma_share",
        "cusum_buckets", "cusum_k_sigma", "cusum_h_sigma", "seasonal_days", "seasonal_halfwidth_s",
        "seasonal_min_days"}),
}
"""[alerts] settings only one detection reads (alerts/multiscale.py, alerts/detectors.py): sweeping one the
configured detection ignores gave identical rows and a "best" value, without a word (found by a walkthrough); set in
a config, it was ignored without a word too (``AlertSettings.ignored_by_detection``)."""


class AlertSettings(_Section):
    """Detection thresholds and delivery; see alerts/ for the semantics.

    Detection and lifecycle times are *event* time (bucket boundaries); delivery times (backoff,
    timeouts) are wall time.
    """

    sinks: list[str] = Field(default_factory=lambda: ["log://"])
    """Sink URLs: log://, file:///path.jsonl, webhook+https://host/path, slack+https://..., kafka://topic,
    alertmanager+http(s)://host:9093 (Prometheus Alertmanager),
    smtp://host:port?from=a@b&to=c@d,e@f (add ``&starttls=1`` for STARTTLS), smtps://host:465?from=..&to=..
    (implicit TLS); ``&ca=/path/ca.pem`` trusts a private CA for either."""
    sweep_interval_s: float = Field(15.0, gt=0)
    """How often the scheduler sweeps detection for quiet streams (detection also runs on window close)."""
    baseline_buckets: int = Field(24, ge=3)
    """Rolling baseline length in buckets (used until enough same-time-of-day history exists)."""
    min_baseline_buckets: int = Field(6, ge=1)
    """Fewer baseline buckets than this (cold start, sparse key) = no alert (``insufficient_history``)."""
    min_volume: int = Field(20, ge=1)
    """Messages a bucket needs before it can alert (low-volume guard)."""
    z_threshold: float = Field(3.0, gt=0)
    """Spike threshold in sigmas; must be exceeded vs both the EWMA and the median+MAD baseline."""
    min_neg_share: float = Field(0.4, ge=0, le=1)
    """Absolute floor: a bucket (multiscale: a window, for the share test) with a smaller negative share
    never alerts (fraction 0..1)."""
    ewma_alpha: float = Field(0.3, gt=0, le=1)
    """Smoothing factor of the EWMA baseline (higher = shorter memory)."""
    min_sigma_share: float = Field(0.03, gt=0, le=1)
    """Floor of the baseline standard deviation of the negative share (fraction 0..1)."""
    cusum_buckets: int = Field(6, ge=1, le=288)
    """Buckets the CUSUM drift detector accumulates over (ending with the evaluated bucket)."""
    cusum_k_sigma: float = Field(0.5, ge=0)
    """CUSUM slack per bucket, in sigmas."""
    cusum_h_sigma: float = Field(5.0, gt=0)
    """CUSUM decision threshold, in sigmas."""
    score_drop_threshold: float = Field(0.5, ge=0, le=2)
    """Alert when the mean sentiment score (-1..1) falls this much below the baseline; 0 = off."""
    seasonal_days: int = Field(7, ge=0, le=28)
    """Previous days searched for same-time-of-day baseline buckets; 0 = rolling baseline only."""
    seasonal_min_days: int = Field(3, ge=1)
    """Days that must have same-time-of-day buckets before the seasonal baseline is used."""
    seasonal_halfwidth_s: int = Field(1800, ge=0, le=43_200)
    """Half-width of the same-time-of-day slot searched on each previous day."""
    for_s: int = Field(0, ge=0)
    """An abnormal condition must hold this long (event time) before the alert fires."""
    cooldown_s: int = Field(1800, ge=0)
    """Minimum event time between two firing notifications of the same alert (new episodes in
    between are tracked but only notified once the cooldown has passed and they still fire)."""
    repeat_interval_s: int = Field(4 * 3600, ge=0)
    """Re-notify a still-firing alert after this long; 0 = never repeat. At least ``cooldown_s`` (a reminder
    is a firing notification too; a shorter interval is refused at start)."""
    max_page_age_s: int = Field(6 * 3600, ge=0)
    """``monitor run`` on Kafka: an alert that starts firing on a bucket that ended longer ago than this (wall clock)
    is tracked but not paged: a new consumer group on a topic holding weeks of history, or a long backlog, paged the
    desk at once for every incident it held (found by review). One that still fires once the daemon reaches
    recent data pages then. 0 = page whatever the age; otherwise at least ``windows.allowed_lateness_s +
    windows.bucket_s`` + 1 h (a live bucket's age when judged; refused at start below it). File replays, ``monitor
    replay`` and backtests always page (into their report)."""
    resolve_after_buckets: int = Field(2, ge=1)
    """Consecutive quiet buckets before a firing alert resolves (and the resolved notice goes out). A bucket
    suppressed for low volume whose negative share is above the key's baseline is not quiet, within
    ``flap_window_s`` of the episode's start: it pauses the count (an empty bucket, or a thin one at or below
    the baseline share, is quiet)."""
    flap_window_s: int = Field(4 * 3600, ge=0)
    """Window in which firing episodes are counted to detect flapping."""
    flap_max_episodes: int = Field(3, ge=2, le=50)
    """This many episodes within ``flap_window_s`` mark an alert as flapping."""
    flap_resolve_factor: int = Field(3, ge=1, le=100)
    """A flapping alert needs ``resolve_after_buckets * flap_resolve_factor`` quiet buckets to resolve, and
    at least as much quiet time as the longest gap between its episode starts within ``flap_window_s`` (so a
    story that keeps coming back, however slowly, stays one silent firing episode)."""
    evidence_top_n: int = Field(5, ge=0, le=50)
    """Most negative messages attached to a firing alert (PII-masked)."""
    max_catchup_buckets: int = Field(12, ge=1, le=10_000)
    """Most closed buckets one detection pass processes (bounds its work); a longer backlog is caught up
    in further passes, never skipped."""
    max_keys_per_evaluation: int = Field(10_000, ge=1)
    """Upper bound on window keys evaluated per bucket: live alerts' keys, then the market-wide and per-topic
    keys, then those with the most negatives in the pass (what can alert), established keys (a multiscale
    baseline) before new ones, then by volume, then by name: a flood of one-off tickers cannot push a real
    surge out (``alert_keys_truncated`` says when keys are left out)."""
    max_alert_states: int = Field(10_000, ge=10)
    """Upper bound on stored alert states. Idle (inactive, resolved) states are deleted once their memory
    (cooldown, flap counting: the longest of ``cooldown_s``, ``flap_window_s``, ``repeat_interval_s`` after
    their last episode start, firing notice or resolution) has passed; over the bound, the idle ones whose
    memory ends soonest go first (``alert_states_capped``). Pending and firing states are never dropped."""
    max_silences: int = Field(1_000, ge=1)
    """Upper bound on stored silences (expired ones are pruned first)."""
    max_silence_duration_s: int = Field(7 * 86_400, ge=60)
    """Longest silence that can be created."""
    outbox_max_entries: int = Field(10_000, ge=10)
    """Pending notifications kept in the outbox; enqueue fails (logged) beyond this."""
    outbox_delivered_ids_kept: int = Field(50_000, ge=10)
    """Delivered/enqueued notification ids remembered for idempotency (newest kept)."""
    delivery_max_attempts: int = Field(50, ge=1)
    """Outbox attempts per notification and sink before it moves to that sink's dead-letter outbox
    (logged as an error; ``monitor alerts redrive`` queues it again)."""
    delivery_backoff_initial_s: float = Field(1.0, gt=0)
    """First outbox retry delay; doubles per failed attempt."""
    delivery_backoff_max_s: float = Field(300.0, gt=0)
    """Cap of the outbox retry delay."""
    delivery_poll_interval_s: float = Field(1.0, gt=0)
    """Idle delivery loops re-check the outbox this often (an enqueue wakes them at once)."""
    delivery_batch_size: int = Field(50, ge=1, le=1_000)
    """Notifications one delivery loop takes from the outbox at a time."""
    sink_timeout_s: float = Field(10.0, gt=0)
    """Network timeout of one sink request (webhook, Slack, SMTP, Kafka send)."""
    webhook_max_attempts: int = Field(3, ge=1, le=10)
    """In-sink attempts per webhook/Slack send before the outbox takes over the retrying (a dropped connection, a
    5xx; not a timeout, after which the receiver may already have the alert)."""
    webhook_backoff_s: float = Field(0.5, ge=0)
    """First in-sink retry delay of webhook/Slack sends; doubles per attempt."""
    cluster_mode: bool = False
    """Several daemons share one consumer group: detection runs on one leader, up to the minimum of
    every instance's durable watermark, coordinated in Redis (needs a redis:// windows.store_url)."""
    leader_lease_s: float = Field(15.0, gt=0)
    """Leader lease and instance heartbeat lifetime; a dead leader is replaced after this long. Without
    cluster mode, the lifetime of the single-instance lease on a Redis prefix too."""
    instance_wait_s: float = Field(60.0, ge=0)
    """Without cluster mode on a redis:// store, one daemon per key prefix: a second one waits this long
    for the first to stop (a restart, a rolling deploy), then exits with a line naming it."""
    alertmanager_severity: str = "warning"
    """``severity`` label on alerts sent to Alertmanager (``alertmanager+http(s)://host:9093`` sinks)."""
    alertmanager_refresh_s: float = Field(60.0, gt=0)
    """Wall time between re-posts of firing alerts to Alertmanager (it forgets alerts not re-posted)."""
    alertmanager_ends_after_s: float = Field(240.0, gt=0)
    """``endsAt`` of a firing alert = now + this: Alertmanager resolves it by itself if the daemon stops
    re-posting (keep it several times ``alertmanager_refresh_s``)."""
    webhook_secret: str | None = None
    """HMAC-SHA256 key for webhook signatures; from the environment only (``MONITOR_ALERTS__WEBHOOK_SECRET``).
    Required by a ``webhook+http(s)://`` sink: without it the daemon refuses to start (an unsigned alert
    could be forged by anyone who can reach the receiver)."""
    smtp_username: str | None = None
    """SMTP login for the smtp:// and smtps:// sinks (optional; needs ``smtp_password``, and smtps:// or
    ``starttls=1`` in the sink URL unless the relay is on loopback: a login is never sent in the clear)."""
    smtp_password: str | None = None
    """SMTP password; from the environment only (``MONITOR_ALERTS__SMTP_PASSWORD``)."""
    detection: Literal["bucket", "multiscale", "both"] = "bucket"
    """``bucket``: the per-bucket spike/CUSUM/score detectors (dense streams, alerts/detectors.py).
    ``multiscale``: count burst, share, score and Poisson CUSUM over sliding windows of several scales
    against a long-memory, exposure-based baseline (sparse real streams, alerts/multiscale.py).
    ``both``: either may fire."""
    scales_s: list[PositiveInt] = Field(default_factory=lambda: [1800, 7200, 21600, 86400], min_length=1)
    """Multiscale: window lengths tested at every bucket (rounded up to whole buckets); the longest is
    also how much recent history the baseline leaves out, so a slow story never feeds its own baseline."""
    baseline_half_life_s: int = Field(21 * 86_400, ge=3600)
    """Multiscale: half-life of the exponentially decayed baseline rates (weeks: a long memory)."""
    hour_profile: bool = True
    """Multiscale: weight each key's expected count by its own hour-of-day and weekday rhythm (decayed, shrunk toward
    the stream's; alerts/rhythm.py): a ticker busy in Tokyo hours or a coin traded all night and all weekend was
    measured against the US-hours stream and paged at its own busy hours (found by review: 36 false pages on 15
    Tokyo tickers in 8 weeks). False: every key follows the stream's rhythm."""
    prior_strength: float = Field(2.0, gt=0)
    """Multiscale: pseudo-negatives of the group prior each key's rate is shrunk toward (sparse keys
    borrow their group's rate; a key with many more negatives than this speaks for itself)."""
    min_history_s: int = Field(12 * 3600, ge=0)
    """Multiscale: stream time with data (gaps excluded) the folded baseline needs before any alert."""
    max_tracked_keys: int = Field(20_000, ge=10)
    """Multiscale: keys whose baseline state is kept in memory. Past it, the least established (fewest decayed
    sightings: buckets with messages) are dropped down to 90% of it, keys with a finding last; ``all`` and the
    topics stay (``multiscale_keys_evicted`` in the log)."""
    rebuild_history_s: int = Field(14 * 86_400, ge=0)
    """Multiscale: history read back from the window store to rebuild the baselines after a restart
    (at most ``windows.retention_s`` exists)."""
    burst_log10p: float = Field(5.0, gt=0)
    """Multiscale: significance of the negative-count burst test, as -log10 p (5 = p 1e-5)."""
    burst_min_negatives: int = Field(3, ge=1)
    """Multiscale: fewest negatives in a window that may alert (burst and CUSUM)."""
    burst_short_min_negatives: int = Field(0, ge=0)
    """Multiscale: fewest negatives a burst at the shortest scale (``scales_s[0]``) needs when that is
    below ``burst_min_negatives`` (0 = no exception): a tight pair of distinct negative stories on a
    key that is quiet at that hour, judged at ``burst_short_log10p``."""
    burst_short_log10p: float = Field(0.0, ge=0)
    """Multiscale: significance (-log10 p) a shortest-scale burst below ``burst_min_negatives`` needs;
    0 = ``burst_log10p`` (a smaller value is never used: the exception is never looser)."""
    burst_short_max_scale_s: int = Field(0, ge=0)
    """Multiscale: longest scale (seconds) the pair exception (``burst_short_min_negatives``) also applies
    to; 0 = the shortest scale only. Trades pages for delay (dev-set sweep in benchmarks/RESULTS.md)."""
    burst_share_gate_log10p: float = Field(1.3, ge=0)
    """Multiscale: a burst also needs the window's negative share above the key's at this -log10 p
    (1.3 = p 0.05), so a volume surge with ordinary sentiment (an earnings beat) does not page."""
    dispersion_shape: float = Field(10.0, gt=0)
    """Multiscale: cap of the negative-binomial shape (variance >= mean + mean^2/shape): rates wander."""
    share_concentration: float = Field(50.0, gt=0)
    """Multiscale: cap of the beta-binomial concentration of a key's negative share."""
    cusum_rate_ratio: float = Field(3.0, gt=1)
    """Multiscale: the rate increase (x baseline) the Poisson CUSUM is tuned to."""
    cusum_threshold_nats: float = Field(0.0, ge=0)
    """Multiscale: Poisson CUSUM threshold (log-likelihood ratio, nats); 0 = off."""
    shift_log10p: float = Field(5.0, gt=0)
    """Multiscale: significance of the negative-share and score-drop tests, as -log10 p."""
    shift_min_volume: int = Field(10, ge=1)
    """Multiscale: messages a window needs before the share or score test may fire."""
    thresholds: dict[str, dict[str, float]] = Field(default_factory=dict)
    """Per-key overrides, e.g. ``[alerts.thresholds."ticker:TSLA"] z_threshold = 4``; a key ending in
    ``*`` is a prefix (``"ticker:*"``). Exact keys win over prefixes, longer prefixes over shorter.
    Allowed names: z_threshold, min_volume, min_neg_share, cusum_k_sigma, cusum_h_sigma,
    score_drop_threshold. They tune the per-bucket detectors (``detection = bucket|both``) only."""

    def ignored_by_detection(self) -> list[str]:
        """Settings given explicitly (file or environment) that the configured ``detection`` never reads."""
        if self.detection == "both":
            return []
        other = "bucket" if self.detection == "multiscale" else "multiscale"
        return sorted(self.model_fields_set & DETECTION_ONLY_SETTINGS[other])

    @field_validator("repeat_interval_s")
    @classmethod
    def _reminders_respect_cooldown(cls, value: int, info: ValidationInfo) -> int:
        cooldown_s = info.data.get("cooldown_s")
        if value and cooldown_s is not None and value < cooldown_s:
            raise ValueError(f"must be 0 (no reminders) or at least alerts.cooldown_s ({cooldown_s}), the minimum "
                             "event time between two firing notifications")
        return value

    @model_validator(mode="after")
    def _history_settings_agree(self) -> AlertSettings:
        """Contradictory history settings silently disabled alerting (0 notifications, exit 0)."""
        if self.min_baseline_buckets > self.baseline_buckets:
            raise ValueError(
                f"alerts.min_baseline_buckets ({self.min_baseline_buckets}) is more than alerts.baseline_buckets "
                f"({self.baseline_buckets}), so the rolling baseline never has enough history and nothing alerts "
                "-- lower alerts.min_baseline_buckets or raise alerts.baseline_buckets")
        # seasonal_min_days above seasonal_days is not refused: the seasonal baseline is then never used and the
        # rolling one is (harmless, as with seasonal_days = 0)
        return self

    @field_validator("thresholds")
    @classmethod
    def _known_threshold_names(cls, value: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        allowed = {"z_threshold", "min_volume", "min_neg_share", "cusum_k_sigma", "cusum_h_sigma",
                   "score_drop_threshold"}
        for key, names in value.items():
            unknown = sorted(set(names) - allowed)
            if unknown:
                raise ValueError(f"alerts.thresholds.{key!r}: unknown {unknown}; allowed {sorted(allowed)}")
        return value


MIN_API_TOKEN_CHARS = 16
"""Shortest ``http.api_token`` accepted (``x`` enabled writes)."""


class HttpSettings(_Section):
    """The HTTP side door: health, readiness, metrics, the alert API and the dashboard."""

    enabled: bool = True
    """Serve /healthz, /readyz, /metrics, the alert API and the dashboard."""
    host: str = "127.0.0.1"
    """Interface to bind; 127.0.0.1 keeps the API local (0.0.0.0 exposes it)."""
    port: int = Field(8080, ge=0, le=65535)
    """0 = pick a free port (logged at start)."""
    api_token: str | None = None
    """Bearer token for write endpoints (silences); environment only (``MONITOR_HTTP__API_TOKEN``), at least
    16 characters (``openssl rand -hex 32``); surrounding whitespace is ignored. Unset or empty = the HTTP API
    and dashboard are read-only (writes answer 403)."""
    public_url: str = ""
    """Base URL under which users reach this daemon's dashboard (links in alerts, e.g. Alertmanager's
    ``generatorURL`` = ``<public_url>/keys/<key>``); empty = ``http://<host>:<port>``. Requests must name
    its host or a loopback one in ``Host`` (any other name gets 421: the DNS-rebinding guard), on any bind
    address; on a non-loopback bind /healthz, /readyz and /metrics answer any ``Host``. Unset (and
    ``allowed_hosts`` empty) on a non-loopback bind = no ``Host`` check at all: set it there to get the check;
    the names in ``allowed_hosts`` pass too. Behind a reverse proxy the
    proxy must pass the browser's ``Host`` (nginx ``proxy_set_header Host $host``)."""
    allowed_hosts: list[str] = Field(default_factory=list)
    """More host names (no scheme, no port) users reach the dashboard under, besides ``public_url``'s and the
    loopback ones: a short name and its FQDN, a load balancer's name. Any other ``Host`` gets 421 (the
    DNS-rebinding guard); set on a non-loopback bind, it turns the check on like ``public_url``."""
    max_connections: int = Field(256, ge=1, le=100_000)
    """Most HTTP connections (count) open at once; a new one over it closes the oldest idle one (never one
    serving a response: if every one is busy, the new one is closed), so slow or idle clients cannot use up
    the file descriptors Redis, Kafka and the sinks need. Keep it well below the open-file limit
    (``LimitNOFILE``, ``ulimit -n``): a burst of new connections holds up to 128 more for a moment, until
    the oldest are closed."""
    keepalive_timeout_s: float = Field(15.0, gt=0, le=3600)
    """Longest a connection stays open without a complete request: idle between requests, or still sending
    its request line and headers. Behind a reverse proxy that keeps upstream connections alive, set the
    proxy's upstream keep-alive shorter than this."""

    @field_validator("api_token")
    @classmethod
    def _token_is_strong(cls, value: str | None) -> str | None:
        token = (value or "").strip()  # a trailing newline (echo > file, a secret store) could never match
        if not token:
            return None
        if len(token) < MIN_API_TOKEN_CHARS:
            # ConfigError, not ValueError: pydantic's error would repeat the secret in the log
            raise ConfigError(f"http.api_token (MONITOR_HTTP__API_TOKEN) is too short (length {len(token)}): a write "
                              f"token needs at least {MIN_API_TOKEN_CHARS} characters -- generate one with "
                              "`openssl rand -hex 32`, or unset it for a read-only API")
        return token

    @field_validator("allowed_hosts")
    @classmethod
    def _bare_host_names(cls, value: list[str]) -> list[str]:
        names = [name.strip() for name in value if name.strip()]
        for name in names:
            port_after_brackets = name.startswith("[") and not name.endswith("]")
            if ("/" in name or "*" in name or " " in name or port_after_brackets
                    or (":" in name and not name.startswith("[") and name.count(":") == 1)):
                raise ValueError(f"{name!r}: give bare host names such as finsent.desk.example (no scheme, port, "
                                 "path or wildcard)")
        return names

    @field_validator("public_url")
    @classmethod
    def _public_url_is_absolute(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if value and (parts.scheme not in ("http", "https") or not parts.hostname):
            raise ValueError("must be an absolute http(s) URL such as https://finsent.example.com (or empty)")
        return value.strip()

    def base_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"


class LogSettings(_Section):
    """Structured logs on stderr."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """Lowest log level written."""
    format: Literal["json", "console"] = "json"
    """``json``: one object per line (log shippers); ``console``: readable, for a terminal."""


class Settings(BaseSettings):
    """The whole service configuration."""

    model_config = SettingsConfigDict(env_prefix="MONITOR_", env_nested_delimiter="__", extra="forbid",
                                      use_attribute_docstrings=True, allow_inf_nan=False)

    source: SourceSettings = Field(default_factory=SourceSettings)
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    classifier: ClassifierSettings = Field(default_factory=ClassifierSettings)
    batching: BatchingSettings = Field(default_factory=BatchingSettings)
    windows: WindowSettings = Field(default_factory=WindowSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    shutdown_timeout_s: float = Field(30.0, gt=0)
    """Longest a graceful stop (drain, commit, flush) may take. With a dependency down, retries give up at half
    of it and stop steps still waiting are cancelled at it: exit 1 with one line, and what was not committed is
    read again at the next start. The process exits 15 s later whatever is left. Keep it below the
    supervisor's kill grace (Kubernetes terminationGracePeriodSeconds, systemd TimeoutStopSec)."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment wins over the TOML file (passed as init kwargs).
        return (env_settings, init_settings)


_HINTS = {
    "extra_forbidden": "remove it or check its spelling against docs/settings.md",
    "literal_error": "use one of the allowed values",
    "missing": "add it to the config file or set the MONITOR_* variable",
}


def _known_names(section: tuple[str | int, ...]) -> list[str]:
    """The setting names valid at ``section`` (``()`` = the top-level sections), for "did you mean"."""
    model: type[BaseModel] = Settings
    for name in section:
        field = model.model_fields.get(str(name))
        inner = field.annotation if field is not None else None
        if not (isinstance(inner, type) and issubclass(inner, BaseModel)):
            return []
        model = inner
    return list(model.model_fields)


def _closest_name(loc: tuple[str | int, ...]) -> str | None:
    """The valid setting name an unknown ``loc`` most likely misspells."""
    close = difflib.get_close_matches(str(loc[-1]), _known_names(loc[:-1]), n=1, cutoff=0.6)
    return close[0] if close else None


def _unknown_key_hint(loc: tuple[str | int, ...]) -> str:
    """The closest valid name, when a typo is the likely cause."""
    close = _closest_name(loc)
    if close is None:
        return _HINTS["extra_forbidden"]
    return f"did you mean {'.'.join(str(p) for p in (*loc[:-1], close))}? (or remove it; see docs/settings.md)"


def _env_value(name: str) -> str | None:
    """The value of environment variable ``name``, matched case-insensitively as pydantic-settings does."""
    for key, value in os.environ.items():
        if key.upper() == name:
            return value
    return None


def _seconds_hint(name: str, error_type: str, value: object) -> str | None:
    """``cooldown_s = "30m"``: a ``*_s`` number setting given a duration, with what it is in seconds (any such
    setting, by its unit suffix: every setting carries its unit in its name)."""
    if not name.endswith("_s") or error_type not in ("int_parsing", "float_parsing") or not isinstance(value, str):
        return None
    try:
        float(value)
        return None  # a bare number ("1.5" for an integer): not a duration
    except ValueError:
        pass
    try:
        seconds = parse_duration_s(value)
    except argparse.ArgumentTypeError:
        return None
    whole = "whole seconds" if error_type == "int_parsing" else "seconds"
    return f"{name} is {whole}: {value.strip()} = {seconds}"


def _shown(err: ErrorDetails) -> str:
    """A refused value as the error echoes it: a secret setting (or a misspelling of one) as ``<set>`` whatever its
    type (``kafka.sasl_password = 98765432123`` printed the password, found by review), URLs (in lists and tables
    too) without their passwords and tokens, a section given as a value only by its type (``MONITOR_KAFKA='["pw"]'``:
    it may be anything)."""
    loc, value = tuple(err["loc"]), err.get("input")
    named = tuple(str(p) for p in loc if not isinstance(p, int))
    close = _closest_name(loc) if err["type"] == "extra_forbidden" and loc else None
    if is_secret_setting(named, SECRET_KEYS) or (close and is_secret_setting((*named[:-1], close), SECRET_KEYS)):
        return SET if value else UNSET
    if len(named) == 1 and _known_names(named) and not isinstance(value, dict):
        return f"<{type(value).__name__}>"
    return repr(redact_setting(named, value, SECRET_KEYS))


def _format_error(exc: ValidationError, origin: str) -> str:
    lines = [f"invalid configuration ({origin}):"]
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"])
        named = [str(p) for p in err["loc"] if not isinstance(p, int)]  # a list item is set with its whole list
        env = "MONITOR_" + "__".join(named).upper()
        if err["type"] == "value_error" and isinstance(err.get("input"), dict):
            # a check across keys (a model validator): its message names the keys and the fix; the section's
            # whole input is not echoed (it may hold sink URLs with tokens)
            lines.append(f"  {key}: {err['msg'].removeprefix('Value error, ')}")
            continue
        msg = err["msg"].removeprefix("Value error, ")
        hint = _HINTS.get(err["type"], "fix the value")
        where = f"in the file, or via {env}"
        if err["type"] == "extra_forbidden" and err["loc"]:
            # an unknown key has no variable: the suggested MONITOR_ALERTS__Z_TRESHOLD was itself refused, and
            # pydantic's "Extra inputs are not permitted" named nothing (found by a walkthrough)
            msg, where = "no such setting", "in the file"
            section = "MONITOR_" + named[0].upper()
            if len(named) > 1 and _env_value(section) is not None:  # MONITOR_WINDOWS='{"bucket_z": 60}'
                where = f"from {section}, which overrides the file"
            hint = _unknown_key_hint(tuple(err["loc"]))
        elif named and (seconds := _seconds_hint(named[-1], err["type"], err.get("input"))):
            hint = seconds
        if _env_value(env) is not None:
            where = f"from {env}, which overrides the file"
        if err["type"] == "value_error" and " -- " in msg:  # a validator's message already names the fix
            lines.append(f"  {key} = {_shown(err)}: {msg} ({where})")
            continue
        lines.append(f"  {key} = {_shown(err)}: {msg} -- {hint} ({where})")
    return "\n".join(lines)


_LIST_EXAMPLES = {"sinks": '["log://", "file://var/alerts.jsonl"]', "replay_paths": '["data/stream.jsonl"]',
                  "scales_s": "[1800, 7200]"}
"""What a JSON list looks like for the list settings a user sets most (for the not-JSON hint)."""


SECRET_KEYS = (("kafka", "sasl_password"), ("alerts", "webhook_secret"), ("alerts", "smtp_password"),
               ("http", "api_token"))


def split_sink_url(sink: str, where: str = "alerts.sinks") -> SplitResult:
    """``urlsplit`` of a sink URL, with a malformed one (``webhook+https://[::1/x``) as a ConfigError naming the key
    (a ValueError here printed a traceback with the config's other sink URLs, tokens included)."""
    try:
        parts = urlsplit(sink)
        parts.port  # noqa: B018 -- raises ValueError for a port that is not a number
    except ValueError as exc:
        raise ConfigError(f"{where}: a sink URL is malformed ({exc}) -- fix it, e.g. webhook+https://host/path; "
                          "an IPv6 host is written in brackets: webhook+https://[::1]:8080/path") from exc
    return parts


def _require_tables(data: dict[str, Any], origin: Path) -> None:
    """A section given as a value (``windows = 5``) ended in an AttributeError and a traceback."""
    for name, field in Settings.model_fields.items():
        if name in data and isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel) \
                and not isinstance(data[name], dict):
            raise ConfigError(f"{name} in {origin} is {data[name]!r}, not a table -- write it as a section: "
                              f"[{name}] with its keys below (see docs/settings.md)")


def _reject_file_secrets(data: dict[str, Any], origin: Path) -> None:
    """Secrets live in the environment only, never in a config file that ends up in git."""
    for section, key in SECRET_KEYS:
        if isinstance(data.get(section), dict) and data[section].get(key):
            env = f"MONITOR_{section.upper()}__{key.upper()}"
            raise ConfigError(f"{section}.{key} is a secret and may not be set in {origin} -- remove it and set {env}")
    sinks = data.get("alerts", {}).get("sinks", []) if isinstance(data.get("alerts"), dict) else []
    for sink in sinks if isinstance(sinks, list) else []:
        if split_sink_url(str(sink), f"alerts.sinks in {origin}").password:
            raise ConfigError(
                f"alerts.sinks in {origin} has a URL with a password -- remove it and set the sink list via "
                "MONITOR_ALERTS__SINKS (a JSON list)"
            )
    url = str(data.get("windows", {}).get("store_url", ""))
    if "@" in url and ":" in url.split("://", 1)[-1].split("@", 1)[0]:
        raise ConfigError(
            f"windows.store_url in {origin} contains a password -- remove it and set MONITOR_WINDOWS__STORE_URL"
        )


INPUT_PATHS = (("source", "replay_paths"), ("source", "watchlist_path"), ("kafka", "ssl_cafile"),
               ("kafka", "ssl_certfile"), ("kafka", "ssl_keyfile"), ("classifier", "model_path"))
"""Settings naming files the daemon *reads*: relative values in a config file are resolved against the
file's directory, so a config works from any working directory (and inside an installed wheel).
Output paths (dead letters, file sinks, the ONNX cache) stay relative to the working directory: that
is where a run writes (systemd's ``WorkingDirectory``, the container's ``WORKDIR``)."""


def _resolve_input_paths(data: dict[str, Any], base: Path) -> None:
    for section, key in INPUT_PATHS:
        values = data.get(section)
        if not isinstance(values, dict) or not values.get(key):
            continue
        value = values[key]
        if isinstance(value, list):
            values[key] = [str(base / v) if isinstance(v, str) and not Path(v).is_absolute() else v
                           for v in value]
        elif isinstance(value, str) and not Path(value).is_absolute() and (
            key != "model_path" or (base / value).exists()  # else a hub id ("org/name")
        ):
            values[key] = str(base / value)


def _read_config(chosen: Path) -> dict[str, Any]:
    if chosen.is_dir():
        raise ConfigError(f"config path {chosen} is a directory -- pass a TOML file, e.g. {chosen / 'monitor.toml'}"
                          " (monitor init DIR writes one)")
    try:
        data: dict[str, Any] = tomllib.loads(chosen.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        named_by = ("MONITOR_CONFIG (the environment)" if os.environ.get("MONITOR_CONFIG") == str(chosen)
                    else "--config")
        raise ConfigError(f"config file {chosen} not found -- point {named_by} at an existing file") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {chosen} cannot be read: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {chosen} is not valid TOML: {exc}") from exc
    return data


OWN_VARIABLES = ("MONITOR_CONFIG", "MONITOR_DATASET_DIR", "MONITOR_TOPIC_DATASET_DIR")
"""``MONITOR_*`` variables the project reads itself that are not settings (the config path, training data)."""


def _setting_variables() -> dict[str, str]:
    """Every ``MONITOR_*`` variable that sets something: ``MONITOR_SECTION`` (JSON), ``MONITOR_SECTION__KEY`` and
    top-level keys, each mapped to its dotted setting name."""
    names: dict[str, str] = {}
    for name, field in Settings.model_fields.items():
        names[f"MONITOR_{name.upper()}"] = name
        for key in getattr(field.annotation, "model_fields", {}):
            names[f"MONITOR_{name.upper()}__{key.upper()}"] = f"{name}.{key}"
    return names


_SERVICE_LINKS = (
    # Kubernetes service links for a Service named monitor or monitor-*: {SVC}_SERVICE_HOST, {SVC}_SERVICE_PORT[_NAME],
    # {SVC}_PORT and {SVC}_PORT_{n}_{PROTO}[_PROTO|_PORT|_ADDR]; Docker --link adds {ALIAS}_NAME and {ALIAS}_ENV_*.
    (re.compile(r"MONITOR(?:_[A-Z0-9]+)*_SERVICE_HOST"), "ip"),
    (re.compile(r"MONITOR(?:_[A-Z0-9]+)*_SERVICE_PORT(?:_[A-Z0-9_]+)?"), "port"),
    (re.compile(r"MONITOR(?:_[A-Z0-9]+)*_PORT(?:_[0-9]+_(?:TCP|UDP|SCTP))?"), "url"),
    (re.compile(r"MONITOR(?:_[A-Z0-9]+)*_PORT_[0-9]+_(?:TCP|UDP|SCTP)_PROTO"), "proto"),
    (re.compile(r"MONITOR(?:_[A-Z0-9]+)*_PORT_[0-9]+_(?:TCP|UDP|SCTP)_PORT"), "port"),
    (re.compile(r"MONITOR(?:_[A-Z0-9]+)*_PORT_[0-9]+_(?:TCP|UDP|SCTP)_ADDR"), "ip"),
    (re.compile(r"MONITOR(?:_[A-Z0-9]+)*_NAME"), "path"),
    (re.compile(r"MONITOR(?:_[A-Z0-9]+)*_ENV_.+"), "any"),
)


def _looks_like(kind: str, value: str) -> bool:
    if kind == "ip":
        try:
            ipaddress.ip_address(value.strip())
        except ValueError:
            return False
        return True
    if kind == "port":
        return value.strip().isdigit()
    if kind == "url":
        return re.fullmatch(r"(?i)(tcp|udp|sctp)://\S+:[0-9]+", value.strip()) is not None
    if kind == "proto":
        return value.strip().lower() in ("tcp", "udp", "sctp")
    if kind == "path":
        return value.startswith("/")
    return True


def _is_service_link(name: str, value: str) -> bool:
    """A variable Kubernetes or Docker injects for a Service/link named ``monitor``/``monitor-*`` (never a setting)."""
    return any(pattern.fullmatch(name) and _looks_like(kind, value) for pattern, kind in _SERVICE_LINKS)


def _meant_as_setting(name: str) -> bool:
    """Whether an unknown ``MONITOR_*`` name was clearly meant to set something: it has the section separator
    ``__``, starts with a section or top-level key and ``_`` (``MONITOR_WINDOWS_BUCKET_S``), or its first word
    is a near-miss of a section (``MONITOR_ALERT_SINKS``). Other names (a Service's links) are not ours."""
    if "__" in name:
        return True
    rest = name.removeprefix("MONITOR_")
    fields = [field.upper() for field in Settings.model_fields]
    if any(rest.startswith(f"{field}_") for field in fields):
        return True
    sections = [field.upper() for field, info in Settings.model_fields.items()
                if hasattr(info.annotation, "model_fields")]
    return bool(difflib.get_close_matches(rest.split("_", 1)[0], sections, n=1, cutoff=0.8))


_WARNED_VARIABLES: set[str] = set()


def _reject_unknown_variables() -> None:
    """A misspelled variable (``MONITOR_ALERT__SINKS``, ``MONITOR_WINDOWS_BUCKET_S``) was silently ignored: refuse
    the names meant as settings. Any other unknown ``MONITOR_*`` name (Kubernetes injects ``MONITOR_SERVICE_HOST``,
    ``MONITOR_PORT``, ... for a Service named ``monitor``; Docker links ``MONITOR_ENV_*``) is ignored, with one
    warning naming them (never their values)."""
    known = _setting_variables()
    unknown = []
    ignored = []
    for name, value in sorted(os.environ.items()):
        upper = name.upper()
        if not upper.startswith("MONITOR_") or upper in known or upper in OWN_VARIABLES:
            continue
        head = upper.split("__")
        if len(head) > 2 and "__".join(head[:2]) in known:  # MONITOR_ALERTS__THRESHOLDS__KEY: into a table
            continue
        if _is_service_link(upper, value) or not _meant_as_setting(upper):
            ignored.append(name)
            continue
        close = difflib.get_close_matches(upper, [*known, *OWN_VARIABLES], n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}?" if close else "see docs/settings.md for the variable names"
        unknown.append(f"  {name} -- {hint} (or unset it)")
    if unknown:
        raise ConfigError("unknown MONITOR_* environment variable(s), not a setting (a section and its key are "
                          "joined by a double underscore: MONITOR_WINDOWS__BUCKET_S):\n" + "\n".join(unknown))
    fresh = [name for name in ignored if name not in _WARNED_VARIABLES]
    if fresh:
        _WARNED_VARIABLES.update(fresh)
        logging.getLogger(__name__).warning(
            "ignoring MONITOR_* environment variable(s) that are not settings (e.g. Kubernetes service links): %s",
            ", ".join(fresh))


def load_settings(path: Path | None = None, **overrides: Any) -> Settings:
    """Load ``path`` (default: $MONITOR_CONFIG, else the packaged configs/default.toml), then the
    environment, then ``overrides``. Relative input paths in the file are relative to the file."""
    chosen = path or Path(os.environ.get("MONITOR_CONFIG", DEFAULT_CONFIG))
    _reject_unknown_variables()
    data = _read_config(chosen)
    _require_tables(data, chosen)
    _reject_file_secrets(data, chosen)
    _resolve_input_paths(data, chosen.resolve().parent)
    for section, values in overrides.items():
        if isinstance(values, dict):
            data.setdefault(section, {}).update(values)
        else:
            data[section] = values
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_format_error(exc, str(chosen))) from exc
    except SettingsError as exc:  # an environment value pydantic-settings cannot even parse
        raise ConfigError(_env_parse_error(exc)) from exc


_BARE_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S*")


def _not_json(name: str, value: str) -> str | None:
    """``NAME is not JSON (what and where)``, or None when ``value`` is JSON. The value itself may hold a secret (a
    sink URL's token, a section's ``sasl_password``) and is never echoed: only a lone URL (a sink list written as
    one URL, the usual mistake) is shown, redacted."""
    try:
        json.loads(value)
    except json.JSONDecodeError as exc:
        if _BARE_URL.fullmatch(value.strip()):
            return f"{name}={redact_url(value.strip())!r} is not JSON"
        return f"{name} is not JSON ({exc.msg} at char {exc.pos} of {len(value)})"
    return None


def _env_parse_error(exc: SettingsError) -> str:
    """Name the ``MONITOR_*`` variable behind a parse error: list and table settings take JSON there."""
    for name, value in sorted(os.environ.items()):
        parts = name.lower().removeprefix("monitor_").split("__")
        if not name.startswith("MONITOR_") or parts[0] not in Settings.model_fields:
            continue
        if len(parts) == 1 and _known_names((parts[0],)):
            # a whole section as JSON (MONITOR_WINDOWS='{"bucket_s": 60}'); it named neither (found by review)
            if broken := _not_json(name, value):
                return (f"{broken} -- a whole [{parts[0]}] section in one variable is a JSON object, e.g. "
                        f"{name}='{{\"key\": 1}}'; or set one key: MONITOR_{parts[0].upper()}__KEY")
            continue
        if len(parts) != 2:
            continue
        section = Settings.model_fields[parts[0]].annotation
        field = getattr(section, "model_fields", {}).get(parts[1])
        if field is None or get_origin(field.annotation) not in (list, dict):
            continue
        if broken := _not_json(name, value):
            example = (_LIST_EXAMPLES.get(parts[1], '["a", "b"]') if get_origin(field.annotation) is list
                       else '{"k": 1}')
            return (f"{broken} -- {parts[0]}.{parts[1]} is a "
                    f"{get_origin(field.annotation).__name__}; write it as JSON, e.g. {name}='{example}'")
    return f"cannot parse a MONITOR_* environment variable: {exc}"
