"""A stored action and its events -> ActionDetails / RunDetails (Flyte's buildActionDetails)."""

from __future__ import annotations

from flyteidl2.task.run_pb2 import RunSpec
from flyteidl2.workflow import run_definition_pb2 as wf

from functions.read_runs.attempts import attempts_from_events
from runplane.connect.transformers import action_identifier, action_metadata, action_status, enum_value
from runplane.flyte import phases
from runplane.table.records import ActionRecord, EventRecord


def action_details(record: ActionRecord, events: list[EventRecord]) -> wf.ActionDetails:
    details = wf.ActionDetails(
        id=action_identifier(record.key), metadata=action_metadata(record), status=action_status(record)
    )
    spec = wf.ActionSpec.FromString(record.action_spec) if record.action_spec else wf.ActionSpec()
    kind = spec.WhichOneof("spec")
    if kind == "task":
        details.task.CopyFrom(spec.task.spec)  # the SDK decodes outputs with its interface
    elif kind == "trace":
        details.trace.CopyFrom(spec.trace.spec)
    elif kind == "condition":
        details.condition.CopyFrom(spec.condition)

    attempts = attempts_from_events([wf.ActionEvent.FromString(e.info) for e in events])
    details.attempts.extend(attempts)
    if record.phase == phases.FAILED:
        # the last attempt's error, when events have caught up with the action; else our own
        if attempts and attempts[-1].attempt == record.attempts and attempts[-1].HasField("error_info"):
            details.error_info.CopyFrom(attempts[-1].error_info)
        elif record.error_message:
            kind_value = (
                wf.ErrorInfo.Kind.Value(record.error_kind)
                if record.error_kind in wf.ErrorInfo.Kind.DESCRIPTOR.values_by_name
                else 0
            )
            details.error_info.CopyFrom(
                wf.ErrorInfo(message=record.error_message, kind=enum_value(wf.ErrorInfo.Kind, kind_value))
            )
    elif record.phase == phases.ABORTED:
        details.abort_info.CopyFrom(wf.AbortInfo(reason=record.abort_reason))
    return details


def run_details(record: ActionRecord, events: list[EventRecord]) -> wf.RunDetails:
    if record.run_spec:
        run_spec = RunSpec.FromString(record.run_spec)
    else:
        run_spec = wf.ActionSpec.FromString(record.action_spec).run_spec if record.action_spec else RunSpec()
    return wf.RunDetails(run_spec=run_spec, action=action_details(record, events))
