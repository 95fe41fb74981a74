"""Classifiers: one forward pass -> topic + sentiment (+ calibrated scores) per text.

``build_classifier`` picks the implementation from settings. torch/transformers are imported only on
the transformer path, so the lexicon (degraded) mode and fast tests start in milliseconds.
"""

from __future__ import annotations

from monitor.config import ClassifierSettings
from monitor.types import Classifier


def build_classifier(settings: ClassifierSettings) -> Classifier:
    """``lexicon`` -> :class:`LexiconClassifier`; ``transformer`` -> :class:`TransformerClassifier`."""
    if settings.kind == "lexicon":
        from monitor.classify.lexicon import LexiconClassifier

        return LexiconClassifier()
    if settings.kind == "transformer":
        from monitor.classify.transformer import TransformerClassifier

        return TransformerClassifier(settings)
    raise ValueError(f"classifier.kind = {settings.kind!r}: use 'transformer' or 'lexicon'")


__all__ = ["build_classifier"]
