"""ListTasks and ListTriggers: the columns of deployed tasks and of triggers as Flyte's
``TaskColumns`` and ``TriggerColumns`` name them, and Flyte's orders (docs/flyte-compat.md#registry-lists).

A project's tasks (and its triggers) are one partition each, read with one Query; the request's
filters, sort and page token are applied by ``runplane.connect.listing``.

- Tasks: a row is the latest version of each task name among the versions that pass the filters
  (Flyte's ``ROW_NUMBER() ... ORDER BY created_at DESC``), newest first by default. The trigger
  columns summarise the triggers attached to that version, as Flyte's denormalised
  ``trigger_name``/``total_triggers``/``active_triggers`` do. ``deployed_by`` is empty: identities
  are not captured.
- Triggers: active ones first, then the most recently updated (Flyte's default).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flyteidl2.task import common_pb2

from functions.task_registry.triggers import TriggerRecord
from runplane.connect.listing import Column, Kind, ListSchema, SortKey
from runplane.table.tasks import TaskRecord


@dataclass(frozen=True)
class TaskRow:
    """A task version and the triggers attached to it (same name and version)."""

    record: TaskRecord
    triggers: list[TriggerRecord] = field(default_factory=list)

    @property
    def function_name(self) -> str:
        """Flyte's ExtractFunctionName: the name without its ``<environment>.`` prefix, else the
        last dotted segment."""
        name, environment = self.record.name, self.record.environment_name
        if environment and name.startswith(environment + "."):
            return name[len(environment) + 1 :]
        return name.rsplit(".", 1)[-1]

    @property
    def sole_trigger(self) -> TriggerRecord | None:
        return self.triggers[0] if len(self.triggers) == 1 else None

    @property
    def active_triggers(self) -> int:
        return sum(1 for trigger in self.triggers if trigger.active)


def automation_type(record: TriggerRecord) -> str:
    """The automation type's name, as Flyte's ``automation_type`` column holds it (``TYPE_SCHEDULE``)."""
    spec = common_pb2.TriggerAutomationSpec.FromString(record.automation_spec)
    return str(common_pb2.TriggerAutomationSpecType.Name(spec.type))


TASKS: ListSchema[TaskRow] = ListSchema(
    what="tasks",
    columns={
        "project": Column(kind=Kind.TEXT, value=lambda row: row.record.project),
        "domain": Column(kind=Kind.TEXT, value=lambda row: row.record.domain),
        "name": Column(kind=Kind.TEXT, value=lambda row: row.record.name),
        "version": Column(kind=Kind.TEXT, value=lambda row: row.record.version),
        "environment": Column(kind=Kind.TEXT, value=lambda row: row.record.environment_name),
        "function_name": Column(kind=Kind.TEXT, value=lambda row: row.function_name),
        "deployed_by": Column(kind=Kind.TEXT, value=lambda row: ""),  # identities are not captured
        "created_at": Column(kind=Kind.TIME, value=lambda row: row.record.created_at),
        "updated_at": Column(kind=Kind.TIME, value=lambda row: row.record.created_at),  # versions never change
        "trigger_name": Column(kind=Kind.TEXT, value=lambda row: row.sole_trigger.name if row.sole_trigger else None),
        "total_triggers": Column(kind=Kind.INTEGER, value=lambda row: len(row.triggers)),
        "active_triggers": Column(kind=Kind.INTEGER, value=lambda row: row.active_triggers),
        "env_description": Column(kind=Kind.TEXT, value=lambda row: row.record.env_description or None),
        "short_description": Column(kind=Kind.TEXT, value=lambda row: row.record.short_description or None),
    },
    default_order=(SortKey("created_at", ascending=False),),
    # Flyte adds none (its pages of equal creation times may repeat rows); one task name is one row.
    tiebreakers=(
        SortKey("project", ascending=True),
        SortKey("domain", ascending=True),
        SortKey("name", ascending=True),
    ),
)

TRIGGERS: ListSchema[TriggerRecord] = ListSchema(
    what="triggers",
    columns={
        "project": Column(kind=Kind.TEXT, value=lambda r: r.project),
        "domain": Column(kind=Kind.TEXT, value=lambda r: r.domain),
        "task_name": Column(kind=Kind.TEXT, value=lambda r: r.task_name),
        "name": Column(kind=Kind.TEXT, value=lambda r: r.name),
        "active": Column(kind=Kind.BOOLEAN, value=lambda r: r.active),
        "deployed_at": Column(kind=Kind.TIME, value=lambda r: r.deployed_at or r.updated_at),
        "updated_at": Column(kind=Kind.TIME, value=lambda r: r.updated_at),
        "task_version": Column(kind=Kind.TEXT, value=lambda r: r.task_version),
        "automation_type": Column(kind=Kind.TEXT, value=automation_type),
    },
    default_order=(
        SortKey("active", ascending=False),
        SortKey("updated_at", ascending=False),
        SortKey("task_name", ascending=True),
        SortKey("name", ascending=True),
    ),
    tiebreakers=(SortKey("task_name", ascending=True), SortKey("name", ascending=True)),
)
