"""The task cache on the actions table: what Flyte's cache service keeps in Postgres.

One partition per cache key and scope, ``pk = CACHE#<project>#<domain>#<key>``, two items in it:

- ``sk = OUTPUT``: the cached output (``output_uri``: the outputs of the attempt that populated it,
  ``metadata``: the cacheservice Metadata message, serialized; ``last_updated`` in epoch ms);
- ``sk = RESERVATION``: who populates the entry right now (``owner``, ``expires_at`` in epoch ms,
  ``heartbeat_seconds``), for ``cache_serializable`` tasks.

Every write is one conditional call: a reservation is taken if it is free, expired or already the
caller's (the same UpdateItem extends it: the heartbeat), a release deletes only the caller's, a
put that names an owner is refused while someone else holds a live reservation (and writes
nothing), a put without ``overwrite`` never replaces a live entry.

Both items carry ``ttl`` (epoch seconds), the table's TimeToLive attribute: an entry is deleted
``entry_ttl_seconds`` after it was written (template.yaml's CacheEntryTtlDays), a reservation some
minutes after it expired. DynamoDB deletes expired items within days, not at once, so reads treat
an item past its ``ttl`` as gone.

Stream records of these items are not actions; reconcile's event filter (sort keys ``A#``) drops them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, cast

from runplane.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from runplane.table.dynamo import Conditional, put_if, update_if
from runplane.table.records import StoredItem

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

CACHE_PARTITION_PREFIX = "CACHE#"
OUTPUT_SORT_KEY = "OUTPUT"
RESERVATION_SORT_KEY = "RESERVATION"
TTL_ATTRIBUTE = "ttl"  # template.yaml: the table's TimeToLiveSpecification
# DynamoDB keys are at most 2,048 bytes; Flyte's keys are hashes (well under 200 characters).
MAX_KEY_LENGTH = 1024
MAX_OWNER_LENGTH = 512
MAX_URI_LENGTH = 4096
# Flyte's cache service defaults: a reservation is extended by at most 10 s a heartbeat, and lives
# three heartbeats, so an owner that misses two is taken over.
MAX_HEARTBEAT_SECONDS = 10.0
HEARTBEAT_GRACE_MULTIPLIER = 3
# An expired reservation stays readable (who held it) for this long before TTL deletes it.
RESERVATION_TTL_MARGIN_SECONDS = 3600
DEFAULT_ENTRY_TTL_SECONDS = 30 * 24 * 3600  # template.yaml's CacheEntryTtlDays default


@dataclass(frozen=True)
class CacheScope:
    org: str
    project: str
    domain: str

    def partition(self, key: str) -> str:
        return f"{CACHE_PARTITION_PREFIX}{self.project}#{self.domain}#{key}"


@dataclass(frozen=True)
class CachedOutput:
    output_uri: str
    metadata: bytes  # a serialized flyteidl2.cacheservice.Metadata
    last_updated_ms: int


@dataclass(frozen=True)
class Reservation:
    owner: str
    expires_at_ms: int
    heartbeat_seconds: float


def _now_ms() -> int:
    return int(time.time() * 1000)


class CacheStore:
    def __init__(
        self,
        *,
        table_name: str,
        client: DynamoDBClient | None = None,
        entry_ttl_seconds: int = DEFAULT_ENTRY_TTL_SECONDS,
    ) -> None:
        self.table_name = table_name
        self.entry_ttl_seconds = entry_ttl_seconds
        self._client = client

    @cached_property
    def client(self) -> DynamoDBClient:
        if self._client is not None:
            return self._client
        from runplane.aws import http as aws_http

        return cast("DynamoDBClient", aws_http.dynamodb_client())

    # --- entries ------------------------------------------------------------------------------

    def get(self, scope: CacheScope, key: str) -> CachedOutput:
        """The live entry of ``key``; NotFound if there is none (or only an expired one)."""
        _check_key(key)
        item = self.client.get_item(
            TableName=self.table_name, Key=_key(scope, key, OUTPUT_SORT_KEY), ConsistentRead=True
        ).get("Item")
        now_ms = _now_ms()
        if not item or _expired(item, now_ms):
            raise NotFound(f"cache entry {key!r} not found")
        return CachedOutput(
            output_uri=item["output_uri"]["S"],
            metadata=bytes(item["metadata"]["B"]) if "metadata" in item else b"",
            last_updated_ms=int(item["last_updated"]["N"]),
        )

    def put(
        self,
        scope: CacheScope,
        key: str,
        *,
        output_uri: str,
        metadata: bytes,
        overwrite: bool = False,
        max_age_seconds: float | None = None,
        owner: str = "",
    ) -> None:
        """Store the entry. Without ``overwrite`` a live entry younger than ``max_age_seconds`` is
        AlreadyExists (Flyte's executor counts that as populated); with ``owner``, a live
        reservation of someone else is FailedPrecondition. Either refusal writes nothing."""
        _check_key(key)
        if not output_uri or len(output_uri) > MAX_URI_LENGTH:
            raise InvalidArgument("base_request.output.output_uri is required (at most 4096 characters)")
        if len(owner) > MAX_OWNER_LENGTH:
            raise InvalidArgument(f"the owner id is longer than {MAX_OWNER_LENGTH} characters")
        now_ms = _now_ms()
        item: dict[str, Any] = {
            **_key(scope, key, OUTPUT_SORT_KEY),
            "output_uri": {"S": output_uri},
            "metadata": {"B": metadata},
            "last_updated": {"N": str(now_ms)},
            TTL_ATTRIBUTE: {"N": str(now_ms // 1000 + self.entry_ttl_seconds)},
        }
        condition, values = "", {":nows": {"N": str(now_ms // 1000)}}
        if not overwrite:
            condition = "attribute_not_exists(pk) OR #ttl < :nows"
            if max_age_seconds is not None and max_age_seconds > 0:
                values[":oldest"] = {"N": str(now_ms - int(max_age_seconds * 1000))}
                condition += " OR last_updated < :oldest"
        if owner:
            self._put_as_owner(scope, key, item=item, owner=owner, condition=condition, values=values, now_ms=now_ms)
            return
        if not condition:
            self.client.put_item(TableName=self.table_name, Item=item)
            return
        written = put_if(
            self.client,
            TableName=self.table_name,
            Item=item,
            ConditionExpression=condition,
            ExpressionAttributeNames={"#ttl": TTL_ATTRIBUTE},
            ExpressionAttributeValues=values,
        )
        if not written.applied:
            raise AlreadyExists(f"cache entry {key!r} already exists")

    def _put_as_owner(
        self,
        scope: CacheScope,
        key: str,
        *,
        item: dict[str, Any],
        owner: str,
        condition: str,
        values: dict[str, Any],
        now_ms: int,
    ) -> None:
        """The put and a check of the reservation, in one transaction: both or neither."""
        check_values = {":me": {"S": owner}, ":nowms": {"N": str(now_ms)}}
        put: dict[str, Any] = {"TableName": self.table_name, "Item": item}
        if condition:
            put.update(
                ConditionExpression=condition,
                ExpressionAttributeNames={"#ttl": TTL_ATTRIBUTE},
                ExpressionAttributeValues=values,
            )
        client = self.client
        try:
            client.transact_write_items(
                TransactItems=[
                    {
                        "ConditionCheck": {
                            "TableName": self.table_name,
                            "Key": _key(scope, key, RESERVATION_SORT_KEY),
                            "ConditionExpression": "attribute_not_exists(pk) OR #owner = :me OR expires_at < :nowms",
                            "ExpressionAttributeNames": {"#owner": "owner"},
                            "ExpressionAttributeValues": check_values,
                        }
                    },
                    {"Put": cast("Any", put)},
                ]
            )
        except client.exceptions.TransactionCanceledException as exc:
            reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
            if reasons and reasons[0] == "ConditionalCheckFailed":
                raise FailedPrecondition(f"cache key {key!r} is reserved by another owner") from None
            if len(reasons) > 1 and reasons[1] == "ConditionalCheckFailed":
                raise AlreadyExists(f"cache entry {key!r} already exists") from None
            raise

    def delete(self, scope: CacheScope, key: str) -> None:
        _check_key(key)
        client = self.client
        try:
            client.delete_item(
                TableName=self.table_name,
                Key=_key(scope, key, OUTPUT_SORT_KEY),
                ConditionExpression="attribute_exists(pk)",
            )
        except client.exceptions.ConditionalCheckFailedException:
            raise NotFound(f"cache entry {key!r} not found") from None

    # --- reservations ---------------------------------------------------------------------------

    def get_or_extend_reservation(
        self, scope: CacheScope, key: str, *, owner: str, heartbeat_seconds: float | None
    ) -> Reservation:
        """Take or extend the reservation if it is free, expired or ``owner``'s; otherwise the
        current holder's reservation (the caller waits for its entry)."""
        _check_key(key)
        if not owner or len(owner) > MAX_OWNER_LENGTH:
            raise InvalidArgument("base_request.owner_id is required (at most 512 characters)")
        heartbeat = MAX_HEARTBEAT_SECONDS
        if heartbeat_seconds is not None and 0 < heartbeat_seconds < heartbeat:
            heartbeat = heartbeat_seconds
        now_ms = _now_ms()
        expires_ms = now_ms + int(heartbeat * HEARTBEAT_GRACE_MULTIPLIER * 1000)
        written: Conditional = update_if(
            self.client,
            TableName=self.table_name,
            Key=_key(scope, key, RESERVATION_SORT_KEY),
            UpdateExpression="SET #owner = :me, expires_at = :until, heartbeat_seconds = :beat, #ttl = :ttl",
            ConditionExpression="attribute_not_exists(pk) OR #owner = :me OR expires_at < :now",
            ExpressionAttributeNames={"#owner": "owner", "#ttl": TTL_ATTRIBUTE},
            ExpressionAttributeValues={
                ":me": {"S": owner},
                ":until": {"N": str(expires_ms)},
                ":now": {"N": str(now_ms)},
                ":beat": {"N": str(heartbeat)},
                ":ttl": {"N": str(expires_ms // 1000 + RESERVATION_TTL_MARGIN_SECONDS)},
            },
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
        if written.applied:
            return Reservation(owner=owner, expires_at_ms=expires_ms, heartbeat_seconds=heartbeat)
        return _reservation(written.item or {})

    def release_reservation(self, scope: CacheScope, key: str, *, owner: str) -> None:
        """Delete the reservation if it is ``owner``'s; anything else is already released."""
        _check_key(key)
        if not owner or len(owner) > MAX_OWNER_LENGTH:
            raise InvalidArgument("base_request.owner_id is required (at most 512 characters)")
        client = self.client
        try:
            client.delete_item(
                TableName=self.table_name,
                Key=_key(scope, key, RESERVATION_SORT_KEY),
                ConditionExpression="#owner = :me",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues={":me": {"S": owner}},
            )
        except client.exceptions.ConditionalCheckFailedException:
            return


def _check_key(key: str) -> None:
    if not key:
        raise InvalidArgument("base_request.key is required")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidArgument(f"base_request.key is longer than {MAX_KEY_LENGTH} characters")


def _key(scope: CacheScope, key: str, sort_key: str) -> dict[str, Any]:
    return {"pk": {"S": scope.partition(key)}, "sk": {"S": sort_key}}


def _expired(item: StoredItem, now_ms: int) -> bool:
    ttl = item.get(TTL_ATTRIBUTE, {}).get("N")
    return ttl is not None and int(ttl) < now_ms // 1000


def _reservation(item: StoredItem) -> Reservation:
    return Reservation(
        owner=item.get("owner", {}).get("S", ""),
        expires_at_ms=int(item.get("expires_at", {}).get("N", "0")),
        heartbeat_seconds=float(item.get("heartbeat_seconds", {}).get("N", "0")),
    )
