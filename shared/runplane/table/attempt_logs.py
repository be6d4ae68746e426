"""Where an attempt's output is: the log context the data plane reported for it, which
RunService/GetActionLogContext answers and DataProxyService/TailLogs reads from
(docs/flyte-compat.md#logs).

Flyte's executor attaches a ``LogContext`` (the pods, their containers, when each container
started and ended) to an attempt's events once its pod exists. Flyte answers the log context of
the attempt's newest event (by phase, then version); here, of the newest event that has one, so a
later event without it (the abort event the executor sends when its resource is deleted) does not
hide it. An attempt without such an event never ran, and is ``not_found``, as in Flyte.
"""

from __future__ import annotations

from dataclasses import dataclass

from flyteidl2.core import execution_pb2
from flyteidl2.workflow import run_definition_pb2 as wf

from runplane.errors import NotFound
from runplane.flyte import phases
from runplane.flyte.identifiers import ActionKey
from runplane.table.actions import ActionStore


@dataclass(frozen=True)
class AttemptLogs:
    log_context: execution_pb2.LogContext
    cluster: str
    ended: bool  # the attempt has a terminal event: its output is complete
    started_ms: int  # the attempt's first event (Unix milliseconds)


def attempt_logs(store: ActionStore, key: ActionKey, attempt: int) -> AttemptLogs:
    """The log context of an attempt of an action, from its recorded events."""
    events = [
        wf.ActionEvent.FromString(record.info)
        for record in store.list_events(key)
        if record.attempt == attempt and record.info
    ]
    if not events:
        raise NotFound(f"attempt {attempt} of action {key} has no events: it has not run, so it has no logs")
    newest_first = sorted(events, key=lambda e: (e.phase, e.version), reverse=True)
    reported = next((event for event in newest_first if event.HasField("log_context")), None)
    if reported is None:
        raise NotFound(f"attempt {attempt} of action {key} has no log context: its container never ran")
    return AttemptLogs(
        log_context=reported.log_context,
        cluster=reported.cluster,
        ended=any(phases.is_terminal(event.phase) for event in events),
        started_ms=min(int(event.updated_time.ToMilliseconds()) for event in events),
    )


def primary_container(
    log_context: execution_pb2.LogContext,
) -> tuple[execution_pb2.PodLogContext, execution_pb2.ContainerContext]:
    """The primary pod and its primary container (Flyte's GetPrimaryPodAndContainer)."""
    if not log_context.primary_pod_name:
        raise NotFound("the log context names no primary pod")
    pod = next((p for p in log_context.pods if p.pod_name == log_context.primary_pod_name), None)
    if pod is None:
        raise NotFound(f"primary pod {log_context.primary_pod_name} not found in the log context")
    container = next((c for c in pod.containers if c.container_name == pod.primary_container_name), None)
    if container is None:
        raise NotFound(f"primary container {pod.primary_container_name} not found in pod {pod.pod_name}")
    return pod, container
