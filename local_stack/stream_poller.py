"""A DynamoDB Streams poller with the semantics of Lambda's event source mapping.

What it reproduces, because reconcile's correctness depends on it:

- records arrive in batches of up to ``batch_size``, in stream order per shard, shaped exactly as
  Lambda delivers them (``eventVersion`` 1.1, binary attributes base64, epoch-second times);
- ``batchItemFailures``: the batch succeeded up to the lowest failed record; delivery resumes
  there, so records after a failed one are delivered again (handlers must be idempotent);
- a handler exception, or a failure naming a record not in the batch, fails the whole batch;
- after ``max_retries`` retries the remaining records of the batch go to the on-failure
  destination (here a list, in the template an SQS queue) and the shard moves on.

- ``filter_patterns`` (the mapping's FilterCriteria): a record matching none is dropped before
  batching, as Lambda drops it; patterns support exact values, ``{"prefix": ...}`` and
  ``{"exists": ...}`` (``matches``).

Bisect-on-error is not reproduced: partial batch responses already isolate the failed record.
"""

from __future__ import annotations

import base64
import copy
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from local_stack.lambda_runtime import LambdaContext

logger = logging.getLogger(__name__)

MAX_PASSES_PER_DRAIN = 100
MAX_BACKOFF_SECONDS = 5.0


@dataclass
class FailedBatch:
    """What the on-failure destination receives: the records given up on, and why."""

    records: list[dict[str, Any]]
    reason: str


@dataclass
class _Shard:
    iterator: str | None
    buffer: list[dict[str, Any]] = field(default_factory=list)
    retries: int = 0
    retry_at: float = 0.0


class StreamPoller:
    def __init__(
        self,
        *,
        streams_client: Any,
        stream_arn: str,
        handler: Callable[[dict[str, Any], Any], Any],
        batch_size: int = 100,
        max_retries: int = 2,
        retry_backoff_seconds: float = 0.2,
        region: str = "us-east-1",
        function_name: str = "reconcile",
        filter_patterns: list[str] | None = None,
    ) -> None:
        self._client = streams_client
        self._stream_arn = stream_arn
        self._handler = handler
        self._batch_size = batch_size
        self._max_retries = max_retries
        self._retry_backoff = retry_backoff_seconds
        self._region = region
        self._function_name = function_name
        self._filters = [json.loads(pattern) for pattern in filter_patterns or []]
        self._shards: dict[str, _Shard] = {}
        self._lock = threading.Lock()  # one drain at a time, as one ESM per shard
        self.on_failure: list[FailedBatch] = []
        self.invocations = 0
        self.delivered = 0

    def drain(self) -> int:
        """Deliver everything currently in the stream; returns the number of records delivered."""
        with self._lock:
            total = 0
            for _ in range(MAX_PASSES_PER_DRAIN):
                self._discover_shards()
                delivered = sum(self._poll_shard(shard) for shard in self._shards.values())
                total += delivered
                if delivered == 0:
                    break
            return total

    def run(self, stop: threading.Event, *, idle_seconds: float = 0.1) -> None:
        """Poll until ``stop`` is set; errors are logged and polling goes on, as on AWS."""
        while not stop.is_set():
            try:
                if self.drain() == 0:
                    stop.wait(idle_seconds)
            except Exception:
                logger.exception("stream poll failed")
                stop.wait(1.0)

    # --- internals --------------------------------------------------------------------------

    def _discover_shards(self) -> None:
        description = self._client.describe_stream(StreamArn=self._stream_arn)["StreamDescription"]
        for shard in description["Shards"]:
            shard_id = shard["ShardId"]
            if shard_id not in self._shards:
                iterator = self._client.get_shard_iterator(
                    StreamArn=self._stream_arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
                )["ShardIterator"]
                self._shards[shard_id] = _Shard(iterator=iterator)

    def _poll_shard(self, shard: _Shard) -> int:
        # An open shard always hands back a next iterator, even when it has nothing new: one
        # GetRecords per pass, never a loop until the iterator disappears.
        if len(shard.buffer) < self._batch_size and shard.iterator:
            response = self._client.get_records(ShardIterator=shard.iterator, Limit=self._batch_size)
            records = (self._lambda_record(r) for r in response.get("Records", []))
            shard.buffer.extend(r for r in records if not self._filters or any(matches(f, r) for f in self._filters))
            shard.iterator = response.get("NextShardIterator")
        delivered = 0
        while shard.buffer:
            wait = shard.retry_at - time.monotonic()
            if wait > 0:  # the ESM backs off between retries; a flapping API server gets time
                time.sleep(wait)
            batch = shard.buffer[: self._batch_size]
            succeeded = self._invoke(batch)
            delivered += len(batch)
            del shard.buffer[:succeeded]
            if succeeded == len(batch):
                shard.retries = 0
                continue
            shard.retries += 1
            shard.retry_at = time.monotonic() + min(self._retry_backoff * 2 ** (shard.retries - 1), MAX_BACKOFF_SECONDS)
            if shard.retries > self._max_retries:
                given_up = shard.buffer[: len(batch) - succeeded]
                del shard.buffer[: len(given_up)]
                self.on_failure.append(FailedBatch(records=given_up, reason=f"retries exhausted ({self._max_retries})"))
                logger.error("records sent to the on-failure destination", extra={"count": len(given_up)})
                shard.retries = 0
                shard.retry_at = 0.0
            break  # a failed batch is retried on the next pass, as the ESM does after a back-off
        self.delivered += delivered
        return delivered

    def _invoke(self, batch: list[dict[str, Any]]) -> int:
        """Call the handler; returns how many leading records of the batch succeeded."""
        self.invocations += 1
        event = {"Records": copy.deepcopy(batch)}
        try:
            response = self._handler(event, LambdaContext(function_name=self._function_name, timeout_seconds=120))
        except Exception:
            logger.exception("reconcile invocation failed; the whole batch is retried")
            return 0
        failures = (response or {}).get("batchItemFailures") or []
        if not failures:
            return len(batch)
        positions = {r["dynamodb"]["SequenceNumber"]: i for i, r in enumerate(batch)}
        failed_positions = []
        for failure in failures:
            position = positions.get(failure.get("itemIdentifier") or "")
            if position is None:  # Lambda treats an unknown identifier as a failure of the batch
                return 0
            failed_positions.append(position)
        return min(failed_positions)

    def _lambda_record(self, record: dict[str, Any]) -> dict[str, Any]:
        change = dict(record["dynamodb"])
        created = change.get("ApproximateCreationDateTime")
        if isinstance(created, datetime):
            change["ApproximateCreationDateTime"] = int(created.timestamp())
        for image in ("Keys", "NewImage", "OldImage"):
            if image in change:
                change[image] = {name: _lambda_attribute(value) for name, value in change[image].items()}
        return {
            "eventID": record["eventID"],
            "eventName": record["eventName"],
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": self._region,
            "eventSourceARN": self._stream_arn,
            "dynamodb": change,
        }


