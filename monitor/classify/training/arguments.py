"""Argument types and flags shared by ``monitor train``, ``pretrain`` and ``eval``.

Why checked in argparse: a zero batch size or a validation fraction of 1 otherwise fails minutes later
(after the frozen layers are computed) with a library error, or trains on an empty split.
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

PRECISIONS = ("auto", "bf16", "fp32")


def positive_int(text: str) -> int:
    """An integer >= 1 (``--batch-size``, ``--epochs``, ``--patience``)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """An integer >= 0 (``--train-layers``: 0 = heads only)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def learning_rate(text: str) -> float:
    """A finite number >= 0 (0 freezes what it drives; a negative rate trained the model away from its labels)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def output_dir(text: str) -> Path:
    """A directory this user can write or make (nothing is made here), checked before any work: training wrote its
    output only after the last epoch, so a file or an unwritable path there failed after 20 minutes (found by
    review)."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: is a file -- pass a directory (it is made if missing)")
    parent = path
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"{text}: {parent} is not a directory this user can write -- choose another "
                                         "path")
    return path


def open_fraction(text: str) -> float:
    """A fraction strictly between 0 and 1 (a held-out slice that is neither empty nor everything)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (exclusive), got {value}")
    return value


def add_precision_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--precision", choices=PRECISIONS, default="auto",
        help="training autocast dtype; auto = bf16 where the CPU has native bf16 (amx_bf16/avx512_bf16), else "
        "fp32 (emulated bf16 is many times slower and rounds differently per CPU type)",
    )


def training_precision(requested: str, flag: str | None) -> str:
    """``bf16`` or ``fp32`` for ``--precision``; ``auto`` is bf16 only with a native bf16 ``flag``
    (``cpu_bf16_flag()``): emulated bf16 is ~24x slower on AVX2-only CPUs."""
    if requested != "auto":
        return requested
    return "fp32" if flag is None else "bf16"
