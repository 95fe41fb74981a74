"""Knowledge distillation for ``monitor train --teacher DIR``: soft labels for BOTH heads on EVERY row.

Each training row carries one human label (a sentiment tweet or a topic tweet), so each head sees
only part of the text. A trained teacher (or the average of several, e.g. seeds) labels every row
for both heads with its calibrated probabilities: the sentiment head then also learns from the 17k
topic tweets (news-style text the sentiment file has little of) and the topic head from the
sentiment tweets. Averaged teachers are an ensemble; the student is one model of the same size, so
inference cost does not change. Teachers must have been trained on the same training slice
(same ``--split-seed``): a teacher that saw the validation rows would leak them into early stopping;
``monitor train`` refuses one whose training_summary.json records another split.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from monitor.classify.artifact import load_model, pad, tokenize
from monitor.classify.model_source import locate_model

TEACHER_BATCH = 128


def _one_teacher(
    path: Path, texts: Sequence[str], max_length: int, labels: tuple[list[str], list[str]], bf16: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    model, tokenizer = load_model(str(locate_model(str(path), "--teacher")))  # errors name --teacher, not the setting
    if (list(model.config.topic_labels), list(model.config.sentiment_labels)) != labels:
        raise SystemExit(f"teacher {path} has other labels than this run's taxonomy -- retrain it")
    model.train(False)
    ids = tokenize(tokenizer, texts, max_length)
    pad_id = int(tokenizer.pad_token_id or 0)
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    topic = torch.zeros((len(ids), len(model.config.topic_labels)))
    sentiment = torch.zeros((len(ids), len(model.config.sentiment_labels)))
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        for s in range(0, len(order), TEACHER_BATCH):
            chunk = order[s : s + TEACHER_BATCH]
            input_ids, mask = pad([ids[i] for i in chunk], pad_id)
            t, p = model.probabilities(model(input_ids=input_ids, attention_mask=mask))
            topic[chunk], sentiment[chunk] = t.float(), p.float()
    return topic, sentiment


def teacher_probabilities(
    teachers: Sequence[Path], texts: Sequence[str], max_length: int, topic_labels: Sequence[str],
    sentiment_labels: Sequence[str], *, bf16: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean calibrated (sentiment, topic) probabilities of the teachers, one row per text (the order
    of the labels in a training ``Batch``); under bf16 autocast only where the student trains in bf16,
    so soft labels follow the same CPU rule as the training steps."""
    topic_sum = torch.zeros((len(texts), len(topic_labels)))
    sentiment_sum = torch.zeros((len(texts), len(sentiment_labels)))
    for path in teachers:
        topic, sentiment = _one_teacher(path, texts, max_length, (list(topic_labels), list(sentiment_labels)), bf16)
        topic_sum += topic
        sentiment_sum += sentiment
    return sentiment_sum / len(teachers), topic_sum / len(teachers)


def soft_cross_entropy(logits: torch.Tensor, target_probs: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against soft targets (KL divergence up to the targets' constant entropy)."""
    return -(target_probs * nn.functional.log_softmax(logits.float(), dim=-1)).sum(-1).mean()
