"""Recording ActionEvents: one conditional PutItem an event, the first write of an (action,
attempt, phase, version) winning, as Flyte's ``INSERT ... ON CONFLICT DO NOTHING`` does, so a
redelivered batch is a no-op.

A batch's puts go out concurrently: Flyte's executor sends up to 400 events in one Record call
(``executor/pkg/controller/event_batcher.go``), and one after another they would take 400 round
trips of the caller's time (its reconciles block until their batch is recorded). Every item is
checked against the size limit before any is written.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import TYPE_CHECKING, Any

from runplane.table.dynamo import put_if
from runplane.table.records import EventRecord
from runplane.table.specs import checked_item

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

# Puts of one batch in flight at once: enough to hide DynamoDB's few milliseconds a write behind
# each other, few enough for a 128 MB function (a thread each; the HTTP client keeps one
# keep-alive connection per thread).
EVENT_WRITE_CONCURRENCY = 16


def put_events(client: DynamoDBClient, *, table_name: str, events: list[EventRecord]) -> int:
    """Store ``events``; returns how many were new (the rest were already recorded)."""
    items = [checked_item(event) for event in events]

    def put(item: dict[str, dict[str, Any]]) -> bool:
        return put_if(client, TableName=table_name, Item=item, ConditionExpression="attribute_not_exists(sk)").applied

    if len(items) <= 1:
        return sum(put(item) for item in items)
    return sum(_pool().map(put, items))


@cache
def _pool() -> ThreadPoolExecutor:
    """One pool a process (a Lambda container serves one request at a time), made on first use."""
    return ThreadPoolExecutor(max_workers=EVENT_WRITE_CONCURRENCY, thread_name_prefix="events")
