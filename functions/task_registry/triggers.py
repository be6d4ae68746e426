"""Triggers: their items (the system of record) and their EventBridge schedules (the clock).

Items: ``pk = TRIGGERS#<project>#<domain>``, ``sk = <task name>#<trigger name>``, with the
serialized TriggerSpec and TriggerAutomationSpec, ``revision`` (bumped on every change; a deploy
naming a revision applies only if it is still the latest: optimistic locking) and ``active``.

Schedules: one per trigger in its own schedule group, named from a hash of the trigger (names are
limited to 64 characters), targeting create_run with the tick payload, a retry policy and a
dead-letter queue for ticks Scheduler could not deliver (a failure inside create_run is retried by
Lambda and lands in create_run's on-failure queue). Deactivating disables the schedule; deleting
deletes both.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from runplane.table.actions import ActionStore
from runplane.table.records import _AttributeReader, format_time, parse_time, utcnow
from runplane.table.registry import RegistryItems

SCHEDULED_TIME = "<aws.scheduler.scheduled-time>"  # Scheduler fills it in per tick


@dataclass(kw_only=True)
class TriggerRecord:
    project: str
    domain: str
    task_name: str
    name: str
    spec: bytes  # serialized flyteidl2.trigger.TriggerSpec
    automation_spec: bytes  # serialized flyteidl2.task.TriggerAutomationSpec
    task_version: str
    revision: int = 1
    active: bool = True
    updated_at: datetime = field(default_factory=utcnow)  # every change
    deployed_at: datetime | None = None  # the last deploy (DeployTrigger); None: as updated_at

    @property
    def schedule_name(self) -> str:
        digest = hashlib.sha256(f"{self.project}/{self.domain}/{self.task_name}/{self.name}".encode()).hexdigest()
        return f"flyte-{digest[:40]}"

    def key(self) -> dict[str, dict[str, str]]:
        return {"pk": {"S": f"TRIGGERS#{self.project}#{self.domain}"}, "sk": {"S": f"{self.task_name}#{self.name}"}}

    def to_item(self) -> dict[str, dict[str, Any]]:
        return {
            **self.key(),
            "project": {"S": self.project},
            "domain": {"S": self.domain},
            "task_name": {"S": self.task_name},
            "name": {"S": self.name},
            "spec": {"B": self.spec},
            "automation_spec": {"B": self.automation_spec},
            "task_version": {"S": self.task_version},
            "revision": {"N": str(self.revision)},
            "active": {"BOOL": self.active},
            "updated_at": {"S": format_time(self.updated_at)},
            "deployed_at": {"S": format_time(self.deployed_at or self.updated_at)},
        }

    @classmethod
    def from_item(cls, item: dict[str, dict[str, Any]]) -> TriggerRecord:
        get = _AttributeReader(item)
        return cls(
            project=get.string("project"),
            domain=get.string("domain"),
            task_name=get.string("task_name"),
            name=get.string("name"),
            spec=get.binary("spec"),
            automation_spec=get.binary("automation_spec"),
            task_version=get.string("task_version"),
            revision=get.number("revision"),
            active=item.get("active", {}).get("BOOL", True),
            updated_at=parse_time(get.string("updated_at")),
            deployed_at=parse_time(get.string("deployed_at")) if "deployed_at" in item else None,
        )


class StaleRevision(Exception):
    """A write named a revision that is no longer the latest."""


class TriggerStore:
    """Trigger items; every DynamoDB call goes through the data-access layer (``runplane.table.registry``)."""

    def __init__(self, store: ActionStore) -> None:
        self._items = RegistryItems(store)

    def put(self, record: TriggerRecord, *, expected_revision: int | None) -> TriggerRecord:
        """Create (revision 1) or replace (revision + 1); ``expected_revision`` locks optimistically."""
        current = self.get(project=record.project, domain=record.domain, task_name=record.task_name, name=record.name)
        if expected_revision and (current is None or current.revision != expected_revision):
            raise StaleRevision(
                f"revision {expected_revision} is not the latest ({current.revision if current else 'none'})"
            )
        now = utcnow()
        new = TriggerRecord(
            **{
                **record.__dict__,
                "revision": (current.revision + 1) if current else 1,
                "updated_at": now,
                "deployed_at": now,
            }
        )
        self._conditional_put(new, seen_revision=current.revision if current else None)
        return new

    def set_active(self, record: TriggerRecord, active: bool) -> TriggerRecord:
        new = TriggerRecord(
            **{**record.__dict__, "active": active, "revision": record.revision + 1, "updated_at": utcnow()}
        )
        self._conditional_put(new, seen_revision=record.revision)
        return new

    def delete(self, record: TriggerRecord) -> None:
        self._items.delete(record.key())

    def get(self, *, project: str, domain: str, task_name: str, name: str) -> TriggerRecord | None:
        probe = TriggerRecord(
            project=project,
            domain=domain,
            task_name=task_name,
            name=name,
            spec=b"",
            automation_spec=b"",
            task_version="",
        )
        item = self._items.get(probe.key())
        return TriggerRecord.from_item(item) if item is not None else None

    def list(self, *, project: str, domain: str, task_name: str | None = None) -> list[TriggerRecord]:
        prefix = f"{task_name}#" if task_name else ""
        return [TriggerRecord.from_item(i) for i in self._items.query(f"TRIGGERS#{project}#{domain}", prefix)]

    def _conditional_put(self, record: TriggerRecord, *, seen_revision: int | None) -> None:
        if not self._items.put_revision(record.to_item(), seen_revision=seen_revision):
            raise StaleRevision("the trigger changed concurrently")


@dataclass(frozen=True)
class ScheduleTarget:
    function_arn: str  # create_run
    role_arn: str  # the role Scheduler assumes: may invoke create_run, nothing else
    dead_letter_arn: str
    group: str


class Schedules:
    """EventBridge Scheduler, one schedule per trigger."""

    def __init__(self, target: ScheduleTarget, client: Any = None) -> None:
        self._target = target
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            from runplane.aws.clients import client

            self._client = client("scheduler")
        return self._client

    def put(self, record: TriggerRecord, *, expression: str, timezone: str, start: datetime | None) -> None:
        payload = {
            "flyteTrigger": {
                "project": record.project,
                "domain": record.domain,
                "name": record.name,
                "taskName": record.task_name,
                "taskVersion": record.task_version,
                "revision": record.revision,
            },
            "scheduledTime": SCHEDULED_TIME,
        }
        arguments: dict[str, Any] = {
            "Name": record.schedule_name,
            "GroupName": self._target.group,
            "ScheduleExpression": expression,
            "ScheduleExpressionTimezone": timezone,
            "FlexibleTimeWindow": {"Mode": "OFF"},  # on the tick, as Flyte's scheduler
            "State": "ENABLED" if record.active else "DISABLED",
            "Description": f"{record.project}/{record.domain}/{record.task_name}/{record.name}",
            "Target": {
                "Arn": self._target.function_arn,
                "RoleArn": self._target.role_arn,
                "Input": json.dumps(payload),
                "RetryPolicy": {"MaximumRetryAttempts": 3, "MaximumEventAgeInSeconds": 3600},
                "DeadLetterConfig": {"Arn": self._target.dead_letter_arn},
            },
        }
        if start is not None:
            arguments["StartDate"] = start
        try:
            self.client.update_schedule(**arguments)
        except self.client.exceptions.ResourceNotFoundException:
            self.client.create_schedule(**arguments)

    def delete(self, record: TriggerRecord) -> None:
        with contextlib.suppress(self.client.exceptions.ResourceNotFoundException):
            self.client.delete_schedule(Name=record.schedule_name, GroupName=self._target.group)

    def get(self, record: TriggerRecord) -> dict[str, Any] | None:
        try:
            return self.client.get_schedule(Name=record.schedule_name, GroupName=self._target.group)
        except self.client.exceptions.ResourceNotFoundException:
            return None
