"""Flyte's action phases: the enum comes from flyteidl2; this module classifies it and decides
which phase changes are allowed (the phase guard).

The guard, stricter than Flyte's (docs/flyte-compat.md#q7-phase-guard) and aware of attempts, which Flyte's is not:

- Within one attempt, phases never move backwards. A terminal phase is final, except that
  FAILED and TIMED_OUT may be left by a *new* attempt (a retry). PAUSED may only settle into a
  terminal phase.
- An update naming a higher attempt starts that attempt from any phase, unless the action ended
  for good (SUCCEEDED, ABORTED, RECOVERED).
- An update naming a lower attempt than the stored one is stale and rejected.
- Repeating the current phase is allowed (a redelivered update refreshes attempts and cache
  status).

The store turns ``allowed_predecessors`` into a DynamoDB condition expression, so the guard is
enforced by the write itself: two racing updates can never move an action backwards.

The numbers are flyteidl2's ``ActionPhase``, written out rather than imported: the status mirror
and the stream consumer need them but no other protobuf, and importing the enum's module loads
the protobuf runtime (~20 ms of their cold start). ``tests/unit/test_phase_numbers.py`` checks
them against the enum.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from flyteidl2.common.phase_pb2 import ActionPhase

# ActionPhase value -> its name, as flyteidl2 numbers them.
_NAMES = {
    0: "ACTION_PHASE_UNSPECIFIED",
    1: "ACTION_PHASE_QUEUED",
    2: "ACTION_PHASE_WAITING_FOR_RESOURCES",
    3: "ACTION_PHASE_INITIALIZING",
    4: "ACTION_PHASE_RUNNING",
    5: "ACTION_PHASE_SUCCEEDED",
    6: "ACTION_PHASE_FAILED",
    7: "ACTION_PHASE_ABORTED",
    8: "ACTION_PHASE_TIMED_OUT",
    9: "ACTION_PHASE_PAUSED",
    10: "ACTION_PHASE_RECOVERED",
}
UNSPECIFIED = cast("ActionPhase", 0)
QUEUED = cast("ActionPhase", 1)
WAITING_FOR_RESOURCES = cast("ActionPhase", 2)
INITIALIZING = cast("ActionPhase", 3)
RUNNING = cast("ActionPhase", 4)
SUCCEEDED = cast("ActionPhase", 5)
FAILED = cast("ActionPhase", 6)
ABORTED = cast("ActionPhase", 7)
TIMED_OUT = cast("ActionPhase", 8)
PAUSED = cast("ActionPhase", 9)
RECOVERED = cast("ActionPhase", 10)

ALL_PHASES = frozenset(_NAMES)
# Flyte's IsTerminalPhase; PAUSED waits for a signal and is not terminal.
TERMINAL_PHASES = frozenset({SUCCEEDED, FAILED, ABORTED, TIMED_OUT, RECOVERED})
RETRYABLE_PHASES = frozenset({FAILED, TIMED_OUT})
FINAL_PHASES = TERMINAL_PHASES - RETRYABLE_PHASES
ACTIVE_PHASES = frozenset({UNSPECIFIED, QUEUED, WAITING_FOR_RESOURCES, INITIALIZING, RUNNING})


def is_terminal(phase: int) -> bool:
    return phase in TERMINAL_PHASES


def phase_name(phase: int) -> str:
    return _NAMES.get(phase, f"ACTION_PHASE_{phase}")


def allowed_predecessors(new_phase: int) -> frozenset[int]:
    """Current phases from which ``new_phase`` may be reached within the same attempt."""
    if new_phase in ACTIVE_PHASES:
        return frozenset(p for p in ACTIVE_PHASES if p <= new_phase)
    if new_phase == PAUSED:
        return ACTIVE_PHASES | {PAUSED}
    return ACTIVE_PHASES | {PAUSED, new_phase}  # terminal: settles from anything still open


def transition_allowed(*, current: int, current_attempts: int, new: int, new_attempts: int | None) -> bool:
    """The guard as a pure function; ``new_attempts`` None means the update keeps the attempt."""
    if new_attempts is not None and new_attempts < current_attempts:
        return False
    if new_attempts is not None and new_attempts > current_attempts:
        return current not in FINAL_PHASES
    return current in allowed_predecessors(new)
