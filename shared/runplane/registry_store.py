"""The DynamoDB data access of the registry: the items of deployed tasks and of triggers.

Part of the data-access layer, beside ``runplane.store`` (the runs and their actions). Tasks
(``runplane.tasks``) and triggers (``functions/task_registry/triggers.py``) build and read their
items and go through here for every call; they never touch the client.

Registry items live in the actions table, in partitions of their own (``TASKS#…``,
``TRIGGERS#…``, never a run's). The calls are the few the registry needs: an insert that never
overwrites (a duplicate answers the stored item), a replace guarded by the stored ``revision``
(optimistic locking), a consistent read, a delete, and a Query of one partition under a
sort-key prefix.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runplane.store import ActionStore

Item = dict[str, Any]  # a DynamoDB item in the low-level client's attribute-value form


class RegistryItems:
    """Registry items on the action store's table and client."""

    def __init__(self, store: ActionStore) -> None:
        self._store = store

    def insert(self, item: Mapping[str, Any]) -> Item | None:
        """Put the item unless its key exists: ``None`` when it was written, else the stored item."""
        client = self._store.client
        try:
            client.put_item(
                TableName=self._store.table_name,
                Item=item,
                ConditionExpression="attribute_not_exists(pk)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except client.exceptions.ConditionalCheckFailedException as exc:
            stored: Item = exc.response["Item"]  # type: ignore[typeddict-item]  # ALL_OLD: always there
            return stored
        return None

    def put_revision(self, item: Mapping[str, Any], *, seen_revision: int | None) -> bool:
        """Write the item if the stored one is still at ``seen_revision`` (``None``: if there is
        none yet). False when another write came first: nothing was written."""
        client = self._store.client
        try:
            if seen_revision is None:
                client.put_item(
                    TableName=self._store.table_name, Item=item, ConditionExpression="attribute_not_exists(pk)"
                )
            else:
                client.put_item(
                    TableName=self._store.table_name,
                    Item=item,
                    ConditionExpression="revision = :seen",
                    ExpressionAttributeValues={":seen": {"N": str(seen_revision)}},
                )
        except client.exceptions.ConditionalCheckFailedException:
            return False
        return True

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
        items: Iterator[Item] = self._store.query_partition(partition, sort_prefix)
        return items
