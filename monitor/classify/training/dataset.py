"""The labelled CSVs (``text,label``) and the deterministic stratified train/validation split.

Two shared datasets feed the two heads: ``sent_train.csv`` (sentiment labels) and ``topic_train.csv``
(human topic labels, ids 0-19 mapped to the canonical names by ``[topic_labels]`` in the taxonomy).
A missing file or a CSV without a ``text``/``label`` column is a :class:`DatasetError` whose one-line
message names the file and the fix.
"""

from __future__ import annotations

import csv
import json
import os
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from monitor.classify.topics import Taxonomy, TaxonomyError
from monitor.types import SENTIMENTS

DATASET_ENV = "MONITOR_DATASET_DIR"
DATASET_DIR = Path(os.environ.get(DATASET_ENV, "."))
"""Directory of ``sent_train.csv`` / ``sent_valid.csv``: ``$MONITOR_DATASET_DIR``, else the working
directory (no machine-specific default; ``make model`` / ``make eval`` point it at ../shared/datasets)."""
TOPIC_DATASET_ENV = "MONITOR_TOPIC_DATASET_DIR"
TOPIC_DATASET_DIR = Path(os.environ.get(TOPIC_DATASET_ENV, "."))
"""Directory of ``topic_train.csv`` (human topic labels): ``$MONITOR_TOPIC_DATASET_DIR``, else the working
directory (``make model`` / ``make eval`` point it at ../shared/datasets/twitter-financial-news-topic)."""


class DatasetError(ValueError):
    """The labelled CSV is missing or malformed (the message says which file and how to fix it)."""


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


def _read(path: Path, to_label: Callable[[int], int], env: str, table: str, flag: str) -> LabelledTexts:
    texts: list[str] = []
    labels: list[int] = []
    if not path.is_file():
        raise DatasetError(
            f"dataset file {path} not found -- pass {flag} PATH, or set {env} to the directory holding it "
            "(e.g. ../shared/datasets/<dataset>)"
        )
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"text", "label"} - set(reader.fieldnames or ())
        if missing:
            raise DatasetError(
                f"{path} has no {sorted(missing)} column(s) -- a labelled CSV needs the header "
                f"'text,label' (found {reader.fieldnames})"
            )
        for line, row in enumerate(reader, start=2):
            try:
                labels.append(to_label(int(row["label"])))
            except (TypeError, ValueError, TaxonomyError) as exc:
                raise DatasetError(
                    f"{path}:{line}: label {row['label']!r} is not one of the taxonomy's [{table}] ids"
                ) from exc
            texts.append(row["text"] or "")
    return LabelledTexts(texts, labels)


def read_csv(path: Path, taxonomy: Taxonomy, flag: str = "--train-csv") -> LabelledTexts:
    """Sentiment ``text,label`` rows, dataset labels mapped through ``[sentiment_labels]``; ``flag`` is the
    option that named ``path`` (a missing file's error names it)."""
    return _read(
        path,
        lambda label: SENTIMENT_LABELS.index(taxonomy.sentiment_of(label).value),
        DATASET_ENV,
        "sentiment_labels",
        flag,
    )


def read_topic_csv(path: Path, taxonomy: Taxonomy) -> LabelledTexts:
    """Topic ``text,label`` rows, dataset ids mapped through ``[topic_labels]`` to indices of ``names``."""
    index = {name: i for i, name in enumerate(taxonomy.names)}
    return _read(path, lambda label: index[taxonomy.topic_of(label)], TOPIC_DATASET_ENV, "topic_labels", "--topic-csv")


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


_RETWEET = re.compile(r"^RT @\w+:\s*")


def read_unlabelled(path: Path, limit: int, seed: int, exclude: set[str]) -> list[str]:
    """Texts of a ``.jsonl`` (``text`` field) or ``.csv`` (``text`` column) file for distillation: the
    ``RT @user:`` prefix dropped, exact repeats and ``exclude`` (the labelled rows) left out, then
    ``limit`` of them (0 = all) chosen by a seeded shuffle."""
    if not path.is_file():
        raise DatasetError(f"unlabelled text file {path} not found -- pass a .jsonl or .csv file with a 'text' field")
    with path.open(newline="", encoding="utf-8") as handle:
        if path.suffix == ".jsonl":
            raw = [str(json.loads(line).get("text") or "") for line in handle if line.strip()]
        else:
            reader = csv.DictReader(handle)
            if "text" not in (reader.fieldnames or ()):
                raise DatasetError(f"{path} has no 'text' column (found {reader.fieldnames})")
            raw = [row["text"] or "" for row in reader]
    seen = set(exclude)
    texts: list[str] = []
    for text in (_RETWEET.sub("", t).strip() for t in raw):
        if text and text not in seen:
            seen.add(text)
            texts.append(text)
    random.Random(seed).shuffle(texts)
    return texts[:limit] if limit else texts
