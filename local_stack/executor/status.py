"""The local executor's phase and condition model: what a TaskAction's status says, as Flyte writes it.

Pure functions over the ``status`` dictionary (Flyte's mapPhaseToConditions, meta.SetStatusCondition,
the terminal labels' time) and the spec checks of validateTaskAction; no I/O.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from flyteidl2.common import phase_pb2
from flyteidl2.core import execution_pb2, tasks_pb2
from flyteidl2.workflow import run_definition_pb2
from google.protobuf.message import DecodeError

FINALIZER = "flyte.org/plugin-finalizer"
TERMINATED = "terminated"
# Flyte's labelTimeFormat: minute precision, so the labels sort (and compare) as text.
COMPLETED_TIME_FORMAT = "%Y-%m-%d.%H-%M"
REQUIRED_SPEC_FIELDS = (
    "runName",
    "project",
    "domain",
    "actionName",
    "taskType",
    "taskTemplate",
    "inputUri",
    "runOutputBase",
)
# Flyte's DefaultMaxSystemFailures: consecutive system errors before the action fails for good.
MAX_SYSTEM_FAILURES = 3
SYSTEM_ERROR_CODE = "SystemError"
MAX_SYSTEM_FAILURES_CODE = "MaxSystemFailuresExceeded"
MAX_RETRIES_CODE = "MaxRetriesExceeded"
BAD_TASK_CODE = "BadTaskSpecification"
# The CRD's maxLength for a condition message.
MAX_CONDITION_MESSAGE = 32768


# --- phases and failures ---------------------------------------------------------------------


@dataclass(frozen=True)
class Phase:
    reason: str  # the condition reason, and the phaseHistory entry
    plugin_phase: str  # Flyte's pluginsCore.Phase name, in status.pluginPhase
    action_phase: phase_pb2.ActionPhase  # the ActionPhase of the event
    message: str  # what the condition says when nothing more specific is known (the plugin's reason)
    ends_attempt: bool = False


QUEUED = Phase("Queued", "PhaseQueued", phase_pb2.ACTION_PHASE_QUEUED, "task submitted to the local executor")
INITIALIZING = Phase(
    "Initializing", "PhaseInitializing", phase_pb2.ACTION_PHASE_INITIALIZING, "starting the task's process"
)
EXECUTING = Phase("Executing", "PhaseRunning", phase_pb2.ACTION_PHASE_RUNNING, "the task's process is running")
COMPLETED = Phase(
    "Completed", "PhaseSuccess", phase_pb2.ACTION_PHASE_SUCCEEDED, "TaskAction completed successfully", True
)
RETRYABLE_FAILURE = Phase(
    "RetryableFailure", "PhaseRetryableFailure", phase_pb2.ACTION_PHASE_FAILED, "task failed", True
)
PERMANENT_FAILURE = Phase(
    "PermanentFailure", "PhasePermanentFailure", phase_pb2.ACTION_PHASE_FAILED, "task failed", True
)
ABORTED = Phase("Aborted", "PhaseAborted", phase_pb2.ACTION_PHASE_ABORTED, "TaskAction was aborted", True)

INVALID_SPEC = "InvalidSpec"
PLUGIN_NOT_FOUND = "PluginNotFound"

_ERROR_INFO_KINDS = {"USER": run_definition_pb2.ErrorInfo.KIND_USER, "SYSTEM": run_definition_pb2.ErrorInfo.KIND_SYSTEM}
_ORIGIN_KINDS = {execution_pb2.ExecutionError.USER: "USER", execution_pb2.ExecutionError.SYSTEM: "SYSTEM"}


@dataclass(frozen=True)
class Failure:
    code: str
    message: str
    kind: str = "USER"  # USER | SYSTEM | "" (unknown), as status.errorState.kind
    recoverable: bool = True

    @property
    def is_system_retryable(self) -> bool:
        """Flyte's isSystemRetryableFailure: restarts the same attempt, counted apart from retries."""
        return self.recoverable and self.kind == "SYSTEM"

    def error_state(self) -> dict[str, str]:
        return _without_empty_strings({"code": self.code, "kind": self.kind, "message": self.message})

    def error_info(self) -> run_definition_pb2.ErrorInfo:
        """toActionErrorInfo: the message and the kind; the code stays in the status' errorState."""
        return run_definition_pb2.ErrorInfo(
            message=self.message,
            kind=_ERROR_INFO_KINDS.get(self.kind, run_definition_pb2.ErrorInfo.KIND_UNSPECIFIED),
        )


# --- the spec and the status (pure) --------------------------------------------------------------


