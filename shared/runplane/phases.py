"""Flyte's action phases: the enum comes from flyteidl2; this module only classifies it."""

from __future__ import annotations

from flyteidl2.common.phase_pb2 import ActionPhase

QUEUED = ActionPhase.ACTION_PHASE_QUEUED
RUNNING = ActionPhase.ACTION_PHASE_RUNNING
SUCCEEDED = ActionPhase.ACTION_PHASE_SUCCEEDED
FAILED = ActionPhase.ACTION_PHASE_FAILED
ABORTED = ActionPhase.ACTION_PHASE_ABORTED
TIMED_OUT = ActionPhase.ACTION_PHASE_TIMED_OUT
PAUSED = ActionPhase.ACTION_PHASE_PAUSED
RECOVERED = ActionPhase.ACTION_PHASE_RECOVERED

# Flyte's IsTerminalPhase; PAUSED waits for a signal and is not terminal.
TERMINAL_PHASES = frozenset({SUCCEEDED, FAILED, ABORTED, TIMED_OUT, RECOVERED})


def is_terminal(phase: int) -> bool:
    return phase in TERMINAL_PHASES


def phase_name(phase: int) -> str:
    try:
        return ActionPhase.Name(phase)
    except ValueError:
        return f"ACTION_PHASE_{phase}"
