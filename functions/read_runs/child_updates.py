"""Stored actions -> the ``ActionUpdate`` messages that tell the SDK inside a parent task about its
children (ActionsService/WatchForUpdates, StateService/Watch). Pure: no reads.

Flyte's rules (docs/flyte-compat.md#watch-for-updates):

- the update carries the action's phase and ``output_uri``: for a task or condition, the
  directory its executor writes ``outputs.pb`` to (``ComputeActionOutputPath`` of the run output
  base, the action and its attempt); for a trace, the outputs the SDK reported with it;
- ``value``: a signalled condition's Literal, inline (Flyte's ``SignalValueFromStatus``): the SDK's
  ``condition.wait()`` returns it, and reads no ``output_uri`` for a condition;
- ``error`` only when the phase is FAILED and an error was recorded: the ``ExecutionError``
  kind is USER or SYSTEM when recorded so, UNKNOWN otherwise;
- the watch covers the parent itself and its direct children, never grandchildren.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

from flyteidl2.common.phase_pb2 import ActionPhase
from flyteidl2.core.execution_pb2 import ExecutionError
from flyteidl2.core.literals_pb2 import Literal
from flyteidl2.workflow.state_service_pb2 import ActionUpdate

from runplane.connect.transformers import action_identifier
from runplane.flyte import phases
from runplane.flyte.output_paths import action_output_path
from runplane.table.records import ACTION_TYPE_TRACE, ActionRecord

_ERROR_KINDS = {"USER": ExecutionError.USER, "SYSTEM": ExecutionError.SYSTEM}


def execution_error(record: ActionRecord) -> ExecutionError | None:
    """The recorded error of an action, or None when nothing was recorded."""
    if not (record.error_message or record.error_code or record.error_kind):
        return None
    kind = record.error_kind.upper().removeprefix("KIND_")  # ErrorInfo.Kind names, or the executor's
    return ExecutionError(
        code=record.error_code,
        message=record.error_message,
        kind=_ERROR_KINDS.get(kind, ExecutionError.UNKNOWN),
    )


def output_uri(record: ActionRecord, *, namespace: str, run_output_base: str = "") -> str:
    """Where the action's outputs are (a directory holding ``outputs.pb``); empty when unknown.
    ``run_output_base`` stands in for an action that has none of its own (its parent's: the SDK
    gives every child its parent's run base)."""
    if record.action_type == ACTION_TYPE_TRACE:
        return record.output_uri
    base = record.run_output_base or run_output_base
    if not base:
        return ""
    return action_output_path(
        namespace=namespace,
        project=record.key.project,
        domain=record.key.domain,
        run=record.key.run,
        action=record.key.name,
        run_output_base=base,
        attempt=max(record.attempts, 1),
    )


def action_update(record: ActionRecord, *, namespace: str, run_output_base: str = "") -> ActionUpdate:
    update = ActionUpdate(
        action_id=action_identifier(record.key),
        phase=cast("ActionPhase", record.phase),
        output_uri=output_uri(record, namespace=namespace, run_output_base=run_output_base),
    )
    if record.signal_value:
        update.value.CopyFrom(Literal.FromString(record.signal_value))
    if record.phase == phases.FAILED:
        error = execution_error(record)
        if error is not None:
            update.error.CopyFrom(error)
    return update


def family_updates(records: Iterable[ActionRecord], *, parent: str, namespace: str) -> dict[str, ActionUpdate] | None:
    """The updates of the parent and its direct children, by action name (parent first, then the
    children in name order); None when the parent is not among the records."""
    by_name = {r.key.name: r for r in records if r.key.name == parent or r.parent == parent}
    parent_record = by_name.get(parent)
    if parent_record is None:
        return None
    base = parent_record.run_output_base
    ordered = [parent_record, *sorted((r for n, r in by_name.items() if n != parent), key=lambda r: r.key.name)]
    return {r.key.name: action_update(r, namespace=namespace, run_output_base=base) for r in ordered}
