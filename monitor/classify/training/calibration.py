"""Calibration of a head's probabilities: expected calibration error and reliability-diagram bins.

Why both: ECE is one number to track between models; the reliability bins show WHERE a head is over-
or under-confident (a risk desk reads a 0.9 as 'right nine times in ten').
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch


@dataclass(frozen=True, slots=True)
class ReliabilityBin:
    low: float
    high: float
    count: int
    confidence: float
    """Mean top-class probability of the predictions in the bin (0 when empty)."""
    accuracy: float
    """Share of those predictions that are right (0 when empty)."""


def reliability_bins(probs: torch.Tensor, labels: torch.Tensor, bins: int = 10) -> list[ReliabilityBin]:
    """Equal-width bins over the top-class probability, with each bin's confidence and accuracy."""
    confidence, predicted = probs.max(dim=-1)
    correct = (predicted == labels).float()
    edges = torch.linspace(0, 1, bins + 1).tolist()
    out = []
    for lo, hi in itertools.pairwise(edges):
        in_bin = (confidence > lo) & (confidence <= hi) if lo > 0 else confidence <= hi
        n = int(in_bin.sum())
        out.append(
            ReliabilityBin(
                lo,
                hi,
                n,
                float(confidence[in_bin].mean()) if n else 0.0,
                float(correct[in_bin].mean()) if n else 0.0,
            )
        )
    return out


def expected_calibration_error(probs: torch.Tensor, labels: torch.Tensor, bins: int = 10) -> float:
    """Mean |confidence - accuracy| over equal-width confidence bins, weighted by bin size."""
    total = max(1, probs.shape[0])
    return sum(b.count / total * abs(b.confidence - b.accuracy) for b in reliability_bins(probs, labels, bins))
