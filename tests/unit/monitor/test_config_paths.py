"""Config files work from any directory: input paths are relative to the file, outputs to the cwd."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.bundled import DEFAULT_CONFIG, DEMO_STREAM, TAXONOMY
from monitor.config import REPO_ROOT, ConfigError, load_settings


def test_relative_input_paths_are_resolved_against_the_config_file_not_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    conf = tmp_path / "conf"
    (conf / "certs").mkdir(parents=True)
    (conf / "models" / "mine").mkdir(parents=True)
    path = conf / "monitor.toml"
    path.write_text('[source]\nreplay_paths = ["streams/a.jsonl", "/abs/b.jsonl"]\ndead_letter_path = "var/dl.jsonl"\n'
                    '[kafka]\nssl_cafile = "certs/ca.pem"\n'
                    '[classifier]\nmodel_path = "models/mine"\n')
    monkeypatch.chdir(tmp_path)
    s = load_settings(path)
    assert s.source.replay_paths == [conf / "streams" / "a.jsonl", Path("/abs/b.jsonl")]
    assert s.kafka.ssl_cafile == str(conf / "certs" / "ca.pem")
    assert s.classifier.model_path == str(conf / "models" / "mine")
    assert s.source.dead_letter_path == Path("var/dl.jsonl")  # outputs: where the run writes


def test_a_model_path_that_is_not_a_local_directory_stays_a_hub_id(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[classifier]\nmodel_path = "org/finbert-two-head"\n')
    assert load_settings(path).classifier.model_path == "org/finbert-two-head"


def test_the_packaged_default_config_replays_the_packaged_demo_from_anywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MONITOR_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    [demo] = load_settings().source.replay_paths
    assert demo.resolve() == DEMO_STREAM.resolve() and demo.is_file()
    assert TAXONOMY.is_file()


def test_the_repository_configs_are_the_packaged_ones() -> None:
    """monitor/configs and monitor/data are links to configs/ and data/: one copy, nothing to drift."""
    for packaged, repo in ((DEFAULT_CONFIG, "configs/default.toml"), (DEMO_STREAM, "data/demo_stream.jsonl")):
        assert packaged.resolve() == (REPO_ROOT / repo).resolve()


def test_a_list_setting_from_the_environment_that_is_not_json_names_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MONITOR_ALERTS__SINKS", "log://")
    with pytest.raises(ConfigError, match=r"MONITOR_ALERTS__SINKS='log://' is not JSON -- alerts\.sinks is a list"):
        load_settings(DEFAULT_CONFIG)


def test_a_directory_as_config_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory -- pass a TOML file"):
        load_settings(tmp_path)


def test_a_relative_watchlist_path_is_resolved_against_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    path = conf / "monitor.toml"
    path.write_text('[source]\nwatchlist_path = "mywl.csv"\n')
    monkeypatch.chdir(tmp_path)
    assert load_settings(path).source.watchlist_path == str(conf / "mywl.csv")
