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

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, cast

from runplane.flyte import phases
from runplane.flyte.identifiers import ActionKey, RunKey
from runplane.table.abort_cascade import EndResult, abort_all, end_expression
from runplane.table.dynamo import (
    batch_get,
    numbered_values,
    partition_condition,
    phase_in,
    placeholders,
    projection,
    put_if,
    query_items,
    update_if,
)
from runplane.table.events import put_events
from runplane.table.outcomes import (
    ACTION_STATE_PROJECTION,
    MAX_ITEM_BYTES,
    ActionNode,
    ActionState,
    ChildOutcome,
    ChildRefusal,
    CreateOutcome,
    RecordTooLarge,
    StatusUpdate,
    UpdateOutcome,
    item_size,
    write_units,
)
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
from runplane.table.run_index import query_run_index
from runplane.table.specs import SpecBucket, checked_item

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

    from runplane.aws.blobs import BlobStore

# The store's public face: its outcomes are imported from here by its callers.
__all__ = [
    "ACTION_STATE_PROJECTION",
    "MAX_ITEM_BYTES",
    "ActionNode",
    "ActionState",
    "ActionStore",
    "ChildOutcome",
    "ChildRefusal",
    "CreateOutcome",
    "EndResult",
    "RecordTooLarge",
    "StatusUpdate",
    "UpdateOutcome",
    "item_size",
    "write_units",
]


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
        self._specs = SpecBucket(blobs=blobs, spec_prefix=spec_prefix)

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
        items = self._batch_get(keys, consistent=consistent, **projection(attributes))
        records = (ActionRecord.from_item(item) for item in items)
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
        return batch_get(
            self.client,
            table_name=self.table_name,
            keys=[item_key(key) for key in dict.fromkeys(keys)],
            consistent=consistent,
            **projection,
        )

    def resolve_specs(self, record: ActionRecord) -> ActionRecord:
        """Load offloaded specs back into the record."""
        return self._specs.resolve(record)

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
        return [
            ActionNode(
                name=item["sk"]["S"][len(ACTION_SORT_PREFIX) :],
                parent=item["parent"]["S"] if "parent" in item else None,
                phase=int(item["phase"]["N"]),
            )
            for item in self._query_run(run, ACTION_SORT_PREFIX, ProjectionExpression="sk, parent, phase")
        ]

    def list_action_listings(self, run: RunKey) -> list[ActionRecord]:
        """Every action of a run with what a listing shows (``ACTION_LISTING_ATTRIBUTES``: no
        specs), read with one Query (paginated) of its partition: ListActions."""
        return self._query_actions_projected(run, ACTION_LISTING_ATTRIBUTES)

    def _query_actions_projected(self, run: RunKey, attributes: Sequence[str]) -> list[ActionRecord]:
        items = self._query_run(run, ACTION_SORT_PREFIX, **projection(attributes))
        return [ActionRecord.from_item(item) for item in items]

    def query_run_index(self, partition: str, **options: Any) -> tuple[list[dict[str, Any]], str | None]:
        """Up to ``want`` items of one run-index partition in order; ``options`` as
        ``runplane.table.run_index.query_run_index`` takes them (the index: the current one)."""
        return query_run_index(
            self.client, table_name=self.table_name, partition=partition, **{"index": RUN_INDEX_NAME, **options}
        )

    def _query_run(self, run: RunKey, sort_prefix: str, **query: Any) -> Iterator[StoredItem]:
        """Items of one run's partition under a sort-key prefix, read consistently: Query calls,
        paginated; ``query``: further Query parameters (a projection)."""
        return self.query_partition(run_partition_key(run.project, run.domain, run.name), sort_prefix, **query)

    def query_partition(self, partition: str, sort_prefix: str, **query: Any) -> Iterator[StoredItem]:
        """Items of one partition under a sort-key prefix (an empty prefix: the whole partition),
        read consistently: Query calls, paginated; ``query``: further Query parameters."""
        condition, values = partition_condition(partition, sort_prefix)
        return query_items(
            self.client,
            TableName=self.table_name,
            KeyConditionExpression=condition,
            ExpressionAttributeValues=values,
            ConsistentRead=True,
            **query,
        )

    # --- creates ----------------------------------------------------------------------------

    def create_action(self, record: ActionRecord) -> CreateOutcome:
        """Insert the record unless its key exists; a duplicate returns the stored record."""
        stored = self._specs.offload_specs(record)
        written = put_if(
            self.client,
            TableName=self.table_name,
            Item=checked_item(stored),
            ConditionExpression="attribute_not_exists(pk)",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
        if not written.applied:
            return CreateOutcome(created=False, record=self._existing(written.item, record.key))
        return CreateOutcome(created=True, record=record)

    def create_child(self, record: ActionRecord) -> ChildOutcome:
        """Insert a child while its parent exists and has not ended, atomically."""
        if record.parent is None:
            raise ValueError("create_child needs a record with a parent")
        parent_key = ActionKey(
            project=record.key.project, domain=record.key.domain, run=record.key.run, name=record.parent
        )
        stored = self._specs.offload_specs(record)
        terminal = sorted(phases.TERMINAL_PHASES)
        client = self.client
        try:
            client.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self.table_name,
                            "Item": checked_item(stored),
                            "ConditionExpression": "attribute_not_exists(pk)",
                            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                        }
                    },
                    {
                        "ConditionCheck": {
                            "TableName": self.table_name,
                            "Key": item_key(parent_key),
                            "ConditionExpression": f"attribute_exists(pk) AND NOT phase IN ({placeholders('t', terminal)})",
                            "ExpressionAttributeValues": numbered_values("t", terminal),
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
        how many were new (``runplane.table.events``)."""
        return put_events(self.client, table_name=self.table_name, events=events)

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

        same_attempt = phase_in("pred", phases.allowed_predecessors(update.phase), values)
        if update.attempts:
            final = phase_in("final", phases.FINAL_PHASES, values)
            guard = f"(attempts < :attempts AND NOT ({final})) OR (attempts = :attempts AND ({same_attempt}))"
        else:
            guard = same_attempt
        # No ``attribute_exists(pk)``: every branch of the guard compares an attribute every action
        # has, so it is already false for a missing one (which then returns no item).
        written = update_if(
            self.client,
            TableName=self.table_name,
            Key=item_key(key),
            UpdateExpression="SET " + ", ".join(assignments) + removals + " ADD version :one",
            ConditionExpression=guard,
            ExpressionAttributeValues=values,
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
        if written.applied:
            return UpdateOutcome(applied=True, phase=update.phase)
        if not written.item:
            return UpdateOutcome(applied=False, phase=None)
        found = ActionRecord.from_item(written.item)
        return UpdateOutcome(applied=False, phase=found.phase, found=found)

    def promote_to_running(self, key: ActionKey, *, now: datetime | None = None) -> bool:
        """RUNNING if the action has not got that far yet: a child was seen in the cluster, so its
        parent runs. Attempts and cache status are left alone (unlike docs/flyte-compat.md#q8-promotion-attempts), and an
        action already running or ended is not rewritten."""
        earlier = sorted(phases.ACTIVE_PHASES - {phases.RUNNING})
        return update_if(
            self.client,
            TableName=self.table_name,
            Key=item_key(key),
            UpdateExpression="SET phase = :running, updated_at = :now ADD version :one",
            ConditionExpression=f"attribute_exists(pk) AND phase IN ({placeholders('e', earlier)})",
            ExpressionAttributeValues={
                ":running": {"N": str(phases.RUNNING)},
                ":now": {"S": format_time(now or utcnow())},
                ":one": {"N": "1"},
                **numbered_values("e", earlier),
            },
        ).applied

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
        return update_if(
            self.client,
            TableName=self.table_name,
            Key=item_key(key),
            UpdateExpression=expression,
            ConditionExpression="abort_requested_at = :seen",
            ExpressionAttributeValues=values,
        ).applied

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
        """``abort_cascaded`` for many actions, in transactions (``runplane.table.abort_cascade``);
        returns how many were ended here."""
        return abort_all(
            self.client,
            table_name=self.table_name,
            keys=keys,
            reason=reason,
            end_one=lambda key: self.abort_cascaded(key, reason=reason),
        )

    def _end(self, key: ActionKey, *, phase: int, now: str, fields: dict[str, str]) -> EndResult:
        """Move an action that has not ended into a terminal phase, setting ``fields``."""
        written = update_if(
            self.client,
            TableName=self.table_name,
            **end_expression(key, phase=phase, now=now, fields=fields),
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
        if written.applied:
            return EndResult.ENDED
        return EndResult.ALREADY_ENDED if written.item else EndResult.MISSING

    # --- helpers ----------------------------------------------------------------------------

    def offload(self, data: bytes) -> str:
        """Store bytes in the bucket, content-addressed; returns their URI."""
        return self._specs.offload(data)

    def read_offloaded(self, uri: str) -> bytes:
        return self._specs.read(uri)

    def _existing(self, item: StoredItem | None, key: ActionKey) -> ActionRecord:
        if item:
            return self.resolve_specs(ActionRecord.from_item(item))
        record = self.get_action(key)
        if record is None:  # deleted between the failed condition and the read: practically never
            raise LookupError(f"action {key} vanished during a conditional write")
        return record
