"""The project installs the codecs aiokafka needs for compressed batches: aiokafka 0.14 decompresses snappy, lz4
and zstd with ``cramjam`` only, which plain ``aiokafka`` does not pull in (the extras of
``aiokafka[lz4,snappy,zstd]`` do). Without it the first such batch ended the daemon (found by review)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from aiokafka import codec

PYPROJECT = Path(__file__).resolve().parents[3] / "pyproject.toml"


def test_the_project_depends_on_aiokafka_with_the_lz4_snappy_and_zstd_codecs() -> None:
    dependencies = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]["dependencies"]
    [aiokafka] = [d for d in dependencies if re.match(r"aiokafka\b", d)]
    match = re.match(r"aiokafka\[([^\]]*)\]", aiokafka)
    assert match is not None, aiokafka
    assert {"lz4", "snappy", "zstd"} <= {extra.strip() for extra in match[1].split(",")}


def test_this_install_can_decompress_snappy_lz4_and_zstd_batches() -> None:
    assert codec.has_snappy() and codec.has_lz4() and codec.has_zstd()
