"""One watch event about a TaskAction -> the table: how the cluster's status comes back.

The serverless counterpart of the informer in Flyte's actions service (docs/flyte-compat.md#status-mirror). For each sighting of a resource:

1. **Foreign resources are skipped:** missing Flyte labels, not created by this control plane
   (no ``managed-by`` label), or no item in the table. Logged, nothing written.
2. **Recorded resources are skipped:** once labelled ``flyte.org/terminal-status-recorded``.
3. **Parent promotion:** the first sight of a child (an ADDED event) moves its parent to RUNNING
   if it is not that far yet, attempts untouched (docs/flyte-compat.md#q8-promotion-attempts is not copied).
4. **The status update:** the guarded, idempotent update every status write uses (phase,
   attempts, cache status, start, end, error). Replays and overlapping watchers are harmless: the
   guard never lets a phase move backwards.
5. **The terminal label:** once the resource's phase is terminal and the table holds a terminal
   phase, the resource is labelled, and later events about it are skipped. A deletion is never
   labelled (the resource is gone).

There is no RecordAction step, unlike Flyte: every TaskAction is created by reconcile from an
item that already exists, so the item is there to update.
"""

from __future__ import annotations

import logging
from enum import StrEnum
from typing import Any

from functions.mirror_status.conditions import sighting_of
from runplane import metrics, phases
from runplane.identifiers import ActionKey
from runplane.kube.client import TaskActionClient
from runplane.kube.resources import LABEL_MANAGED_BY, LABEL_TERMINAL_RECORDED, MANAGED_BY, identity_of
from runplane.logs import bind
from runplane.store import ActionStore, StatusUpdate

logger = logging.getLogger(__name__)

ADDED, MODIFIED, DELETED = "ADDED", "MODIFIED", "DELETED"


class Outcome(StrEnum):
    APPLIED = "applied"  # the table changed
    UNCHANGED = "unchanged"  # the guard refused, or there was nothing to write yet
    RECORDED = "recorded"  # terminal, now in the table, resource labelled
    SKIPPED_RECORDED = "skipped_recorded"  # labelled earlier: nothing more to mirror
    FOREIGN = "foreign"  # not this control plane's, or no item


def is_recorded(resource: dict[str, Any]) -> bool:
    return (resource.get("metadata", {}).get("labels") or {}).get(LABEL_TERMINAL_RECORDED) == "true"


def action_key_of(resource: dict[str, Any]) -> ActionKey | None:
    """The action a resource belongs to, or None if it is not one of ours."""
    labels = resource.get("metadata", {}).get("labels") or {}
    project, domain, run, action = identity_of(resource)
    if not (project and domain and run and action) or labels.get(LABEL_MANAGED_BY) != MANAGED_BY:
        return None
    return ActionKey(project=project, domain=domain, run=run, name=action)


class StatusMirror:
    def __init__(self, *, store: ActionStore, cluster: TaskActionClient) -> None:
        self._store = store
        self._cluster = cluster

    def apply(self, event_type: str, resource: dict[str, Any]) -> Outcome:
        name = resource.get("metadata", {}).get("name", "?")
        key = action_key_of(resource)
        if key is None:
            bind()  # not an action of ours: no run or action on its lines
            logger.warning("foreign TaskAction skipped", extra={"taskaction": name, "reason": "labels"})
            return Outcome.FOREIGN
        bind(run=str(key.run_key), action=str(key))
        if is_recorded(resource):
            return Outcome.SKIPPED_RECORDED
        deleted = event_type == DELETED
        sighting = sighting_of(resource, deleted=deleted)
        parent = (resource.get("spec") or {}).get("parentActionName")
        if event_type == ADDED and parent:
            self._store.promote_to_running(ActionKey(project=key.project, domain=key.domain, run=key.run, name=parent))
        if sighting.phase == phases.UNSPECIFIED:
            return Outcome.UNCHANGED
        update = StatusUpdate(
            phase=sighting.phase,
            attempts=sighting.attempts or None,
            cache_status=sighting.cache_status or None,
            start_time=sighting.start_time,
            end_time=sighting.end_time,
            error_kind=sighting.error_kind,
            error_code=sighting.error_code,
            error_message=sighting.error_message,
        )
        outcome = self._store.update_status(key, update)
        if outcome.record is None:
            logger.warning("TaskAction without an action skipped", extra={"taskaction": name, "action": str(key)})
            return Outcome.FOREIGN
        metrics.count(metrics.STATUS_UPDATES_APPLIED if outcome.applied else metrics.STATUS_UPDATES_REJECTED)
        if deleted or not (phases.is_terminal(sighting.phase) and phases.is_terminal(outcome.record.phase)):
            return Outcome.APPLIED if outcome.applied else Outcome.UNCHANGED
        self._cluster.label(name, {LABEL_TERMINAL_RECORDED: "true"})
        logger.info(
            "terminal status recorded",
            extra={"taskaction": name, "action": str(key), "phase": phases.phase_name(outcome.record.phase)},
        )
        return Outcome.RECORDED
