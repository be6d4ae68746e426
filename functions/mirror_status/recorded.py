"""A resource deleted while nobody watched -> what its recorded events say it ended as.

A relist finds resources the last checkpoint still had open but the cluster no longer has
(``watcher``: tombstones). Flyte's executor garbage-collects terminated TaskActions after a TTL
without waiting for this mirror's ``flyte.org/terminal-status-recorded`` label
(``executor/pkg/controller/garbage_collector.go``), so after a gap longer than the TTL a tombstone
is as likely a task that ended as one that was aborted. The executor records an action's event
before it writes the status (``taskaction_controller.go``, ``updateTaskActionStatus``), so the
events in the table know: the latest attempt's oldest terminal event (Flyte's ``mergeEvents``
reading, ``runs/service/run_service.go``) is how the action ended; without one, the deletion means
ABORTED, as before.

Only tombstones read events (one Query of the action's event items): a watched deletion is seen
with the resource's last status, and an ended resource is labelled, then skipped, before it is
collected.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from runplane.flyte import phases
from runplane.table.records import EventRecord

# The ErrorInfo.Kind names the table stores, by flyteidl2's numbers (no enum import: see below).
_ERROR_KINDS = {0: "KIND_UNSPECIFIED", 1: "KIND_USER", 2: "KIND_SYSTEM"}


@dataclass(frozen=True)
class RecordedEnd:
    phase: int
    attempt: int
    end_time: datetime | None
    error_kind: str = ""
    error_message: str = ""


def recorded_end(events: list[EventRecord]) -> RecordedEnd | None:
    """The end the events record for the latest attempt they know, or None if they record none."""
    if not events:
        return None
    latest = max(event.attempt for event in events)
    terminal = [event for event in events if event.attempt == latest and phases.is_terminal(event.phase)]
    if not terminal:
        return None
    # Lazily: the mirror's cold start never loads protobuf's runtime; only a tombstone with a
    # recorded end decodes events.
    from flyteidl2.workflow import run_definition_pb2 as wf

    decoded = [wf.ActionEvent.FromString(event.info) for event in terminal]
    by_reported = all(event.HasField("reported_time") for event in decoded)
    oldest = min(
        decoded,
        key=lambda e: (
            (e.reported_time.seconds, e.reported_time.nanos)
            if by_reported
            else (e.updated_time.seconds, e.updated_time.nanos)
        ),
    )
    end = oldest.updated_time.ToDatetime(tzinfo=UTC) if oldest.HasField("updated_time") else None
    error = oldest.error_info if oldest.HasField("error_info") else None
    return RecordedEnd(
        phase=oldest.phase,
        attempt=latest,
        end_time=end,
        error_kind=_ERROR_KINDS.get(error.kind, "KIND_UNSPECIFIED") if error is not None else "",
        error_message=error.message if error is not None else "",
    )
