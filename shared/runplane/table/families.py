"""What a watch of a parent's children reads: the parent's state, and its children's changes.

A parent's children are found through the sparse ``ChangesByFamily`` index (``family_pk``, sorted
by ``updated_at``; ``runplane.table.records``), never by a Query of the run's partition, so the
cost of a watch's poll grows with what changed since its last read, not with the run's size:

- ``family_changes(since=None)``: every child of the parent (a new watch's first state);
- ``family_changes(since=t)``: the children written at ``t`` or later. The index is eventually
  consistent and the writers' clocks are not one clock, so a watch asks again from a little
  before its previous read (``CHANGE_OVERLAP``) and keeps, per child, only versions newer than
  the one it sent.

Index reads are eventually consistent (half a read unit per 4 KB); the parent's own item is read
with a GetItem.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from runplane.flyte.identifiers import ActionKey
from runplane.table.dynamo import projection, query_items
from runplane.table.records import (
    ACTION_STATE_ATTRIBUTES,
    FAMILY_INDEX_NAME,
    FAMILY_KEY,
    ActionRecord,
    family_key,
    format_time,
    item_key,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

# How far before its previous read a watch asks again: longer than the index's propagation
# (typically well under a second) plus the skew between writers' clocks (NTP: milliseconds).
CHANGE_OVERLAP = timedelta(seconds=3)


def action_state(
    client: DynamoDBClient, *, table_name: str, key: ActionKey, consistent: bool = True
) -> ActionRecord | None:
    """One action's state (``ACTION_STATE_ATTRIBUTES`` only), or None when it does not exist."""
    response = client.get_item(
        TableName=table_name, Key=item_key(key), ConsistentRead=consistent, **projection(ACTION_STATE_ATTRIBUTES)
    )
    item = response.get("Item")
    return ActionRecord.from_item(item) if item else None


def family_changes(
    client: DynamoDBClient, *, table_name: str, parent: ActionKey, since: datetime | None = None
) -> list[ActionRecord]:
    """The children of ``parent`` written at ``since`` or later (all of them without it), as
    partial records (``ACTION_STATE_ATTRIBUTES``): Query calls on the family index."""
    condition = f"{FAMILY_KEY} = :family"
    values = {":family": {"S": family_key(parent, parent.name)}}
    if since is not None:
        condition += " AND updated_at >= :since"
        values[":since"] = {"S": format_time(since)}
    items = query_items(
        client,
        TableName=table_name,
        IndexName=FAMILY_INDEX_NAME,
        KeyConditionExpression=condition,
        ExpressionAttributeValues=values,
    )
    return [ActionRecord.from_item(item) for item in items]
