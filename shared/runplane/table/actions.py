"""The DynamoDB data-access layer: every write is conditional, every read a GetItem or a Query.

The store speaks records (``runplane.table.records``) and answers with outcomes; the services above it
decide what those mean on the wire. Rules enforced here, by the writes themselves:

- creates never overwrite (``attribute_not_exists``); a duplicate returns the stored record;
- a child is written only while its parent exists and has not ended (one transaction);
- status updates pass the phase guard (``runplane.flyte.phases``) as a condition expression;
- an abort applies only to an action that has not ended;
- large specs go to the data bucket, so an item never nears DynamoDB's 400 KB limit, and every
  read resolves them again.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from functools import cached_property
from typing import TYPE_CHECKING, Any, NamedTuple, TypedDict, cast

from runplane.flyte import phases
from runplane.flyte.identifiers import ActionKey, RunKey
from runplane.table.records import (
    ACTION_LISTING_ATTRIBUTES,
    ACTION_SORT_PREFIX,
    ACTION_STATE_ATTRIBUTES,
    END_PHASE,
    EVENT_SORT_PREFIX,
    RUN_INDEX_NAME,
    ActionRecord,
    EventRecord,
    StoredItem,
    format_time,
    item_key,
    parse_time,
    returned_item,
    run_partition_key,
    utcnow,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import KeysAndAttributesUnionTypeDef

    from runplane.aws.blobs import BlobStore

# DynamoDB rejects items over 400 KB; stay clear of it so a record near the limit fails with a
# clear message instead of a ValidationException from the service.
MAX_ITEM_BYTES = 390 * 1024
# Specs above this go to the bucket. Writes are billed per KB of the *whole* item, and every
# status update rewrites the item, so a small item keeps an action's life cheap.
INLINE_SPEC_LIMIT = 16 * 1024
BATCH_GET_LIMIT = 100  # DynamoDB's maximum keys per BatchGetItem
BATCH_GET_ATTEMPTS = 5
_SPECS = ("action_spec", "run_spec")  # the serialized specs an item carries inline, deflated
TRANSACTION_LIMIT = 100  # DynamoDB's maximum actions per TransactWriteItems
# A cancelled transaction is sent again (without the items whose guard failed) this many times,
# pausing after a conflict, before its items go one by one.
TRANSACTION_ATTEMPTS = 4
TRANSACTION_BACKOFF_SECONDS = 0.05


class _GuardedUpdate(TypedDict):
    """One guarded UpdateItem's arguments but the table: for ``update_item`` and for transactions."""

    Key: dict[str, dict[str, str]]
    UpdateExpression: str
    ConditionExpression: str
    ExpressionAttributeValues: dict[str, dict[str, str]]


class RecordTooLarge(ValueError):
    """The record would exceed DynamoDB's item size limit."""


@dataclass(frozen=True)
class CreateOutcome:
    created: bool
    record: ActionRecord  # the stored record: the new one, or the one that already existed


class ChildRefusal(StrEnum):
    PARENT_MISSING = "parent_missing"
    PARENT_ENDED = "parent_ended"


@dataclass(frozen=True)
class ChildOutcome:
    created: bool
    record: ActionRecord | None = None  # the new child, or the one that already existed
    refusal: ChildRefusal | None = None
    parent_phase: int | None = None


@dataclass(frozen=True)
class StatusUpdate:
    phase: int
    attempts: int | None = None  # None keeps the stored attempt (docs/flyte-compat.md#q8-promotion-attempts)
    cache_status: int | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None  # only used when the phase is terminal
    # The action's error, as the data plane reports it for a failed attempt (kind is the
    # ErrorInfo.Kind name); written only when a message is given.
    error_kind: str = ""
    error_code: str = ""
    error_message: str = ""


@dataclass(frozen=True)
class UpdateOutcome:
    applied: bool
    # The stored phase after the call: the update's if applied, the one found otherwise (None: no
    # such action). An applied update returns nothing else (no ReturnValues: the item is not
    # sent back and parsed on every status write); a refused one returns the item it found.
    phase: int | None
    found: ActionRecord | None = None

    @property
    def missing(self) -> bool:
        return self.phase is None


class ActionNode(NamedTuple):
    """An action's place in its run's tree, and its phase (``ActionStore.list_action_tree``)."""

    name: str
    parent: str | None
    phase: int


