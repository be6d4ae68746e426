"""One watch event about a TaskAction -> the table: how the cluster's status comes back.

The serverless counterpart of the informer in Flyte's actions service (docs/flyte-compat.md#status-mirror). For each sighting of a resource:

1. **Foreign resources are skipped:** missing Flyte labels, not created by this control plane
   (no ``managed-by`` label), or no item in the table. Logged, nothing written.
2. **Recorded resources are skipped:** once labelled ``flyte.org/terminal-status-recorded``.
3. **Parent promotion:** the first sight of a child (an ADDED event) moves its parent to RUNNING
   if it is not that far yet, attempts untouched (docs/flyte-compat.md#q8-promotion-attempts is not copied).
   A parent this mirror has itself moved to RUNNING or beyond (a run's resources are all in one
   shard, so its watcher sees the parent's own status first) is not written again: the write
   would be refused, and a refused conditional write is billed like an applied one.
4. **The status update:** the guarded, idempotent update every status write uses (phase,
   attempts, cache status, start, end, error). Replays and overlapping watchers are harmless: the
   guard never lets a phase move backwards. A sighting identical to the one last applied for the
   same resource (the executor's other writes: finalizers, labels, plugin state) is not written
   again: nothing in the table would change, and each write costs write units (and, for a run's
   root, a rewrite of its run-index entry). A repeated terminal sighting only labels again.
5. **The terminal label:** once the resource's phase is terminal and the table holds a terminal
   phase, the resource is labelled, and later events about it are skipped. A deletion is never
   labelled (the resource is gone).

A deletion nobody watched (a relist's tombstone, ``unwatched=True``) is first resolved from the
action's recorded events (``recorded``): a terminal event of the latest attempt is how it ended
(the executor's TTL collection, not an abort); without one, it was aborted.

There is no RecordAction step, unlike Flyte: every TaskAction is created by reconcile from an
item that already exists, so the item is there to update.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from functions.mirror_status.conditions import Sighting, sighting_of
from functions.mirror_status.recorded import recorded_end
from runplane.flyte import phases
from runplane.flyte.identifiers import ActionKey
from runplane.kube.resources import LABEL_MANAGED_BY, LABEL_TERMINAL_RECORDED, MANAGED_BY, identity_of
from runplane.ops import metrics
from runplane.ops.logs import bind
from runplane.table.actions import StatusUpdate, UpdateOutcome
from runplane.table.records import EventRecord

logger = logging.getLogger(__name__)

ADDED, MODIFIED, DELETED = "ADDED", "MODIFIED", "DELETED"
# What the mirror remembers of what it wrote (per resource: its last applied sighting; per action:
# whether it is RUNNING or beyond), at most this many entries each, oldest forgotten first. Each
# entry is under 200 bytes; forgetting one only costs a write the guard makes harmless.
MEMORY_ENTRIES = 20_000
# Phases at or beyond RUNNING: a parent in one of them needs no promotion.
_PROMOTED = frozenset({phases.RUNNING, phases.PAUSED}) | phases.TERMINAL_PHASES


class MirrorStore(Protocol):
    """The table as the mirror writes it (``runplane.table.actions.ActionStore``)."""

    def update_status(self, key: ActionKey, update: StatusUpdate, *, now: datetime | None = None) -> UpdateOutcome: ...
    def promote_to_running(self, key: ActionKey, *, now: datetime | None = None) -> bool: ...
    def list_events(self, key: ActionKey) -> list[EventRecord]: ...


class MirrorCluster(Protocol):
    """The cluster as the mirror writes it (``runplane.kube.client.TaskActionClient``)."""

    def label(self, name: str, labels: dict[str, str]) -> bool: ...


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
    def __init__(self, *, store: MirrorStore, cluster: MirrorCluster) -> None:
        self._store = store
        self._cluster = cluster
        self._lock = threading.Lock()  # a relist mirrors several resources at a time
        self._applied: OrderedDict[tuple[str, str], Sighting] = OrderedDict()  # (name, uid) -> last applied
        self._running: OrderedDict[ActionKey, None] = OrderedDict()  # actions this mirror saw RUNNING or beyond

    def apply(self, event_type: str, resource: dict[str, Any], *, unwatched: bool = False) -> Outcome:
        """Mirror one sighting; ``unwatched``: a deletion found by a relist, not seen by a watch."""
        name = resource.get("metadata", {}).get("name", "?")
        key = action_key_of(resource)
        if key is None:
            bind()  # not an action of ours: no run or action on its lines
            logger.warning("foreign TaskAction skipped", extra={"taskaction": name, "reason": "labels"})
            return Outcome.FOREIGN
        bind(run=str(key.run_key), action=str(key))
        if is_recorded(resource):
            self._forget(name, resource)
            return Outcome.SKIPPED_RECORDED
        deleted = event_type == DELETED
        sighting = tombstone = sighting_of(resource, deleted=deleted)
        if deleted and unwatched and sighting.phase == phases.ABORTED:
            sighting = self._resolved(key, sighting)
        parent = (resource.get("spec") or {}).get("parentActionName")
        if event_type == ADDED and parent:
            parent_key = ActionKey(project=key.project, domain=key.domain, run=key.run, name=parent)
            if not self._knows_running(parent_key):
                self._store.promote_to_running(parent_key)
                self._remember_running(parent_key, running=True)
        if sighting.phase == phases.UNSPECIFIED:
            return Outcome.UNCHANGED
        identity = (name, str(resource.get("metadata", {}).get("uid", "")))
        if not deleted and self._last_applied(identity) == sighting:  # the executor wrote something else
            if not phases.is_terminal(sighting.phase):
                return Outcome.UNCHANGED  # the table already says this
            return self._record_terminal(name, key, sighting.phase)  # applied, not labelled yet
        outcome = self._store.update_status(key, _update_of(sighting))
        stale = outcome.phase is not None and not outcome.applied and not phases.is_terminal(outcome.phase)
        if sighting is not tombstone and stale:  # the events' attempt is older than the table's: aborted
            sighting = tombstone
            outcome = self._store.update_status(key, _update_of(sighting))
        if outcome.phase is None:
            logger.warning("TaskAction without an action skipped", extra={"taskaction": name, "action": str(key)})
            return Outcome.FOREIGN
        metrics.count(metrics.STATUS_UPDATES_APPLIED if outcome.applied else metrics.STATUS_UPDATES_REJECTED)
        if outcome.applied:
            self._remember_applied(identity, sighting, key=key, deleted=deleted)
        if deleted or not (phases.is_terminal(sighting.phase) and phases.is_terminal(outcome.phase)):
            return Outcome.APPLIED if outcome.applied else Outcome.UNCHANGED
        return self._record_terminal(name, key, outcome.phase)

    def _resolved(self, key: ActionKey, tombstone: Sighting) -> Sighting:
        """A tombstone's sighting as the action's recorded events tell it (``recorded``)."""
        end = recorded_end(self._store.list_events(key))
        if end is None:
            return tombstone
        logger.info(
            "unwatched deletion resolved from recorded events",
            extra={"action": str(key), "phase": phases.phase_name(end.phase), "attempt": end.attempt},
        )
        failed = end.phase in (phases.FAILED, phases.TIMED_OUT)
        return Sighting(
            phase=end.phase,
            attempts=end.attempt,
            cache_status=0,
            start_time=None,
            end_time=end.end_time,
            error_kind=end.error_kind if failed else "",
            error_message=end.error_message if failed else "",
        )

    def _record_terminal(self, name: str, key: ActionKey, phase: int) -> Outcome:
        """The table holds a terminal phase: label the resource, so it is skipped from now on."""
        self._cluster.label(name, {LABEL_TERMINAL_RECORDED: "true"})
        logger.info(
            "terminal status recorded",
            extra={"taskaction": name, "action": str(key), "phase": phases.phase_name(phase)},
        )
        return Outcome.RECORDED

    # --- what the mirror remembers ----------------------------------------------------------

    def _knows_running(self, key: ActionKey) -> bool:
        with self._lock:
            return key in self._running

    def _remember_running(self, key: ActionKey, *, running: bool) -> None:
        with self._lock:
            if not running:
                self._running.pop(key, None)
                return
            self._running[key] = None
            self._running.move_to_end(key)
            while len(self._running) > MEMORY_ENTRIES:
                self._running.popitem(last=False)

    def _forget(self, name: str, resource: dict[str, Any]) -> None:
        with self._lock:
            self._applied.pop((name, str(resource.get("metadata", {}).get("uid", ""))), None)

    def _last_applied(self, identity: tuple[str, str]) -> Sighting | None:
        with self._lock:
            return self._applied.get(identity)

    def _remember_applied(
        self, identity: tuple[str, str], sighting: Sighting, *, key: ActionKey, deleted: bool
    ) -> None:
        """An applied sighting: the resource's latest, and whether its action is RUNNING or beyond
        (a new attempt back in QUEUED is not: its next child promotes it again)."""
        self._remember_running(key, running=sighting.phase in _PROMOTED)
        with self._lock:
            if deleted:
                self._applied.pop(identity, None)  # nothing more to mirror for it
                return
            self._applied[identity] = sighting
            self._applied.move_to_end(identity)
            while len(self._applied) > MEMORY_ENTRIES:
                self._applied.popitem(last=False)


def _update_of(sighting: Sighting) -> StatusUpdate:
    return StatusUpdate(
        phase=sighting.phase,
        attempts=sighting.attempts or None,
        cache_status=sighting.cache_status or None,
        start_time=sighting.start_time,
        end_time=sighting.end_time,
        error_kind=sighting.error_kind,
        error_code=sighting.error_code,
        error_message=sighting.error_message,
    )
