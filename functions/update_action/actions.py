"""Child actions: an ``actions.Action`` (Enqueue) or a ``RecordActionRequest`` -> the record to
store. Pure logic, mirroring Flyte's RecordAction (docs/flyte-compat.md#internal-rpcs):

- task: the task columns come from the task id and spec; QUEUED;
- trace: SUCCEEDED at once, started and ended when the trace says; never materialised;
- condition: QUEUED, with a declared simple type Flyte can signal (bool, int, float, string).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypedDict

from flyteidl2.core.types_pb2 import SimpleType
from flyteidl2.task.run_pb2 import RunSpec
from flyteidl2.workflow import run_definition_pb2 as wf

from runplane.connect.errors import invalid_argument
from runplane.connect.transformers import action_identifier
from runplane.flyte import phases
from runplane.flyte.identifiers import ActionKey
from runplane.table.records import ActionRecord

SIGNALLABLE_TYPES = frozenset({SimpleType.BOOLEAN, SimpleType.INTEGER, SimpleType.FLOAT, SimpleType.STRING})
INPUTS_FILE = "inputs.pb"


@dataclass(frozen=True)
class ChildRequest:
    """What Enqueue and RecordAction have in common."""

    key: ActionKey
    parent: str
    group: str
    input_uri: str
    run_output_base: str
    spec_kind: str | None  # "task" | "trace" | "condition"
    task: wf.TaskAction
    trace: wf.TraceAction
    condition: wf.ConditionAction
    run_spec: RunSpec | None = None


class _CommonFields(TypedDict):
    """The record's fields every kind of child sets alike."""

    key: ActionKey
    parent: str | None
    origin: str
    group: str
    inputs_uri: str
    run_output_base: str
    request_digest: str
    created_at: datetime


def child_record(request: ChildRequest, *, origin: str, now: datetime, digest: str = "") -> ActionRecord:
    action_spec = wf.ActionSpec(
        action_id=action_identifier(request.key),
        input_uri=request.input_uri,
        run_output_base=request.run_output_base,
        group=request.group,
    )
    if request.parent:
        action_spec.parent_action_name = request.parent
    if request.run_spec is not None:
        action_spec.run_spec.CopyFrom(request.run_spec)
    base: _CommonFields = {
        "key": request.key,
        "parent": request.parent or None,
        "origin": origin,
        "group": request.group,
        "inputs_uri": _inputs_file(request.input_uri),
        "run_output_base": request.run_output_base,
        "request_digest": digest,
        "created_at": now,
    }
    if request.spec_kind == "task":
        task = request.task
        template = task.spec.task_template
        if not template.type:
            raise invalid_argument("task.spec.task_template.type is required")
        if not task.id.name:
            raise invalid_argument("task.id.name is required")
        action_spec.task.CopyFrom(task)
        return ActionRecord(
            **base,
            action_type=wf.ACTION_TYPE_TASK,
            phase=phases.QUEUED,
            task_project=task.id.project or request.key.project,
            task_domain=task.id.domain or request.key.domain,
            task_name=task.id.name,
            task_version=task.id.version,
            task_type=template.type,
            task_short_name=task.spec.short_name or task.id.name,
            function_name=task.id.name,
            environment_name=task.spec.environment.name,
            action_spec=action_spec.SerializeToString(),
        )
    if request.spec_kind == "trace":
        trace = request.trace
        if not trace.name:
            raise invalid_argument("trace.name is required")
        action_spec.trace.CopyFrom(trace)
        started = _time(trace, "start_time") or now
        ended = _time(trace, "end_time") or now
        base["created_at"] = started
        return ActionRecord(
            **base,
            action_type=wf.ACTION_TYPE_TRACE,
            phase=phases.SUCCEEDED,
            task_name=trace.name,
            function_name=trace.name,
            output_uri=trace.outputs.output_uri,  # a trace's outputs are written by the SDK itself
            ended_at=max(ended, started),
            action_spec=action_spec.SerializeToString(),
        )
    if request.spec_kind == "condition":
        condition = request.condition
        if not condition.name:
            raise invalid_argument("condition.name is required")
        if condition.type.simple not in SIGNALLABLE_TYPES:
            raise invalid_argument("condition.type must be a boolean, integer, float or string")
        action_spec.condition.CopyFrom(condition)
        return ActionRecord(
            **base,
            action_type=wf.ACTION_TYPE_CONDITION,
            phase=phases.QUEUED,
            task_name=condition.name,
            function_name=condition.name,
            action_spec=action_spec.SerializeToString(),
        )
    raise invalid_argument("one of task, trace or condition is required")


def _inputs_file(input_uri: str) -> str:
    if not input_uri or input_uri.endswith(f"/{INPUTS_FILE}"):
        return input_uri
    return f"{input_uri.rstrip('/')}/{INPUTS_FILE}"


def _time(message, field: str) -> datetime | None:
    return getattr(message, field).ToDatetime(tzinfo=UTC) if message.HasField(field) else None
