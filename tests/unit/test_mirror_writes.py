"""What the status mirror writes, and what it does not write again: a sighting it already applied,
a parent it already moved to RUNNING. Every write it skips is one the phase guard would refuse or
repeat, and each is billed."""

from __future__ import annotations

from typing import Any

from functions.mirror_status.mirror import ADDED, MODIFIED, Outcome, StatusMirror
from runplane.flyte import phases
from runplane.flyte.identifiers import ActionKey
from runplane.kube.resources import LABEL_MANAGED_BY, LABEL_TERMINAL_RECORDED, MANAGED_BY
from runplane.table.actions import StatusUpdate, UpdateOutcome


class Store:
    """The store the mirror writes to: every call recorded; every update applied."""

    def __init__(self) -> None:
        self.updates: list[tuple[ActionKey, StatusUpdate]] = []
        self.promotions: list[ActionKey] = []

    def update_status(self, key: ActionKey, update: StatusUpdate, **_: Any) -> UpdateOutcome:
        self.updates.append((key, update))
        return UpdateOutcome(applied=True, phase=update.phase)

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


def mirror() -> tuple[StatusMirror, Store, Cluster]:
    store, cluster = Store(), Cluster()
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
