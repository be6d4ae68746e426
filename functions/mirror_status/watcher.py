"""One invocation's watch over one shard of TaskActions, from lease to hand-off.

1. **Lease.** Take the shard's lease (a conditional write with an expiry). Held by a watcher
   that stops soon: wait for it and take over, so there is no gap; held for longer: return.
2. **Idle check.** Nothing left to mirror from the last checkpoint and no resource of the shard
   without the terminal label: release and return at once. An idle shard costs one short
   invocation a minute; reconcile wakes the watcher when it creates a resource there.
3. **Resume or relist.** Resume the watch from the checkpointed resourceVersion (bookmarks on,
   so the version stays fresh on a quiet shard). Without one, or on 410 Gone, list the shard,
   mirror every resource as a first sighting, and treat every resource the checkpoint still had
   open but the list lacks as deleted while nobody watched (as an informer's relist does); how
   such a deletion ended is first asked of the action's recorded events (``recorded``).
4. **Watch** until shortly before the function's timeout, checkpointing the version and the set
   of resources still to mirror as it goes; stop early when that set has been empty for the idle
   grace. Then checkpoint and release: the next invocation resumes where this one stopped.

A failure of one event is logged and the watch goes on; a failed watch call is retried after a
pause; a lost lease ends the invocation. Replays are harmless: every write is guarded.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from functions.mirror_status.mirror import DELETED, Outcome, StatusMirror, action_key_of, is_recorded
from runplane.kube.client import ResourceVersionGone, TaskActionClient
from runplane.kube.resources import (
    LABEL_ACTION,
    LABEL_DOMAIN,
    LABEL_MANAGED_BY,
    LABEL_MIRROR_SHARD,
    LABEL_PROJECT,
    LABEL_RUN,
    LABEL_TERMINAL_RECORDED,
    MANAGED_BY,
)
from runplane.table.leases import Checkpoint, MirrorLeases

logger = logging.getLogger(__name__)

# A holder planning to stop within this long is waited for instead of left alone: the scheduled
# invocation that arrives during a watcher's last minute takes over as it stops.
HANDOFF_WINDOW_SECONDS = 75.0
LEASE_POLL_SECONDS = 0.5
# The lease lasts this long unless renewed; a healthy watcher renews it with every checkpoint
# (at least once per watch call), so one that dies frees its shard within this long.
LEASE_SECONDS = 30.0
# One watch request: the server ends it after this long and we resume at once, checkpointing
# (and renewing the lease) in between even when nothing happened.
MAX_WATCH_CALL_SECONDS = 10
# A relist's resources are independent (one sighting each), so they are mirrored this many at a
# time: a relist of thousands after 410 Gone takes seconds, not minutes. Watch events stay in
# order, one at a time, as they must for one resource.
RELIST_CONCURRENCY = 8
FAILED_WATCH_PAUSE_SECONDS = 1.0


class Result(StrEnum):
    LEASE_HELD = "lease_held"
    IDLE = "idle"
    WATCHED = "watched"
    LEASE_LOST = "lease_lost"


@dataclass
class WatchReport:
    shard: int
    result: Result
    events: int = 0
    relists: int = 0
    still_open: int = 0  # resources not yet in a terminal phase when the invocation ended
    outcomes: dict[str, int] | None = None


class ShardWatcher:
    def __init__(
        self,
        *,
        shard: int,
        holder: str,
        cluster: TaskActionClient,
        mirror: StatusMirror,
        leases: MirrorLeases,
        idle_grace_seconds: float = 10.0,
        checkpoint_interval_seconds: float = 5.0,
        lease_seconds: float = LEASE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.shard = shard
        self._holder = holder
        self._cluster = cluster
        self._mirror = mirror
        self._leases = leases
        self._idle_grace = idle_grace_seconds
        self._checkpoint_interval = checkpoint_interval_seconds
        self._lease_seconds = lease_seconds
        self._clock = clock
        self._sleep = sleep
        self._selector = f"{LABEL_MIRROR_SHARD}={shard}"
        self._version = ""
        self._open: dict[str, str] = {}  # resource name -> action, still to be mirrored
        self._report = WatchReport(shard=shard, result=Result.WATCHED, outcomes={})
        self._lock = threading.Lock()  # the open set and the report, during a concurrent relist

    def run(self, *, deadline: float) -> WatchReport:
        """Watch the shard until ``deadline`` (a ``clock()`` value) at the latest."""
        lease = self._take_lease(deadline)
        if lease is None:
            return self._finish(Result.LEASE_HELD)
        self._version, self._open = lease.resource_version, dict(lease.open)
        try:
            if not self._open and not self._anything_to_mirror():
                return self._finish(Result.IDLE)
            if not self._version:
                self._relist()
            result = self._watch(deadline)
            if result is not Result.LEASE_LOST and not self._save(deadline):
                result = Result.LEASE_LOST
            return self._finish(result)
        finally:
            if self._report.result is not Result.LEASE_LOST:
                self._leases.release(self.shard, holder=self._holder)

    # --- lease ------------------------------------------------------------------------------

    def _take_lease(self, deadline: float) -> Checkpoint | None:
        while True:
            planned = max(0.0, deadline - self._clock())
            state = self._leases.acquire(
                self.shard, holder=self._holder, seconds=self._lease_seconds, planned_seconds=planned
            )
            if state.acquired:
                return state.checkpoint
            holder_stops_in = (state.planned_end_ms - int(time.time() * 1000)) / 1000
            if holder_stops_in > HANDOFF_WINDOW_SECONDS or self._clock() + LEASE_POLL_SECONDS >= deadline:
                logger.info("shard watched by another invocation", extra={"shard": self.shard, "holder": state.holder})
                return None
            self._sleep(LEASE_POLL_SECONDS)

    def _save(self, deadline: float) -> bool:
        return self._leases.checkpoint(
            self.shard,
            holder=self._holder,
            seconds=self._lease_seconds,
            checkpoint=Checkpoint(resource_version=self._version, open=self._open),
        )

    # --- watching ---------------------------------------------------------------------------

    def _anything_to_mirror(self) -> bool:
        selector = f"{self._selector},{LABEL_TERMINAL_RECORDED}!=true"
        items, _ = self._cluster.list(label_selector=selector, limit=1)
        return bool(items)

    def _relist(self) -> None:
        """Mirror every resource of the shard as a first sighting; those the checkpoint had open
        and the list lacks were deleted while nobody watched."""
        self._report.relists += 1
        items, self._version = self._cluster.list(label_selector=self._selector)
        listed = {resource["metadata"]["name"] for resource in items}
        with ThreadPoolExecutor(max_workers=RELIST_CONCURRENCY) as pool:
            list(pool.map(lambda resource: self._handle("ADDED", resource), items))
        for name, action in list(self._open.items()):
            if name not in listed:
                self._handle(DELETED, _tombstone(name, action), unwatched=True)
        logger.info("shard relisted", extra={"shard": self.shard, "resources": len(items), "open": len(self._open)})

    def _watch(self, deadline: float) -> Result:
        last_save = last_event = self._clock()
        while (remaining := deadline - self._clock()) > 1:
            if not self._open and self._clock() - last_event >= self._idle_grace:
                return Result.IDLE
            chunk = int(
                min(remaining, MAX_WATCH_CALL_SECONDS, self._idle_grace if not self._open else MAX_WATCH_CALL_SECONDS)
            )
            try:
                for event in self._cluster.watch(
                    label_selector=self._selector, resource_version=self._version, timeout_seconds=max(1, chunk)
                ):
                    self._version = event.resource_version or self._version
                    if event.type != "BOOKMARK":
                        self._handle(event.type, event.resource)
                        last_event = self._clock()
                    if self._clock() - last_save >= self._checkpoint_interval:
                        if not self._save(deadline):
                            return Result.LEASE_LOST
                        last_save = self._clock()
                    if self._clock() >= deadline or (not self._open and event.type != "BOOKMARK"):
                        break  # out of time, or nothing left: wait out the idle grace in a short call
                if self._clock() - last_save >= self._checkpoint_interval:  # a quiet call: renew anyway
                    if not self._save(deadline):
                        return Result.LEASE_LOST
                    last_save = self._clock()
            except ResourceVersionGone:
                logger.info("watch version gone; relisting", extra={"shard": self.shard, "version": self._version})
                self._relist()
            except Exception:
                logger.exception("watch failed; resuming", extra={"shard": self.shard})
                self._sleep(FAILED_WATCH_PAUSE_SECONDS)
        return Result.WATCHED

    def _handle(self, event_type: str, resource: dict[str, Any], *, unwatched: bool = False) -> None:
        name = resource.get("metadata", {}).get("name", "")
        try:
            outcome = self._mirror.apply(event_type, resource, unwatched=unwatched)
        except Exception:
            logger.exception("mirroring an event failed", extra={"taskaction": name, "event": event_type})
            outcome = None
        with self._lock:
            self._record(event_type, resource, name, outcome)

    def _record(self, event_type: str, resource: dict[str, Any], name: str, outcome: Outcome | None) -> None:
        self._report.events += 1
        if outcome is not None:
            outcomes = self._report.outcomes if self._report.outcomes is not None else {}
            outcomes[outcome.value] = outcomes.get(outcome.value, 0) + 1
        key = action_key_of(resource)
        if (
            event_type == DELETED
            or key is None
            or is_recorded(resource)
            or outcome in (Outcome.RECORDED, Outcome.FOREIGN)
        ):
            self._open.pop(name, None)
        else:
            self._open[name] = f"{key.project}/{key.domain}/{key.run}/{key.name}"

    def _finish(self, result: Result) -> WatchReport:
        self._report.result = result
        self._report.still_open = len(self._open)
        return self._report


def _tombstone(name: str, action: str) -> dict[str, Any]:
    """What is known of a resource deleted while nobody watched: its name and action."""
    project, domain, run, action_name = action.split("/", 3)
    labels = {
        LABEL_PROJECT: project,
        LABEL_DOMAIN: domain,
        LABEL_RUN: run,
        LABEL_ACTION: action_name,
        LABEL_MANAGED_BY: MANAGED_BY,
    }
    return {"metadata": {"name": name, "labels": labels}, "status": {}}
