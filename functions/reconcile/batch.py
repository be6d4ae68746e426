"""Processing a stream batch in the order Kubernetes needs, as fast as that order allows.

- a record waits for the earlier records of the same action and of its parent in the batch, so a
  child is never created before its parent's resource;
- everything else runs concurrently (independent runs, siblings), up to ``concurrency`` records
  at a time: a record starts the moment what it waits for is done (its predecessors, and the
  reads it needs, see ``process``), not wave by wave, so one slow call never idles the others;
  when more records are ready than workers are free, those with the longest chain of records
  waiting on them go first (a parent before a leaf), so the batch's critical path starts early;
- a record whose predecessor failed is not handled: it is reported failed too, and the stream
  delivers it again after the failed one (Lambda resumes from the lowest failed record).

The partial batch response (``batchItemFailures``: the sequence numbers of the failed records) is
built here, with the semantics of Powertools' BatchProcessor, which this replaces: a batch whose
every record failed fails the invocation instead (``BatchFailed``), so the mapping retries it
and bisects it. Powertools' batch utility imports asyncio and every event data class it knows,
about 90 ms of reconcile's cold start (``python -X importtime``), for this loop.
"""

from __future__ import annotations

import heapq
import logging
import queue
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypedDict

from runplane.table.records import ACTION_SORT_PREFIX

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


def heights(dependencies: Mapping[int, set[int]]) -> dict[int, int]:
    """Each position's height: the longest chain of records that wait on it, itself included (a
    leaf is 1, a run's root with children and grandchildren in the batch 3). A record depends on
    earlier positions only, so one pass from the end settles every height."""
    height = dict.fromkeys(dependencies, 1)
    for position in sorted(dependencies, reverse=True):
        for earlier in dependencies[position]:
            height[earlier] = max(height[earlier], height[position] + 1)
    return height


def handling_order(records: list[dict[str, Any]]) -> list[int]:
    """The positions in the order they can be handled: wave by wave (a record after what it waits
    for), and within a wave the longest chain first. What a batch reads ahead is read in this
    order, so every record that can start at once has its read first (a run's root late in the
    batch does not wait behind the leaves of the runs before it)."""
    waves, dependencies = plan_waves(records)
    height = heights(dependencies)
    return [position for wave in waves for position in sorted(wave, key=lambda p: (-height[p], p))]


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
        height = heights(dependencies)
        dependents: dict[int, list[int]] = {position: [] for position in dependencies}
        for position, depends_on in dependencies.items():
            for earlier in depends_on:
                dependents[earlier].append(position)
        blockers = {position: len(depends_on) for position, depends_on in dependencies.items()}
        # Each completion arrives on this queue: a prerequisite read done ("ready"), a record handled
        # ("done") or given up unhandled after its predecessor failed ("dropped").
        events: queue.SimpleQueue[tuple[str, int, bool]] = queue.SimpleQueue()
        for position, futures in (prerequisites or {}).items():
            for future in set(futures):
                blockers[position] += 1
                future.add_done_callback(_announce(events, position))
        failed: set[int] = set()
        finished = 0
        ready: list[tuple[int, int]] = []  # (-height, position) of records free to start, longest chain first
        running = 0

        def run(position: int) -> None:
            try:
                handle(position)
            except Exception as exc:
                logger.warning("record failed: the stream delivers it again", extra={"error": repr(exc)})
                events.put(("done", position, False))
            else:
                events.put(("done", position, True))

        with ThreadPoolExecutor(max_workers=self._concurrency, thread_name_prefix="reconcile") as pool:
            # Records start from this thread only, at most ``concurrency`` at once: the pool's own
            # queue is first in, first out, and the longest chains must go first.
            def unblock(position: int) -> None:
                blockers[position] -= 1
                if blockers[position]:
                    return
                if dependencies[position] & failed:  # never handled: its predecessor is retried first
                    events.put(("dropped", position, False))
                else:
                    heapq.heappush(ready, (-height[position], position))

            def start_ready() -> None:
                nonlocal running
                while ready and running < self._concurrency:
                    running += 1
                    pool.submit(run, heapq.heappop(ready)[1])

            for position in range(len(records)):
                blockers[position] += 1  # released below, so nothing starts while prerequisites are counted
                unblock(position)
            start_ready()
            while finished < len(records):
                kind, position, succeeded = events.get()
                if kind == "ready":
                    unblock(position)
                    start_ready()
                    continue
                if kind == "done":  # handled by a worker, which is free again
                    running -= 1
                finished += 1
                if not succeeded:
                    failed.add(position)
                for later in dependents[position]:
                    unblock(later)
                start_ready()
        if len(failed) == len(records):
            raise BatchFailed(f"all {len(records)} records of the batch failed")
        return {
            "batchItemFailures": [
                {"itemIdentifier": records[position]["dynamodb"]["SequenceNumber"]} for position in sorted(failed)
            ]
        }
