"""ActionEvents as they arrive -> the event records to store, and the events refused (pure logic).

Flyte's executor sends its events in batches of up to 400, of unrelated actions across projects
and domains (``executor/pkg/controller/event_batcher.go``: ``eventBatchMaxSize``, one Record RPC
per batch whose one error unblocks every caller with a failure). So one event the control plane
will not take must never fail the call: every action in the batch would lose its status, since
the executor writes a TaskAction's status only after its event is accepted
(``taskaction_controller.go``, ``updateTaskActionStatus``). Hence:

- the *request* is checked as a whole (at least one event, as Flyte's ``min_items = 1``; at most
  ``MAX_EVENTS_PER_REQUEST``): a malformed request is ``invalid_argument`` naming the field;
- each *event* is checked on its own (identity, attempt, phase, item size, and the token's
  ``projects`` claim as ``runplane.connect.access`` reads it): a refused event is left out and
  written nowhere, the others are recorded, and the refusals are reported (``refusal_header``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from flyteidl2.workflow import run_definition_pb2 as wf

from runplane.connect.access import check_project_access
from runplane.connect.errors import ConnectError, as_connect_error, invalid_argument
from runplane.errors import DomainError
from runplane.flyte.validation import action_key, known_phase
from runplane.table.actions import MAX_ITEM_BYTES, item_size
from runplane.table.records import EventRecord

# Flyte's eventBatchMaxSize (event_batcher.go): its executor never sends more in one Record call,
# and it bounds one invocation's writes (each event is a conditional PutItem).
MAX_EVENTS_PER_REQUEST = 400
# The response header naming the events a Record call refused (RecordResponse has no field for
# them): compact JSON, {"count": n, "refused": [{"index", "code", "message"}, ...]}.
REFUSED_HEADER = "x-flyte-refused-events"
# API Gateway and proxies cap header sizes (HTTP API: 10 KB for all of them); the header lists
# refusals in index order until this many bytes, and "count" always says how many there were.
MAX_REFUSED_HEADER_BYTES = 4096


@dataclass(frozen=True)
class Refusal:
    index: int
    code: str  # the Connect code the event alone would have been answered with
    message: str


@dataclass(frozen=True)
class CheckedBatch:
    records: list[EventRecord]
    refused: list[Refusal]


def check_request_size(count: int, *, allow_empty: bool = False) -> None:
    """The whole request's bounds; the only refusal of the whole call."""
    if count == 0 and not allow_empty:
        raise invalid_argument("events must hold at least one event")
    if count > MAX_EVENTS_PER_REQUEST:
        raise invalid_argument(f"events holds {count} events; at most {MAX_EVENTS_PER_REQUEST} per request")


def check_events(
    events: Iterable[wf.ActionEvent], *, claims: Mapping[str, str] | None = None, now: datetime
) -> CheckedBatch:
    """Each event on its own: its record if it may be written, else why not. Without ``claims``
    (the internal RPC) no project limit applies."""
    records: list[EventRecord] = []
    refused: list[Refusal] = []
    for index, event in enumerate(events):
        try:
            record = event_record(event, index=index, now=now)  # malformed is named as such first
            if claims is not None:
                check_project_access(event, claims)
            records.append(record)
        except (ConnectError, DomainError) as refusal:
            error = as_connect_error(refusal)
            message = error.message if error.message.startswith("events[") else f"events[{index}]: {error.message}"
            refused.append(Refusal(index=index, code=error.code.value, message=message))
    return CheckedBatch(records=records, refused=refused)


def event_record(event: wf.ActionEvent, *, index: int, now: datetime) -> EventRecord:
    """One event as stored, or ``invalid_argument`` naming its bad field."""
    field = f"events[{index}]"
    key = action_key(event.id, field=f"{field}.id")
    if event.attempt < 1:
        raise invalid_argument(f"{field}.attempt must be 1 or more")
    known_phase(event.phase, field=f"{field}.phase")
    error_kind = wf.ErrorInfo.Kind.Name(event.error_info.kind) if event.HasField("error_info") else ""
    record = EventRecord(
        key=key,
        attempt=event.attempt,
        phase=event.phase,
        version=event.version,
        info=event.SerializeToString(deterministic=True),
        error_kind=error_kind,
        created_at=now.astimezone(UTC),
    )
    if item_size(record.to_item()) > MAX_ITEM_BYTES:
        raise invalid_argument(f"{field} is over the {MAX_ITEM_BYTES}-byte item limit")
    return record


def refusal_header(refused: list[Refusal]) -> str:
    """The refusals as the response header carries them: every one while they fit, the count always."""
    listed: list[dict[str, object]] = []
    size = len(json.dumps({"count": len(refused), "refused": []}, separators=(",", ":")))
    for refusal in refused:
        entry = {"index": refusal.index, "code": refusal.code, "message": refusal.message}
        entry_size = len(json.dumps(entry, separators=(",", ":"))) + 1
        if size + entry_size > MAX_REFUSED_HEADER_BYTES:
            break
        listed.append(entry)
        size += entry_size
    return json.dumps({"count": len(refused), "refused": listed}, separators=(",", ":"))
