"""The labelled CSVs (``text,label``) and the deterministic stratified train/validation split."""

from __future__ import annotations

import csv
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from monitor.classify.topics import Taxonomy
from monitor.types import SENTIMENTS

DATASET_DIR = Path(
    os.environ.get("MONITOR_DATASET_DIR", "/work/shared/datasets/twitter-financial-news-sentiment")
)
"""Directory of ``sent_train.csv`` / ``sent_valid.csv``; override with ``MONITOR_DATASET_DIR``."""
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
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            texts.append(row["text"])
            sentiments.append(SENTIMENT_LABELS.index(taxonomy.sentiment_of(int(row["label"])).value))
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
