"""How a stream batch's records are run: each as soon as what it waits for is done, failures and
what depends on them reported, a batch that failed entirely failing the invocation."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future

import pytest

from functions.reconcile.batch import BatchFailed, RunOrderedBatchProcessor
from runplane.flyte.identifiers import ActionKey
from runplane.table.records import ActionRecord


def record(run: str, name: str, parent: str | None = None, sequence: int = 0) -> dict:
    image = ActionRecord(key=ActionKey(project="p", domain="d", run=run, name=name), parent=parent).to_item()
    return {
        "eventName": "INSERT",
        "dynamodb": {
            "Keys": {"pk": image["pk"], "sk": image["sk"]},
            "NewImage": image,
            "SequenceNumber": str(100 + sequence),
        },
    }


BATCH = [
    record("r1", "a0", sequence=0),
    record("r1", "b1", parent="a0", sequence=1),
    record("r1", "c1", parent="b1", sequence=2),
    record("r2", "a0", sequence=3),
]


def test_every_record_runs_after_what_it_depends_on():
    order: list[int] = []
    lock = threading.Lock()

    def handle(position: int) -> None:
        with lock:
            order.append(position)

    assert RunOrderedBatchProcessor(concurrency=4).process(BATCH, handle) == {"batchItemFailures": []}
    assert sorted(order) == [0, 1, 2, 3]
    assert order.index(0) < order.index(1) < order.index(2)


def test_a_failure_and_the_records_after_it_are_reported_the_rest_succeed():
    handled: list[int] = []

    def handle(position: int) -> None:
        handled.append(position)
        if position == 1:
            raise RuntimeError("parent's resource is not there yet")

    response = RunOrderedBatchProcessor(concurrency=2).process(BATCH, handle)
    assert response == {"batchItemFailures": [{"itemIdentifier": "101"}, {"itemIdentifier": "102"}]}
    assert 2 not in handled and sorted(handled) == [0, 1, 3]  # c1 waits for b1, which failed


def test_a_batch_that_failed_entirely_fails_the_invocation():
    def handle(position: int) -> None:
        raise RuntimeError("the API server is down")

    with pytest.raises(BatchFailed):
        RunOrderedBatchProcessor(concurrency=2).process(BATCH, handle)


def test_an_empty_batch_has_nothing_to_report():
    assert RunOrderedBatchProcessor(concurrency=2).process([], lambda p: None) == {"batchItemFailures": []}


def test_a_record_starts_only_when_its_reads_are_done_and_others_run_meanwhile():
    read: Future[None] = Future()
    started: dict[int, float] = {}

    def handle(position: int) -> None:
        started[position] = time.monotonic()
        if position == 3:  # another run's record: it does not wait for the read
            time.sleep(0.05)
            read.set_result(None)

    RunOrderedBatchProcessor(concurrency=4).process(BATCH, handle, prerequisites={0: [read]})
    assert started[3] < started[0] < started[1] < started[2]


def test_when_workers_are_scarce_the_longest_chain_goes_first():
    # r2's root has a child and a grandchild waiting on it; r1's leaves have nothing: with one
    # worker, r2's root and then its child start first although they come last in the batch.
    batch = [
        record("r1", "b1", parent="a0", sequence=0),  # r1's parent is not in the batch: a leaf here
        record("r1", "b2", parent="a0", sequence=1),
        record("r2", "a0", sequence=2),
        record("r2", "b1", parent="a0", sequence=3),
        record("r2", "c1", parent="b1", sequence=4),
    ]
    order: list[int] = []
    RunOrderedBatchProcessor(concurrency=1).process(batch, order.append)
    assert order[:2] == [2, 3] and sorted(order[2:]) == [0, 1, 4]