def invalid_spec(spec: dict[str, Any]) -> tuple[str, str, str] | None:
    """(reason, kind, message) if Flyte's validateTaskAction would refuse the spec, else None."""
    missing = [name for name in REQUIRED_SPEC_FIELDS if not spec.get(name)]
    if missing:
        return INVALID_SPEC, "SYSTEM", f"required spec fields are empty: [{' '.join(missing)}]"
    try:
        template = decode_template(spec)
    except ValueError as exc:
        return INVALID_SPEC, "SYSTEM", f"taskTemplate is not a serialized TaskTemplate: {exc}"
    if not template.HasField("container"):
        return (
            PLUGIN_NOT_FOUND,
            "USER",
            f"no plugin found for task type {spec['taskType']!r}: the local executor runs container tasks only",
        )
    return None


def decode_template(spec: dict[str, Any]) -> tasks_pb2.TaskTemplate:
    try:
        return tasks_pb2.TaskTemplate.FromString(base64.b64decode(spec["taskTemplate"], validate=True))
    except (binascii.Error, DecodeError, TypeError) as exc:
        raise ValueError(str(exc)) from None


def max_attempts(template: tasks_pb2.TaskTemplate) -> int:
    return template.metadata.retries.retries + 1


def is_terminal(status: dict[str, Any]) -> bool:
    return any(
        c.get("type") in ("Succeeded", "Failed") and c.get("status") == "True" for c in status.get("conditions") or []
    )


def set_condition(
    conditions: list[dict[str, Any]], *, type: str, true: bool, reason: str, message: str, now: str, generation: int
) -> None:
    """meta.SetStatusCondition: one entry per type; the transition time moves only with the status.
    The message is required and never empty (see ``_without_empty_strings``)."""
    status = "True" if true else "False"
    message = message[:MAX_CONDITION_MESSAGE] or reason
    for condition in conditions:
        if condition.get("type") == type:
            if condition.get("status") != status:
                condition["lastTransitionTime"] = now
            condition.update(status=status, reason=reason, message=message, observedGeneration=generation)
            return
    conditions.append(
        {
            "type": type,
            "status": status,
            "reason": reason,
            "message": message,
            "lastTransitionTime": now,
            "observedGeneration": generation,
        }
    )


def apply_phase(
    status: dict[str, Any], phase: Phase, *, message: str, failure: Failure | None, now: str, generation: int
) -> None:
    """Flyte's mapPhaseToConditions, and the phaseHistory entry (deduplicated against the last)."""
    conditions = status.setdefault("conditions", [])

    def condition(type: str, true: bool, text: str) -> None:
        set_condition(
            conditions, type=type, true=true, reason=phase.reason, message=text, now=now, generation=generation
        )

    if failure is not None:
        message = failure.message.strip() or failure.code
        status["errorState"] = failure.error_state()
    message = message or phase.message
    if phase is COMPLETED:
        condition("Progressing", False, "TaskAction has completed")
        condition("Succeeded", True, message)
    elif phase is PERMANENT_FAILURE:
        condition("Progressing", False, message)
        condition("Failed", True, message)
    else:
        condition("Progressing", True, message)
    history = status.setdefault("phaseHistory", [])
    if not history or history[-1].get("phase") != phase.reason:
        history.append({"phase": phase.reason, "occurredAt": now, "message": message[:MAX_CONDITION_MESSAGE]})
    status["pluginPhase"] = phase.plugin_phase
    status["pluginPhaseVersion"] = 0


def _without_empty_strings(fields: dict[str, str]) -> dict[str, str]:
    """The local API server (1.20) reads an empty string in a custom resource as null and refuses
    it against the schema, so status never carries one: an unknown value is left out."""
    return {name: value for name, value in fields.items() if value}


def completed_time_label(status: dict[str, Any]) -> str:
    """The terminal condition's transition time (Flyte's terminalTransitionTime), minute precision."""
    for condition in status.get("conditions") or []:
        if condition.get("type") in ("Succeeded", "Failed") and condition.get("status") == "True":
            moment = condition.get("lastTransitionTime")
            if moment:
                return _parse_time(moment).strftime(COMPLETED_TIME_FORMAT)
            break
    return datetime.now(UTC).strftime(COMPLETED_TIME_FORMAT)


def should_collect(completed_time: str, *, ttl_seconds: float, now: datetime) -> bool:
    """Flyte's shouldDeleteTerminalTaskAction: a non-positive TTL collects on the next sweep."""
    if not completed_time:
        return False
    if ttl_seconds <= 0:
        return True
    return completed_time < (now - timedelta(seconds=ttl_seconds)).strftime(COMPLETED_TIME_FORMAT)


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)  # metav1.Time has second precision


def _rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
