"""Config errors name the key and the fix; an unknown key that looks like a typo gets the likely name."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.config import ConfigError, load_settings


def error_of(tmp_path: Path, toml: str) -> str:
    path = tmp_path / "c.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    return str(info.value)


def test_a_misspelled_setting_is_answered_with_the_closest_valid_name_and_its_variable(tmp_path: Path) -> None:
    text = error_of(tmp_path, "[alerts]\nburst_min_negative = 3\n")
    assert ("alerts.burst_min_negative = 3: Extra inputs are not permitted -- did you mean "
            "alerts.burst_min_negatives? (or remove it; see docs/settings.md)") in text
    assert "MONITOR_ALERTS__BURST_MIN_NEGATIVE" in text


def test_a_misspelled_section_is_answered_with_the_closest_section(tmp_path: Path) -> None:
    assert "did you mean windows?" in error_of(tmp_path, "[windowz]\nbucket_s = 300\n")


def test_an_unknown_name_like_no_setting_gets_the_generic_fix(tmp_path: Path) -> None:
    text = error_of(tmp_path, "[alerts]\ntotally_unknown = 1\n")
    assert "did you mean" not in text
    assert "remove it or check its spelling against docs/settings.md" in text
