from __future__ import annotations

from monitor.config import Settings
from monitor.settings_reference import OUTPUT, main, render, undocumented


def test_every_setting_has_a_docstring() -> None:
    assert undocumented() == []


def test_docs_settings_md_is_up_to_date_with_the_models() -> None:
    assert OUTPUT.read_text(encoding="utf-8") == render(), "docs/settings.md is stale -- run: make docs"
    assert main(["--check"]) == 0


def test_reference_lists_every_setting_with_its_environment_variable() -> None:
    text = render()
    for section, info in Settings.model_fields.items():
        fields = getattr(info.annotation, "model_fields", None) or {section: info}
        for key in fields:
            env = f"MONITOR_{section.upper()}__{key.upper()}" if key != section else f"MONITOR_{section.upper()}"
            assert f"`{env}`" in text


def test_check_fails_on_a_stale_file(tmp_path: object) -> None:
    from pathlib import Path

    stale = Path(str(tmp_path)) / "settings.md"
    stale.write_text("old\n")
    assert main(["--check", "--output", str(stale)]) == 1
