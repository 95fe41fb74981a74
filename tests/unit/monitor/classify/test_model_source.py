"""A path is a path, and a hub id comes from the local cache: never minutes of hub retries offline."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import huggingface_hub
import pytest
from huggingface_hub import constants

from monitor.classify import ModelLoadError
from monitor.classify.artifact import load_model
from monitor.classify.model_source import downloads_allowed, is_local_path


@pytest.fixture
def hub_calls(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[dict[str, Any]]:
    """Every snapshot_download call's keyword arguments, against an empty hub cache in ``tmp_path``."""
    calls: list[dict[str, Any]] = []
    real = huggingface_hub.snapshot_download

    def spy(repo_id: str, **kwargs: Any) -> Any:
        calls.append(kwargs)
        return real(repo_id, **kwargs)

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # a regression must fail fast, not hang
    monkeypatch.setattr(huggingface_hub, "snapshot_download", spy)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    return calls


@pytest.mark.parametrize(
    "value",
    ["/abs/model", "./model", "../models/x", f"models{os.sep}finsent{os.sep}v2", "~/models/finsent"],
)
def test_path_looking_values_are_local_directories(value: str) -> None:
    assert is_local_path(value)


@pytest.mark.parametrize("value", ["ProsusAI/finbert", "finbert"])
def test_hub_ids_are_not_taken_for_paths(value: str) -> None:
    assert not is_local_path(value)


def test_existing_relative_directory_is_local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "org" / "model").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert is_local_path("org/model")


def test_mistyped_path_is_reported_as_a_missing_directory_without_the_hub(
    hub_calls: list[dict[str, Any]], tmp_path: Path
) -> None:
    with pytest.raises(ModelLoadError, match=r"^directory not found: .*nope \(classifier\.model_path\)"):
        load_model(str(tmp_path / "nope"))
    assert hub_calls == []


def test_hub_id_missing_from_the_cache_fails_at_once_naming_the_setting(hub_calls: list[dict[str, Any]]) -> None:
    with pytest.raises(ModelLoadError, match=r"hub id 'acme/absent' is not in the local hub cache \(classifier"):
        load_model("acme/absent")
    assert [call["local_files_only"] for call in hub_calls] == [True]


def test_a_command_flag_is_named_instead_of_the_setting(hub_calls: list[dict[str, Any]], tmp_path: Path) -> None:
    """Found by review: ``monitor eval --model nope`` was told to fix classifier.model_path."""
    from monitor.classify.model_source import locate_model

    with pytest.raises(ModelLoadError, match=r"\(--model\)"):
        locate_model("acme/absent", "--model")
    with pytest.raises(ModelLoadError, match=r"nope \(--model\)"):
        locate_model(str(tmp_path / "nope"), "--model")


def test_hub_id_in_the_local_cache_loads_without_a_network(
    hub_calls: list[dict[str, Any]], tiny_model_dir: Path, tmp_path: Path
) -> None:
    repo = tmp_path / "hub" / "models--acme--tiny"
    shutil.copytree(tiny_model_dir, repo / "snapshots" / "abc123")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    model, _ = load_model("acme/tiny")
    assert model.config.topic_labels == ["earnings", "markets", "other"]
    assert hub_calls[0]["local_files_only"] is True


@pytest.mark.parametrize(("value", "allowed"), [(None, False), ("1", False), ("0", True), ("false", True)])
def test_hub_downloads_need_hf_hub_offline_set_to_false_explicitly(
    monkeypatch: pytest.MonkeyPatch, value: str | None, allowed: bool
) -> None:
    if value is None:
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    else:
        monkeypatch.setenv("HF_HUB_OFFLINE", value)
    assert downloads_allowed() is allowed
