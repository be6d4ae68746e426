"""Checks of incoming flyteidl2 messages that more than one RPC needs. Every failure is an
``invalid_argument`` naming the field, raised before anything is read or written."""

from __future__ import annotations

from flyteidl2.common.identifier_pb2 import ActionIdentifier, RunIdentifier

from runplane.errors import InvalidArgument
from runplane.flyte import phases
from runplane.flyte.identifiers import (
    ROOT_ACTION_NAME,
    ActionKey,
    RunKey,
    validate_action_name,
    validate_scope_name,
)


def run_key(run_id: RunIdentifier, *, field: str = "run_id") -> RunKey:
    """The key of an existing run: present and well-formed (a malformed name cannot exist)."""
    if not run_id.name:
        raise InvalidArgument(f"{field}.name is required")
    return RunKey(
        project=validate_scope_name(run_id.project, field=f"{field}.project"),
        domain=validate_scope_name(run_id.domain, field=f"{field}.domain"),
        name=run_id.name,
    )


def action_key(action_id: ActionIdentifier, *, field: str = "action_id") -> ActionKey:
    """The key of an existing action."""
    run = run_key(action_id.run, field=f"{field}.run")
    if not action_id.name:
        raise InvalidArgument(f"{field}.name is required")
    return run.action(action_id.name)


def new_child_key(action_id: ActionIdentifier, *, parent: str, field: str = "action_id") -> ActionKey:
    """The key of a child action about to be created: a name the SDK can generate, never one whose
    TaskAction would collide with the root's (Flyte maps a child named like its run to
    ``<run>-a0``, docs/flyte-compat.md#q10-child-named-like-run)."""
    key = action_key(action_id, field=field)
    validate_action_name(key.name, field=f"{field}.name")
    if key.name in (ROOT_ACTION_NAME, key.run):
        raise InvalidArgument(f"{field}.name {key.name!r} is reserved: it names the run's root action")
    if not parent:
        raise InvalidArgument("parent_action_name is required: runs and their root actions come from CreateRun")
    if parent == key.name:
        raise InvalidArgument(f"action {key.name!r} cannot be its own parent")
    return key


def known_phase(value: int, *, field: str) -> int:
    if value not in phases.ALL_PHASES or value == phases.UNSPECIFIED:
        raise InvalidArgument(f"{field} {value} is not an ActionPhase")
    return value
