"""Ending many actions at once: the abort cascade's DynamoDB side.

An abort of a run marks every action below the aborted one ABORTED before reconcile deletes the
root's TaskAction (functions/reconcile/reconciler.py ``carry_out_abort``), so a subtree of 1,000
actions must end in a few calls, not a thousand: transactions of up to ``TRANSACTION_LIMIT``
guarded updates. Each update keeps the guard of a single end (``end_expression``), so an action
that has ended stays as it is. One ended action cancels its whole transaction, so a cancelled
transaction is sent again without the actions whose guard failed (they ended, or are gone) and,
after a conflict with another write, after a pause; after ``TRANSACTION_ATTEMPTS`` the rest go one
by one. Transactional writes are billed twice a plain write's units: an abort is rare, and a
run's abort waits for this.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from enum import StrEnum
from typing import TYPE_CHECKING, TypedDict

from runplane.flyte import phases
from runplane.flyte.identifiers import ActionKey
from runplane.table.dynamo import phase_in
from runplane.table.records import END_PHASE, format_time, item_key, utcnow

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

TRANSACTION_LIMIT = 100  # DynamoDB's maximum actions per TransactWriteItems
# A cancelled transaction is sent again (without the items whose guard failed) this many times,
# pausing after a conflict, before its items go one by one.
TRANSACTION_ATTEMPTS = 4
TRANSACTION_BACKOFF_SECONDS = 0.05


class EndResult(StrEnum):
    ENDED = "ended"
    ALREADY_ENDED = "already_ended"
    MISSING = "missing"


class GuardedUpdate(TypedDict):
    """One guarded UpdateItem's arguments but the table: for ``update_item`` and for transactions."""

    Key: dict[str, dict[str, str]]
    UpdateExpression: str
    ConditionExpression: str
    ExpressionAttributeValues: dict[str, dict[str, str]]


def end_expression(key: ActionKey, *, phase: int, now: str, fields: dict[str, str]) -> GuardedUpdate:
    """The guarded update that ends an action, for UpdateItem or a transaction. The guard names
    the phases that have not ended (a missing item has none of them, so it fails the guard too,
    and returns no item). ``fields`` are set by name: none is a reserved word."""
    values: dict[str, dict[str, str]] = {f":f{i}": {"S": value} for i, value in enumerate(fields.values())}
    assignments = ", ".join(f"{name} = :f{i}" for i, name in enumerate(fields))
    if key.is_root:
        assignments += f", {END_PHASE} = :phase"  # what the run index lists
    guard = phase_in("open", phases.ALL_PHASES - phases.TERMINAL_PHASES, values)
    return {
        "Key": item_key(key),
        "UpdateExpression": (
            f"SET phase = :phase, {assignments}, ended_at = if_not_exists(ended_at, :now), updated_at = :now "
            "ADD version :one"
        ),
        "ConditionExpression": guard,
        "ExpressionAttributeValues": {
            ":phase": {"N": str(phase)},
            ":now": {"S": now},
            ":one": {"N": "1"},
            **values,
        },
    }


def abort_all(
    client: DynamoDBClient,
    *,
    table_name: str,
    keys: Sequence[ActionKey],
    reason: str,
    end_one: Callable[[ActionKey], EndResult],
) -> int:
    """ABORTED, with ``reason``, for every action of ``keys`` that has not ended, in transactions;
    ``end_one`` ends one action alone (the fallback). Returns how many were ended here."""
    unique = list(dict.fromkeys(keys))
    ended = 0
    for start in range(0, len(unique), TRANSACTION_LIMIT):
        batch = unique[start : start + TRANSACTION_LIMIT]
        ended += _end_together(client, table_name=table_name, keys=batch, reason=reason, end_one=end_one)
    return ended


def _end_together(
    client: DynamoDBClient,
    *,
    table_name: str,
    keys: list[ActionKey],
    reason: str,
    end_one: Callable[[ActionKey], EndResult],
) -> int:
    now = format_time(utcnow())
    for attempt in range(TRANSACTION_ATTEMPTS):
        if not keys:
            return 0
        updates = [end_expression(key, phase=phases.ABORTED, now=now, fields={"abort_reason": reason}) for key in keys]
        try:
            client.transact_write_items(
                TransactItems=[
                    {
                        "Update": {
                            "TableName": table_name,
                            "Key": update["Key"],
                            "UpdateExpression": update["UpdateExpression"],
                            "ConditionExpression": update["ConditionExpression"],
                            "ExpressionAttributeValues": update["ExpressionAttributeValues"],
                        }
                    }
                    for update in updates
                ]
            )
        except client.exceptions.TransactionCanceledException as exc:
            reasons: Sequence[Mapping[str, object]] = exc.response.get("CancellationReasons", [])
            codes = [str(reason.get("Code", "")) for reason in reasons]
            if len(codes) != len(keys):  # no reasons to go by: try the rest one by one
                break
            keys = [key for key, code in zip(keys, codes, strict=True) if code != "ConditionalCheckFailed"]
            if any(code not in ("None", "ConditionalCheckFailed") for code in codes):
                time.sleep(TRANSACTION_BACKOFF_SECONDS * 2**attempt)  # a conflict, throttling
            continue
        return len(keys)
    return sum(end_one(key) is EndResult.ENDED for key in keys)
