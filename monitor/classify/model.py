"""Two-head sequence classifier: any transformers encoder + mean pooling + topic head + sentiment head.

One forward pass yields both heads' logits. It is a regular ``PreTrainedModel``: ``save_pretrained``
writes a standard directory (config.json with both label maps + model.safetensors) and
``FinSentModel.from_pretrained(path_or_hub_id)`` loads it back (hub ids work where a network exists).
Each head has its own temperature (fitted on held-out data after training) so that
``probabilities()`` are calibrated; the signed sentiment score is P(positive) - P(negative).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel
from transformers.utils.generic import ModelOutput

from monitor.classify.neighbours import NeighbourMemory
from monitor.types import SENTIMENTS

MODEL_TYPE = "finsent-two-head"


class FinSentConfig(PretrainedConfig):  # type: ignore[no-untyped-call]
    """Encoder config (nested dict) + label lists for both heads + per-head temperatures.

    ``topic_labels[i]`` / ``sentiment_labels[i]`` name head output ``i``; ``topic_id2label`` and
    ``sentiment_id2label`` expose them as the usual id->label maps.
    """

    model_type = MODEL_TYPE

    def __init__(
        self,
        encoder: dict[str, Any] | None = None,
        topic_labels: list[str] | None = None,
        sentiment_labels: list[str] | None = None,
        topic_temperature: float = 1.0,
        sentiment_temperature: float = 1.0,
        classifier_dropout: float = 0.1,
        base_model: str | None = None,
        trained_layers: list[int] | None = None,
        neighbour_topic_rows: int = 0,
        neighbour_sentiment_rows: int = 0,
        neighbour_k: int = 10,
        neighbour_temperature: float = 0.05,
        neighbour_weight: float = 0.5,
        **kwargs: Any,
    ) -> None:
        self.encoder = dict(encoder or {})
        self.topic_labels = list(topic_labels or ["other"])
        self.sentiment_labels = list(sentiment_labels or [s.value for s in SENTIMENTS])
        self.topic_temperature = float(topic_temperature)
        self.sentiment_temperature = float(sentiment_temperature)
        self.classifier_dropout = float(classifier_dropout)
        self.base_model = base_model
        """Where the encoder weights came from (package dir or hub id); informative only."""
        self.trained_layers = list(trained_layers or [])
        """Encoder layer indices updated by training (the delta artifact stores exactly these)."""
        self.neighbour_topic_rows = int(neighbour_topic_rows)
        """Topic-labelled training texts in the neighbour memory (monitor/classify/neighbours.py)."""
        self.neighbour_sentiment_rows = int(neighbour_sentiment_rows)
        """Sentiment-labelled training texts in the neighbour memory; no memory when both are 0."""
        self.neighbour_k = int(neighbour_k)
        """Nearest labelled texts that vote, per head."""
        self.neighbour_temperature = float(neighbour_temperature)
        """Softmax temperature of the votes over cosine similarities."""
        self.neighbour_weight = float(neighbour_weight)
        """Share of the votes in the blended probabilities (the heads get the rest)."""
        super().__init__(**kwargs)

    @property
    def topic_id2label(self) -> dict[int, str]:
        return dict(enumerate(self.topic_labels))

    @property
    def sentiment_id2label(self) -> dict[int, str]:
        return dict(enumerate(self.sentiment_labels))

    def encoder_config(self) -> PretrainedConfig:
        spec = dict(self.encoder)
        model_type = spec.pop("model_type", "bert")
        return AutoConfig.for_model(model_type, **spec)


@dataclass
class TwoHeadOutput(ModelOutput):
    """Raw (uncalibrated) logits of both heads, the pooled vector they read; ``loss`` when labels were given."""

    loss: torch.Tensor | None = None
    topic_logits: torch.Tensor | None = None
    sentiment_logits: torch.Tensor | None = None
    pooled: torch.Tensor | None = None


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average of the token vectors that are not padding (the sentence-transformers pooling)."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-6)


def _build_encoder(config: PretrainedConfig) -> nn.Module:
    encoder: nn.Module
    try:
        encoder = AutoModel.from_config(config, add_pooling_layer=False)  # type: ignore[no-untyped-call]
    except TypeError:  # encoders without a pooler (e.g. DistilBERT) take no such argument
        encoder = AutoModel.from_config(config)  # type: ignore[no-untyped-call]
    return encoder


class FinSentModel(PreTrainedModel):  # type: ignore[no-untyped-call]
    config_class = FinSentConfig
    base_model_prefix = "finsent"
    main_input_name = "input_ids"
    _supports_sdpa = True

    def __init__(self, config: FinSentConfig) -> None:
        super().__init__(config)
        encoder_config = config.encoder_config()
        self.encoder = _build_encoder(encoder_config)
        hidden = int(encoder_config.hidden_size)
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.topic_head = nn.Linear(hidden, len(config.topic_labels))
        self.sentiment_head = nn.Linear(hidden, len(config.sentiment_labels))
        rows = config.neighbour_topic_rows, config.neighbour_sentiment_rows
        self.memory = self.new_memory(*rows) if any(rows) else None
        self.post_init()  # type: ignore[no-untyped-call]

    def _init_weights(self, module: nn.Module) -> None:
        if module is self.topic_head or module is self.sentiment_head:
            assert isinstance(module, nn.Linear)
            nn.init.normal_(module.weight, std=0.02)
            nn.init.zeros_(module.bias)
        else:  # encoder modules: the encoder's own initialisation scheme
            init = getattr(getattr(self, "encoder", None), "_init_weights", None)
            if callable(init):
                init(module)

    def new_memory(self, topic_rows: int, sentiment_rows: int) -> NeighbourMemory:
        """An empty neighbour memory with this config's settings (``fill`` both heads' parts, then assign it to
        ``self.memory`` and the row counts to the config)."""
        c = self.config
        return NeighbourMemory(topic_rows, sentiment_rows, self.sentiment_head.in_features, c.neighbour_k,
                               c.neighbour_temperature, c.neighbour_weight)

    def pool(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return mean_pool(hidden, attention_mask)

    def heads(self, pooled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        dropped = self.dropout(pooled)
        return self.topic_head(dropped), self.sentiment_head(dropped)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        topic_labels: torch.Tensor | None = None,
        sentiment_labels: torch.Tensor | None = None,
        **_: Any,
    ) -> TwoHeadOutput:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        pooled = self.pool(input_ids, attention_mask)
        topic_logits, sentiment_logits = self.heads(pooled)
        loss = None
        if topic_labels is not None and sentiment_labels is not None:
            ce = nn.functional.cross_entropy
            loss = ce(sentiment_logits, sentiment_labels) + ce(topic_logits, topic_labels)
        return TwoHeadOutput(loss=loss, topic_logits=topic_logits, sentiment_logits=sentiment_logits, pooled=pooled)

    def probabilities(self, output: TwoHeadOutput) -> tuple[torch.Tensor, torch.Tensor]:
        """Temperature-scaled (calibrated) topic and sentiment probabilities, computed in float32, blended
        with the neighbour memory's votes when the model has one."""
        topic, sentiment = self.head_probabilities(output)
        if self.memory is not None and output.pooled is not None:
            return self.memory.blend(output.pooled, topic, sentiment)
        return topic, sentiment

    def head_probabilities(self, output: TwoHeadOutput) -> tuple[torch.Tensor, torch.Tensor]:
        """The heads' own calibrated probabilities (float32), before any neighbour memory."""
        assert output.topic_logits is not None and output.sentiment_logits is not None
        topic = torch.softmax(output.topic_logits.float() / self.config.topic_temperature, dim=-1)
        sentiment = torch.softmax(output.sentiment_logits.float() / self.config.sentiment_temperature, dim=-1)
        return topic, sentiment


def signed_score(sentiment_probs: torch.Tensor, labels: list[str]) -> torch.Tensor:
    """P(positive) - P(negative) per row, whatever order the head's labels are in."""
    return sentiment_probs[:, labels.index("positive")] - sentiment_probs[:, labels.index("negative")]


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, max_iter: int = 100) -> float:
    """Temperature minimising held-out NLL (Guo et al. 2017); ``logits`` are raw head outputs."""
    log_t = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.1, max_iter=max_iter)
    logits = logits.detach().float()

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()  # type: ignore[no-untyped-call]
        return loss

    optimizer.step(closure)  # type: ignore[no-untyped-call]
    return float(log_t.exp().clamp(0.05, 20.0).item())


AutoConfig.register(MODEL_TYPE, FinSentConfig, exist_ok=True)
AutoModel.register(FinSentConfig, FinSentModel, exist_ok=True)
