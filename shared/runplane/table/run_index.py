"""ListRuns' reads of the sparse, sharded run index (``RunsByCreatedAtV2``, docs/load-model.md).

One partition of the index is one shard of a project's (or a task's, a trigger's) runs, sorted by
``<created_at>#<run>``; a page reads each shard with Query calls within inclusive bounds on that
sort key, never a Scan, and ``functions/read_runs/run_listing.py`` merges the shards.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


def query_run_index(
    client: DynamoDBClient,
    *,
    table_name: str,
    index: str,
    partition: str,
    ascending: bool,
    lower: str | None,
    upper: str | None,
    filter_expression: str | None,
    names: dict[str, str],
    values: dict[str, dict[str, str]],
    want: int,
    max_scanned: int | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """Up to ``want`` items of one run-index partition in order, within inclusive bounds on the
    index sort key; Query calls (paginated while a filter drops items), never a Scan. ``index``:
    the run index's name (``PREVIOUS_RUN_INDEX_NAME`` while a stack moves onto the current one).
    ``max_scanned``: a filter that matches little stops after reading about that many entries;
    the second value is then the sort key read up to (everything up to it was considered), else
    None."""
    condition = "run_index_pk = :partition"
    key_values: dict[str, dict[str, str]] = {":partition": {"S": partition}}
    if lower and upper:
        condition += " AND run_index_sk BETWEEN :lower AND :upper"
    elif lower:
        condition += " AND run_index_sk >= :lower"
    elif upper:
        condition += " AND run_index_sk <= :upper"
    if lower:
        key_values[":lower"] = {"S": lower}
    if upper:
        key_values[":upper"] = {"S": upper}
    kwargs: dict[str, Any] = {
        "TableName": table_name,
        "IndexName": index,
        "KeyConditionExpression": condition,
        "ExpressionAttributeValues": {**key_values, **values},
        "ScanIndexForward": ascending,
        "Limit": want if max_scanned is None else min(want, max_scanned),
    }
    if filter_expression:
        kwargs["FilterExpression"] = filter_expression
    if names:
        kwargs["ExpressionAttributeNames"] = names
    items: list[dict[str, Any]] = []
    scanned = 0
    while True:
        response = client.query(**kwargs)
        items.extend(cast("list[dict[str, Any]]", response.get("Items", [])))
        scanned += int(response.get("ScannedCount", 0))
        start = response.get("LastEvaluatedKey")
        if not start or len(items) >= want:
            return items[:want], None
        if max_scanned is not None and scanned >= max_scanned:
            return items, str(start["run_index_sk"]["S"])
        kwargs["ExclusiveStartKey"] = start
