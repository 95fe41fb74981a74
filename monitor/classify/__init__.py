"""Classifiers: one forward pass -> topic + sentiment (+ calibrated scores) per text.

``build_classifier`` picks the implementation from settings. torch/transformers are imported only on
the transformer path, so the lexicon (degraded) mode and fast tests start in milliseconds.
"""

from __future__ import annotations

from monitor.config import ClassifierSettings
from monitor.types import Classifier


class ModelLoadError(RuntimeError):
    """The model directory / hub id / base package / runtime cannot be loaded (message says how to
    fix it). Defined here, away from torch, so the CLI can catch it without importing torch."""


def build_classifier(settings: ClassifierSettings) -> Classifier:
    """``lexicon`` -> :class:`LexiconClassifier`; ``transformer`` -> :class:`TransformerClassifier`, or
    :class:`OnnxClassifier` with ``runtime = 'onnxruntime'``."""
    if settings.kind == "lexicon":
        from monitor.classify.lexicon import LexiconClassifier

        return LexiconClassifier()
    if settings.kind == "transformer" and settings.runtime == "onnxruntime":
        from monitor.classify.onnx_runtime import OnnxClassifier

        return OnnxClassifier(settings)
    if settings.kind == "transformer":
        from monitor.classify.transformer import TransformerClassifier

        return TransformerClassifier(settings)
    raise ValueError(f"classifier.kind = {settings.kind!r}: use 'transformer' or 'lexicon'")


__all__ = ["ModelLoadError", "build_classifier"]
