"""Make the cluster match the table, one stream record at a time.

Every record is handled idempotently: the stream delivers at least once, and after a failed
record Lambda redelivers the rest of the batch too. Creating a TaskAction that already exists for
the same action is success; one that exists for a *different* action (two runs of one name in
different projects share the namespace, Flyte quirk Q9) is never silently accepted: the action is
marked FAILED with the reason.

Handled so far: a new root task action becomes its TaskAction. Other records are skipped with a
log line (children, updates and aborts come with the action lifecycle).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from flyteidl2.workflow.run_definition_pb2 import ActionType

from functions.reconcile.cluster import AlreadyExists, ResourceRejected, TaskActionClient
from functions.reconcile.taskaction import build_taskaction, identity_of
from runplane import phases
from runplane.records import ACTION_SORT_PREFIX, ActionRecord
from runplane.store import ActionStore

logger = logging.getLogger(__name__)


class Outcome(StrEnum):
    CREATED = "created"
    ALREADY_PRESENT = "already_present"
    NAME_COLLISION = "name_collision"
    REJECTED = "rejected"
    SKIPPED = "skipped"


class ClusterRaceError(RuntimeError):
    """The resource vanished between a 409 and the read that followed; retried by the stream."""


@dataclass(frozen=True)
class ActionChange:
    """One stream record about an item of the table."""

    event_name: str  # INSERT | MODIFY | REMOVE
    sort_key: str
    new: ActionRecord | None
    old: ActionRecord | None

    @classmethod
    def from_stream_record(cls, record: dict[str, Any]) -> ActionChange:
        change = record["dynamodb"]
        sort_key = change.get("Keys", {}).get("sk", {}).get("S", "")
        is_action = sort_key.startswith(ACTION_SORT_PREFIX)
        new_image = change.get("NewImage")
        old_image = change.get("OldImage")
        return cls(
            event_name=record["eventName"],
            sort_key=sort_key,
            new=ActionRecord.from_item(new_image) if is_action and new_image else None,
            old=ActionRecord.from_item(old_image) if is_action and old_image else None,
        )


class Reconciler:
    def __init__(self, *, cluster: TaskActionClient, store: ActionStore) -> None:
        self._cluster = cluster
        self._store = store

    def handle(self, change: ActionChange) -> Outcome:
        record = change.new
        if change.event_name != "INSERT" or record is None:
            return self._skip(change, "not a new action")
        if not record.is_root:
            return self._skip(change, "child actions are not materialised yet")
        if record.action_type != ActionType.ACTION_TYPE_TASK:
            return self._skip(change, f"action type {ActionType.Name(record.action_type)} has no TaskAction")
        if not record.needs_taskaction:
            return self._skip(change, "recorded from the cluster: its TaskAction exists already")
        if phases.is_terminal(record.phase):
            return self._skip(change, "action already ended")
        return self.ensure_taskaction(record)

    def ensure_taskaction(self, record: ActionRecord) -> Outcome:
        record = self._store.resolve_specs(record)  # a large spec lives in the data bucket
        body = build_taskaction(record, namespace=self._cluster.namespace)
        name = body["metadata"]["name"]
        try:
            self._cluster.create(body)
        except AlreadyExists:
            existing = self._cluster.get(name)
            if existing is None:
                raise ClusterRaceError(f"TaskAction {name} answered 409 but is gone") from None
            if identity_of(existing) == identity_of(body):
                logger.info("TaskAction already present", extra={"taskaction": name, "action": str(record.key)})
                return Outcome.ALREADY_PRESENT
            owner = "/".join(identity_of(existing))
            self._fail(record, f"TaskAction {name} already belongs to action {owner}; run names must be unique per namespace")
            return Outcome.NAME_COLLISION
        except ResourceRejected as exc:
            self._fail(record, f"the cluster rejected TaskAction {name}: {exc}")
            return Outcome.REJECTED
        logger.info("TaskAction created", extra={"taskaction": name, "action": str(record.key)})
        return Outcome.CREATED

    def _fail(self, record: ActionRecord, message: str) -> None:
        logger.error(message, extra={"action": str(record.key)})
        self._store.fail_action(record.key, message=message)

    @staticmethod
    def _skip(change: ActionChange, reason: str) -> Outcome:
        logger.info(
            "record skipped",
            extra={"event": change.event_name, "sort_key": change.sort_key, "reason": reason},
        )
        return Outcome.SKIPPED
