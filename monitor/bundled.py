"""Files shipped inside the package: the configs, the taxonomy and the demo data (importlib.resources).

In the repository ``monitor/configs`` and ``monitor/data`` are symlinks to the top-level ``configs/``
and ``data/``, so ``make run``, the tests and the built wheel read the very same files (there is no
second copy to drift); the wheel carries them as real files. A config's relative input paths are
resolved against the config file (monitor/config.py), so ``configs/default.toml`` names the demo as
``../data/demo_stream.jsonl`` in the repository and inside an installed package alike.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def bundled(*parts: str) -> Path:
    """Path of a packaged file. pip installs packages unzipped, so it is a real file on disk."""
    return Path(str(files("monitor").joinpath(*parts)))


DEFAULT_CONFIG = bundled("configs", "default.toml")
PRODUCTION_CONFIG = bundled("configs", "production.toml")
TAXONOMY = bundled("configs", "taxonomy.toml")
DEMO_STREAM = bundled("data", "demo_stream.jsonl")
DEMO_INCIDENTS = bundled("data", "demo_incidents.csv")
