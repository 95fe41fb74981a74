"""A memory of the labelled training texts: the nearest ones vote next to the heads (kNN blending).

Why: the fine-tuned encoder places a text near the training texts it resembles, and their human labels
are better evidence than the linear head alone where the head errs. On the training files' own held-out
slices the k nearest training texts (cosine on the pooled vector) alone beat the heads (sentiment
macro-F1 0.802 vs 0.787, topic accuracy 0.911 vs 0.896), and an even blend of the two was better than
the heads at every similarity band (benchmarks/RESULTS.md, issue 11). It is the kNN-LM recipe
(Khandelwal et al., 2020) applied to a classifier: ``p = (1 - w) * p_head + w * p_knn`` with
``p_knn`` the softmax of the k nearest similarities / temperature, summed per label.

Each head has its own rows (the texts labelled for it): unit vectors (fp16 in the artifact) and labels.
Cost: one (batch x rows) matrix product and a top-k per head on the pooled vectors.
"""

from __future__ import annotations

import torch
from torch import nn

BLEND_ROWS = 256
"""Texts blended at once: bounds the (texts x memory rows) similarity matrix (256 x 24k fp32 = 24 MiB)."""


class HeadMemory(nn.Module):
    """The pooled vectors of the texts labelled for one head, and their labels."""

    vectors: torch.Tensor
    labels: torch.Tensor

    def __init__(self, rows: int, hidden: int) -> None:
        super().__init__()
        self.register_buffer("vectors", torch.zeros(rows, hidden))
        self.register_buffer("labels", torch.zeros(rows, dtype=torch.int16))

    @property
    def rows(self) -> int:
        """Texts held."""
        return int(self.vectors.shape[0])

    def fill(self, pooled: torch.Tensor, labels: torch.Tensor) -> None:
        self.vectors.copy_(nn.functional.normalize(pooled.float(), dim=-1))
        self.labels.copy_(labels)

    def votes(self, unit: torch.Tensor, head: torch.Tensor, k: int, temperature: float) -> torch.Tensor:
        """Per text, the softmax-weighted labels of its ``k`` most similar rows (the head's own probabilities
        where there are none). Shapes never depend on the data, so the ONNX export traces it."""
        vectors, labels = self.vectors, self.labels
        if vectors.shape[0] == 0:
            return head
        nearest, rows = (unit.to(vectors.dtype) @ vectors.T).topk(min(k, vectors.shape[0]), dim=-1)
        weights = torch.softmax(nearest.float() / temperature, dim=-1)
        return torch.zeros_like(head).scatter_add_(1, labels.long()[rows], weights)


class NeighbourMemory(nn.Module):
    """Both heads' memories (buffers: they follow the model's device and dtype, are saved with it and
    change its fingerprint) and the blend."""

    def __init__(self, topic_rows: int, sentiment_rows: int, hidden: int, k: int, temperature: float,
                 weight: float) -> None:
        super().__init__()
        self.k = k
        self.temperature = temperature
        self.weight = weight
        self.topic = HeadMemory(topic_rows, hidden)
        self.sentiment = HeadMemory(sentiment_rows, hidden)

    def blend(self, pooled: torch.Tensor, topic: torch.Tensor, sentiment: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """The heads' probabilities (float32) blended with the nearest labelled texts' votes."""
        unit = nn.functional.normalize(pooled, dim=-1)
        return (self._mix(topic, self.topic.votes(unit, topic, self.k, self.temperature)),
                self._mix(sentiment, self.sentiment.votes(unit, sentiment, self.k, self.temperature)))

    def _mix(self, head: torch.Tensor, votes: torch.Tensor) -> torch.Tensor:
        return (1.0 - self.weight) * head + self.weight * votes

    def blend_rows(self, pooled: torch.Tensor, topic: torch.Tensor, sentiment: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """``blend`` over ``BLEND_ROWS`` texts at a time, for a whole classifier call (eager only: the ONNX graph
        blends per sub-batch): a call of 4,096 texts held a 4,096 x 23,880 similarity matrix at once (+231 MiB,
        found by review)."""
        parts = [self.blend(*rows) for rows in zip(torch.split(pooled, BLEND_ROWS), torch.split(topic, BLEND_ROWS),
                                                   torch.split(sentiment, BLEND_ROWS), strict=True)]
        return torch.cat([t for t, _ in parts]), torch.cat([s for _, s in parts])
