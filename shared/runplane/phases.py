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
"""

from __future__ import annotations

from flyteidl2.common.phase_pb2 import ActionPhase

UNSPECIFIED = ActionPhase.ACTION_PHASE_UNSPECIFIED
QUEUED = ActionPhase.ACTION_PHASE_QUEUED
WAITING_FOR_RESOURCES = ActionPhase.ACTION_PHASE_WAITING_FOR_RESOURCES
INITIALIZING = ActionPhase.ACTION_PHASE_INITIALIZING
RUNNING = ActionPhase.ACTION_PHASE_RUNNING
SUCCEEDED = ActionPhase.ACTION_PHASE_SUCCEEDED
FAILED = ActionPhase.ACTION_PHASE_FAILED
ABORTED = ActionPhase.ACTION_PHASE_ABORTED
TIMED_OUT = ActionPhase.ACTION_PHASE_TIMED_OUT
PAUSED = ActionPhase.ACTION_PHASE_PAUSED
RECOVERED = ActionPhase.ACTION_PHASE_RECOVERED

ALL_PHASES = frozenset(ActionPhase.values())
# Flyte's IsTerminalPhase; PAUSED waits for a signal and is not terminal.
TERMINAL_PHASES = frozenset({SUCCEEDED, FAILED, ABORTED, TIMED_OUT, RECOVERED})
RETRYABLE_PHASES = frozenset({FAILED, TIMED_OUT})
FINAL_PHASES = TERMINAL_PHASES - RETRYABLE_PHASES
ACTIVE_PHASES = frozenset({UNSPECIFIED, QUEUED, WAITING_FOR_RESOURCES, INITIALIZING, RUNNING})


def is_terminal(phase: int) -> bool:
    return phase in TERMINAL_PHASES


def phase_name(phase: int) -> str:
    try:
        return ActionPhase.Name(phase)
    except ValueError:
        return f"ACTION_PHASE_{phase}"


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
