"""``TransformerClassifier``: batched, length-bucketed inference of the two-head model.

Why the batching looks like this: a micro-batch of tweets and long headlines padded to one length wastes
most of its FLOPs on padding. ``predict`` tokenizes without padding, sorts by length, pads each
sub-batch only to its own longest text, then restores the caller's order. On CUDA it runs in
bf16/fp16 with pinned host memory and non-blocking copies; on CPU it can use dynamic int8
quantization of the Linear layers. Everything runs under ``torch.inference_mode``.

Language: the bundled default (all-MiniLM-L6-v2 + heads trained on English finance tweets) gives
English-only quality. Chinese or other scripts never crash (unknown characters become ``[UNK]``), but
their labels are close to meaningless; for multilingual streams train a checkpoint on a multilingual
encoder (``monitor train --base-model <multilingual MiniLM / FinBERT-style dir> --full --output DIR``)
and set ``classifier.model_path = DIR``.
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from functools import partial

import structlog
import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from monitor.classify.artifact import load_model, pad, tokenize
from monitor.classify.cpu_features import available_cpus, cpu_bf16_flag
from monitor.classify.model import FinSentModel, TwoHeadOutput, signed_score
from monitor.classify.precision import Precision, choose_cpu_precision, cuda_precision
from monitor.config import ClassifierSettings
from monitor.types import Prediction, Sentiment

log = structlog.get_logger(__name__)

DEFAULT_SUB_BATCH_SIZE = 64
"""Most texts per forward pass after length sorting (``split_sorted`` decides the actual cuts)."""
FORWARD_OVERHEAD_TOKENS = 128
"""Fixed cost of one more forward pass (per-module Python and kernel launches, smaller GEMMs), in
padded-token equivalents: what ``split_sorted`` trades against padding. Measured in
benchmarks/RESULTS.md."""


PAD_MULTIPLE = 8
"""Sub-batch widths are rounded up to a multiple of this: oneDNN keeps a primitive (with reordered
bf16 weights) per GEMM shape, so free widths made RSS grow with every new shape (462 -> 972 MiB over
100 random batches; rounded: 464 -> 671 MiB, see benchmarks/RESULTS.md)."""


def split_sorted(lengths: Sequence[int], max_rows: int, overhead_tokens: int = FORWARD_OVERHEAD_TOKENS) -> list[int]:
    """Cut points of ascending ``lengths`` into sub-batches minimising padded tokens + a fixed cost
    per sub-batch (exact dynamic programme; n is one micro-batch, so O(n * max_rows) is nothing).
    Padding is what a tweet pays for sharing a forward pass with a long headline; a fixed sub-batch
    size either wastes it (big) or pays the per-pass overhead too often (small)."""
    n = len(lengths)
    best = [0.0] + [float("inf")] * n
    cut = [0] * (n + 1)
    for end in range(1, n + 1):
        for start in range(max(0, end - max_rows), end):
            cost = best[start] + (end - start) * lengths[end - 1] + overhead_tokens
            if cost < best[end]:
                best[end], cut[end] = cost, start
    bounds, end = [], n
    while end > 0:
        bounds.append(end)
        end = cut[end]
    return bounds[::-1]


def resolve_device(setting: str) -> torch.device:
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if setting == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("classifier.device = 'cuda' but no CUDA device is visible -- use 'auto' or 'cpu'")
    return torch.device(setting)


def resolve_precision(
    setting: str, device: torch.device, model: FinSentModel, vocab_size: int
) -> tuple[Precision, FinSentModel]:
    """The precision to run ``model`` in on ``device`` and the model converted to it (see
    monitor/classify/precision.py: on CPU ``auto`` is measured by a short probe)."""
    if device.type == "cuda":
        precision = cuda_precision(setting)
        return precision, model.to(device=device, dtype=precision.dtype)  # type: ignore[call-arg]
    precision, chosen = choose_cpu_precision(setting, model, vocab_size, cpu_bf16_flag())
    assert isinstance(chosen, FinSentModel)
    return precision, chosen


class BucketedClassifier(ABC):
    """Implements ``Classifier`` on top of a runtime that maps padded token ids to calibrated
    (topic, sentiment) probabilities: tokenization, length bucketing, order restoring and the
    ``Prediction`` records are the same whichever runtime (torch here, ONNX Runtime in
    monitor/classify/onnx_runtime.py) does the forward pass. Not re-entrant: call ``predict`` from
    one inference thread."""

    name: str

    def __init__(
        self, tokenizer: PreTrainedTokenizerBase, model: FinSentModel, max_length_tokens: int, sub_batch_size: int
    ) -> None:
        self.tokenizer = tokenizer
        self.max_length_tokens = max_length_tokens
        self.sub_batch_size = sub_batch_size
        self.overhead_tokens = FORWARD_OVERHEAD_TOKENS
        self.pad_multiple = PAD_MULTIPLE
        self.topic_labels: list[str] = list(model.config.topic_labels)
        self.sentiment_labels: list[str] = list(model.config.sentiment_labels)
        self._sentiments = [Sentiment(label) for label in self.sentiment_labels]
        self._order = [
            self.sentiment_labels.index(s.value)
            for s in (Sentiment.NEGATIVE, Sentiment.NEUTRAL, Sentiment.POSITIVE)
        ]

    def _encode(self, texts: Sequence[str]) -> list[list[int]]:
        return tokenize(self.tokenizer, texts, self.max_length_tokens)

    def _pad(self, batch: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids and attention mask, padded to this sub-batch's longest text only."""
        ids, mask = pad(batch, int(self.tokenizer.pad_token_id or 0))
        extra = -ids.shape[1] % self.pad_multiple
        if extra:
            ids = torch.nn.functional.pad(ids, (0, extra), value=int(self.tokenizer.pad_token_id or 0))
            mask = torch.nn.functional.pad(mask, (0, extra), value=0)
        return ids, mask

    @abstractmethod
    def _forward(self, input_ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Calibrated (topic, sentiment) probabilities of one padded sub-batch, float32 on CPU (before
        ``_finish``)."""

    def _finish(self, topic: torch.Tensor, sentiment: torch.Tensor, order: list[int]
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """The whole call's probabilities, in the caller's order, after its last sub-batch (``order``: the
        rows in the order the sub-batches ran): a runtime that blends in the neighbour memory does it here,
        once per call (per sub-batch, each pass scanned the memory's 24k rows again)."""
        return topic, sentiment

    def predict_proba(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Calibrated (topic, sentiment) probabilities in the caller's order, float32 on CPU."""
        return self._proba(self._encode(texts))

    def _proba(self, encoded: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        topic = torch.empty((len(encoded), len(self.topic_labels)))
        sentiment = torch.empty((len(encoded), len(self.sentiment_labels)))
        start = 0
        with torch.inference_mode():
            for end in split_sorted([len(encoded[i]) for i in order], self.sub_batch_size, self.overhead_tokens):
                chunk, start = order[start:end], end
                chunk_topic, chunk_sentiment = self._forward(*self._pad([encoded[i] for i in chunk]))
                topic[chunk] = chunk_topic
                sentiment[chunk] = chunk_sentiment
            return self._finish(topic, sentiment, order)

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        return self._predictions(self._encode(texts)) if texts else []

    def prepare(self, texts: Sequence[str]) -> Callable[[], list[Prediction]]:
        """Tokenize now (any thread: the fast tokenizer releases the GIL) and return the forward pass
        as a call for the inference thread, so the batcher can tokenize batch i+1 while batch i runs."""
        return partial(self._predictions, self._encode(texts) if texts else [])

    def _predictions(self, encoded: list[list[int]]) -> list[Prediction]:
        if not encoded:
            return []
        topic, sentiment = self._proba(encoded)
        scores = signed_score(sentiment, self.sentiment_labels).tolist()
        topic_conf, topic_idx = topic.max(dim=-1)
        sent_conf, sent_idx = sentiment.max(dim=-1)
        ordered = sentiment[:, self._order].tolist()
        return [
            Prediction(
                topic=self.topic_labels[int(topic_idx[i])],
                topic_confidence=float(topic_conf[i]),
                sentiment=self._sentiments[int(sent_idx[i])],
                sentiment_confidence=float(sent_conf[i]),
                score=float(scores[i]),
                sentiment_probs=(ordered[i][0], ordered[i][1], ordered[i][2]),
            )
            for i in range(len(encoded))
        ]


def cpu_threads(requested: int) -> int:
    """Intra-op threads for ``requested`` (0 = every core): never more than the cores we may run on,
    because oversubscription thrashes."""
    return max(1, min(requested or available_cpus(), available_cpus()))


class TransformerClassifier(BucketedClassifier):
    """The two-head model on torch (CUDA bf16/fp16; CPU bf16 / bf16 autocast / fp32 by measurement, or int8)."""

    def __init__(self, settings: ClassifierSettings, sub_batch_size: int = DEFAULT_SUB_BATCH_SIZE) -> None:
        self.device = resolve_device(settings.device)
        if self.device.type == "cpu":
            torch.set_num_threads(cpu_threads(settings.num_threads))  # process-wide
        model, tokenizer = load_model(settings.model_path)
        model.train(False)
        super().__init__(tokenizer, model, settings.max_length_tokens, sub_batch_size)
        self.quantized = settings.quantize_int8 and self.device.type == "cpu"
        if self.quantized:
            with warnings.catch_warnings():  # torch marks torch.ao.quantization deprecated (-> torchao)
                warnings.simplefilter("ignore", DeprecationWarning)
                warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*")
                model = torch.ao.quantization.quantize_dynamic(  # type: ignore[no-untyped-call]
                    model, {nn.Linear}, dtype=torch.qint8
                )
            self.precision = Precision(torch.float32, False, "classifier.quantize_int8 = true (dynamic int8 Linear)")
        else:
            self.precision, model = resolve_precision(settings.dtype, self.device, model, len(tokenizer))
        self.dtype = self.precision.dtype
        self.model: FinSentModel = model
        suffix = "-int8" if self.quantized else ""
        self.name = f"transformer:{settings.model_path or 'default'}{suffix}"
        self._pooled: list[torch.Tensor] = []
        """The pooled vectors of this call's sub-batches so far, blended with the memory in ``_finish``."""
        log.info(
            "classifier_loaded",
            name=self.name,
            device=str(self.device),
            dtype="int8" if self.quantized else self.precision.label,
            reason=self.precision.reason,
            threads=torch.get_num_threads(),
        )

    def _forward(self, input_ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.device.type == "cuda":
            input_ids = input_ids.pin_memory().to(self.device, non_blocking=True)
            mask = mask.pin_memory().to(self.device, non_blocking=True)
        with self.precision.context(self.device):
            output: TwoHeadOutput = self.model(input_ids=input_ids, attention_mask=mask)
        topic, sentiment = self.model.head_probabilities(output)
        if self.model.memory is not None and output.pooled is not None:
            self._pooled.append(output.pooled)
        return topic.cpu(), sentiment.cpu()

    def _proba(self, encoded: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        self._pooled = []  # a call that failed half-way leaves none behind
        return super()._proba(encoded)

    def _finish(self, topic: torch.Tensor, sentiment: torch.Tensor, order: list[int]
                ) -> tuple[torch.Tensor, torch.Tensor]:
        memory, parts = self.model.memory, self._pooled
        self._pooled = []
        if memory is None or not parts:
            return topic, sentiment
        pooled = torch.empty((len(order), parts[0].shape[-1]), dtype=parts[0].dtype, device=parts[0].device)
        pooled[order] = torch.cat(parts)
        blended = memory.blend_rows(pooled, topic.to(pooled.device), sentiment.to(pooled.device))
        return blended[0].cpu(), blended[1].cpu()
