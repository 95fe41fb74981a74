"""Human durations and times for the command line: ``90``, ``90s``, ``30m``, ``1h30m``, ``2d`` -> seconds;
epoch seconds -> ISO-8601 UTC for output.

argparse ``type=`` functions raise ``ArgumentTypeError``, so a bad value is a one-line usage error.
"""

from __future__ import annotations

import argparse
import math
import re
from datetime import UTC, datetime

UNITS_S = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


def parse_duration_s(text: str) -> int:
    """Whole seconds in ``text``: a bare number is seconds; otherwise number+unit parts (s m h d w)."""
    value = text.strip().lower()
    try:
        seconds = float(value)
    except ValueError:
        parts = _PART.findall(value)
        if not parts or "".join(n + u for n, u in parts) != value:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a duration -- use seconds or e.g. 90s, 30m, 1h30m, 2d"
            ) from None
        seconds = sum(float(n) * UNITS_S[u] for n, u in parts)
    if not math.isfinite(seconds):  # inf reached round() and ended the command with an OverflowError (review)
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration -- use seconds or e.g. 90s, 30m, 1h30m, 2d")
    if seconds < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: a duration cannot be negative")
    return round(seconds)


def non_negative_float(text: str) -> float:
    """argparse type for rates and factors such as ``--speed`` (0 = as fast as possible)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value < 0 or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number >= 0")
    return value


def duration(seconds: float) -> str:
    """``2d 4h``, ``3h 05m``, ``12m``, ``40s``; negative values get a minus sign."""
    sign, s = ("-" if seconds < 0 else ""), int(abs(seconds))
    days, rest = divmod(s, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{sign}{days}d {hours}h" if hours else f"{sign}{days}d"
    if hours:
        return f"{sign}{hours}h {minutes:02d}m"
    return f"{sign}{minutes}m" if minutes else f"{sign}{secs}s"


def iso_utc(epoch_s: float | None) -> str:
    """``2026-11-03T14:10:00Z`` (``-`` for None): the one time format of CLI output."""
    if epoch_s is None:
        return "-"
    return datetime.fromtimestamp(epoch_s, tz=UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
