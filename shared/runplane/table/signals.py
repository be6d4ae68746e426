"""A condition action's signal on its item: the value, who sent it and when, written once.

``SignalEvent`` (update_action) writes ``signal_value`` (a serialized core.Literal),
``signalled_by`` and ``signalled_at`` in one conditional UpdateItem: only on a condition action
that has not ended and has no signal yet. The write's stream record is what reconcile relays to the
condition's TaskAction status (``signalValue``, ``signalledBy``, ``signalledAt``, as Flyte's
actions service writes them), and the executor then resolves the condition (Paused -> Signaled).
A retry of the same value is success (the write is idempotent); another value is refused.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from runplane.errors import FailedPrecondition, NotFound
from runplane.flyte import phases
from runplane.flyte.identifiers import ActionKey
from runplane.table.dynamo import phase_in, update_if
from runplane.table.records import ACTION_TYPE_CONDITION, format_time, item_key

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

OPEN_PHASES = sorted(phases.ALL_PHASES - phases.TERMINAL_PHASES)  # a signal resolves a condition not ended


def record_signal(
    client: DynamoDBClient, *, table_name: str, key: ActionKey, value: bytes, signalled_by: str, now: datetime
) -> None:
    """Write the signal once; NotFound / FailedPrecondition as Flyte's actions service refuses."""
    values: dict[str, dict[str, object]] = {
        ":v": {"B": value},
        ":by": {"S": signalled_by or "-"},
        ":at": {"S": format_time(now)},
        ":cond": {"N": str(ACTION_TYPE_CONDITION)},
    }
    open_phase = phase_in("p", OPEN_PHASES, values)  # type: ignore[arg-type]  # str values are AttributeValues
    written = update_if(
        client,
        TableName=table_name,
        Key=item_key(key),
        UpdateExpression="SET signal_value = :v, signalled_by = :by, signalled_at = :at",
        ConditionExpression=f"attribute_exists(pk) AND action_type = :cond AND attribute_not_exists(signal_value) AND ({open_phase})",
        ExpressionAttributeValues=values,
        ReturnValuesOnConditionCheckFailure="ALL_OLD",
    )
    if written.applied:
        return
    item = written.item
    if not item:
        raise NotFound(f"condition action {key.name} of run {key.run} not found")
    if int(item.get("action_type", {}).get("N", "0")) != ACTION_TYPE_CONDITION:
        raise FailedPrecondition(f"action {key.name} is not a condition")
    stored = item.get("signal_value", {}).get("B")
    if stored is not None:
        if bytes(stored) == value:
            return  # the same signal again: a retry
        raise FailedPrecondition(f"condition {key.name} was already signalled with a different value")
    raise FailedPrecondition(f"condition {key.name} already completed")
