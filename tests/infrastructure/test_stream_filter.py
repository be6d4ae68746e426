"""The reconcile mapping's event filter (template.yaml, FilterCriteria) against the writes the
table sees: every record reconcile acts on (new actions, abort requests, condition signals) is
delivered, and the writes it would only skip (status updates, events, the registry, the mirror's
leases, an abort being cleared, removals) never invoke it.

"Reconcile acts on it" is decided by the reconciler itself: its handler is given the record with
a store and a cluster that raise at first use, so a record it acts on is one that reaches either.
The patterns are evaluated as the local stack's stream poller (Lambda's event filtering) does.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from functions.reconcile.reconciler import ActionChange, Outcome, Reconciler
from local_stack.stream_poller import _lambda_attribute, matches
from local_stack.template import stream_settings
from runplane.flyte import phases
from runplane.flyte.identifiers import ActionKey
from runplane.table.records import ACTION_TYPE_CONDITION, ActionRecord, EventRecord
from runplane.table.tasks import TaskRecord

ROOT = ActionKey(project="p", domain="d", run="r1", name="a0")
CHILD = ActionKey(project="p", domain="d", run="r1", name="c1")
REQUESTED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


class _Acted(Exception):
    """Reconcile reached for the table or the cluster: it acts on the record."""


class _Untouchable:
    def __getattr__(self, name: str) -> Any:
        raise _Acted(name)


def _patterns() -> list[Any]:
    return [json.loads(entry["Pattern"]) for entry in stream_settings()["FilterCriteria"]["Filters"]]


def _image(item: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {name: _lambda_attribute(value) for name, value in item.items()}


def _record(event: str, *, new: dict | None = None, old: dict | None = None) -> dict[str, Any]:
    item = new if new is not None else old
    assert item is not None
    change: dict[str, Any] = {"Keys": _image({"pk": item["pk"], "sk": item["sk"]})}
    if new is not None:
        change["NewImage"] = _image(new)
    if old is not None:
        change["OldImage"] = _image(old)
    return {"eventName": event, "eventSource": "aws:dynamodb", "dynamodb": change}


def _action(key: ActionKey = ROOT, **fields: Any) -> dict[str, Any]:
    parent = "a0" if key.name != "a0" else None
    return ActionRecord(key=key, parent=parent, task_name="t", **fields).to_item()


def _condition(**attributes: Any) -> dict[str, Any]:
    """A condition child's item, with what a write adds to it (SignalEvent: ``signal_value``)."""
    return {**_action(CHILD, action_type=ACTION_TYPE_CONDITION), **attributes}


def _lease(version: int) -> dict[str, Any]:
    return {"pk": {"S": "MIRROR#0"}, "sk": {"S": "LEASE"}, "holder": {"S": "w"}, "version": {"N": str(version)}}


def _task_named_a() -> dict[str, Any]:
    """A deployed task named ``A``: its sort key starts with ``A#``, as an action's does."""
    return TaskRecord(project="p", domain="d", name="A", version="v1", spec=b"x").to_item()


def _acts_on(record: dict[str, Any]) -> bool:
    reconciler = Reconciler(cluster=_Untouchable(), store=_Untouchable())  # type: ignore[arg-type]
    try:
        outcome = reconciler.handle(ActionChange.from_stream_record(record))
    except _Acted:
        return True
    assert outcome is Outcome.SKIPPED
    return False


def _delivered(record: dict[str, Any]) -> bool:
    return any(matches(pattern, record) for pattern in _patterns())


ACTED_ON = {
    "a new run": _record("INSERT", new=_action()),
    "a new child": _record("INSERT", new=_action(CHILD)),
    "an abort request": _record(
        "MODIFY",
        old=_action(phase=phases.RUNNING),
        new=_action(phase=phases.ABORTED, abort_requested_at=REQUESTED, abort_reason="user"),
    ),
    "a condition's signal": _record(
        "MODIFY", old=_condition(), new=_condition(signal_value={"B": b"\x0a\x00"}, signalled_by={"S": "someone"})
    ),
    "an abort request of a child": _record(
        "MODIFY", old=_action(CHILD), new=_action(CHILD, phase=phases.ABORTED, abort_requested_at=REQUESTED)
    ),
}

# A filter sees one image at a time, so the writes after an abort request (until it is cleared)
# or after a signal (which stays on the item) are delivered too, and reconcile skips them: the
# cost of a few invocations for an action in those states, not a wrong decision.
SKIPPED = {
    "a status update": _record("MODIFY", old=_action(), new=_action(phase=phases.RUNNING, version=2)),
    "a terminal status update": _record(
        "MODIFY", old=_action(phase=phases.RUNNING), new=_action(phase=phases.SUCCEEDED, version=3)
    ),
    "an abort cleared": _record(
        "MODIFY", old=_action(phase=phases.ABORTED, abort_requested_at=REQUESTED), new=_action(phase=phases.ABORTED)
    ),
    "an action removed": _record("REMOVE", old=_action()),
    "an event recorded": _record(
        "INSERT", new=EventRecord(key=ROOT, attempt=1, phase=phases.RUNNING, version=1, info=b"e").to_item()
    ),
    "a lease taken": _record("INSERT", new=_lease(1)),
    "a lease renewed": _record("MODIFY", old=_lease(1), new=_lease(2)),
    "a task named A deployed": _record("INSERT", new=_task_named_a()),
}


@pytest.mark.parametrize("write", ACTED_ON)
def test_every_write_reconcile_acts_on_is_delivered(write):
    record = ACTED_ON[write]
    assert _acts_on(record), write  # the case is one reconcile acts on
    assert _delivered(record), write


@pytest.mark.parametrize("write", SKIPPED)
def test_writes_reconcile_would_only_skip_never_invoke_it(write):
    record = SKIPPED[write]
    assert not _acts_on(record), write
    assert not _delivered(record), write


def test_the_filter_stays_within_lambdas_five_patterns():
    assert 0 < len(_patterns()) <= 5
