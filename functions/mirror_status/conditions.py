"""A TaskAction's status -> what the table should say about its action (pure logic).

Flyte's executor writes only the resource's ``status``; its actions service reads it back the way
this module does (docs/flyte-compat.md#status-mirror):

- the phase is the *first* condition in list order that is True and means something:
  ``Succeeded`` -> SUCCEEDED; ``Failed`` -> TIMED_OUT for reason ``TimedOut``, FAILED otherwise
  (including reason ``Aborted``, docs/flyte-compat.md#q16-aborted-condition: the table's own ABORTED is protected by the
  phase guard); ``Progressing`` with reason ``Queued``/``Initializing``/``Executing``/``Paused``
  -> QUEUED/INITIALIZING/RUNNING/PAUSED. Anything else (no conditions yet, ``RetryableFailure``
  between attempts) is UNSPECIFIED: nothing to write;
- a resource deleted before its phase was terminal was aborted; one deleted after keeps its phase
  (the executor's TTL garbage collection);
- attempts and cache status come from the status, the start from ``creationTimestamp``, the end
  from the terminal condition's transition time, and ``errorState`` becomes the action's error;
  without one, the ``Failed`` condition's message and reason do (an invalid spec or a missing
  plugin: the executor sets only that condition, no ``errorState`` and no event,
  ``taskaction_controller.go``, ``reconcileTask`` after ``validateTaskAction``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from runplane.flyte import phases

PROGRESSING = "Progressing"
SUCCEEDED = "Succeeded"
FAILED = "Failed"
REASON_TIMED_OUT = "TimedOut"
PROGRESSING_REASONS = {
    "Queued": phases.QUEUED,
    "Initializing": phases.INITIALIZING,
    "Executing": phases.RUNNING,
    "Paused": phases.PAUSED,
}
# errorState.kind -> the ErrorInfo.Kind name the table stores
ERROR_KINDS = {"USER": "KIND_USER", "SYSTEM": "KIND_SYSTEM"}


@dataclass(frozen=True)
class Sighting:
    """What one look at a resource says about its action."""

    phase: int
    attempts: int
    cache_status: int
    start_time: datetime | None
    end_time: datetime | None
    error_kind: str = ""
    error_code: str = ""
    error_message: str = ""


def phase_of(conditions: list[dict[str, Any]]) -> int:
    """Flyte's GetPhaseFromConditions."""
    for condition in conditions:
        if condition.get("status") != "True":
            continue
        kind, reason = condition.get("type"), condition.get("reason")
        if kind == SUCCEEDED:
            return phases.SUCCEEDED
        if kind == FAILED:
            return phases.TIMED_OUT if reason == REASON_TIMED_OUT else phases.FAILED
        if kind == PROGRESSING and reason in PROGRESSING_REASONS:
            return PROGRESSING_REASONS[reason]
    return phases.UNSPECIFIED


def sighting_of(resource: dict[str, Any], *, deleted: bool = False) -> Sighting:
    status = resource.get("status") or {}
    conditions = [c for c in status.get("conditions") or [] if isinstance(c, dict)]
    phase = phase_of(conditions)
    if deleted and not phases.is_terminal(phase):
        phase = phases.ABORTED
    error = status.get("errorState") or {}
    failed = phase in (phases.FAILED, phases.TIMED_OUT)
    if failed and not error:
        error = _failed_condition_error(conditions)
    return Sighting(
        phase=phase,
        attempts=_positive_int(status.get("attempts")),
        cache_status=_positive_int(status.get("cacheStatus")),
        start_time=_time(resource.get("metadata", {}).get("creationTimestamp")),
        end_time=_terminal_time(conditions) if phases.is_terminal(phase) and not deleted else None,
        error_kind=ERROR_KINDS.get(str(error.get("kind", "")), "KIND_UNSPECIFIED") if failed and error else "",
        error_code=str(error.get("code") or "") if failed else "",
        error_message=str(error.get("message") or error.get("code") or "") if failed and error else "",
    )


def _failed_condition_error(conditions: list[dict[str, Any]]) -> dict[str, str]:
    """The error a True ``Failed`` condition states (its reason as the code), when it says any."""
    for condition in conditions:
        if condition.get("type") == FAILED and condition.get("status") == "True":
            message = str(condition.get("message") or "")
            return {"code": str(condition.get("reason") or ""), "message": message} if message else {}
    return {}


def _terminal_time(conditions: list[dict[str, Any]]) -> datetime | None:
    for condition in conditions:
        if condition.get("type") in (SUCCEEDED, FAILED) and condition.get("status") == "True":
            return _time(condition.get("lastTransitionTime"))
    return None


def _positive_int(value: Any) -> int:
    return value if isinstance(value, int) and value > 0 else 0


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None
