"""Every rule of the phase guard, table-driven (the store enforces the same table in DynamoDB)."""

import pytest

from runplane.flyte.phases import (
    ABORTED,
    ACTIVE_PHASES,
    FAILED,
    INITIALIZING,
    PAUSED,
    QUEUED,
    RECOVERED,
    RUNNING,
    SUCCEEDED,
    TIMED_OUT,
    UNSPECIFIED,
    WAITING_FOR_RESOURCES,
    allowed_predecessors,
    phase_name,
    transition_allowed,
)

SAME_ATTEMPT = [
    # (current, new, allowed)
    (QUEUED, QUEUED, True),
    (QUEUED, WAITING_FOR_RESOURCES, True),
    (QUEUED, RUNNING, True),
    (INITIALIZING, RUNNING, True),
    (RUNNING, QUEUED, False),  # no regression
    (RUNNING, INITIALIZING, False),
    (RUNNING, RUNNING, True),  # redelivery refreshes attempts/cache
    (RUNNING, SUCCEEDED, True),
    (RUNNING, FAILED, True),
    (RUNNING, PAUSED, True),
    (QUEUED, ABORTED, True),
    (SUCCEEDED, QUEUED, False),
    (SUCCEEDED, FAILED, False),  # Flyte quirk Q7 allows this; a success is final here
    (SUCCEEDED, ABORTED, False),
    (SUCCEEDED, SUCCEEDED, True),
    (ABORTED, TIMED_OUT, False),  # Q7 again
    (ABORTED, RUNNING, False),
    (RECOVERED, FAILED, False),
    (FAILED, RUNNING, False),  # a stale update of the failed attempt cannot revive it
    (FAILED, SUCCEEDED, False),
    (FAILED, FAILED, True),
    (TIMED_OUT, QUEUED, False),
    (PAUSED, RUNNING, False),  # PAUSED does not resume
    (PAUSED, QUEUED, False),
    (PAUSED, SUCCEEDED, True),  # ... it settles into a terminal phase
    (PAUSED, TIMED_OUT, True),
    (PAUSED, ABORTED, True),
    (PAUSED, FAILED, True),
    (PAUSED, PAUSED, True),
]


@pytest.mark.parametrize("current, new, allowed", SAME_ATTEMPT)
def test_same_attempt(current, new, allowed):
    assert transition_allowed(current=current, current_attempts=1, new=new, new_attempts=1) is allowed
    # an update that does not name an attempt follows the same rules
    assert transition_allowed(current=current, current_attempts=1, new=new, new_attempts=None) is allowed


@pytest.mark.parametrize(
    "current, new, allowed",
    [
        (FAILED, QUEUED, True),  # the retry: FAILED -> QUEUED with attempts 2
        (TIMED_OUT, QUEUED, True),
        (FAILED, RUNNING, True),
        (RUNNING, QUEUED, True),  # in-place retry under the same TaskAction
        (SUCCEEDED, QUEUED, False),  # final phases stay final
        (ABORTED, QUEUED, False),
        (RECOVERED, RUNNING, False),
        (PAUSED, QUEUED, True),
    ],
)
def test_new_attempt(current, new, allowed):
    assert transition_allowed(current=current, current_attempts=1, new=new, new_attempts=2) is allowed


@pytest.mark.parametrize("new", [QUEUED, RUNNING, SUCCEEDED, FAILED])
def test_stale_attempt_is_rejected(new):
    assert transition_allowed(current=QUEUED, current_attempts=2, new=new, new_attempts=1) is False


def test_phase_names_come_from_flyteidl2_and_unknown_numbers_still_read():
    assert phase_name(RUNNING) == "ACTION_PHASE_RUNNING"
    assert phase_name(42) == "ACTION_PHASE_42"


@pytest.mark.parametrize(
    "new, predecessors",
    [
        (QUEUED, {UNSPECIFIED, QUEUED}),
        (RUNNING, {UNSPECIFIED, QUEUED, WAITING_FOR_RESOURCES, INITIALIZING, RUNNING}),
        (PAUSED, ACTIVE_PHASES | {PAUSED}),
        (SUCCEEDED, ACTIVE_PHASES | {PAUSED, SUCCEEDED}),  # a terminal phase settles from anything still open
        (FAILED, ACTIVE_PHASES | {PAUSED, FAILED}),
    ],
)
def test_allowed_predecessors_within_an_attempt(new, predecessors):
    assert allowed_predecessors(new) == predecessors
