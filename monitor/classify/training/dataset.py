"""The labelled CSVs (``text,label``) and the deterministic stratified train/validation split.

Two shared datasets feed the two heads: ``sent_train.csv`` (sentiment labels) and ``topic_train.csv``
(human topic labels, ids 0-19 mapped to the canonical names by ``[topic_labels]`` in the taxonomy).
A label is a dataset id of the taxonomy's map or the label's name, any case (``negative``; the sentiment ids are the
dataset card's 0=negative, 1=positive, 2=neutral, not the head's order). Header names are read without case and
surrounding spaces (``Text, Label``), as a replay CSV's are. A missing file, a CSV without a ``text``/``label``
column, a header naming a column twice, a row with more cells than the header (an unquoted comma in a text), an
empty text, an unknown label, bytes that are not UTF-8 or a file with no data rows is a :class:`DatasetError`
whose one-line message names the file (and line) and the fix. A UTF-8 byte-order mark (Excel's "CSV UTF-8") is
accepted.
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from monitor.classify.topics import Taxonomy
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


def _decode(path: Path) -> str:
    """The file as text; a BOM is dropped (Excel writes one) and non-UTF-8 bytes are a :class:`DatasetError`
    naming the line, not a bare ``UnicodeDecodeError`` from deep in the csv loop."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DatasetError(
            f"{path}:{line}: bytes that are not UTF-8 ({exc.object[exc.start:exc.start + 4]!r}) -- "
            "save the file as UTF-8 (Excel: 'CSV UTF-8')"
        ) from None


def _normalize_header(reader: csv.DictReader[str]) -> list[str] | None:
    """The header as written, after renaming the reader's columns without case and surrounding spaces: ``Text,Label``
    was refused while replay CSVs accept it (found by review). ``None`` for an empty file."""
    if reader.fieldnames is None:
        return None
    header = list(reader.fieldnames)
    reader.fieldnames = [name.strip().lower() for name in header]
    return header


def _header(path: Path, reader: csv.DictReader[str]) -> None:
    """Refuse a header that is empty, lacks ``text``/``label`` or repeats a name (DictReader keeps the last)."""
    header = _normalize_header(reader)
    if header is None:
        raise DatasetError(f"{path} is empty -- a labelled CSV needs the header 'text,label' and one row per text")
    names = list(reader.fieldnames or ())
    missing = {"text", "label"} - set(names)
    if missing:
        raise DatasetError(
            f"{path} has no {sorted(missing)} column(s) -- a labelled CSV needs the header "
            f"'text,label' (found {header})"
        )
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise DatasetError(
            f"{path}:1: column(s) {repeated} named twice in the header (names are read without case and "
            f"surrounding spaces; found {header}) -- name each column once"
        )


def _rows(path: Path, reader: csv.DictReader[str]) -> Iterator[tuple[int, str, str | None]]:
    """(line, text, label cell) per data row; a row with extra cells (DictReader files them under ``None``:
    an unquoted comma in a text shifted the label) or an empty text is refused, never trained on."""
    for row in reader:
        line = reader.line_num
        if None in row:
            raise DatasetError(
                f"{path}:{line}: {len(row[None])} cell(s) more than the header's columns -- quote a text that "
                'contains a comma: "Sales up 10,1",2'
            )
        text = row["text"] or ""
        if not text.strip():
            raise DatasetError(f"{path}:{line}: empty text -- every labelled row needs a text (fill it in or drop it)")
        yield line, text, row["label"]


def _label_index(cell: str | None, ids: Mapping[int, str], names: Sequence[str]) -> int | None:
    """Index into ``names`` of a label cell: a dataset id mapped through ``ids``, or a name in any case; ``None``
    when it is neither (a short row's cell is ``None``)."""
    value = (cell or "").strip()
    try:
        name = ids.get(int(value))
    except ValueError:
        folded = value.casefold()
        name = next((n for n in names if n == value), None) or next((n for n in names if n.casefold() == folded), None)
    return names.index(name) if name in names else None


def _read(path: Path, ids: Mapping[int, str], names: Sequence[str], env: str, table: str, flag: str
          ) -> LabelledTexts:
    texts: list[str] = []
    labels: list[int] = []
    if not path.is_file():
        raise DatasetError(
            f"dataset file {path} not found -- pass {flag} PATH, or set {env} to the directory holding it "
            "(e.g. ../shared/datasets/<dataset>)"
        )
    reader = csv.DictReader(io.StringIO(_decode(path), newline=""))
    _header(path, reader)
    for line, text, label in _rows(path, reader):
        index = _label_index(label, ids, names)
        if index is None:  # the id -> name map: the sentiment ids are not in the natural order (found by review)
            known = ", ".join(f"{i}={name}" for i, name in sorted(ids.items()))
            raise DatasetError(
                f"{path}:{line}: label {label!r} is not one of the taxonomy's [{table}] ids ({known}) or "
                "names (any case) -- write the id or the name of the label"
            )
        labels.append(index)
        texts.append(text)
    if not texts:
        raise DatasetError(f"{path} has a header but no data rows -- add 'text,label' rows")
    return LabelledTexts(texts, labels)


