"""The status mirror's reading of a TaskAction: every condition and reason, deletion, errors."""

from __future__ import annotations

import pytest

from functions.mirror_status.conditions import phase_of, sighting_of
from functions.mirror_status.handler import BadInvocation, shard_of
from runplane.flyte import phases


def cond(kind: str, reason: str, status: str = "True", at: str = "2026-11-30T01:02:03Z") -> dict:
    return {"type": kind, "status": status, "reason": reason, "lastTransitionTime": at}


@pytest.mark.parametrize(
    ("conditions", "phase"),
    [
        ([], phases.UNSPECIFIED),
        ([cond("Progressing", "Queued")], phases.QUEUED),
        ([cond("Progressing", "Initializing")], phases.INITIALIZING),
        ([cond("Progressing", "Executing")], phases.RUNNING),
        ([cond("Progressing", "Paused")], phases.PAUSED),
        ([cond("Progressing", "RetryableFailure")], phases.UNSPECIFIED),  # between attempts
        ([cond("Progressing", "Executing", "False")], phases.UNSPECIFIED),
        ([cond("Succeeded", "Completed")], phases.SUCCEEDED),
        ([cond("Succeeded", "Signaled")], phases.SUCCEEDED),
        ([cond("Succeeded", "Completed", "False")], phases.UNSPECIFIED),
        ([cond("Failed", "PermanentFailure")], phases.FAILED),
        ([cond("Failed", "InvalidSpec")], phases.FAILED),
        ([cond("Failed", "PluginNotFound")], phases.FAILED),
        ([cond("Failed", "Aborted")], phases.FAILED),  # Flyte's quirk Q16, kept: the table's ABORTED is guarded
        ([cond("Failed", "TimedOut")], phases.TIMED_OUT),
        ([cond("Failed", "PermanentFailure", "False")], phases.UNSPECIFIED),
        ([cond("Unknown", "Whatever")], phases.UNSPECIFIED),
        # the first True condition in list order wins, as in Flyte
        ([cond("Progressing", "Executing"), cond("Succeeded", "Completed")], phases.RUNNING),
        ([cond("Progressing", "Completed", "False"), cond("Succeeded", "Completed")], phases.SUCCEEDED),
        ([cond("Progressing", "RetryableFailure"), cond("Failed", "PermanentFailure")], phases.FAILED),
    ],
)
def test_phase_from_conditions_in_flytes_order(conditions, phase):
    assert phase_of(conditions) == phase


def resource(conditions, **status) -> dict:
    return {"metadata": {"creationTimestamp": "2026-11-30T01:00:00Z"}, "status": {"conditions": conditions, **status}}


def test_a_sighting_carries_attempts_cache_status_start_end_and_error():
    sighting = sighting_of(
        resource(
            [cond("Failed", "PermanentFailure", at="2026-11-30T01:05:00Z")],
            attempts=3,
            cacheStatus=2,
            errorState={"code": "MaxRetriesExceeded", "kind": "USER", "message": "boom"},
        )
    )
    assert sighting.phase == phases.FAILED and sighting.attempts == 3 and sighting.cache_status == 2
    assert sighting.start_time.isoformat() == "2026-11-30T01:00:00+00:00"
    assert sighting.end_time.isoformat() == "2026-11-30T01:05:00+00:00"
    assert (sighting.error_kind, sighting.error_code, sighting.error_message) == (
        "KIND_USER",
        "MaxRetriesExceeded",
        "boom",
    )


@pytest.mark.parametrize(
    ("kind", "stored"),
    [("USER", "KIND_USER"), ("SYSTEM", "KIND_SYSTEM"), ("", "KIND_UNSPECIFIED"), ("ODD", "KIND_UNSPECIFIED")],
)
def test_error_kinds(kind, stored):
    sighting = sighting_of(resource([cond("Failed", "PermanentFailure")], errorState={"kind": kind, "message": "m"}))
    assert sighting.error_kind == stored


def test_no_error_unless_failed_and_garbage_is_ignored():
    running = sighting_of(
        resource([cond("Progressing", "Executing")], errorState={"kind": "USER", "message": "old"}, attempts="2")
    )
    assert running.error_message == "" and running.attempts == 0
    odd = sighting_of({"metadata": {"creationTimestamp": "not a time"}, "status": {"conditions": ["x", None]}})
    assert odd.phase == phases.UNSPECIFIED and odd.start_time is None


@pytest.mark.parametrize(
    ("conditions", "phase"),
    [
        ([], phases.ABORTED),
        ([cond("Progressing", "Executing")], phases.ABORTED),
        ([cond("Succeeded", "Completed")], phases.SUCCEEDED),
        ([cond("Failed", "PermanentFailure")], phases.FAILED),
        ([cond("Failed", "TimedOut")], phases.TIMED_OUT),
    ],
)
def test_deletion_aborts_what_had_not_ended_and_keeps_a_terminal_phase(conditions, phase):
    sighting = sighting_of(resource(conditions), deleted=True)
    assert sighting.phase == phase and sighting.end_time is None


@pytest.mark.parametrize(
    ("event", "expected"), [({"shards": "all"}, (0, True)), ({"shard": 2}, (2, False)), ({"shard": 0}, (0, False))]
)
def test_invocation_events(event, expected):
    assert shard_of(event, shards=3) == expected


@pytest.mark.parametrize(
    "event", [{}, {"shard": 3}, {"shard": -1}, {"shard": "1"}, {"shard": True}, {"shards": "some"}]
)
def test_bad_invocations_are_refused(event):
    with pytest.raises(BadInvocation):
        shard_of(event, shards=3)


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        ("InvalidSpec", "required spec fields are empty: [inputUri]"),
        ("PluginNotFound", 'no plugin found for task type "spark"'),
    ],
)
def test_a_failed_condition_without_error_state_gives_its_message_as_the_error(reason, message):
    """validateTaskAction's failures: conditions only, no errorState, no event."""
    failed = {**cond("Failed", reason), "message": message}
    progressing = {**cond("Progressing", reason, "False"), "message": message}
    sighting = sighting_of(resource([failed, progressing]))
    assert sighting.phase == phases.FAILED
    assert (sighting.error_kind, sighting.error_code, sighting.error_message) == ("KIND_UNSPECIFIED", reason, message)


def test_error_state_wins_over_the_failed_conditions_message():
    failed = {**cond("Failed", "PermanentFailure"), "message": "condition text"}
    sighting = sighting_of(resource([failed], errorState={"code": "E1", "kind": "USER", "message": "the error"}))
    assert (sighting.error_code, sighting.error_message) == ("E1", "the error")
