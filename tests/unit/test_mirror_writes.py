"""What the status mirror writes, and what it does not write again: a sighting it already applied,
a parent it already moved to RUNNING. Every write it skips is one the phase guard would refuse or
repeat, and each is billed."""

from __future__ import annotations

from typing import Any

from flyteidl2.common.phase_pb2 import ActionPhase
from flyteidl2.workflow import run_definition_pb2 as wf

from functions.mirror_status.mirror import ADDED, DELETED, MODIFIED, Outcome, StatusMirror
from runplane.flyte import phases
from runplane.flyte.identifiers import ActionKey
from runplane.kube.resources import LABEL_MANAGED_BY, LABEL_TERMINAL_RECORDED, MANAGED_BY
from runplane.table.actions import StatusUpdate, UpdateOutcome
from runplane.table.records import EventRecord


class Store:
    """The store the mirror writes to: every call recorded; every update applied."""

    def __init__(self, *, events: list[EventRecord] | None = None, stored: UpdateOutcome | None = None) -> None:
        self.updates: list[tuple[ActionKey, StatusUpdate]] = []
        self.promotions: list[ActionKey] = []
        self.events = events or []  # what list_events answers
        self.event_reads: list[ActionKey] = []
        self.stored = stored  # when set, what a resolved (attempted) update answers: refused

    def update_status(self, key: ActionKey, update: StatusUpdate, **_: Any) -> UpdateOutcome:
        self.updates.append((key, update))
        if self.stored is not None and update.attempts:
            return self.stored
        return UpdateOutcome(applied=True, phase=update.phase)

    def list_events(self, key: ActionKey) -> list[EventRecord]:
        self.event_reads.append(key)
        return self.events

    def promote_to_running(self, key: ActionKey, **_: Any) -> bool:
        self.promotions.append(key)
        return True


class Cluster:
    def __init__(self) -> None:
        self.labelled: list[str] = []

    def label(self, name: str, labels: dict[str, str]) -> bool:
        self.labelled.append(name)
        return True


def resource(action: str, reason: str | None, *, parent: str | None = None, done: bool = False, **labels: str) -> dict:
    conditions = []
    if reason:
        conditions.append({"type": "Progressing", "status": "True", "reason": reason})
    if done:
        conditions = [
            {"type": "Succeeded", "status": "True", "reason": "Completed", "lastTransitionTime": "2026-11-30T01:02:03Z"}
        ]
    return {
        "metadata": {
            "name": f"r1-{action}",
            "uid": f"uid-{action}",
            "creationTimestamp": "2026-11-30T01:00:00Z",
            "labels": {
                "flyte.org/project": "p",
                "flyte.org/domain": "d",
                "flyte.org/run": "r1",
                "flyte.org/action": action,
                LABEL_MANAGED_BY: MANAGED_BY,
                **labels,
            },
        },
        "spec": {"parentActionName": parent} if parent else {},
        "status": {"attempts": 1, "conditions": conditions},
    }  # fmt: skip


def mirror(store: Store | None = None) -> tuple[StatusMirror, Store, Cluster]:
    store, cluster = store or Store(), Cluster()
    return StatusMirror(store=store, cluster=cluster), store, cluster


def test_a_sighting_already_applied_is_not_written_again():
    status, store, _ = mirror()
    assert status.apply(MODIFIED, resource("a0", "Executing")) is Outcome.APPLIED
    assert status.apply(MODIFIED, resource("a0", "Executing", **{"flyte.org/x": "y"})) is Outcome.UNCHANGED
    assert status.apply(MODIFIED, resource("a0", "Initializing")) is Outcome.APPLIED  # a different sighting: written
    assert [u.phase for _, u in store.updates] == [phases.RUNNING, phases.INITIALIZING]


def test_a_repeated_terminal_sighting_labels_again_without_writing():
    status, store, cluster = mirror()
    assert status.apply(MODIFIED, resource("a0", None, done=True)) is Outcome.RECORDED
    assert status.apply(MODIFIED, resource("a0", None, done=True)) is Outcome.RECORDED  # the label patch was lost
    assert len(store.updates) == 1 and cluster.labelled == ["r1-a0", "r1-a0"]
    recorded = resource("a0", None, done=True, **{LABEL_TERMINAL_RECORDED: "true"})
    assert status.apply(MODIFIED, recorded) is Outcome.SKIPPED_RECORDED