def read_csv(path: Path, taxonomy: Taxonomy, flag: str = "--train-csv") -> LabelledTexts:
    """Sentiment ``text,label`` rows, dataset labels mapped through ``[sentiment_labels]``; ``flag`` is the
    option that named ``path`` (a missing file's error names it)."""
    ids = {i: sentiment.value for i, sentiment in taxonomy.sentiment_labels.items()}
    return _read(path, ids, SENTIMENT_LABELS, DATASET_ENV, "sentiment_labels", flag)


def read_topic_csv(path: Path, taxonomy: Taxonomy) -> LabelledTexts:
    """Topic ``text,label`` rows, dataset ids mapped through ``[topic_labels]`` to indices of ``names``."""
    return _read(path, taxonomy.topic_labels, taxonomy.names, TOPIC_DATASET_ENV, "topic_labels", "--topic-csv")


def require_every_class(labels: Sequence[int], names: Sequence[str], source: str) -> None:
    """Refuse training rows that lack a class: the head never learns it, and a one-class file trained and
    reported macro-F1 1.0 on its own validation slice (found by review)."""
    present = set(labels)
    missing = [name for i, name in enumerate(names) if i not in present]
    if missing:
        raise DatasetError(
            f"{source} has no {missing} rows to train on -- every class of {list(names)} needs labelled rows"
        )


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


def topic_holdout(path: Path, taxonomy: Taxonomy, fraction: float, seed: int,
                  max_examples: int | None = None) -> LabelledTexts:
    """The rows of the topic CSV that ``monitor train --valid-fraction F --seed S [--max-examples N]`` held out:
    ``fraction`` of each topic of its first ``max_examples`` rows (all when None) -- the whole file's split put
    training rows in ``monitor eval``'s slice after ``--max-examples`` (20 of 41, found by review)."""
    data = read_topic_csv(path, taxonomy)
    labels = data.labels[:max_examples]
    _, held = stratified_split(labels, fraction, seed)
    return LabelledTexts([data.texts[i] for i in held], [labels[i] for i in held])


_RETWEET = re.compile(r"^RT @\w+:\s*")


def _jsonl_texts(path: Path, lines: Iterator[str]) -> Iterator[str]:
    """The ``text`` field of each non-blank line; a line that is not a JSON object is a :class:`DatasetError` naming
    ``path:line`` (a bare ``JSONDecodeError: line 1 column 1`` named neither; found by review)."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise DatasetError(f"{path}:{number}: not a JSON object ({exc}) -- write one JSON object per line, "
                               'e.g. {"text": "..."}') from None
        if not isinstance(record, dict):
            raise DatasetError(f"{path}:{number}: a JSON {type(record).__name__}, not an object -- write one JSON "
                               'object per line, e.g. {"text": "..."}')
        yield str(record.get("text") or "")


def read_unlabelled(path: Path, limit: int, seed: int, exclude: set[str]) -> list[str]:
    """Texts of a ``.jsonl`` (``text`` field) or ``.csv`` (``text`` column) file for distillation: the
    ``RT @user:`` prefix dropped, exact repeats and ``exclude`` (the labelled rows) left out, then
    ``limit`` of them (0 = all) chosen by a seeded shuffle."""
    if not path.is_file():
        raise DatasetError(f"unlabelled text file {path} not found -- pass a .jsonl or .csv file with a 'text' field")
    handle = io.StringIO(_decode(path), newline="")
    if path.suffix == ".jsonl":
        raw = list(_jsonl_texts(path, handle))
    else:
        reader = csv.DictReader(handle)
        header = _normalize_header(reader)
        if "text" not in (reader.fieldnames or ()):
            raise DatasetError(f"{path} has no 'text' column (found {header})")
        raw = [row["text"] or "" for row in reader]
    seen = set(exclude)
    texts: list[str] = []
    for text in (_RETWEET.sub("", t).strip() for t in raw):
        if text and text not in seen:
            seen.add(text)
            texts.append(text)
    random.Random(seed).shuffle(texts)
    return texts[:limit] if limit else texts
