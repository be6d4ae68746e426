"""Stored records -> the flyteidl2 messages the wire returns (Flyte's convertRunToProto)."""

from __future__ import annotations

from typing import TypeVar, cast

from flyteidl2.common.identifier_pb2 import ActionIdentifier, RunIdentifier, TriggerName
from flyteidl2.common.phase_pb2 import ActionPhase
from flyteidl2.core.catalog_pb2 import CatalogCacheStatus
from flyteidl2.task.task_definition_pb2 import TaskIdentifier
from flyteidl2.workflow import run_definition_pb2 as wf

from runplane.flyte.identifiers import ActionKey
from runplane.table.records import ActionRecord

_EnumT = TypeVar("_EnumT", bound=int)


def enum_value(enum: type[_EnumT], number: int) -> _EnumT:
    """A stored number as a value of the protobuf enum ``enum``, unchanged: at run time an enum
    value is a plain int and a field takes any number (proto3 enums are open), but the generated
    stubs type enum fields with the enum's class only."""
    return cast(_EnumT, number)


def action_identifier(key: ActionKey) -> ActionIdentifier:
    # Org is never stored; Flyte answers with org "" too.
    return ActionIdentifier(
        run=RunIdentifier(project=key.project, domain=key.domain, name=key.run),
        name=key.name,
    )


def action_status(record: ActionRecord) -> wf.ActionStatus:
    status = wf.ActionStatus(
        phase=enum_value(ActionPhase, record.phase),
        attempts=record.attempts,
        cache_status=enum_value(CatalogCacheStatus, record.cache_status),
    )
    status.start_time.FromDatetime(record.started_at)
    if record.ended_at is not None:
        status.end_time.FromDatetime(record.ended_at)
    if record.duration_ms is not None:
        status.duration_ms = record.duration_ms
    return status


def action_metadata(record: ActionRecord) -> wf.ActionMetadata:
    metadata = wf.ActionMetadata(
        action_type=enum_value(wf.ActionType, record.action_type),
        environment_name=record.environment_name,
        funtion_name=record.function_name,  # sic: the proto's field name
    )
    if record.parent:
        metadata.parent = record.parent
    if record.group:
        metadata.group = record.group
    if record.run_source:
        metadata.source = enum_value(wf.RunSource, wf.RunSource.Value(record.run_source))
    if record.trigger_name:
        metadata.trigger_name = record.trigger_name
        metadata.trigger_id.name.CopyFrom(
            TriggerName(
                project=record.key.project,
                domain=record.key.domain,
                name=record.trigger_name,
                task_name=record.trigger_task_name,
            )
        )
        metadata.trigger_id.revision = record.trigger_revision
    if record.action_type == wf.ActionType.ACTION_TYPE_TASK:
        metadata.task.CopyFrom(
            wf.TaskActionMetadata(
                id=TaskIdentifier(
                    project=record.task_project,
                    domain=record.task_domain,
                    name=record.task_name,
                    version=record.task_version,
                ),
                task_type=record.task_type,
                short_name=record.task_short_name,
            )
        )
    if record.action_type == wf.ActionType.ACTION_TYPE_CONDITION:
        # Flyte names it by its function name (run_service.go); flyte.remote.Condition.get finds a
        # condition by this name. Its declared type lives in the spec, which a listing never reads.
        metadata.condition.CopyFrom(wf.ConditionActionMetadata(name=record.function_name))
    return metadata


def action_message(record: ActionRecord) -> wf.Action:
    return wf.Action(
        id=action_identifier(record.key),
        metadata=action_metadata(record),
        status=action_status(record),
    )


def run_message(record: ActionRecord) -> wf.Run:
    return wf.Run(action=action_message(record))
