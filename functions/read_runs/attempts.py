"""Recorded ActionEvents -> the ActionAttempts of ActionDetails (Flyte's mergeEvents, exactly:
the UI depends on it; docs/flyte-compat.md#get-details).

Per attempt: events in time order (reported time, or updated time when either lacks one); the
*oldest* terminal event, else the newest event, gives phase, outputs, error, cache status and
cluster (``runs/service/run_service.go``, ``mergeEvents``: its newest-to-oldest walk keeps the
last terminal event it meets). That is what keeps a SUCCEEDED attempt SUCCEEDED once the executor's
garbage collector deletes its TaskAction: every deletion sends an ABORTED event, an ended
attempt's too (``executor/pkg/controller/taskaction_controller.go``, ``handleAbortAndFinalize``).
The newest log context and report URI win; logs are de-duplicated by name (newest wins) and
sorted; cluster events are concatenated; the first occurrence of each phase is a transition that
ends where the next one starts (a terminal one ends where it starts, and the walk stops).

One addition to mergeEvents: an attempt followed by a later one that has no terminal event of its
own was retried. The executor restarts a task in place on a retryable failure and sends no
terminal event for the attempt it leaves (``reconcileTask``: the transition becomes Queued with
``restartAttempts``), so that attempt reads FAILED, ended when the next attempt's first event
says it started (Flyte's own reading leaves it running forever).
"""

from __future__ import annotations

from collections import defaultdict
from itertools import pairwise

from flyteidl2.core.execution_pb2 import TaskLog
from flyteidl2.workflow import run_definition_pb2 as wf
from google.protobuf.timestamp_pb2 import Timestamp

from runplane.flyte import phases


def attempts_from_events(events: list[wf.ActionEvent]) -> list[wf.ActionAttempt]:
    by_attempt: dict[int, list[wf.ActionEvent]] = defaultdict(list)
    for event in events:
        by_attempt[event.attempt].append(event)
    attempts = [merge_events(by_attempt[number]) for number in sorted(by_attempt)]
    for attempt, following in pairwise(attempts):
        if not phases.is_terminal(attempt.phase):
            _end_retried(attempt, at=following.start_time)
    return attempts


def _end_retried(attempt: wf.ActionAttempt, *, at: Timestamp) -> None:
    """A retried attempt (no terminal event; a later attempt started): FAILED, ended at ``at``."""
    end = at if _seconds(at) >= _seconds(attempt.start_time) else attempt.start_time
    attempt.phase = phases.FAILED
    attempt.end_time.CopyFrom(end)
    if attempt.phase_transitions and not attempt.phase_transitions[-1].HasField("end_time"):
        attempt.phase_transitions[-1].end_time.CopyFrom(end)


def _seconds(timestamp: Timestamp) -> tuple[int, int]:
    return (timestamp.seconds, timestamp.nanos)


def _in_time_order(events: list[wf.ActionEvent]) -> list[wf.ActionEvent]:
    if all(e.HasField("reported_time") for e in events):
        return sorted(events, key=lambda e: _seconds(e.reported_time))
    return sorted(events, key=lambda e: _seconds(e.updated_time))


def merge_events(events: list[wf.ActionEvent]) -> wf.ActionAttempt:
    ordered = _in_time_order(events)
    newest_first = list(reversed(ordered))
    last = next((e for e in ordered if phases.is_terminal(e.phase)), newest_first[0])

    attempt = wf.ActionAttempt(
        attempt=last.attempt, phase=last.phase, cache_status=last.cache_status, cluster=last.cluster
    )
    attempt.start_time.CopyFrom(ordered[0].updated_time)
    if phases.is_terminal(last.phase):
        end = (
            last.updated_time
            if _seconds(last.updated_time) >= _seconds(ordered[0].updated_time)
            else ordered[0].updated_time
        )
        attempt.end_time.CopyFrom(end)
    if last.HasField("error_info"):
        attempt.error_info.CopyFrom(last.error_info)
    if last.HasField("outputs"):
        attempt.outputs.CopyFrom(last.outputs)
    report_uri = next((e.outputs.report_uri for e in newest_first if e.outputs.report_uri), "")
    if report_uri:
        attempt.outputs.report_uri = report_uri
    log_context = next((e for e in newest_first if e.HasField("log_context")), None)
    if log_context is not None:
        attempt.log_context.CopyFrom(log_context.log_context)
        attempt.logs_available = True
    logs: dict[str, TaskLog] = {}
    for event in newest_first:
        for log in event.log_info:
            logs.setdefault(log.name, log)
    attempt.log_info.extend(logs[name] for name in sorted(logs))
    for event in ordered:
        attempt.cluster_events.extend(event.cluster_events)
    attempt.phase_transitions.extend(_phase_transitions(ordered))
    return attempt


def _phase_transitions(ordered: list[wf.ActionEvent]) -> list[wf.PhaseTransition]:
    transitions: list[wf.PhaseTransition] = []
    seen: set[int] = set()
    for event in ordered:
        if event.phase in seen:
            continue
        seen.add(event.phase)
        if transitions:
            transitions[-1].end_time.CopyFrom(event.updated_time)
        transition = wf.PhaseTransition(phase=event.phase)
        transition.start_time.CopyFrom(event.updated_time)
        transitions.append(transition)
        if phases.is_terminal(event.phase):
            transition.end_time.CopyFrom(event.updated_time)
            break
    return transitions
