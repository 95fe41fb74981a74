"""The labelled CSVs (``text,label``) and the deterministic stratified train/validation split.

Two shared datasets feed the two heads: ``sent_train.csv`` (sentiment labels) and ``topic_train.csv``
(human topic labels, ids 0-19 mapped to the canonical names by ``[topic_labels]`` in the taxonomy).
A missing file or a CSV without a ``text``/``label`` column is a :class:`DatasetError` whose one-line
message names the file and the fix.
"""

from __future__ import annotations

import csv
import os
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from monitor.classify import DatasetError
from monitor.classify.topics import Taxonomy
from monitor.types import SENTIMENTS

_SHARED = Path("/work/shared/datasets")
DATASET_DIR = Path(os.environ.get("MONITOR_DATASET_DIR", str(_SHARED / "twitter-financial-news-sentiment")))
"""Directory of ``sent_train.csv`` / ``sent_valid.csv``; override with ``MONITOR_DATASET_DIR``."""
TOPIC_DATASET_DIR = Path(
    os.environ.get("MONITOR_TOPIC_DATASET_DIR", str(_SHARED / "twitter-financial-news-topic"))
)
"""Directory of ``topic_train.csv`` (human topic labels); override with ``MONITOR_TOPIC_DATASET_DIR``."""
SENTIMENT_LABELS: list[str] = [s.value for s in SENTIMENTS]
"""Sentiment head label order: negative, neutral, positive."""

_CASHTAG = re.compile(r"\$[A-Za-z]")


@dataclass(frozen=True, slots=True)
class LabelledTexts:
    texts: list[str]
    labels: list[int]
    """Ids into the head's label list (already mapped from the dataset's own label ids)."""

    @property
    def sentiments(self) -> list[int]:
        """Alias of ``labels`` for the sentiment CSV."""
        return self.labels


def _read(path: Path, to_label: Callable[[int], int]) -> LabelledTexts:
    texts: list[str] = []
    labels: list[int] = []
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = {"text", "label"} - set(reader.fieldnames or [])
            if missing:
                raise DatasetError(
                    f"{path}: no {'/'.join(sorted(missing))} column (header {reader.fieldnames}) -- "
                    "pass a CSV with a `text,label` header"
                )
            for line, row in enumerate(reader, start=2):
                try:
                    labels.append(to_label(int(row["label"])))
                except (TypeError, ValueError) as exc:
                    raise DatasetError(f"{path}:{line}: bad label {row['label']!r} ({exc})") from exc
                texts.append(row["text"] or "")
    except FileNotFoundError as exc:
        raise DatasetError(
            f"dataset {path} not found -- point the option at the file (or set MONITOR_DATASET_DIR / "
            "MONITOR_TOPIC_DATASET_DIR)"
        ) from exc
    return LabelledTexts(texts, labels)


def read_csv(path: Path, taxonomy: Taxonomy) -> LabelledTexts:
    """Sentiment ``text,label`` rows, dataset labels mapped through ``[sentiment_labels]``."""
    return _read(path, lambda label: SENTIMENT_LABELS.index(taxonomy.sentiment_of(label).value))


def read_topic_csv(path: Path, taxonomy: Taxonomy) -> LabelledTexts:
    """Topic ``text,label`` rows, dataset ids mapped through ``[topic_labels]`` to indices of ``names``."""
    index = {name: i for i, name in enumerate(taxonomy.names)}
    return _read(path, lambda label: index[taxonomy.topic_of(label)])


def is_headline_style(text: str) -> bool:
    """News-outlet style: no ``$TICKER`` cashtag (the out-of-distribution split of ``monitor train``)."""
    return _CASHTAG.search(text) is None


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


def topic_holdout(path: Path, taxonomy: Taxonomy, fraction: float, seed: int) -> LabelledTexts:
    """The rows of the topic CSV that ``monitor train --valid-fraction F --seed S`` held out."""
    data = read_topic_csv(path, taxonomy)
    _, held = stratified_split(data.labels, fraction, seed)
    return LabelledTexts([data.texts[i] for i in held], [data.labels[i] for i in held])
