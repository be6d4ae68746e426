"""The DynamoDB data-access layer: every write is conditional, every read a GetItem or a Query.

The store speaks records (``runplane.records``) and raises its own small set of exceptions; the
services above it decide what those mean on the wire.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from runplane import phases
from runplane.identifiers import ActionKey
from runplane.records import ActionRecord, format_time, item_key, utcnow

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

# DynamoDB rejects items over 400 KB; stay clear of it so a spec near the limit fails with a
# clear message instead of a ValidationException from the service.
MAX_ITEM_BYTES = 390 * 1024


class RecordTooLarge(ValueError):
    """The record would exceed DynamoDB's item size limit."""


@dataclass(frozen=True)
class CreateOutcome:
    created: bool
    record: ActionRecord  # the stored record: the new one, or the one that already existed


def item_size(item: dict[str, dict[str, Any]]) -> int:
    """DynamoDB's item size: attribute names plus values (numbers counted generously)."""
    size = 0
    for name, value in item.items():
        size += len(name.encode())
        ((kind, raw),) = value.items()
        if kind == "S":
            size += len(raw.encode())
        elif kind == "B":
            size += len(raw)
        elif kind == "N":
            size += len(raw) // 2 + 2
        else:
            size += 1
    return size


class ActionStore:
    def __init__(self, *, table_name: str, client: DynamoDBClient | None = None) -> None:
        self.table_name = table_name
        self._client = client

    @cached_property
    def client(self) -> DynamoDBClient:
        if self._client is not None:
            return self._client
        import boto3
        from botocore.config import Config

        return boto3.client(
            "dynamodb",
            config=Config(retries={"mode": "standard", "max_attempts": 4}, connect_timeout=3, read_timeout=10),
        )

    def get_action(self, key: ActionKey) -> ActionRecord | None:
        response = self.client.get_item(TableName=self.table_name, Key=item_key(key), ConsistentRead=True)
        item = response.get("Item")
        return ActionRecord.from_item(item) if item else None

    def create_action(self, record: ActionRecord) -> CreateOutcome:
        """Insert the record unless its key exists; a duplicate returns the stored record."""
        item = record.to_item()
        size = item_size(item)
        if size > MAX_ITEM_BYTES:
            raise RecordTooLarge(f"action {record.key} is {size} bytes, over the {MAX_ITEM_BYTES}-byte limit")
        client = self.client
        try:
            client.put_item(
                TableName=self.table_name,
                Item=item,
                ConditionExpression="attribute_not_exists(pk)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except client.exceptions.ConditionalCheckFailedException as exc:
            existing = exc.response.get("Item") or self._require(record.key)
            if isinstance(existing, ActionRecord):
                return CreateOutcome(created=False, record=existing)
            return CreateOutcome(created=False, record=ActionRecord.from_item(existing))
        return CreateOutcome(created=True, record=record)

    def fail_action(self, key: ActionKey, *, message: str, kind: str = "KIND_SYSTEM") -> bool:
        """Move a not-yet-terminal action to FAILED with an error; False if it already ended."""
        now = format_time(utcnow())
        terminal = sorted(phases.TERMINAL_PHASES)
        client = self.client
        try:
            client.update_item(
                TableName=self.table_name,
                Key=item_key(key),
                UpdateExpression=(
                    "SET phase = :failed, error_kind = :kind, error_message = :message, "
                    "ended_at = if_not_exists(ended_at, :now), updated_at = :now ADD version :one"
                ),
                ConditionExpression="attribute_exists(pk) AND NOT phase IN (" + ", ".join(
                    f":t{i}" for i in range(len(terminal))
                ) + ")",
                ExpressionAttributeValues={
                    ":failed": {"N": str(phases.FAILED)},
                    ":kind": {"S": kind},
                    ":message": {"S": message},
                    ":now": {"S": now},
                    ":one": {"N": "1"},
                    **{f":t{i}": {"N": str(phase)} for i, phase in enumerate(terminal)},
                },
            )
        except client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def _require(self, key: ActionKey) -> ActionRecord:
        record = self.get_action(key)
        if record is None:  # deleted between the failed condition and the read: practically never
            raise LookupError(f"action {key} vanished during a conditional write")
        return record
