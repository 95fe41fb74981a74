"""``monitor init DIR``: write a starter configuration to edit, from the packaged configs.

``DIR/monitor.toml`` is the embedded demo config (file replay of the bundled demo stream, in-memory
windows, log + file sinks) with every key in place to edit; ``DIR/production.toml`` is the Kafka +
Redis variant. Existing files are kept unless ``--force``. Relative input paths in them are relative
to DIR (see monitor/config.py); outputs (var/...) go under the directory the daemon runs in.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from monitor.bundled import DEFAULT_CONFIG, PRODUCTION_CONFIG

REPLAY_LINE = 'replay_paths = ["../data/demo_stream.jsonl"]'
STARTER_REPLAY = ('# replay_paths = ["my-stream.jsonl"]      # JSONL/CSV, relative to this file; '
                  "default: the bundled demo stream")
MAKE_RUN_NOTE = " `make run` uses this file."


def starter_files() -> dict[str, str]:
    """File name -> text of the starter configuration."""
    demo = DEFAULT_CONFIG.read_text(encoding="utf-8")
    line = next((ln for ln in demo.splitlines() if ln.startswith(REPLAY_LINE)), None)
    if line is not None:  # the packaged demo path means nothing next to a user's config
        demo = demo.replace(line, STARTER_REPLAY)
    demo = demo.replace(MAKE_RUN_NOTE, "")  # `make run` reads the packaged file, never this copy (a walkthrough)
    header = "# Starter config written by `monitor init`. Run: monitor --config {path} run\n"
    return {
        "monitor.toml": header + demo,
        "production.toml": header + PRODUCTION_CONFIG.read_text(encoding="utf-8"),
    }


def init_command(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="monitor init", description="write a starter config into DIR")
    parser.add_argument("dir", type=Path, help="directory to write monitor.toml and production.toml into")
    parser.add_argument("--force", action="store_true", help="overwrite existing files")
    args = parser.parse_args(list(argv))
    if args.dir.exists() and not args.dir.is_dir():
        parser.error(f"{args.dir} exists and is not a directory")
    files = starter_files()
    clash = [name for name in files if (args.dir / name).exists()]
    if clash and not args.force:
        print(f"error: {', '.join(str(args.dir / n) for n in clash)} already exist(s) -- pass --force to overwrite",
              file=sys.stderr)
        return 1
    args.dir.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        path = args.dir / name
        path.write_text(text.replace("{path}", str(path)), encoding="utf-8")
        print(f"wrote {path}")
    print(f"next: monitor --config {args.dir / 'monitor.toml'} run")
    return 0
