"""Generate docs/settings.md, the settings reference, from the pydantic models in monitor/config.py.

Every setting with its type, default, environment variable and docstring, one table per section.
``python -m monitor.settings_reference`` rewrites the file (``make docs``); ``--check`` exits 1 when it
is out of date (tests/unit/monitor/test_settings_reference.py runs the same comparison).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from monitor.config import REPO_ROOT, SECRET_KEYS, Settings

OUTPUT = REPO_ROOT / "docs" / "settings.md"
PACKAGE_DIR = Path(__file__).resolve().parent
HEADER = """# Settings reference

Generated from `monitor/config.py` by `python -m monitor.settings_reference` (`make docs`); do not edit.
Settings come from the TOML file given with `--config` (default: the packaged `configs/default.toml`),
overridden by environment variables `MONITOR_<SECTION>__<KEY>`; list and table values are JSON there
(`MONITOR_ALERTS__SINKS='["log://"]'`). Relative input paths in a file are relative to that file.
Secrets are accepted from the environment only.
"""


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _type(info: FieldInfo) -> str:
    shown = repr(info.annotation) if not isinstance(info.annotation, type) else info.annotation.__name__
    return shown.replace("typing.", "").replace("pathlib.", "")


def _default(info: FieldInfo) -> str:
    if info.default_factory is not None:
        value: Any = info.default_factory()  # type: ignore[call-arg]
    elif info.default is PydanticUndefined:
        return "required"
    else:
        value = info.default
    if value is None:
        return "unset"
    text = json.dumps(value, default=str)
    return text.replace(str(PACKAGE_DIR), "<package>")  # machine-independent: packaged files


def _section(name: str, model: type[BaseModel]) -> list[str]:
    lines = [f"## `[{name}]`", "", _cell(model.__doc__ or ""), "",
             "| setting | type | default | environment variable | description |", "|---|---|---|---|---|"]
    for key, info in model.model_fields.items():
        env = f"MONITOR_{name.upper()}__{key.upper()}"
        doc = info.description or ""
        if (name, key) in SECRET_KEYS:
            doc += " **Secret: environment only.**"
        lines.append(f"| `{key}` | `{_cell(_type(info))}` | `{_cell(_default(info))}` | `{env}` | {_cell(doc)} |")
    return [*lines, ""]


def render() -> str:
    lines = [HEADER]
    top: list[str] = []
    for name, info in Settings.model_fields.items():
        model = info.annotation
        if isinstance(model, type) and issubclass(model, BaseModel):
            lines += _section(name, model)
        else:
            top.append(f"| `{name}` | `{_cell(_type(info))}` | `{_cell(_default(info))}` | "
                       f"`MONITOR_{name.upper()}` | {_cell(info.description or '')} |")
    if top:
        lines += ["## Top level", "", "| setting | type | default | environment variable | description |",
                  "|---|---|---|---|---|", *top, ""]
    return "\n".join(lines)


def undocumented() -> list[str]:
    """``section.key`` of every setting without a docstring (there should be none)."""
    missing = []
    for name, info in Settings.model_fields.items():
        model = info.annotation
        fields = model.model_fields if isinstance(model, type) and issubclass(model, BaseModel) else {name: info}
        missing += [f"{name}.{k}" if k != name else name for k, f in fields.items() if not f.description]
    return missing


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m monitor.settings_reference", description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/settings.md is out of date")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.is_file() else ""
        if current != text:
            print(f"{args.output} is out of date -- run: make docs", file=sys.stderr)
            return 1
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
