"""Condition actions in the local executor, as Flyte's ``reconcileCondition``
(``executor/pkg/controller/taskaction_condition.go``) drives them: no process, no finalizer, a
state machine on the resource's status.

- created -> **Paused** (Progressing/Paused, "waiting for signal");
- ``status.signalValue`` set (SignalEvent, relayed by reconcile) -> **Signaled**: Succeeded/Signaled,
  "condition signalled by <who>";
- past ``creationTimestamp + conditionSpec.timeout`` without a signal -> **TimedOut**:
  Failed/TimedOut with errorState ``ConditionTimedOut`` (USER);
- a conditionSpec that does not parse -> Failed/InvalidSpec.

Terminal ones get the garbage collector's labels. One thread per open condition looks at its
resource every ``POLL_SECONDS`` (Flyte requeues at the deadline and on every update of the resource;
a short poll is the local equivalent) and ends with the condition, a deletion or the executor.
"""

from __future__ import annotations

import base64
import logging
import threading
from datetime import datetime, timedelta
from typing import Any

from flyteidl2.workflow import run_definition_pb2 as wf

from local_stack.executor.status import _now, _rfc3339, completed_time_label, is_terminal, set_condition
from local_stack.executor.taskactions import TaskActions
from runplane.kube.resources import LABEL_COMPLETED_TIME, LABEL_TERMINATION_STATUS

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.5
TIMED_OUT_CODE = "ConditionTimedOut"  # Flyte's ConditionTimedOutCode
TERMINATED = "terminated"


def resolve(resource: dict[str, Any], *, now: datetime) -> dict[str, Any] | None:
    """The status ``resource`` should have now (Flyte's reconcileCondition), or None if it has it."""
    status: dict[str, Any] = dict(resource.get("status") or {})
    conditions = [dict(c) for c in status.get("conditions") or []]
    generation = int(resource["metadata"].get("generation") or 0)
    stamp = _rfc3339(now)
    history = list(status.get("phaseHistory") or [])

    def outcome(kind: str, true_type: str, reason: str, message: str) -> None:
        set_condition(
            conditions,
            type="Progressing",
            true=kind == "open",
            reason=reason,
            message=message,
            now=stamp,
            generation=generation,
        )
        if true_type:
            set_condition(
                conditions, type=true_type, true=True, reason=reason, message=message, now=stamp, generation=generation
            )
        if not history or history[-1].get("phase") != reason:
            history.append({"phase": reason, "occurredAt": stamp, "message": message})

    if status.get("signalValue"):
        outcome("done", "Succeeded", "Signaled", f"condition signalled by {status.get('signalledBy', '')!r}")
    else:
        try:
            spec = wf.ConditionAction.FromString(
                base64.b64decode((resource.get("spec") or {}).get("conditionSpec") or "")
            )
        except Exception as exc:  # a malformed conditionSpec can never be signalled
            message = f"failed to unmarshal conditionSpec: {exc}"
            outcome("done", "Failed", "InvalidSpec", message)
            status["errorState"] = {"code": "InvalidSpec", "kind": "USER", "message": message}
            spec = None
        if spec is not None:
            timeout = spec.timeout.ToTimedelta() if spec.HasField("timeout") else timedelta(0)
            created = datetime.fromisoformat(str(resource["metadata"]["creationTimestamp"]).replace("Z", "+00:00"))
            if timeout > timedelta(0) and now >= created + timeout:
                message = f"condition timed out after {int((now - created).total_seconds())}s without a signal"
                outcome("done", "Failed", "TimedOut", message)
                status["errorState"] = {"code": TIMED_OUT_CODE, "kind": "USER", "message": message}
            else:
                outcome("open", "", "Paused", "waiting for signal")
    if conditions == (status.get("conditions") or []) and history == (status.get("phaseHistory") or []):
        return None
    return {**status, "conditions": conditions, "phaseHistory": history}


class ConditionRunner:
    """One open condition's thread (see the module docstring)."""

    def __init__(self, actions: TaskActions, resource: dict[str, Any], *, stopping: threading.Event) -> None:
        self._actions = actions
        self.name: str = resource["metadata"]["name"]
        self.uid: str = resource["metadata"]["uid"]
        self._stopping = stopping
        self.deleted = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"condition-{self.name}", daemon=True)

    def _run(self) -> None:
        while not self._stopping.is_set() and not self.deleted.is_set():
            try:
                resource = self._actions.get(self.name, self.uid)
                if resource is None:
                    return
                status = resolve(resource, now=_now())
                if status is not None and not self._actions.patch_status(self.name, status):
                    return
                current = status if status is not None else (resource.get("status") or {})
                if is_terminal(current):
                    labels = {LABEL_TERMINATION_STATUS: TERMINATED, LABEL_COMPLETED_TIME: completed_time_label(current)}
                    self._actions.patch_labels(self.name, labels)
                    logger.info("%s: condition %s", self.name, current["conditions"][-1]["reason"])
                    return
            except Exception:
                logger.exception("driving condition %s failed; trying again", self.name)
            self._stopping.wait(POLL_SECONDS)