class ActionState(NamedTuple):
    """What reconcile decides a stream record on (``ActionStore.get_action_states``): the action's
    current phase, and the abort request it has not carried out yet."""

    phase: int
    abort_requested_at: datetime | None


# What get_action_states reads of an item: its key (to match the answer to the request), the
# phase and a pending abort. moto, the local stand-in, serialises an answer attribute by attribute,
# so four attributes instead of an item's twenty are a quarter of its time.
ACTION_STATE_PROJECTION = "pk, sk, phase, abort_requested_at"


class EndResult(StrEnum):
    ENDED = "ended"
    ALREADY_ENDED = "already_ended"
    MISSING = "missing"


def item_size(item: StoredItem) -> int:
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


def write_units(item: StoredItem) -> int:
    """Write request units of one standard write of the item (1 per started KB)."""
    return max(1, -(-item_size(item) // 1024))


class ActionStore:
    def __init__(
        self,
        *,
        table_name: str,
        client: DynamoDBClient | None = None,
        blobs: BlobStore | None = None,
        spec_prefix: str = "",
    ) -> None:
        """``blobs`` and ``spec_prefix`` (``s3://bucket[/path]``) enable offloading large specs;
        without them a large spec is refused with ``RecordTooLarge``."""
        self.table_name = table_name
        self._client = client
        self._blobs = blobs
        self._spec_prefix = spec_prefix.rstrip("/")

    @cached_property
    def client(self) -> DynamoDBClient:
        if self._client is not None:
            return self._client
        from runplane.aws import http as aws_http

        return cast("DynamoDBClient", aws_http.dynamodb_client())  # botocore's calling convention, typed by its stubs

    # --- reads ------------------------------------------------------------------------------

    def get_action(self, key: ActionKey, *, resolve_specs: bool = True) -> ActionRecord | None:
        response = self.client.get_item(TableName=self.table_name, Key=item_key(key), ConsistentRead=True)
        item = response.get("Item")
        if not item:
            return None
        record = ActionRecord.from_item(item)
        return self.resolve_specs(record) if resolve_specs else record

    def get_actions(
        self, keys: list[ActionKey], *, attributes: Sequence[str] = (), consistent: bool = True
    ) -> dict[ActionKey, ActionRecord]:
        """Many actions in as few BatchGetItem calls as DynamoDB allows (100 keys each), specs not
        resolved; missing actions are absent from the result. With ``attributes``, only those are
        read (what travels and is parsed; DynamoDB bills the whole items all the same); without
        ``consistent``, the reads are eventually consistent (half the read units)."""
        names = {f"#a{i}": name for i, name in enumerate(attributes)}  # name, domain: reserved words
        projection = {"ProjectionExpression": ", ".join(names), "ExpressionAttributeNames": names} if names else {}
        records = (ActionRecord.from_item(item) for item in self._batch_get(keys, consistent=consistent, **projection))
        return {record.key: record for record in records}

    def get_action_states(self, keys: Sequence[ActionKey]) -> dict[ActionKey, ActionState]:
        """The current phase and pending abort request of many actions: strongly consistent
        BatchGetItem calls (100 keys each) projecting those and the key alone, a few bytes an
        action to send and parse (DynamoDB bills the whole items all the same). Missing actions
        are absent from the result."""
        wanted = {(k["pk"]["S"], k["sk"]["S"]): key for key in dict.fromkeys(keys) for k in (item_key(key),)}
        found: dict[ActionKey, ActionState] = {}
        for item in self._batch_get(keys, consistent=True, ProjectionExpression=ACTION_STATE_PROJECTION):
            phase, requested = item.get("phase"), item.get("abort_requested_at")
            found[wanted[(str(item["pk"]["S"]), str(item["sk"]["S"]))]] = ActionState(
                phase=int(str(phase["N"])) if phase else 0,  # as ActionRecord.from_item reads it
                abort_requested_at=parse_time(str(requested["S"])) if requested else None,
            )
        return found

    def _batch_get(self, keys: Sequence[ActionKey], *, consistent: bool, **projection: Any) -> Iterator[StoredItem]:
        """The stored items of ``keys`` (each once; missing ones skipped), 100 keys a BatchGetItem,
        unprocessed keys asked again with backoff; ``projection``: ProjectionExpression and its names."""
        unique = [item_key(key) for key in dict.fromkeys(keys)]
        for start in range(0, len(unique), BATCH_GET_LIMIT):
            batch = {"Keys": unique[start : start + BATCH_GET_LIMIT], "ConsistentRead": consistent, **projection}
            request: Mapping[str, KeysAndAttributesUnionTypeDef] = {
                self.table_name: cast("KeysAndAttributesUnionTypeDef", batch)
            }
            for attempt in range(BATCH_GET_ATTEMPTS):
                response = self.client.batch_get_item(RequestItems=request)
                yield from cast("list[StoredItem]", response.get("Responses", {}).get(self.table_name, []))
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    break
                time.sleep(0.05 * 2**attempt)  # throttled: back off, as the SDKs advise
            else:
                raise RuntimeError(f"BatchGetItem left keys unprocessed after {BATCH_GET_ATTEMPTS} attempts")

    def resolve_specs(self, record: ActionRecord) -> ActionRecord:
        """Load offloaded specs back into the record."""
        changes = {}
        if record.action_spec_uri and not record.action_spec:
            changes["action_spec"] = self._require_blobs().get(record.action_spec_uri)
        if record.run_spec_uri and not record.run_spec:
            changes["run_spec"] = self._require_blobs().get(record.run_spec_uri)
        return record.with_changes(**changes) if changes else record

    def list_events(self, key: ActionKey) -> list[EventRecord]:
        """One action's events, in (attempt, phase, version) order."""
        prefix = f"{EVENT_SORT_PREFIX}{key.name}#"
        return [EventRecord.from_item(item) for item in self._query_run(key.run_key, prefix)]

    def list_actions(self, run: RunKey) -> list[ActionRecord]:
        """All actions of a run, specs not resolved."""
        return [ActionRecord.from_item(item) for item in self._query_run(run, ACTION_SORT_PREFIX)]

    def list_action_states(self, run: RunKey) -> list[ActionRecord]:
        """Every action of a run, read with one Query (paginated) of its partition projecting only
        ``ACTION_STATE_ATTRIBUTES``: partial records (no specs, no times but the creation) for
        watches that poll a run. The projection trims what travels and is parsed, not the read
        units, which DynamoDB bills on the whole items."""
        return self._query_actions_projected(run, ACTION_STATE_ATTRIBUTES)

    def list_action_tree(self, run: RunKey) -> list[ActionNode]:
        """Every action of a run as (name, parent, phase), read with one Query (paginated) of its
        partition projecting those alone: what an abort cascade walks, a few bytes an action."""
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {
                ":pk": {"S": run_partition_key(run.project, run.domain, run.name)},
                ":prefix": {"S": ACTION_SORT_PREFIX},
            },
            "ProjectionExpression": "sk, parent, phase",
            "ConsistentRead": True,
        }
        nodes: list[ActionNode] = []
        while True:
            response = self.client.query(**kwargs)
            for item in response.get("Items", []):
                nodes.append(
                    ActionNode(
                        name=item["sk"]["S"][len(ACTION_SORT_PREFIX) :],
                        parent=item["parent"]["S"] if "parent" in item else None,
                        phase=int(item["phase"]["N"]),
                    )
                )
            if "LastEvaluatedKey" not in response:
                return nodes
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def list_action_listings(self, run: RunKey) -> list[ActionRecord]:
        """Every action of a run with what a listing shows (``ACTION_LISTING_ATTRIBUTES``: no
        specs), read with one Query (paginated) of its partition: ListActions."""
        return self._query_actions_projected(run, ACTION_LISTING_ATTRIBUTES)

    def _query_actions_projected(self, run: RunKey, attributes: Sequence[str]) -> list[ActionRecord]:
        names = {f"#a{i}": name for i, name in enumerate(attributes)}
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {
                ":pk": {"S": run_partition_key(run.project, run.domain, run.name)},
                ":prefix": {"S": ACTION_SORT_PREFIX},
            },
            "ProjectionExpression": ", ".join(names),
            "ExpressionAttributeNames": names,  # name, domain and others are reserved words
            "ConsistentRead": True,
        }
        records: list[ActionRecord] = []
        while True:
            response = self.client.query(**kwargs)
            records.extend(ActionRecord.from_item(item) for item in response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                return records
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def query_run_index(
        self,
        partition: str,
        *,
        ascending: bool,
        lower: str | None,
        upper: str | None,
        filter_expression: str | None,
        names: dict[str, str],
        values: dict[str, dict[str, str]],
        want: int,
        index: str = RUN_INDEX_NAME,
    ) -> list[dict[str, Any]]:
        """Up to ``want`` items of one run-index partition in order, within inclusive bounds on
        the index sort key; Query calls (paginated while a filter drops items), never a Scan.
        ``index``: the run index's name (``PREVIOUS_RUN_INDEX_NAME`` while a stack moves onto
        the current one)."""
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
            "TableName": self.table_name,
            "IndexName": index,
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": {**key_values, **values},
            "ScanIndexForward": ascending,
            "Limit": want,
        }
        if filter_expression:
            kwargs["FilterExpression"] = filter_expression
        if names:
            kwargs["ExpressionAttributeNames"] = names
        items: list[dict[str, Any]] = []
        while len(items) < want:
            response = self.client.query(**kwargs)
            items.extend(response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                break
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return items[:want]

    def _query_run(
        self, run: RunKey, sort_prefix: str, *, start: StoredItem | None = None, page_size: int | None = None
    ) -> Iterator[dict[str, Any]]:
        """Items of one run's partition under a sort-key prefix: Query calls, paginated."""
        return self.query_partition(
            run_partition_key(run.project, run.domain, run.name), sort_prefix, start=start, page_size=page_size
        )

    def query_partition(
        self, partition: str, sort_prefix: str, *, start: StoredItem | None = None, page_size: int | None = None
    ) -> Iterator[dict[str, Any]]:
        """Items of one partition under a sort-key prefix (an empty prefix: the whole partition;
        DynamoDB refuses an empty key value): Query calls, paginated."""
        condition, values = _partition_condition(partition, sort_prefix)
        while True:
            kwargs: dict[str, Any] = {"ExclusiveStartKey": start} if start else {}
            if page_size:
                kwargs["Limit"] = page_size
            response = self.client.query(
                TableName=self.table_name,
                KeyConditionExpression=condition,
                ExpressionAttributeValues=values,
                ConsistentRead=True,
                **kwargs,
            )
            yield from response.get("Items", [])
            start = response.get("LastEvaluatedKey")
            if not start:
                return

    # --- creates ----------------------------------------------------------------------------

    def create_action(self, record: ActionRecord) -> CreateOutcome:
        """Insert the record unless its key exists; a duplicate returns the stored record."""
        stored = self._offload_specs(record)
        client = self.client
        try:
            client.put_item(
                TableName=self.table_name,
                Item=self._checked_item(stored),
                ConditionExpression="attribute_not_exists(pk)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except client.exceptions.ConditionalCheckFailedException as exc:
            return CreateOutcome(created=False, record=self._existing(returned_item(exc.response), record.key))
        return CreateOutcome(created=True, record=record)

    def create_child(self, record: ActionRecord) -> ChildOutcome:
        """Insert a child while its parent exists and has not ended, atomically."""
        if record.parent is None:
            raise ValueError("create_child needs a record with a parent")
        parent_key = ActionKey(
            project=record.key.project, domain=record.key.domain, run=record.key.run, name=record.parent
        )
        stored = self._offload_specs(record)
        terminal = sorted(phases.TERMINAL_PHASES)
        client = self.client
        try:
            client.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self.table_name,
                            "Item": self._checked_item(stored),
                            "ConditionExpression": "attribute_not_exists(pk)",
                            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                        }
                    },
                    {
                        "ConditionCheck": {
                            "TableName": self.table_name,
                            "Key": item_key(parent_key),
                            "ConditionExpression": f"attribute_exists(pk) AND NOT phase IN ({_placeholders('t', terminal)})",
                            "ExpressionAttributeValues": _values("t", terminal),
                            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                        }
                    },
                ]
            )
        except client.exceptions.TransactionCanceledException as exc:
            reasons: Sequence[Mapping[str, object]] = exc.response.get("CancellationReasons", [{}, {}])
            child_reason, parent_reason = reasons[:2]
            if child_reason.get("Code") == "ConditionalCheckFailed":
                return ChildOutcome(created=False, record=self._existing(returned_item(child_reason), record.key))
            if parent_reason.get("Code") == "ConditionalCheckFailed":
                parent_item = returned_item(parent_reason)
                if not parent_item:
                    return ChildOutcome(created=False, refusal=ChildRefusal.PARENT_MISSING)
                return ChildOutcome(
                    created=False,
                    refusal=ChildRefusal.PARENT_ENDED,
                    parent_phase=int(parent_item["phase"]["N"]),
                )
            raise
        return ChildOutcome(created=True, record=record)

    def put_events(self, events: list[EventRecord]) -> int:
        """Store events; the first write of an (action, attempt, phase, version) wins. Returns
        how many were new."""
        client = self.client
        inserted = 0
        for event in events:
            try:
                client.put_item(
                    TableName=self.table_name,
                    Item=self._checked_item(event),
                    ConditionExpression="attribute_not_exists(sk)",
                )
                inserted += 1
            except client.exceptions.ConditionalCheckFailedException:
                pass
        return inserted

    # --- updates ----------------------------------------------------------------------------

    def update_status(self, key: ActionKey, update: StatusUpdate, *, now: datetime | None = None) -> UpdateOutcome:
        """Apply a status update if the phase guard allows it; a rejection is not an error."""
        now = now or utcnow()
        values: dict[str, dict[str, str]] = {
            ":phase": {"N": str(update.phase)},
            ":now": {"S": format_time(now)},
            ":one": {"N": "1"},
        }
        assignments = ["phase = :phase", "updated_at = :now"]
        if update.attempts:
            values[":attempts"] = {"N": str(update.attempts)}
            assignments.append("attempts = :attempts")
        if update.cache_status:
            values[":cache"] = {"N": str(update.cache_status)}
            assignments.append("cache_status = :cache")
        if update.start_time is not None:
            values[":start"] = {"S": format_time(update.start_time)}
            assignments.append("start_time = if_not_exists(start_time, :start)")
        if update.error_message:
            for name in ("error_kind", "error_code", "error_message"):
                if getattr(update, name):
                    values[f":{name}"] = {"S": getattr(update, name)}
                    assignments.append(f"{name} = :{name}")
        removals = ""
        if phases.is_terminal(update.phase):
            values[":end"] = {"S": format_time(update.end_time or now)}
            assignments.append("ended_at = if_not_exists(ended_at, :end)")
            if key.is_root:
                assignments.append(f"{END_PHASE} = :phase")  # what the run index lists
        elif update.attempts and key.is_root:
            removals = f" REMOVE {END_PHASE}"  # a retry leaves FAILED or TIMED_OUT (nothing if absent)

        same_attempt = _phase_in("pred", phases.allowed_predecessors(update.phase), values)
        if update.attempts:
            final = _phase_in("final", phases.FINAL_PHASES, values)
            guard = f"(attempts < :attempts AND NOT ({final})) OR (attempts = :attempts AND ({same_attempt}))"
        else:
            guard = same_attempt
        client = self.client
        try:
            # No ``attribute_exists(pk)``: every branch of the guard compares an attribute every
            # action has, so it is already false for a missing one (which then returns no item).
            client.update_item(
                TableName=self.table_name,
                Key=item_key(key),
                UpdateExpression="SET " + ", ".join(assignments) + removals + " ADD version :one",
                ConditionExpression=guard,
                ExpressionAttributeValues=values,
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except client.exceptions.ConditionalCheckFailedException as exc:
            item = returned_item(exc.response)
            if not item:
                return UpdateOutcome(applied=False, phase=None)
            found = ActionRecord.from_item(item)
            return UpdateOutcome(applied=False, phase=found.phase, found=found)
        return UpdateOutcome(applied=True, phase=update.phase)

    def promote_to_running(self, key: ActionKey, *, now: datetime | None = None) -> bool:
        """RUNNING if the action has not got that far yet: a child was seen in the cluster, so its
        parent runs. Attempts and cache status are left alone (unlike docs/flyte-compat.md#q8-promotion-attempts), and an
        action already running or ended is not rewritten."""
        earlier = sorted(phases.ACTIVE_PHASES - {phases.RUNNING})
        client = self.client
        try:
            client.update_item(
                TableName=self.table_name,
                Key=item_key(key),
                UpdateExpression="SET phase = :running, updated_at = :now ADD version :one",
                ConditionExpression=f"attribute_exists(pk) AND phase IN ({_placeholders('e', earlier)})",
                ExpressionAttributeValues={
                    ":running": {"N": str(phases.RUNNING)},
                    ":now": {"S": format_time(now or utcnow())},
                    ":one": {"N": "1"},
                    **_values("e", earlier),
                },
            )
        except client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def request_abort(self, key: ActionKey, *, reason: str, now: datetime | None = None) -> EndResult:
        """DB-first abort: ABORTED with the request recorded (reconcile then deletes the
        TaskAction), only if the action has not ended."""
        now_text = format_time(now or utcnow())
        return self._end(
            key, phase=phases.ABORTED, now=now_text, fields={"abort_requested_at": now_text, "abort_reason": reason}
        )

    def abort_cascaded(self, key: ActionKey, *, reason: str) -> EndResult:
        """ABORTED because an ancestor was: its TaskAction goes with the ancestor's, nothing to
        request."""
        return self._end(key, phase=phases.ABORTED, now=format_time(utcnow()), fields={"abort_reason": reason})

    def fail_action(self, key: ActionKey, *, message: str, kind: str = "KIND_SYSTEM") -> bool:
        """FAILED with an error, unless the action already ended."""
        fields = {"error_kind": kind, "error_message": message}
        return self._end(key, phase=phases.FAILED, now=format_time(utcnow()), fields=fields) is EndResult.ENDED

    def finish_abort(self, key: ActionKey, *, requested_at: datetime, error: str = "") -> bool:
        """Clear a handled abort request (only the one seen: a newer request stays); an abort
        that could not be carried out leaves its error on the action."""
        values: dict[str, dict[str, str]] = {":seen": {"S": format_time(requested_at)}, ":one": {"N": "1"}}
        expression = "REMOVE abort_requested_at ADD version :one"
        if error:
            values[":error"] = {"S": error}
            expression = "SET abort_error = :error " + expression
        client = self.client
        try:
            client.update_item(
                TableName=self.table_name,
                Key=item_key(key),
                UpdateExpression=expression,
                ConditionExpression="abort_requested_at = :seen",
                ExpressionAttributeValues=values,
            )
        except client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def count_attempt(self, key: ActionKey, *, counter: str) -> int:
        """Add one to an attempt counter of the action and return it (reconcile's retry bound)."""
        client = self.client
        response = client.update_item(
            TableName=self.table_name,
            Key=item_key(key),
            UpdateExpression="ADD #counter :one",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeNames={"#counter": counter},
            ExpressionAttributeValues={":one": {"N": "1"}},
            ReturnValues="UPDATED_NEW",
        )
        return int(response["Attributes"][counter]["N"])

    def abort_cascaded_many(self, keys: Sequence[ActionKey], *, reason: str) -> int:
        """``abort_cascaded`` for many actions, in transactions of up to ``TRANSACTION_LIMIT``
        guarded updates (a 1,000-action subtree in ten calls, not a thousand); returns how many
        were ended here.

        Each update keeps its guard, so an action that has ended stays as it is. One ended
        action cancels its whole transaction, so a cancelled transaction is sent again without
        the actions whose guard failed (they ended, or are gone) and, after a conflict with
        another write, after a pause; after ``TRANSACTION_ATTEMPTS`` the rest go one by one.
        Transactional writes are billed twice a plain write's units: an abort is rare, and a
        run's abort waits for this."""
        unique = list(dict.fromkeys(keys))
        ended = 0
        for start in range(0, len(unique), TRANSACTION_LIMIT):
            ended += self._end_together(unique[start : start + TRANSACTION_LIMIT], reason=reason)
        return ended

    def _end_together(self, keys: list[ActionKey], *, reason: str) -> int:
        now = format_time(utcnow())
        client = self.client
        for attempt in range(TRANSACTION_ATTEMPTS):
            if not keys:
                return 0
            updates = [
                self._end_expression(key, phase=phases.ABORTED, now=now, fields={"abort_reason": reason})
                for key in keys
            ]
            try:
                client.transact_write_items(
                    TransactItems=[
                        {
                            "Update": {
                                "TableName": self.table_name,
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
        return sum(self.abort_cascaded(key, reason=reason) is EndResult.ENDED for key in keys)

    def _end(self, key: ActionKey, *, phase: int, now: str, fields: dict[str, str]) -> EndResult:
        """Move an action that has not ended into a terminal phase, setting ``fields``."""
        client = self.client
        try:
            client.update_item(
                TableName=self.table_name,
                **self._end_expression(key, phase=phase, now=now, fields=fields),
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except client.exceptions.ConditionalCheckFailedException as exc:
            return EndResult.ALREADY_ENDED if exc.response.get("Item") else EndResult.MISSING
        return EndResult.ENDED

    @staticmethod
    def _end_expression(key: ActionKey, *, phase: int, now: str, fields: dict[str, str]) -> _GuardedUpdate:
        """The guarded update that ends an action (``_end``), for UpdateItem or a transaction. The
        guard names the phases that have not ended (a missing item has none of them, so it fails
        the guard too, and returns no item). ``fields`` are set by name: none is a reserved word."""
        values: dict[str, dict[str, str]] = {f":f{i}": {"S": value} for i, value in enumerate(fields.values())}
        assignments = ", ".join(f"{name} = :f{i}" for i, name in enumerate(fields))
        if key.is_root:
            assignments += f", {END_PHASE} = :phase"  # what the run index lists
        guard = _phase_in("open", phases.ALL_PHASES - phases.TERMINAL_PHASES, values)
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

    # --- helpers ----------------------------------------------------------------------------

    def offload(self, data: bytes) -> str:
        """Store bytes in the bucket, content-addressed; returns their URI."""
        if not self._spec_prefix:
            raise RecordTooLarge(f"{len(data)} bytes is over the inline limit and this store has no bucket")
        uri = f"{self._spec_prefix}/specs/{hashlib.sha256(data).hexdigest()}.pb"
        self._require_blobs().put(uri, data)  # content-addressed: a retry rewrites the same bytes
        return uri

    def read_offloaded(self, uri: str) -> bytes:
        return self._require_blobs().get(uri)

    def _offload_specs(self, record: ActionRecord) -> ActionRecord:
        """The record as stored: specs over the inline limit replaced by content-addressed URIs."""
        changes: dict[str, Any] = {}
        for field, uri_field in (("action_spec", "action_spec_uri"), ("run_spec", "run_spec_uri")):
            data = getattr(record, field)
            if len(data) > INLINE_SPEC_LIMIT and self._spec_prefix:
                changes[field] = b""
                changes[uri_field] = self.offload(data)
        return record.with_changes(**changes) if changes else record

    def _checked_item(self, record: ActionRecord | EventRecord) -> dict[str, dict[str, Any]]:
        item = record.to_item()
        size = item_size(item)
        if isinstance(record, ActionRecord):
            # The limit is on the record, specs counted as they are, not as well as they deflate:
            # whether a run fits must not depend on how repetitive its spec happens to be.
            size += sum(len(getattr(record, name)) - len(item[name]["B"]) for name in _SPECS if name in item)
        if size > MAX_ITEM_BYTES:
            raise RecordTooLarge(f"{record.key} is {size} bytes, over the {MAX_ITEM_BYTES}-byte limit")
        return item

    def _existing(self, item: StoredItem | None, key: ActionKey) -> ActionRecord:
        if item:
            return self.resolve_specs(ActionRecord.from_item(item))
        record = self.get_action(key)
        if record is None:  # deleted between the failed condition and the read: practically never
            raise LookupError(f"action {key} vanished during a conditional write")
        return record

    def _require_blobs(self) -> BlobStore:
        if self._blobs is None:
            raise RuntimeError("this store has no data bucket to resolve offloaded specs")
        return self._blobs


def _partition_condition(partition: str, sort_prefix: str) -> tuple[str, dict[str, Any]]:
    """The key condition of a Query of one partition, under a sort-key prefix if one is given."""
    if not sort_prefix:
        return "pk = :pk", {":pk": {"S": partition}}
    return "pk = :pk AND begins_with(sk, :prefix)", {":pk": {"S": partition}, ":prefix": {"S": sort_prefix}}


def _phase_in(prefix: str, allowed: Iterable[int], values: dict[str, dict[str, str]]) -> str:
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
        values.update(_values(prefix, rest))
        clauses.append(f"phase IN ({_placeholders(prefix, rest)})")
    return " OR ".join(clauses)


def _placeholders(prefix: str, numbers: Sequence[int]) -> str:
    return ", ".join(f":{prefix}{i}" for i in range(len(numbers)))


def _values(prefix: str, numbers: Sequence[int]) -> dict[str, dict[str, str]]:
    return {f":{prefix}{i}": {"N": str(n)} for i, n in enumerate(numbers)}
