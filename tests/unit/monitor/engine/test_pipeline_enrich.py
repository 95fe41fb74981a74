"""The pipeline with its enrichment stage: linked tickers and story repeats reach the store, a
redelivered copy is still counted once, and a classifier retry keeps the decisions."""

from __future__ import annotations

from monitor.engine.batching import MicroBatcher
from monitor.engine.enrich import Enricher
from monitor.engine.pipeline import Pipeline
from monitor.entities.linker import EntityLinker
from monitor.entities.watchlist import Company
from monitor.novelty.index import NoveltyIndex
from monitor.windows.memory import MemoryWindowStore
from tests.fakes import CollectingDeadLetter, ListSource, RecordingClassifier, msg

STORY = "Acme reports bad quarter as sales collapse"


def _enricher() -> Enricher:
    return Enricher(EntityLinker([Company("ACME", ("Acme",))]), NoveltyIndex(window_s=3600, max_entries=100))


async def _run(source: ListSource, store: MemoryWindowStore, clf: RecordingClassifier) -> Pipeline:
    async with MicroBatcher(clf, max_batch_size=16, max_wait_ms=1, max_queue_messages=100) as batcher:
        pipe = Pipeline(source, batcher, store, CollectingDeadLetter(), None, allowed_lateness_s=0,
                        max_batch_size=16, max_wait_ms=1, max_in_flight_batches=2, enricher=_enricher())
        await pipe.run()
    return pipe


async def test_copies_are_repeats_on_the_linked_ticker_and_a_redelivered_copy_counts_once() -> None:
    first = [msg("s", STORY, 100), msg("rt", f"RT @x: {STORY}", 110)]
    again = [msg("rt", f"RT @x: {STORY}", 110), msg("up", f"UPDATE 1-{STORY}", 115)]
    store = MemoryWindowStore(bucket_s=60, retention_s=10**6)

    pipe = await _run(ListSource([first, again]), store, RecordingClassifier())

    [bucket] = await store.buckets("ticker:ACME", 0, 1000)
    assert (bucket.negative, bucket.repeats) == (1, 2)
    assert pipe.stats.duplicates == 1 and pipe.stats.applied == 3


async def test_a_batch_retried_message_by_message_keeps_its_repeat_decisions() -> None:
    batch = [msg("s", STORY, 100), msg("rt", f"RT @x: {STORY}", 110), msg("p", "poison pill text here", 111)]
    store = MemoryWindowStore(bucket_s=60, retention_s=10**6)

    await _run(ListSource([batch]), store, RecordingClassifier())

    [bucket] = await store.buckets("ticker:ACME", 0, 1000)
    assert (bucket.negative, bucket.repeats) == (1, 1)


async def test_when_the_model_rejects_a_story_its_first_copy_becomes_the_story() -> None:
    """Found by review: novelty was decided before classification, so the dead-lettered story left its copies
    folded into a story nobody counted (negative 0, volume 0, no evidence on ticker:ACME)."""
    batches = [[msg("s", f"{STORY} poison pill", 100)],
               [msg("rt", f"RT @x: {STORY}", 110), msg("up", f"UPDATE 1-{STORY} - Reuters", 115)]]
    store = MemoryWindowStore(bucket_s=60, retention_s=10**6)

    pipe = await _run(ListSource(batches), store, RecordingClassifier())

    [bucket] = await store.buckets("ticker:ACME", 0, 1000)
    assert (bucket.negative, bucket.volume, bucket.repeats) == (1, 1, 1)
    assert [e.message_id for e in await store.top_negative("ticker:ACME", 0, 1000, 5)] == ["rt"]
    assert pipe.stats.repeats == 1


async def test_a_message_dead_lettered_as_an_id_conflict_never_becomes_the_story_its_copies_fold_into() -> None:
    """Found by review: after a restart (novelty empty, the store's markers kept) a publisher reused an id for
    another story; novelty indexed it, apply dead-lettered it, and its syndicated copy counted as a repeat of a
    story that was never counted (negative 0)."""
    store = MemoryWindowStore(bucket_s=60, retention_s=10**6)  # stands for Redis: it outlives the process
    await _run(ListSource([[msg("wire-1", "Acme Bank results in line with what analysts expected", 100)]]), store,
               RecordingClassifier())
    later = [[msg("wire-1", f"{STORY} overnight", 130), msg("syndicated-7", f"{STORY} overnight", 131)]]
    pipe = await _run(ListSource(later), store, RecordingClassifier())  # a new process: novelty starts empty
    [bucket] = await store.buckets("ticker:ACME", 120, 180)
    assert (bucket.negative, bucket.repeats, pipe.stats.repeats) == (1, 0, 0)



async def test_a_negative_story_never_folds_into_a_positive_one_of_the_same_template() -> None:
    """Found by review: novelty ran after classification but never saw the labels, so a negative story whose
    movement word was on no list ("decline") folded into the positive one it resembled: negative 0."""
    template = "Acme quarter in line with estimates for the period as deliveries came in {}"
    store = MemoryWindowStore(bucket_s=60, retention_s=10**6)

    pipe = await _run(ListSource([[msg("up", template.format("good"), 100), msg("down", template.format("bad"), 110),
                                   msg("rt", "RT @x: " + template.format("bad"), 115)]]), store, RecordingClassifier())

    [bucket] = await store.buckets("ticker:ACME", 0, 1000)
    assert (bucket.positive, bucket.negative, bucket.repeats) == (1, 1, 1)
    assert pipe.stats.repeats == 1
