"""The DynamoDB idioms every store in this package is built from, written once.

- ``query_items``: a Query, page after page (``LastEvaluatedKey``), as one stream of items;
- ``batch_get``: BatchGetItem in chunks of 100, unprocessed keys asked again;
- ``put_if`` / ``update_if``: a conditional write whose failed condition is an answer, not an
  error (``Conditional``: applied or not, and the stored item when the write asked for it);
- ``phase_in`` and ``numbered_values``: the condition expressions the phase guard is made of.

Every store holds its client and table name; these take them as arguments, so the actions, the
registry and the mirror's leases speak to DynamoDB in one way.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from runplane.table.records import StoredItem, returned_item

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import KeysAndAttributesUnionTypeDef

BATCH_GET_LIMIT = 100  # DynamoDB's maximum keys per BatchGetItem
# Unprocessed keys (throttling) are asked again this many times, backing off, before giving up.
BATCH_GET_ATTEMPTS = 5
BATCH_GET_BACKOFF_SECONDS = 0.05


@dataclass(frozen=True)
class Conditional:
    """The outcome of a conditional write."""

    applied: bool
    # the item as the write left it (``ReturnValues``) when applied; as it was stored
    # (``ReturnValuesOnConditionCheckFailure="ALL_OLD"``) when refused, if it exists
    item: StoredItem | None = None


def query_items(client: DynamoDBClient, *, want: int | None = None, **query: Any) -> Iterator[StoredItem]:
    """The items of a Query (``query``: its parameters), every page of it in order; with
    ``want``, stops once that many were read (a filtered Query may need several pages)."""
    read = 0
    while True:
        response = client.query(**query)
        items = cast("list[StoredItem]", response.get("Items", []))
        yield from items
        read += len(items)
        start = response.get("LastEvaluatedKey")
        if not start or (want is not None and read >= want):
            return
        query = {**query, "ExclusiveStartKey": start}


def batch_get(
    client: DynamoDBClient, *, table_name: str, keys: Sequence[StoredItem], consistent: bool, **projection: Any
) -> Iterator[StoredItem]:
    """The stored items of ``keys`` (missing ones skipped), 100 keys a BatchGetItem, unprocessed
    keys asked again with backoff; ``projection``: ProjectionExpression and its names."""
    for start in range(0, len(keys), BATCH_GET_LIMIT):
        batch = {"Keys": list(keys[start : start + BATCH_GET_LIMIT]), "ConsistentRead": consistent, **projection}
        request: Mapping[str, KeysAndAttributesUnionTypeDef] = {
            table_name: cast("KeysAndAttributesUnionTypeDef", batch)
        }
        for attempt in range(BATCH_GET_ATTEMPTS):
            response = client.batch_get_item(RequestItems=request)
            yield from cast("list[StoredItem]", response.get("Responses", {}).get(table_name, []))
            request = response.get("UnprocessedKeys") or {}
            if not request:
                break
            time.sleep(BATCH_GET_BACKOFF_SECONDS * 2**attempt)  # throttled: back off, as the SDKs advise
        else:
            raise RuntimeError(f"BatchGetItem left keys unprocessed after {BATCH_GET_ATTEMPTS} attempts")


def put_if(client: DynamoDBClient, **put: Any) -> Conditional:
    """PutItem under ``put["ConditionExpression"]``; a failed condition is ``applied=False``."""
    try:
        client.put_item(**put)
    except client.exceptions.ConditionalCheckFailedException as exc:
        return Conditional(applied=False, item=returned_item(exc.response))
    return Conditional(applied=True)


def update_if(client: DynamoDBClient, **update: Any) -> Conditional:
    """UpdateItem under ``update["ConditionExpression"]``; a failed condition is ``applied=False``."""
    try:
        response = client.update_item(**update)
    except client.exceptions.ConditionalCheckFailedException as exc:
        return Conditional(applied=False, item=returned_item(exc.response))
    return Conditional(applied=True, item=cast("StoredItem | None", response.get("Attributes")))


def phase_in(prefix: str, allowed: Iterable[int], values: dict[str, dict[str, str]]) -> str:
    """A condition that ``phase`` is one of ``allowed``, as short as it can be (the guard's sets are
    mostly "every open phase up to this one"): the run of phases from 0 becomes ``<=``, the rest
    an ``IN`` list; the placeholders it uses are added to ``values``. DynamoDB does not care, but
    an emulator that parses every expression in Python (moto) pays for each term."""
    ordered = sorted(set(allowed))
    top = -1
    while top + 1 in ordered:
        top += 1
    rest = [number for number in ordered if number > top]
    clauses = []
    if top >= 0:
        values[f":{prefix}top"] = {"N": str(top)}
        clauses.append(f"phase <= :{prefix}top")
    if len(rest) == 1:
        values[f":{prefix}0"] = {"N": str(rest[0])}
        clauses.append(f"phase = :{prefix}0")
    elif rest:
        values.update(numbered_values(prefix, rest))
        clauses.append(f"phase IN ({placeholders(prefix, rest)})")
    return " OR ".join(clauses)


def placeholders(prefix: str, numbers: Sequence[int]) -> str:
    return ", ".join(f":{prefix}{i}" for i in range(len(numbers)))


def numbered_values(prefix: str, numbers: Sequence[int]) -> dict[str, dict[str, str]]:
    return {f":{prefix}{i}": {"N": str(n)} for i, n in enumerate(numbers)}


def partition_condition(partition: str, sort_prefix: str) -> tuple[str, dict[str, Any]]:
    """The key condition of a Query of one partition, under a sort-key prefix if one is given
    (an empty prefix: the whole partition; DynamoDB refuses an empty key value)."""
    if not sort_prefix:
        return "pk = :pk", {":pk": {"S": partition}}
    return "pk = :pk AND begins_with(sk, :prefix)", {":pk": {"S": partition}, ":prefix": {"S": sort_prefix}}


def projection(attributes: Sequence[str]) -> dict[str, Any]:
    """ProjectionExpression of ``attributes`` by placeholder names (``name``, ``domain`` and
    others are reserved words); nothing for no attributes."""
    names = {f"#a{i}": name for i, name in enumerate(attributes)}
    return {"ProjectionExpression": ", ".join(names), "ExpressionAttributeNames": names} if names else {}
