"""Processing a stream batch in the order Kubernetes needs, as fast as that order allows.

Powertools' BatchProcessor builds the partial batch response; this subclass only changes the
order in which records are handled:

- a record waits for the earlier records of the same action and of its parent in the batch, so a
  child is never created before its parent's resource;
- everything else runs concurrently (independent runs, siblings), in waves;
- a record whose predecessor failed is not handled: it is reported failed too, and the stream
  delivers it again after the failed one (Lambda resumes from the lowest failed record).
"""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType

from runplane.records import ACTION_SORT_PREFIX


class PredecessorFailed(RuntimeError):
    """An earlier record this one depends on failed; it is retried after that one."""


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


class RunOrderedBatchProcessor(BatchProcessor):
    def __init__(self, *, concurrency: int) -> None:
        super().__init__(event_type=EventType.DynamoDBStreams)
        self._concurrency = concurrency

    def process(self) -> list[tuple]:
        records = list(self.records)
        waves, dependencies = plan_waves(records)
        results: dict[int, tuple] = {}
        failed: set[int] = set()
        with ThreadPoolExecutor(max_workers=self._concurrency, thread_name_prefix="reconcile") as pool:
            for wave in waves:
                runnable = []
                for position in wave:
                    if dependencies[position] & failed:
                        results[position] = self._skip(records[position])
                        failed.add(position)
                    else:
                        runnable.append(position)
                for position, result in zip(
                    runnable, pool.map(lambda p: self._process_record(records[p]), runnable), strict=True
                ):
                    results[position] = result
                    if result[0] == "fail":
                        failed.add(position)
        return [results[position] for position in range(len(records))]

    def _skip(self, record: dict[str, Any]) -> tuple:
        try:
            raise PredecessorFailed("an earlier record of the same action or of its parent failed")
        except PredecessorFailed:
            return self.failure_handler(record=self._to_batch_type(record, self.event_type), exception=sys.exc_info())
