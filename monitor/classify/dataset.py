"""The labelled CSVs (``text,label``) and the deterministic stratified train/validation split."""

from __future__ import annotations

import csv
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from monitor.classify.topics import Taxonomy, TaxonomyError
from monitor.types import SENTIMENTS

DATASET_ENV = "MONITOR_DATASET_DIR"
DATASET_DIR = Path(os.environ.get(DATASET_ENV, "."))
"""Directory of ``sent_train.csv`` / ``sent_valid.csv``: ``$MONITOR_DATASET_DIR``, else the working
directory (no machine-specific default; ``make model`` / ``make eval`` point it at ../shared/datasets)."""


class DatasetError(ValueError):
    """The labelled CSV is missing or malformed (the message says which file and how to fix it)."""
SENTIMENT_LABELS: list[str] = [s.value for s in SENTIMENTS]
"""Sentiment head label order: negative, neutral, positive."""


@dataclass(frozen=True, slots=True)
class LabelledTexts:
    texts: list[str]
    sentiments: list[int]
    """Ids into :data:`SENTIMENT_LABELS` (already mapped from the dataset's own label ids)."""


def read_csv(path: Path, taxonomy: Taxonomy) -> LabelledTexts:
    """Read ``text,label`` rows, mapping dataset labels through ``[sentiment_labels]``."""
    texts: list[str] = []
    sentiments: list[int] = []
    if not path.is_file():
        raise DatasetError(
            f"dataset file {path} not found -- set {DATASET_ENV} to the directory holding sent_train.csv and "
            "sent_valid.csv (e.g. ../shared/datasets/twitter-financial-news-sentiment) or pass the CSV path"
        )
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"text", "label"} - set(reader.fieldnames or ())
        if missing:
            raise DatasetError(f"{path} has no {sorted(missing)} column(s) -- a labelled CSV needs the header "
                               f"'text,label' (found {reader.fieldnames})")
        for line, row in enumerate(reader, start=2):
            try:
                label = taxonomy.sentiment_of(int(row["label"]))
            except (TypeError, ValueError, TaxonomyError) as exc:
                raise DatasetError(f"{path}:{line}: label {row['label']!r} is not one of the taxonomy's "
                                   "[sentiment_labels] ids") from exc
            texts.append(row["text"])
            sentiments.append(SENTIMENT_LABELS.index(label.value))
    return LabelledTexts(texts, sentiments)


def stratified_split(labels: Sequence[int], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Indices (train, held-out): ``fraction`` of each class held out, chosen by a seeded shuffle."""
    rng = random.Random(seed)
    train: list[int] = []
    held: list[int] = []
    for cls in sorted(set(labels)):
        members = [i for i, y in enumerate(labels) if y == cls]
        rng.shuffle(members)
        cut = round(len(members) * fraction)
        held += members[:cut]
        train += members[cut:]
    return sorted(train), sorted(held)
