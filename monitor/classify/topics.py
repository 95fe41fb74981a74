"""Financial topic taxonomy (``configs/taxonomy.toml``): keyword/regex rules and the dataset label map.

The topic NAMES (in label-id order) are the transformer topic head's labels, and ``[topic_labels]`` maps
the human-labelled topic dataset's ids onto them. The keyword RULES serve only the
:class:`~monitor.classify.lexicon.LexiconClassifier` (the fallback classifier): they are compiled once
into one regex per topic, so labelling a text costs a handful of regex scans.
"""

from __future__ import annotations

import html
import re
import tomllib
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from monitor.bundled import TAXONOMY
from monitor.types import Sentiment

DEFAULT_TAXONOMY = TAXONOMY

_CASHTAG = re.compile(r"\$(?=[A-Za-z])")


class TaxonomyError(ValueError):
    """The taxonomy file is missing or inconsistent (message says which key and how to fix it)."""


@dataclass(frozen=True, slots=True)
class TopicRule:
    name: str
    description: str
    keywords: tuple[str, ...]
    patterns: tuple[str, ...]
    words: frozenset[str]
    """Single-token keywords: matched by set lookup on the text's tokens (the fast path)."""
    regex: re.Pattern[str] | None
    """Multi-token keywords and patterns OR-ed together; ``None`` when there are none."""

    def score(self, text: str, tokens: Sequence[str]) -> int:
        """Number of rule matches in ``text`` (lower-cased, cashtags stripped) and its ``tokens``."""
        hits = sum(1 for tok in tokens if tok in self.words)
        if self.regex is not None:
            hits += sum(1 for _ in self.regex.finditer(text))
        return hits


_TOKEN = re.compile(r"[\w&]+(?:[-'][\w&]+)*")


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens (hyphenated words and ``s&p`` stay whole); cashtag ``$`` dropped."""
    return _TOKEN.findall(text.lower())


def _compile(
    keywords: Sequence[str], patterns: Sequence[str]
) -> tuple[frozenset[str], re.Pattern[str] | None]:
    words = frozenset(k.lower() for k in keywords if tokenize(k) == [k.lower()])
    alternatives = [
        rf"(?<![\w&-]){re.escape(k.lower())}(?![\w&-])" for k in keywords if k.lower() not in words
    ]
    alternatives += [f"(?:{p})" for p in patterns]
    return words, (re.compile("|".join(alternatives), re.IGNORECASE) if alternatives else None)


@dataclass(frozen=True, slots=True)
class Taxonomy:
    """Ordered topics (order = tie-break priority = topic head label ids) plus the sentiment label map."""

    topics: tuple[TopicRule, ...]
    default_topic: str
    sentiment_labels: Mapping[int, Sentiment]
    topic_labels: Mapping[int, str]
    """Topic dataset label id -> topic name (``[topic_labels]``)."""

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.topics)

    def scores(self, text: str) -> list[int]:
        """Rule-match count per topic, in taxonomy order."""
        normalised = _CASHTAG.sub("", html.unescape(text).lower())
        tokens = tokenize(normalised)
        return [rule.score(normalised, tokens) for rule in self.topics]

    def label(self, text: str) -> tuple[str, int]:
        """The winning topic and its match count; ``(default_topic, 0)`` when nothing matches.

        Ties go to the topic listed first, which is why specific topics precede broad ones.
        """
        scores = self.scores(text)
        best = max(range(len(scores)), key=lambda i: (scores[i], -i))
        if scores[best] == 0:
            return self.default_topic, 0
        return self.topics[best].name, scores[best]

    def rule_labels(self, texts: Sequence[str]) -> list[int]:
        """The rules' topic ids (indices into :attr:`names`): the lexicon baseline's answers."""
        index = {name: i for i, name in enumerate(self.names)}
        return [index[self.label(t)[0]] for t in texts]

    def topic_of(self, dataset_label: int) -> str:
        try:
            return self.topic_labels[dataset_label]
        except KeyError as exc:
            known = sorted(self.topic_labels)
            raise TaxonomyError(f"topic dataset label {dataset_label} not in [topic_labels] {known}") from exc

    def sentiment_of(self, dataset_label: int) -> Sentiment:
        try:
            return self.sentiment_labels[dataset_label]
        except KeyError as exc:
            known = sorted(self.sentiment_labels)
            raise TaxonomyError(f"dataset label {dataset_label} not in [sentiment_labels] {known}") from exc


_KEY_SEPARATORS = "|:*"
"""Characters with a meaning in window keys and silence matchers: ``topic_ticker:<topic>|<ticker>``, the
``kind:`` prefix, the trailing ``*`` of a prefix matcher."""


def topic_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a topic (None when it can): it becomes the window key ``topic:<name>``, and a
    name holding ``|`` (``Fed | Central Banks``), ``:`` or ``*``, an invisible character or an outer space made a
    key that no silence can match (found by review)."""
    if not name or name != name.strip():
        return "is empty or starts or ends with whitespace"
    if name != name.lower():
        # incident files and silences read topics lower-case: 'topic:Fed Central Banks' could not be scored
        # (found by the regression review)
        return "holds upper-case letters (topics are lower-case names in window keys, silences and incident files)"
    for char in name:
        if char in _KEY_SEPARATORS:
            return f"holds {char!r} (window keys use '|', ':' and '*' as separators)"
        if char != " " and unicodedata.category(char)[0] in "CZ":
            return f"holds U+{ord(char):04X} (a control, format or space character other than a plain space)"
    return None


