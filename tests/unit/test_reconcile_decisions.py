"""What reconcile decides a record on: the action's current phase (one projected read), the
resource built from the stream's image; and an abort's order (descendants, then the resource)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from flyteidl2.task import run_pb2
from flyteidl2.workflow import run_definition_pb2 as wf

from functions.reconcile.reconciler import Outcome, Reconciler
from runplane.flyte import phases
from runplane.flyte.identifiers import ActionKey, taskaction_name
from runplane.table.actions import ActionNode, ActionState, EndResult
from runplane.table.records import ActionRecord, utcnow
from tests.builders import task_spec

ROOT = ActionKey(project="p", domain="d", run="r1", name="a0")


def root_image() -> ActionRecord:
    run_spec = run_pb2.RunSpec()
    spec = wf.ActionSpec(run_spec=run_spec, task=wf.TaskAction(spec=task_spec()))
    return ActionRecord(key=ROOT, action_spec=spec.SerializeToString(), run_spec=run_spec.SerializeToString())


class Store:
    """The store's calls reconcile makes, recorded; whole items are never read."""

    def __init__(self, states: dict[ActionKey, ActionState], tree: list[ActionNode] | None = None) -> None:
        self.states = states
        self.tree = tree or []
        self.calls: list[str] = []
        self.fail_tree = False

    def get_action_states(self, keys: list[ActionKey]) -> dict[ActionKey, ActionState]:
        self.calls.append("states")
        return {key: self.states[key] for key in keys if key in self.states}

    def resolve_specs(self, record: ActionRecord) -> ActionRecord:
        return record

    def list_action_tree(self, run: Any) -> list[ActionNode]:
        self.calls.append("tree")
        if self.fail_tree:
            raise RuntimeError("throttled")
        return self.tree

    def abort_cascaded(self, key: ActionKey, *, reason: str) -> EndResult:
        self.calls.append(f"cascade {key.name}")
        return EndResult.ENDED

    def fail_action(self, key: ActionKey, *, message: str, kind: str = "KIND_SYSTEM") -> bool:
        self.calls.append("fail")
        return True

    def abort_cascaded_many(self, keys: list[ActionKey], *, reason: str) -> int:
        self.calls.append(f"cascade {sorted(key.name for key in keys)}")
        return len(keys)

    def finish_abort(self, key: ActionKey, *, requested_at: datetime, error: str = "") -> bool:
        self.calls.append("finish")
        return True

    def count_attempt(self, key: ActionKey, *, counter: str) -> int:
        self.calls.append("count")
        return 1


class Cluster:
    namespace = "flyte"

    def __init__(self, calls: list[str]) -> None:
        self.calls = calls
        self.created: list[dict[str, Any]] = []

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        self.calls.append("create")
        self.created.append(body)
        return {**body, "metadata": {**body["metadata"], "uid": "u-1"}}

    def get(self, name: str) -> dict[str, Any] | None:
        self.calls.append(f"get {name}")
        return None

    def delete(self, name: str) -> bool:
        self.calls.append(f"delete {name}")
        return True

    def signal(self, name: str, *, value: str, signalled_by: str, signalled_at: str) -> bool:
        self.calls.append(f"signal {name}")
        return True


def reconciler(store: Store) -> tuple[Reconciler, Cluster]:
    cluster = Cluster(store.calls)
    return Reconciler(cluster=cluster, store=store, max_attempts=5), cluster


def test_a_new_action_is_created_from_its_image_after_reading_its_phase_alone():
    store = Store({ROOT: ActionState(phase=phases.QUEUED, abort_requested_at=None)})
    rec, cluster = reconciler(store)
    assert rec.materialise(root_image()) is Outcome.CREATED
    assert store.calls == ["states", "create"]
    assert (
        cluster.created[0]["metadata"]["name"] == taskaction_name(ROOT) and cluster.created[0]["spec"]["taskTemplate"]
    )


@pytest.mark.parametrize("state", [None, ActionState(phase=phases.ABORTED, abort_requested_at=None)])
def test_an_action_gone_or_ended_since_its_image_gets_no_resource(state):
    store = Store({ROOT: state} if state else {})
    rec, cluster = reconciler(store)
    assert rec.materialise(root_image()) is Outcome.SKIPPED
    assert cluster.created == []


def test_an_abort_ends_the_descendants_before_the_resource_goes():
    requested = utcnow()
    tree = [ActionNode("a0", None, phases.ABORTED), ActionNode("n1", "a0", phases.RUNNING)]
    store = Store({ROOT: ActionState(phase=phases.ABORTED, abort_requested_at=requested)}, tree)
    rec, _ = reconciler(store)
    assert rec.carry_out_abort(ROOT) is Outcome.ABORTED
    assert store.calls == ["states", "tree", "cascade ['n1']", f"delete {taskaction_name(ROOT)}", "finish"]


def test_the_resource_goes_even_when_the_descendants_cannot_be_ended_and_the_record_is_retried():
    store = Store({ROOT: ActionState(phase=phases.ABORTED, abort_requested_at=utcnow())})
    store.fail_tree = True
    rec, _ = reconciler(store)
    with pytest.raises(RuntimeError, match="throttled"):
        rec.carry_out_abort(ROOT)
    assert store.calls == [
        "states",
        "tree",
        f"delete {taskaction_name(ROOT)}",
        "count",
    ]  # not finished: the stream retries it
