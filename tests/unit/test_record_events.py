"""Record's batches checked event by event (functions/update_action/events.py): pure logic."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from flyteidl2.workflow import run_definition_pb2 as wf

from functions.update_action.events import (
    MAX_EVENTS_PER_REQUEST,
    MAX_REFUSED_HEADER_BYTES,
    Refusal,
    check_events,
    check_request_size,
    refusal_header,
)
from runplane.connect.errors import Code
from runplane.flyte import phases
from tests.builders import action_id
from tests.refusals import REFUSED, as_refusal

NOW = datetime(2026, 12, 8, tzinfo=UTC)


def event(project: str = "p1", *, attempt: int = 1) -> wf.ActionEvent:
    identifier = action_id("r1", "a0")
    identifier.run.project = project
    return wf.ActionEvent(id=identifier, attempt=attempt, phase=phases.RUNNING)


def test_each_event_is_checked_alone_and_the_order_of_refusals_is_the_batchs():
    batch = check_events([event(), event("p2"), event(attempt=0), event("p1")], claims={"projects": "p1"}, now=NOW)
    assert [r.key.project for r in batch.records] == ["p1", "p1"]
    assert [(r.index, r.code) for r in batch.refused] == [(1, "permission_denied"), (2, "invalid_argument")]
    assert batch.refused[0].message.startswith("events[1]: ") and "p2" in batch.refused[0].message
    assert batch.refused[1].message == "events[2].attempt must be 1 or more"


def test_without_claims_no_project_is_refused():
    assert check_events([event("p1"), event("p2")], now=NOW).refused == []


@pytest.mark.parametrize("count", [0, MAX_EVENTS_PER_REQUEST + 1])
def test_the_request_as_a_whole_is_bounded(count):
    with pytest.raises(REFUSED) as refused:
        check_request_size(count)
    error = as_refusal(refused.value)
    assert error.code is Code.INVALID_ARGUMENT and error.message.startswith("events ")
    check_request_size(MAX_EVENTS_PER_REQUEST)
    check_request_size(0, allow_empty=True)


def test_the_header_lists_refusals_while_they_fit_and_always_counts_them_all():
    refused = [Refusal(index=i, code="permission_denied", message=f"events[{i}]: project p2") for i in range(400)]
    header = refusal_header(refused)
    assert len(header) <= MAX_REFUSED_HEADER_BYTES and header.isascii()
    parsed = json.loads(header)
    assert parsed["count"] == 400 and 0 < len(parsed["refused"]) < 400
    assert [r["index"] for r in parsed["refused"]] == list(range(len(parsed["refused"])))
    assert json.loads(refusal_header(refused[:2]))["refused"][1] == {
        "index": 1,
        "code": "permission_denied",
        "message": "events[1]: project p2",
    }
