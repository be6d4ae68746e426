"""The DynamoDB data access of the registry: the items of deployed tasks, triggers and projects.

Part of the data-access layer, beside ``runplane.table.actions`` (the runs and their actions). Tasks
(``runplane.table.tasks``), triggers (``functions/task_registry/triggers.py``) and projects
(``runplane.table.projects``) build and read their items and go through here for every call; they
never touch the client.

Registry items live in the actions table, in partitions of their own (``TASKS#…``,
``TRIGGERS#…``, ``PROJECTS``, never a run's). The calls are the few the registry needs: an insert that never
overwrites (a duplicate answers the stored item), a replace guarded by the stored ``revision``
(optimistic locking), an update of an item that exists, a consistent read, a delete, and a
Query of one partition under a sort-key prefix (or all of it).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from runplane.table.dynamo import put_if, update_if

if TYPE_CHECKING:
    from runplane.table.actions import ActionStore

Item = dict[str, Any]  # a DynamoDB item in the low-level client's attribute-value form


class RegistryItems:
    """Registry items on the action store's table and client."""

    def __init__(self, store: ActionStore) -> None:
        self._store = store

    def insert(self, item: Mapping[str, Any]) -> Item | None:
        """Put the item unless its key exists: ``None`` when it was written, else the stored item."""
        written = put_if(
            self._store.client,
            TableName=self._store.table_name,
            Item=item,
            ConditionExpression="attribute_not_exists(pk)",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
        return None if written.applied else dict(written.item or {})

    def put_revision(self, item: Mapping[str, Any], *, seen_revision: int | None) -> bool:
        """Write the item if the stored one is still at ``seen_revision`` (``None``: if there is
        none yet). False when another write came first: nothing was written."""
        if seen_revision is None:
            condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(pk)"}
        else:
            condition = {
                "ConditionExpression": "revision = :seen",
                "ExpressionAttributeValues": {":seen": {"N": str(seen_revision)}},
            }
        return put_if(self._store.client, TableName=self._store.table_name, Item=item, **condition).applied

    def get(self, key: Mapping[str, Any]) -> Item | None:
        """The item of the key, read consistently, or ``None``."""
        response = self._store.client.get_item(TableName=self._store.table_name, Key=key, ConsistentRead=True)
        item: Item | None = response.get("Item")
        return item

    def delete(self, key: Mapping[str, Any]) -> None:
        """Delete the item of the key; deleting a missing one is no error."""
        self._store.client.delete_item(TableName=self._store.table_name, Key=key)

    def query(self, partition: str, sort_prefix: str) -> Iterator[Item]:
        """The items of one partition whose sort key starts with the prefix (Query calls, paged)."""
        return cast("Iterator[Item]", self._store.query_partition(partition, sort_prefix))

    def update_existing(self, key: Mapping[str, Any], *, set_values: Mapping[str, Any], remove: Sequence[str]) -> bool:
        """Set and remove attributes of the item of the key if it exists (one conditional
        UpdateItem): False when there is no such item, and nothing was written."""
        names = {f"#s{i}": name for i, name in enumerate(set_values)}
        names.update({f"#r{i}": name for i, name in enumerate(remove)})
        values = {f":s{i}": value for i, value in enumerate(set_values.values())}
        expression = "SET " + ", ".join(f"#s{i} = :s{i}" for i in range(len(set_values)))
        if remove:
            expression += " REMOVE " + ", ".join(f"#r{i}" for i in range(len(remove)))
        return update_if(
            self._store.client,
            TableName=self._store.table_name,
            Key=key,
            UpdateExpression=expression,
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        ).applied