def matches(pattern: Any, value: Any) -> bool:
    """An event filter pattern against a record, as Lambda's event filtering reads it: nested keys
    must exist and match; a list matches if any of its entries does (an exact value,
    ``{"prefix": ...}`` on a string, ``{"exists": true}`` for a key that is there, and
    ``{"exists": false}`` for one that is not)."""
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(
            matches(sub, value[key]) if key in value else _matches_absent(sub) for key, sub in pattern.items()
        )
    if isinstance(pattern, list):
        return any(_matches_one(entry, value) for entry in pattern)
    return pattern == value


def _matches_absent(pattern: Any) -> bool:
    return isinstance(pattern, list) and {"exists": False} in pattern


def _matches_one(entry: Any, value: Any) -> bool:
    if isinstance(entry, dict) and "prefix" in entry:
        return isinstance(value, str) and value.startswith(entry["prefix"])
    if isinstance(entry, dict) and "exists" in entry:
        return entry["exists"] is True  # reached only when the key is there
    return entry == value


def _lambda_attribute(value: dict[str, Any]) -> dict[str, Any]:
    """boto3 gives binary attributes as bytes; Lambda's JSON event carries them as base64."""
    ((kind, raw),) = value.items()
    if kind == "B":
        return {"B": base64.b64encode(bytes(raw)).decode()}
    if kind == "BS":
        return {"BS": [base64.b64encode(bytes(item)).decode() for item in raw]}
    if kind == "M":
        return {"M": {k: _lambda_attribute(v) for k, v in raw.items()}}
    if kind == "L":
        return {"L": [_lambda_attribute(v) for v in raw]}
    return value