def _suggested_name(name: str) -> str:
    """``name`` as a lower_snake name, separators and invisible characters squeezed out: ``Fed | Central Banks`` ->
    ``fed_central_banks`` (the bundled topics' style)."""
    kept = "".join(c if c not in _KEY_SEPARATORS and unicodedata.category(c)[0] not in "CZ" else " " for c in name)
    return "_".join(kept.lower().split()) or "other"


def parse_taxonomy(data: Mapping[str, object], origin: str = "<taxonomy>") -> Taxonomy:
    """Validate a parsed TOML document and compile its rules."""
    raw_topics = data.get("topics")
    if not isinstance(raw_topics, list) or not raw_topics:
        raise TaxonomyError(f"{origin}: add at least one [[topics]] table")
    topics: list[TopicRule] = []
    for i, raw in enumerate(raw_topics):
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
            raise TaxonomyError(f"{origin}: topics[{i}] needs a string `name`")
        problem = topic_name_problem(raw["name"])
        if problem:
            raise TaxonomyError(
                f"{origin}: topics[{i}] name {raw['name']!r} {problem} -- rename it, e.g. "
                f"{_suggested_name(raw['name'])!r} (it becomes the window key topic:<name>)"
            )
        keywords = tuple(str(k) for k in raw.get("keywords", []))
        patterns = tuple(str(p) for p in raw.get("patterns", []))
        try:
            words, regex = _compile(keywords, patterns)
        except re.error as exc:
            raise TaxonomyError(
                f"{origin}: topics[{i}] ({raw['name']}) has an invalid pattern: {exc}"
            ) from exc
        topics.append(
            TopicRule(raw["name"], str(raw.get("description", "")), keywords, patterns, words, regex)
        )
    names = [t.name for t in topics]
    if len(set(names)) != len(names):
        raise TaxonomyError(f"{origin}: topic names must be unique, got {names}")
    default = data.get("default_topic", "other")
    if default not in names:
        raise TaxonomyError(f"{origin}: default_topic {default!r} must be one of the [[topics]] names")
    raw_labels = data.get("sentiment_labels", {})
    if not isinstance(raw_labels, dict):
        raise TaxonomyError(f"{origin}: [sentiment_labels] must map dataset ids to sentiments")
    try:
        labels = {int(k): Sentiment(v) for k, v in raw_labels.items()}
    except ValueError as exc:
        raise TaxonomyError(
            f"{origin}: [sentiment_labels] keys are ints, values in {list(Sentiment)}"
        ) from exc
    raw_topic_labels = data.get("topic_labels", {})
    if not isinstance(raw_topic_labels, dict):
        raise TaxonomyError(f"{origin}: [topic_labels] must map topic dataset ids to topic names")
    try:
        topic_labels = {int(k): str(v) for k, v in raw_topic_labels.items()}
    except ValueError as exc:
        raise TaxonomyError(f"{origin}: [topic_labels] keys are ints (topic dataset label ids)") from exc
    unknown = sorted(set(topic_labels.values()) - set(names))
    if unknown:
        raise TaxonomyError(f"{origin}: [topic_labels] names {unknown} are not [[topics]] names -- add or rename them")
    return Taxonomy(tuple(topics), str(default), labels, topic_labels)


def load_taxonomy(path: Path | None = None) -> Taxonomy:
    """Load ``path`` (default ``configs/taxonomy.toml`` at the repository root)."""
    chosen = path or DEFAULT_TAXONOMY
    try:
        data = tomllib.loads(chosen.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise TaxonomyError(f"taxonomy file {chosen} not found -- pass an existing taxonomy TOML") from exc
    return parse_taxonomy(data, str(chosen))
