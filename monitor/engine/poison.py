"""A text the model cannot handle must not stop the daemon; a model that handles nothing must.

A batch whose forward pass fails is retried message by message; what still fails, and what came back
with a non-finite number (an fp16/bf16 overflow turns a probability into NaN, which the window store
refuses), is set apart for the dead-letter sink (``classifier_error``). Telling a poison text from a broken
model used to be "every message of the batch failed": on a quiet stream a poison text arrives alone, so
one text stopped the daemon and, redelivered after each restart, kept it down (measured: a batch of one
poison text ended the pipeline). Now the model answers a known-good canary text: if it can, the failures
are the texts' fault and are dead-lettered; if it cannot, the model is broken and the error propagates
(nothing committed, nothing dead-lettered), as before.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence

import structlog

from monitor.types import Prediction, SourceRecord

log = structlog.get_logger(__name__)

CANARY_TEXT = "Shares of the company were little changed in early trading."
"""Plain text any working model labels with finite numbers."""

Classify = Callable[[Sequence[str]], Awaitable[list[Prediction]]]


KNOWN_POISON_TEXTS = 10_000
"""How many texts the model failed on are remembered (digests only): copies of one poison text (a spam
flood, reposts) each went through the batch twice and alone twice, with worker respawns, stalling all
classification for every copy."""


class KnownPoison:
    """Texts the model already failed on alone, by digest, with why: a copy is dead-lettered at once."""

    def __init__(self, max_texts: int = KNOWN_POISON_TEXTS) -> None:
        self.max_texts = max_texts
        self._why: OrderedDict[bytes, str] = OrderedDict()

    @staticmethod
    def _digest(text: str) -> bytes:
        return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()

    def add(self, text: str, why: str) -> None:
        digest = self._digest(text)
        self._why[digest] = why
        self._why.move_to_end(digest)
        while len(self._why) > self.max_texts:
            self._why.popitem(last=False)

    def __len__(self) -> int:
        return len(self._why)

    def why(self, text: str) -> str | None:
        return self._why.get(self._digest(text))


class BrokenModelError(RuntimeError):
    """The model fails (or returns non-finite numbers) on the canary too: no text is to blame."""


def is_finite(prediction: Prediction) -> bool:
    numbers = (prediction.score, prediction.topic_confidence, prediction.sentiment_confidence,
               *prediction.sentiment_probs)
    return all(math.isfinite(n) for n in numbers)


async def model_answers(classify: Classify) -> bool:
    """Whether the model labels the canary text with finite numbers."""
    try:
        [prediction] = await classify([CANARY_TEXT])
    except Exception as exc:
        log.warning("classifier_canary_failed", error=repr(exc)[:300])
        return False
    return is_finite(prediction)


async def isolate(
    records: Sequence[SourceRecord], predictions: Awaitable[list[Prediction]], classify: Classify
) -> tuple[list[tuple[SourceRecord, Prediction]], list[tuple[SourceRecord, str]]]:
    """``(labelled, rejected)``: each record with its prediction, or with why the model failed on it.

    Raises the batch's own error (or ``BrokenModelError``) when a record failed and the canary fails too:
    then the model, not the texts, is at fault, and nothing is dead-lettered."""
    batch_error: Exception | None = None
    answers: list[tuple[SourceRecord, Prediction | None, str]] = []
    try:
        answers = [(record, prediction, "") for record, prediction in zip(records, await predictions, strict=True)]
    except Exception as exc:
        batch_error = exc
        log.warning("batch_classification_failed", messages=len(records), error=repr(exc)[:300])
        for record in records:
            try:
                [alone] = await classify([record.message.text])
            except Exception as one_error:
                answers.append((record, None, repr(one_error)[:500]))
                continue
            answers.append((record, alone, ""))
    labelled: list[tuple[SourceRecord, Prediction]] = []
    rejected: list[tuple[SourceRecord, str]] = []
    for record, prediction, error in answers:
        if prediction is None:
            rejected.append((record, error))
        elif not is_finite(prediction):
            rejected.append((record, f"non-finite model output (score {prediction.score!r}): the model "
                                     "overflowed on this text"))
        else:
            labelled.append((record, prediction))
    # the canary is asked whenever a text is rejected, not only when all were: a worker or device that died
    # part-way through the texts one by one must not get the rest dead-lettered (and committed) as poison
    if rejected and not await model_answers(classify):
        if batch_error is not None:
            raise batch_error
        raise BrokenModelError(f"the classifier failed {len(rejected)} of {len(records)} messages of a batch and "
                               "a canary text: the model is broken (check classifier.model_path and "
                               "classifier.dtype)")
    return labelled, rejected
