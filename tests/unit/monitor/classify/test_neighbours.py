"""The neighbour memory: the nearest labelled training texts vote next to the heads."""

from __future__ import annotations

import pytest
import torch

from monitor.classify.neighbours import BLEND_ROWS, HeadMemory, NeighbourMemory


def _memory(weight: float = 0.5, k: int = 1) -> NeighbourMemory:
    """Sentiment rows on three axes of a 4-d space (labels 0, 1, 2); one topic row on the fourth (label 1)."""
    memory = NeighbourMemory(1, 3, 4, k=k, temperature=0.05, weight=weight)
    memory.sentiment.fill(torch.eye(4)[:3] * 3.0, torch.tensor([0, 1, 2], dtype=torch.int16))
    memory.topic.fill(torch.eye(4)[3:], torch.tensor([1], dtype=torch.int16))
    return memory


def test_the_nearest_labelled_text_moves_the_label_toward_its_own() -> None:
    head = torch.tensor([[0.1, 0.8, 0.1]])  # the head says neutral
    _, sentiment = _memory().blend(torch.tensor([[0.0, 0.0, 5.0, 0.1]]), torch.tensor([[0.5, 0.5]]), head)
    assert sentiment.argmax(-1).item() == 2  # the nearest row (2) is positive: 0.5 * 0.1 + 0.5 * 1.0
    assert sentiment[0].tolist() == pytest.approx([0.05, 0.4, 0.55], abs=1e-4)


def test_each_head_is_voted_on_by_the_texts_labelled_for_it() -> None:
    topic, sentiment = _memory().blend(torch.tensor([[0.0, 0.0, 0.0, 1.0]]), torch.tensor([[0.9, 0.1]]),
                                       torch.tensor([[0.2, 0.6, 0.2]]))
    assert topic[0].tolist() == pytest.approx([0.45, 0.55], abs=1e-4)  # the one topic row votes topic 1
    assert sentiment[0].sum().item() == pytest.approx(1.0, abs=1e-5)  # its nearest sentiment row is another one


def test_k_is_capped_at_the_rows_and_votes_sum_to_one() -> None:
    torch.manual_seed(0)
    topic, sentiment = _memory(k=50).blend(torch.randn(6, 4), torch.softmax(torch.randn(6, 2), -1),
                                           torch.softmax(torch.randn(6, 3), -1))
    assert torch.allclose(topic.sum(-1), torch.ones(6)) and torch.allclose(sentiment.sum(-1), torch.ones(6))


def test_weight_zero_leaves_the_heads_probabilities_unchanged() -> None:
    head = torch.tensor([[0.2, 0.3, 0.5]])
    _, sentiment = _memory(weight=0.0).blend(torch.tensor([[1.0, 0.0, 0.0, 0.0]]), torch.tensor([[0.5, 0.5]]), head)
    assert torch.equal(sentiment, head)


def test_bf16_vectors_pick_the_same_neighbour_as_fp32() -> None:
    memory, pooled = _memory(), torch.tensor([[0.2, 3.0, 0.1, 0.0]])
    heads = torch.tensor([[0.5, 0.5]]), torch.tensor([[1 / 3, 1 / 3, 1 / 3]])
    fp32 = memory.blend(pooled, *heads)[1]
    bf16 = memory.to(torch.bfloat16).blend(pooled.to(torch.bfloat16), *heads)[1]
    assert bf16.dtype == torch.float32 and bf16.argmax(-1).item() == fp32.argmax(-1).item() == 1


def test_a_head_with_no_rows_keeps_its_own_probabilities() -> None:
    memory = NeighbourMemory(0, 2, 4, k=10, temperature=0.05, weight=0.5)
    memory.sentiment.fill(torch.eye(4)[:2], torch.tensor([0, 2], dtype=torch.int16))
    topic_head = torch.tensor([[0.3, 0.7]])
    topic, _ = memory.blend(torch.tensor([[1.0, 0.0, 0.0, 0.0]]), topic_head, torch.tensor([[0.2, 0.6, 0.2]]))
    assert torch.allclose(topic, topic_head)


def test_a_whole_call_is_blended_a_bounded_number_of_texts_at_a_time_with_the_same_result(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Found by review: a call of 4,096 texts held a 4,096 x 23,880 similarity matrix at once (+231 MiB)."""
    torch.manual_seed(0)
    memory = _memory(k=2)
    pooled, topic, sentiment = torch.randn(600, 4), torch.softmax(torch.randn(600, 2), -1), torch.softmax(
        torch.randn(600, 3), -1)
    whole = memory.blend(pooled, topic, sentiment)
    seen: list[int] = []
    votes = HeadMemory.votes

    def counting(self: HeadMemory, unit: torch.Tensor, head: torch.Tensor, k: int, temperature: float) -> torch.Tensor:
        seen.append(unit.shape[0])
        return votes(self, unit, head, k, temperature)

    monkeypatch.setattr(HeadMemory, "votes", counting)
    chunked = memory.blend_rows(pooled, topic, sentiment)
    assert max(seen) == BLEND_ROWS and sum(seen) == 2 * 600
    assert torch.equal(chunked[0], whole[0]) and torch.equal(chunked[1], whole[1])
