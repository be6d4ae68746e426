"""Processing a stream batch in the order Kubernetes needs, as fast as that order allows.

- a record waits for the earlier records of the same action and of its parent in the batch, so a
  child is never created before its parent's resource;
- everything else runs concurrently (independent runs, siblings), up to ``concurrency`` records
  at a time: a record starts the moment what it waits for is done (its predecessors, and the
  reads it needs, see ``process``), not wave by wave, so one slow call never idles the others;
- a record whose predecessor failed is not handled: it is reported failed too, and the stream
  delivers it again after the failed one (Lambda resumes from the lowest failed record).

The partial batch response (``batchItemFailures``: the sequence numbers of the failed records) is
built here, with the semantics of Powertools' BatchProcessor, which this replaces: a batch whose
every record failed fails the invocation instead (``BatchFailed``), so the mapping retries it
and bisects it. Powertools' batch utility imports asyncio and every event data class it knows,
about 90 ms of reconcile's cold start (``python -X importtime``), for this loop.
"""

from __future__ import annotations

import logging
import queue
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypedDict

from runplane.records import ACTION_SORT_PREFIX

logger = logging.getLogger(__name__)


class BatchItemFailure(TypedDict):
    itemIdentifier: str


class PartialBatchResponse(TypedDict):
    batchItemFailures: list[BatchItemFailure]


class BatchFailed(RuntimeError):
    """Every record of the batch failed: the invocation fails and the mapping retries the batch."""


def plan_waves(records: list[dict[str, Any]]) -> tuple[list[list[int]], dict[int, set[int]]]:
    """Group record positions into waves that can run concurrently; returns the waves and, for
    each position, the earlier positions it depends on."""
    latest: dict[tuple[str, str], int] = {}  # (partition, action) -> position of its latest record
    dependencies: dict[int, set[int]] = {}
    depth: dict[int, int] = {}
    for position, record in enumerate(records):
        change = record.get("dynamodb", {})
        keys = change.get("Keys", {})
        partition = keys.get("pk", {}).get("S", "")
        sort_key = keys.get("sk", {}).get("S", "")
        depends_on = set()
        if sort_key.startswith(ACTION_SORT_PREFIX):
            action = sort_key[len(ACTION_SORT_PREFIX) :]
            image = change.get("NewImage") or change.get("OldImage") or {}
            parent = image.get("parent", {}).get("S")
            for key in ((partition, action), (partition, parent)):
                if key in latest:
                    depends_on.add(latest[key])
            latest[(partition, action)] = position
        dependencies[position] = depends_on
        depth[position] = 1 + max((depth[d] for d in depends_on), default=-1)
    waves: list[list[int]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for position, level in depth.items():
        waves[level].append(position)
    return waves, dependencies


def _announce(events: queue.SimpleQueue[tuple[str, int, bool]], position: int) -> Callable[[Future[Any]], None]:
    """A done-callback saying that one of a record's prerequisites completed."""
    return lambda _: events.put(("ready", position, True))


class RunOrderedBatchProcessor:
    def __init__(self, *, concurrency: int) -> None:
        self._concurrency = concurrency

    def process(
        self,
        records: list[dict[str, Any]],
        handle: Callable[[int], object],
        *,
        prerequisites: Mapping[int, Iterable[Future[Any]]] | None = None,
    ) -> PartialBatchResponse:
        """Handle every record: ``handle(position)``, its raising is the record's failure.
        ``prerequisites``: for a record's position, futures it waits for before it starts (the
        reads it needs), so no worker sits blocked on them while another record could run."""
        if not records:
            return {"batchItemFailures": []}
        _, dependencies = plan_waves(records)
        dependents: dict[int, list[int]] = {position: [] for position in dependencies}
        for position, depends_on in dependencies.items():
            for earlier in depends_on:
                dependents[earlier].append(position)
        blockers = {position: len(depends_on) for position, depends_on in dependencies.items()}
        # Each completion (a record handled, a prerequisite read done) arrives on this queue.
        events: queue.SimpleQueue[tuple[str, int, bool]] = queue.SimpleQueue()
        for position, futures in (prerequisites or {}).items():
            for future in set(futures):
                blockers[position] += 1
                future.add_done_callback(_announce(events, position))
        failed: set[int] = set()
        finished = 0

        def run(position: int) -> None:
            try:
                handle(position)
            except Exception as exc:
                logger.warning("record failed: the stream delivers it again", extra={"error": repr(exc)})
                events.put(("done", position, False))
            else:
                events.put(("done", position, True))

        with ThreadPoolExecutor(max_workers=self._concurrency, thread_name_prefix="reconcile") as pool:

            def unblock(position: int) -> None:
                blockers[position] -= 1
                if blockers[position]:
                    return
                if dependencies[position] & failed:  # never handled: its predecessor is retried first
                    events.put(("done", position, False))
                else:
                    pool.submit(run, position)

            for position in range(len(records)):
                blockers[position] += 1  # released below, so nothing starts while prerequisites are counted
                unblock(position)
            while finished < len(records):
                kind, position, succeeded = events.get()
                if kind == "ready":
                    unblock(position)
                    continue
                finished += 1
                if not succeeded:
                    failed.add(position)
                for later in dependents[position]:
                    unblock(later)
        if len(failed) == len(records):
            raise BatchFailed(f"all {len(records)} records of the batch failed")
        return {
            "batchItemFailures": [
                {"itemIdentifier": records[position]["dynamodb"]["SequenceNumber"]} for position in sorted(failed)
            ]
        }
