"""Leases and checkpoints of the status mirror's watchers: one item per shard in the actions table.

``pk = MIRROR#<shard>``, ``sk = LEASE``. The item says who watches the shard (``holder``), until
when the lease holds unless renewed (``expires_at``, epoch milliseconds: short, renewed with every
checkpoint, so a watcher that dies frees its shard within seconds), when the holder plans to stop
(``planned_end``: an invocation arriving shortly before then waits and takes over, one arriving
earlier leaves), and where the last watcher stopped: the
``resource_version`` to resume the Kubernetes watch from, and the resources it still had to
mirror (``open``: name -> ``project/domain/run/action``, zlib-compressed JSON), which a relist
after 410 Gone diffs against, as an informer diffs its cache.

Every write is conditional: taking the lease succeeds only if it is free, expired or already
ours; checkpoints and releases succeed only while we hold it. A watcher whose checkpoint fails
has lost its lease and stops, so two watchers never both believe they own a shard for long, and
overlap is harmless anyway (every status write is the guarded, idempotent update).

Stream records of these items are not actions; reconcile's event filter drops them.
"""

from __future__ import annotations

import json
import time
import zlib
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, cast

from runplane.table.dynamo import update_if
from runplane.table.records import StoredItem

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

LEASE_PARTITION_PREFIX = "MIRROR#"
LEASE_SORT_KEY = "LEASE"
# The open set is saved only up to this size (about 6,000 names compressed); past it the next
# watcher relists instead of resuming, which is always correct, only slower.
MAX_OPEN_BYTES = 300 * 1024


@dataclass(frozen=True)
class Checkpoint:
    resource_version: str = ""
    open: dict[str, str] = field(default_factory=dict)  # resource name -> project/domain/run/action


@dataclass(frozen=True)
class LeaseState:
    acquired: bool
    holder: str = ""
    expires_at_ms: int = 0
    planned_end_ms: int = 0
    checkpoint: Checkpoint = field(default_factory=Checkpoint)


def _now_ms() -> int:
    return int(time.time() * 1000)


class MirrorLeases:
    def __init__(self, *, table_name: str, client: DynamoDBClient | None = None) -> None:
        self.table_name = table_name
        self._client = client

    @cached_property
    def client(self) -> DynamoDBClient:
        if self._client is not None:
            return self._client
        from runplane.aws import http as aws_http

        return cast("DynamoDBClient", aws_http.dynamodb_client())

    def acquire(self, shard: int, *, holder: str, seconds: float, planned_seconds: float = 0.0) -> LeaseState:
        """Take the shard's lease for ``seconds`` if it is free, expired or ours, planning to watch
        for ``planned_seconds``; returns the checkpoint to resume from, or who holds it and until
        when they plan to."""
        now = _now_ms()
        written = update_if(
            self.client,
            TableName=self.table_name,
            Key=_key(shard),
            UpdateExpression="SET holder = :me, expires_at = :until, acquired_at = :now, planned_end = :end",
            ConditionExpression="attribute_not_exists(pk) OR expires_at < :now OR holder = :me",
            ExpressionAttributeValues={
                ":me": {"S": holder},
                ":until": {"N": str(now + int(seconds * 1000))},
                ":now": {"N": str(now)},
                ":end": {"N": str(now + int(planned_seconds * 1000))},
            },
            ReturnValues="ALL_NEW",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
        item = written.item or {}
        if not written.applied:
            return LeaseState(
                acquired=False,
                holder=item.get("holder", {}).get("S", ""),
                expires_at_ms=int(item.get("expires_at", {}).get("N", "0")),
                planned_end_ms=int(item.get("planned_end", {}).get("N", "0")),
            )
        return LeaseState(
            acquired=True, holder=holder, expires_at_ms=int(item["expires_at"]["N"]), checkpoint=_checkpoint(item)
        )

    def checkpoint(self, shard: int, *, holder: str, seconds: float, checkpoint: Checkpoint) -> bool:
        """Save where the watch is and extend the lease; False if the lease is no longer ours."""
        values: dict[str, Any] = {
            ":me": {"S": holder},
            ":until": {"N": str(_now_ms() + int(seconds * 1000))},
            ":rv": {"S": checkpoint.resource_version or "-"},
        }
        assignments = ["expires_at = :until", "resource_version = :rv"]
        encoded = zlib.compress(json.dumps(checkpoint.open, separators=(",", ":")).encode())
        if len(encoded) <= MAX_OPEN_BYTES:
            values[":open"] = {"B": encoded}
            assignments.append("open_resources = :open")
        else:
            values[":rv"] = {"S": "-"}  # too many to remember: the next watcher relists
        return self._conditional(shard, "SET " + ", ".join(assignments), values)

    def release(self, shard: int, *, holder: str) -> bool:
        """Let the next invocation take over at once; the checkpoint stays."""
        return self._conditional(shard, "SET expires_at = :now", {":me": {"S": holder}, ":now": {"N": str(_now_ms())}})

    def active(self, shard: int) -> bool:
        """Whether a watcher holds the shard's lease now (eventually consistent: a cheap hint)."""
        item = self.client.get_item(TableName=self.table_name, Key=_key(shard)).get("Item")
        if not item:
            return False
        return int(item["expires_at"]["N"]) > _now_ms()

    def _conditional(self, shard: int, expression: str, values: dict[str, Any]) -> bool:
        return update_if(
            self.client,
            TableName=self.table_name,
            Key=_key(shard),
            UpdateExpression=expression,
            ConditionExpression="holder = :me",
            ExpressionAttributeValues=values,
        ).applied


def _key(shard: int) -> dict[str, dict[str, str]]:
    return {"pk": {"S": f"{LEASE_PARTITION_PREFIX}{shard}"}, "sk": {"S": LEASE_SORT_KEY}}


def _checkpoint(item: StoredItem) -> Checkpoint:
    version = item.get("resource_version", {}).get("S", "")
    raw = item.get("open_resources", {}).get("B")
    if version in ("", "-") or raw is None:
        return Checkpoint()
    return Checkpoint(resource_version=version, open=json.loads(zlib.decompress(bytes(raw))))