def test_a_parent_seen_running_is_not_promoted_for_each_child():
    status, store, _ = mirror()
    status.apply(MODIFIED, resource("a0", "Executing"))
    for child in ("c1", "c2", "c3"):
        status.apply(ADDED, resource(child, None, parent="a0"))
    assert store.promotions == []


def test_a_parent_not_seen_running_is_promoted_once():
    status, store, _ = mirror()
    for child in ("c1", "c2"):
        status.apply(ADDED, resource(child, None, parent="a0"))
    assert store.promotions == [ActionKey(project="p", domain="d", run="r1", name="a0")]


def test_a_parent_back_in_the_queue_for_a_new_attempt_is_promoted_again():
    status, store, _ = mirror()
    status.apply(MODIFIED, resource("a0", "Executing"))
    retried = resource("a0", "Queued")
    retried["status"]["attempts"] = 2
    status.apply(MODIFIED, retried)
    status.apply(ADDED, resource("c1", None, parent="a0"))
    assert store.promotions == [ActionKey(project="p", domain="d", run="r1", name="a0")]


# --- deletions nobody watched (a relist's tombstones) -------------------------------------------

KEY = ActionKey(project="p", domain="d", run="r1", name="a0")


def recorded(phase: ActionPhase, second: int, *, attempt: int = 1, error: wf.ErrorInfo | None = None) -> EventRecord:
    event = wf.ActionEvent(attempt=attempt, phase=phase)
    event.updated_time.FromSeconds(1_700_000_000 + second)
    event.reported_time.FromSeconds(1_700_000_000 + second)
    if error is not None:
        event.error_info.CopyFrom(error)
    return EventRecord(key=KEY, attempt=attempt, phase=phase, version=0, info=event.SerializeToString())


def tombstone() -> dict:
    gone = resource("a0", None)
    gone["status"] = {}
    return gone


def test_a_tombstone_with_a_recorded_success_is_succeeded_not_aborted():
    """Collected by the executor's TTL while nobody watched: SUCCEEDED, as its first terminal event
    (the ABORTED of the deletion came after it), ended when it succeeded."""
    store = Store(events=[recorded(phases.RUNNING, 10), recorded(phases.SUCCEEDED, 30), recorded(phases.ABORTED, 90)])
    status, store, _ = mirror(store)
    assert status.apply(DELETED, tombstone(), unwatched=True) is Outcome.APPLIED
    [(_, update)] = store.updates
    assert (update.phase, update.attempts) == (phases.SUCCEEDED, 1)
    assert update.end_time is not None and update.end_time.timestamp() == 1_700_000_030


def test_a_tombstone_takes_the_latest_attempts_failure_and_its_error():
    failure = wf.ErrorInfo(message="oom", kind=wf.ErrorInfo.KIND_USER)
    store = Store(events=[recorded(phases.RUNNING, 10), recorded(phases.FAILED, 40, attempt=2, error=failure)])
    status, store, _ = mirror(store)
    status.apply(DELETED, tombstone(), unwatched=True)
    [(_, update)] = store.updates
    assert (update.phase, update.attempts, update.error_kind, update.error_message) == (
        phases.FAILED,
        2,
        "KIND_USER",
        "oom",
    )


def test_a_tombstone_without_a_terminal_event_of_its_latest_attempt_is_aborted():
    store = Store(events=[recorded(phases.FAILED, 10), recorded(phases.RUNNING, 20, attempt=2)])
    status, store, _ = mirror(store)
    status.apply(DELETED, tombstone(), unwatched=True)
    assert [u.phase for _, u in store.updates] == [phases.ABORTED]
    status, store, _ = mirror(Store())  # no events at all
    status.apply(DELETED, tombstone(), unwatched=True)
    assert [u.phase for _, u in store.updates] == [phases.ABORTED]


def test_a_recorded_end_older_than_the_tables_attempt_falls_back_to_aborted():
    store = Store(events=[recorded(phases.SUCCEEDED, 30)], stored=UpdateOutcome(applied=False, phase=phases.RUNNING))
    status, store, _ = mirror(store)
    status.apply(DELETED, tombstone(), unwatched=True)
    assert [u.phase for _, u in store.updates] == [phases.SUCCEEDED, phases.ABORTED]


def test_a_watched_deletion_reads_no_events():
    status, store, _ = mirror(Store(events=[recorded(phases.SUCCEEDED, 30)]))
    status.apply(DELETED, resource("a0", "Executing"))
    assert store.event_reads == [] and [u.phase for _, u in store.updates] == [phases.ABORTED]
