"""Argument types and flags shared by ``monitor train``, ``pretrain`` and ``eval``.

Why checked in argparse: a zero batch size or a validation fraction of 1 otherwise fails minutes later
(after the frozen layers are computed) with a library error, or trains on an empty split.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

PRECISIONS = ("auto", "bf16", "fp32")


N = TypeVar("N", int, float)


def _number(text: str, kind: type[N], accepts: Callable[[N], bool], expected: str) -> N:
    """``text`` as ``kind`` if ``accepts`` it, else the argparse error naming ``expected``."""
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if not accepts(value):
        raise argparse.ArgumentTypeError(f"must be {expected}, got {text}")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1 (``--batch-size``, ``--epochs``, ``--patience``)."""
    return _number(text, int, lambda v: v >= 1, "an integer >= 1")


def non_negative_int(text: str) -> int:
    """An integer >= 0 (``--train-layers``: 0 = heads only)."""
    return _number(text, int, lambda v: v >= 0, "an integer >= 0")


def _finite_non_negative(text: str) -> float:
    return _number(text, float, lambda v: v >= 0 and math.isfinite(v), "a finite number >= 0")


def learning_rate(text: str) -> float:
    """A finite number >= 0 (0 freezes what it drives; a negative rate trained the model away from its labels)."""
    return _finite_non_negative(text)


def loss_weight(text: str) -> float:
    """A finite number >= 0 (``--topic-loss-weight``, ``--distill-weight``: 0 drops that loss; a negative
    weight maximised it)."""
    return _finite_non_negative(text)


def fraction(text: str) -> float:
    """A fraction from 0 to 1 inclusive (``--warmup-fraction``: of all steps, so more than 1 never decays)."""
    return _number(text, float, lambda v: 0.0 <= v <= 1.0, "a number from 0 to 1")


def moving_average_decay(text: str) -> float:
    """At least 0 and below 1 (``--ema-decay``: 0 = off; 1 never moves the average off the initial weights,
    above 1 or below 0 diverges)."""
    return _number(text, float, lambda v: 0.0 <= v < 1.0, "a number from 0 up to (not including) 1")


def layer_decay(text: str) -> float:
    """Above 0 and at most 1 (``--layer-decay``: 1 = one rate for every layer; 0 freezes all but the top
    layer, a negative value gives odd layers negative rates and above 1 moves lower layers most)."""
    return _number(text, float, lambda v: 0.0 < v <= 1.0, "a number above 0 and at most 1")


def open_fraction(text: str) -> float:
    """A fraction strictly between 0 and 1 (a held-out slice that is neither empty nor everything)."""
    return _number(text, float, lambda v: 0.0 < v < 1.0, "a number between 0 and 1 (exclusive)")


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
