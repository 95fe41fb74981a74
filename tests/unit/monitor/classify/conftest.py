"""Tiny randomly initialised BERT models (seconds, no downloads) for the transformer code paths."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

_WORD_BLOB = """shares plunge after fraud probe stock downgraded misses estimates bankruptcy beats record
surge upgrade strong profit the a to of and on in at for company reports results quarter apple fed rates
oil gold bitcoin ceo merger deal lawsuit market stocks rise fall"""
WORDS = _WORD_BLOB.split()
TOPICS = ["earnings", "markets", "other"]
SENTIMENTS = ["negative", "neutral", "positive"]


def _tiny_tokenizer(directory: Path):  # type: ignore[no-untyped-def]
    from transformers import BertTokenizer

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"abcdefghijklmnopqrstuvwxyz0123456789", *WORDS]
    directory.mkdir(parents=True, exist_ok=True)
    return BertTokenizer(vocab={token: i for i, token in enumerate(dict.fromkeys(vocab))})


def _tiny_bert_config(vocab_size: int):  # type: ignore[no-untyped-def]
    from transformers import BertConfig

    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=128,
    )


@pytest.fixture(scope="session")
def tiny_base_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A plain tiny BertModel + tokenizer directory, usable as ``--base-model``."""
    import torch
    from transformers import BertModel

    directory = tmp_path_factory.mktemp("tiny_base")
    tokenizer = _tiny_tokenizer(directory)
    torch.manual_seed(0)
    BertModel(_tiny_bert_config(tokenizer.vocab_size)).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def save_tiny_two_head(
    directory: Path, topics: list[str], seed: int, sentiment_temperature: float = 1.0
) -> Path:
    """A full save_pretrained two-head model (tiny BERT, random weights from ``seed``) in ``directory``."""
    import torch

    from monitor.classify.model import FinSentConfig, FinSentModel

    tokenizer = _tiny_tokenizer(directory)
    torch.manual_seed(seed)
    config = FinSentConfig(
        encoder=_tiny_bert_config(tokenizer.vocab_size).to_dict(),
        topic_labels=topics,
        sentiment_labels=SENTIMENTS,
        sentiment_temperature=sentiment_temperature,
    )
    FinSentModel(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_delta_dir(tmp_path_factory: pytest.TempPathFactory, tiny_base_dir: Path) -> Path:
    """A delta directory over ``tiny_base_dir``: config.json + delta.safetensors (heads + layer 1)."""
    from monitor.classify.artifact import new_model, save_delta

    directory = tmp_path_factory.mktemp("tiny_delta")
    model, _ = new_model(str(tiny_base_dir), TOPICS, SENTIMENTS)
    model.config.trained_layers = [1]
    save_delta(model, directory)
    return directory


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A full save_pretrained two-head model directory with random weights."""
    return save_tiny_two_head(tmp_path_factory.mktemp("tiny_two_head"), TOPICS, seed=0, sentiment_temperature=1.5)


@pytest.fixture
def tiny_csv(tmp_path: Path) -> Path:
    """A 60-row ``text,label`` CSV in the shared dataset's format (0 bearish, 1 bullish, 2 neutral)."""
    rows = [
        ("shares plunge after fraud probe", 0),
        ("stock downgraded, misses estimates", 0),
        ("company reports bankruptcy", 0),
        ("apple beats estimates, record profit", 1),
        ("stock surge after upgrade", 1),
        ("strong quarter results", 1),
        ("company reports results", 2),
        ("fed rates on the market", 2),
        ("oil and gold at the market", 2),
        ("ceo of the company", 2),
    ]
    path = tmp_path / "train.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        for _ in range(6):
            writer.writerows(rows)
    return path


@pytest.fixture
def tiny_topic_csv(tmp_path: Path) -> Path:
    """A 75-row topic CSV in topic_train.csv's format: CRLF line ends, HTML entities, dataset ids 0-19: 12 rows of
    each of five topics (one of each held out) and one row of each other id (``monitor train`` refuses a topic
    without training rows)."""
    rows = [
        ("fed rates rise on the market", 1),  # central_banks
        ("the fed and rates", 1),
        ("apple reports quarter results &amp; profit", 5),  # earnings
        ("company beats estimates on record profit", 5),
        ("oil and gold at the market", 6),  # energy_oil
        ("oil on the rise", 6),
        ("lawsuit and fraud probe at the company", 12),  # legal_regulation
        ("company sued in fraud lawsuit", 12),
        ("merger deal for the company", 13),  # mergers_acquisitions
        ("company in merger deal &amp; stocks rise", 13),
    ]
    path = tmp_path / "topic.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\r\n")
        writer.writerow(["text", "label"])
        for _ in range(6):
            writer.writerows(rows)
        writer.writerows((f"market news item {label}", label) for label in range(20) if label not in (1, 5, 6, 12, 13))
    return path


def save_with_memory(model_dir: Path, out: Path, topic_rows: int = 7, sentiment_rows: int = 12) -> Path:
    """``model_dir``'s model plus a neighbour memory of random rows, saved as a full directory in ``out``."""
    import torch

    from monitor.classify.artifact import load_model

    model, tokenizer = load_model(str(model_dir))
    torch.manual_seed(1)
    memory = model.new_memory(topic_rows, sentiment_rows)
    hidden = memory.topic.vectors.shape[1]
    memory.topic.fill(torch.randn(topic_rows, hidden),
                      torch.randint(0, len(model.config.topic_labels), (topic_rows,), dtype=torch.int16))
    memory.sentiment.fill(torch.randn(sentiment_rows, hidden),
                          torch.randint(0, 3, (sentiment_rows,), dtype=torch.int16))
    model.memory = memory
    model.config.neighbour_topic_rows, model.config.neighbour_sentiment_rows = topic_rows, sentiment_rows
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
