"""``monitor init``: a starter configuration that says what it is."""

from __future__ import annotations

from monitor.starter import MAKE_RUN_NOTE, STARTER_REPLAY, starter_files


def test_the_starter_config_does_not_claim_make_run_uses_it() -> None:
    """Found by a walkthrough: the copy kept the packaged file's "`make run` uses this file", but `make run` reads
    configs/default.toml, never a user's copy."""
    files = starter_files()
    assert MAKE_RUN_NOTE.strip() not in files["monitor.toml"]
    assert files["monitor.toml"].startswith("# Starter config written by `monitor init`")
    assert STARTER_REPLAY in files["monitor.toml"]
