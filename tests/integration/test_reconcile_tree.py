"""Trees of actions against the real control plane: owner chains, aborts cascading through the
real garbage collector, races with parents, and faults (an API server failing and timing out, a
reconcile killed mid-batch, the whole stream replayed)."""

from __future__ import annotations

from dataclasses import dataclass

import boto3
import pytest
from flyteidl2.common.identifier_pb2 import RunIdentifier
from flyteidl2.workflow import internal_run_service_pb2 as internal
from flyteidl2.workflow import run_definition_pb2 as wf
from flyteidl2.workflow import run_service_pb2 as runs
from kubernetes import client as k8s

from functions.create_run.service import CreateRunService
from functions.reconcile.batch import RunOrderedBatchProcessor
from functions.reconcile.handler import process_batch
from functions.reconcile.reconciler import Outcome, ParentNotMaterialized, Reconciler
from functions.update_action.service import ActionLifecycleService
from local_stack.aws import provision
from local_stack.stream_poller import StreamPoller
from runplane.aws.blobs import BlobStore
from runplane.flyte import phases
from runplane.flyte.identifiers import ActionKey
from runplane.kube.client import TaskActionClient
from runplane.table.actions import ActionStore
from tests.builders import DOMAIN, PROJECT, action_id, child_task_action, create_run_request, resource_name
from tests.conftest import NAMESPACE, unique_name, wait_for
from tests.faults import FaultPlan, FaultyApiServerProxy

pytestmark = pytest.mark.integration


def kube_client(server: str, token: str, ca_file=None, timeout: float = 10.0) -> TaskActionClient:
    configuration = k8s.Configuration()
    configuration.host = server
    configuration.api_key = {"authorization": token}
    configuration.api_key_prefix = {"authorization": "Bearer"}
    configuration.ssl_ca_cert = str(ca_file) if ca_file else None
    return TaskActionClient(api_client=k8s.ApiClient(configuration), namespace=NAMESPACE, timeout_seconds=timeout)


@dataclass
class Harness:
    store: ActionStore
    runs: CreateRunService
    lifecycle: ActionLifecycleService
    reconciler: Reconciler
    stream_arn: str

    def poller(self, *, handler=None, max_retries: int = 5) -> StreamPoller:
        processor = RunOrderedBatchProcessor(concurrency=8)
        handler = handler or (
            lambda event, context: process_batch(event, context, reconciler=self.reconciler, processor=processor)
        )
        return StreamPoller(
            streams_client=boto3.client("dynamodbstreams"),
            stream_arn=self.stream_arn,
            handler=handler,
            max_retries=max_retries,
            retry_backoff_seconds=0.01,
        )

    def new_tree(self, *, fanout: int, depth: int) -> tuple[str, dict[str, str | None]]:
        """A run whose actions form a tree ``depth`` levels deep; returns the run and
        {action: parent}."""
        run = unique_name()
        self.runs.create_run(create_run_request(run))
        tree: dict[str, str | None] = {"a0": None}
        level = ["a0"]
        for _ in range(depth - 1):
            next_level = []
            for parent in level:
                for _i in range(fanout):
                    name = f"n{len(tree)}"
                    self.lifecycle.enqueue(child_task_action(run, name, parent=parent))
                    tree[name] = parent
                    next_level.append(name)
            level = next_level
        return run, tree

    def abort(self, run: str, name: str) -> None:
        if name == "a0":
            self.lifecycle.abort_run(
                runs.AbortRunRequest(run_id=RunIdentifier(project=PROJECT, domain=DOMAIN, name=run))
            )
        else:
            self.lifecycle.abort_action(runs.AbortActionRequest(action_id=action_id(run, name)))

    def record(self, run: str, name: str):
        return self.store.get_action(ActionKey(project=PROJECT, domain=DOMAIN, run=run, name=name))


def make_harness(moto_server, cluster: TaskActionClient, *, max_attempts: int = 5) -> Harness:
    table = provision(endpoint=moto_server.endpoint, table_name=unique_name("tbl"), bucket="tree-data")
    store = ActionStore(table_name=table.table_name, blobs=BlobStore(), spec_prefix="s3://tree-data")
    return Harness(
        store=store,
        runs=CreateRunService(store=store, blobs=BlobStore(), storage_prefix="s3://tree-data"),
        lifecycle=ActionLifecycleService(store=store),
        reconciler=Reconciler(cluster=cluster, store=store, max_attempts=max_attempts),
        stream_arn=table.stream_arn,
    )


@pytest.fixture
def cluster(kube) -> TaskActionClient:
    endpoints = kube.endpoints
    return kube_client(endpoints.server, endpoints.token, endpoints.ca_file)


@pytest.fixture
def harness(moto_server, cluster) -> Harness:
    return make_harness(moto_server, cluster, max_attempts=3)


def resources_of(custom_objects, run: str) -> dict[str, dict]:
    items = custom_objects.list_namespaced_custom_object(
        "flyte.org", "v1", NAMESPACE, "taskactions", label_selector=f"flyte.org/run={run}"
    )["items"]
    return {item["metadata"]["labels"]["flyte.org/action"]: item for item in items}


def assert_owner_chain(resources: dict[str, dict], tree: dict[str, str | None]) -> None:
    assert set(resources) == set(tree)
    for name, parent in tree.items():
        references = resources[name]["metadata"].get("ownerReferences")
        if parent is None:
            assert references is None
            continue
        assert references == [
            {
                "apiVersion": "flyte.org/v1",
                "kind": "TaskAction",
                "name": resources[parent]["metadata"]["name"],
                "uid": resources[parent]["metadata"]["uid"],
                "blockOwnerDeletion": True,
            }
        ]


def subtree(tree: dict[str, str | None], root: str) -> set[str]:
    members, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [name for name, p in tree.items() if p == parent]
        members.update(children)
        frontier.extend(children)
    return members


def test_a_tree_becomes_resources_whose_owner_chain_mirrors_it(harness, custom_objects):
    run, tree = harness.new_tree(fanout=3, depth=4)  # 40 actions
    harness.poller().drain()
    assert_owner_chain(resources_of(custom_objects, run), tree)


def test_aborting_a_middle_action_removes_only_its_subtree(harness, custom_objects):
    run, tree = harness.new_tree(fanout=2, depth=4)
    poller = harness.poller()
    poller.drain()
    harness.abort(run, "n1")
    poller.drain()

    removed = subtree(tree, "n1")
    wait_for(
        lambda: set(resources_of(custom_objects, run)) == set(tree) - removed,
        timeout=20,
        what="the subtree's garbage collection",
    )
    for name in tree:
        record = harness.record(run, name)
        assert record.phase == (phases.ABORTED if name in removed else phases.QUEUED), name
        assert record.abort_requested_at is None
    assert harness.record(run, "n3").abort_reason == "ancestor action 'n1' was aborted"


def test_aborting_the_run_removes_every_resource(harness, custom_objects):
    run, tree = harness.new_tree(fanout=3, depth=3)
    poller = harness.poller()
    poller.drain()
    harness.lifecycle.update_action_status(
        internal.UpdateActionStatusRequest(
            action_id=action_id(run, "n1"), status=wf.ActionStatus(phase=phases.SUCCEEDED, attempts=1)
        )
    )
    harness.abort(run, "a0")
    poller.drain()

    wait_for(lambda: not resources_of(custom_objects, run), timeout=20, what="every resource of the run to go")
    assert harness.record(run, "n1").phase == phases.SUCCEEDED  # it had ended: it keeps its phase
    assert all(harness.record(run, name).phase == phases.ABORTED for name in tree if name != "n1")


def test_a_child_of_a_parent_aborted_before_reconcile_gets_no_resource(harness, custom_objects):
    run, tree = harness.new_tree(fanout=2, depth=2)
    harness.abort(run, "a0")  # before reconcile saw any of it
    harness.poller().drain()
    assert resources_of(custom_objects, run) == {}
    assert all(harness.record(run, name).phase == phases.ABORTED for name in tree)


def test_a_missing_parent_resource_is_retried_then_failed_visibly(harness, custom_objects):
    run, _ = harness.new_tree(fanout=1, depth=2)  # a0 -> n1; a0's resource is never created
    child = harness.record(run, "n1")
    for _ in range(2):
        with pytest.raises(ParentNotMaterialized):
            harness.reconciler.materialise(child)
    assert harness.reconciler.materialise(child) is Outcome.GAVE_UP
    failed = harness.record(run, "n1")
    assert failed.phase == phases.FAILED and "parent action 'a0' does not exist yet" in failed.error_message
    assert "n1" not in resources_of(custom_objects, run)


def test_a_parent_that_ended_and_is_gone_takes_its_child_with_it(harness, custom_objects):
    run, _ = harness.new_tree(fanout=1, depth=2)
    harness.lifecycle.update_action_status(
        internal.UpdateActionStatusRequest(
            action_id=action_id(run, "a0"), status=wf.ActionStatus(phase=phases.SUCCEEDED, attempts=1)
        )
    )
    assert harness.reconciler.materialise(harness.record(run, "n1")) is Outcome.PARENT_GONE
    assert harness.record(run, "n1").phase == phases.ABORTED
    assert resources_of(custom_objects, run) == {}


def test_a_recreated_parent_is_referenced_by_its_new_uid(harness, cluster, custom_objects):
    run, _ = harness.new_tree(fanout=1, depth=2)
    assert harness.reconciler.materialise(harness.record(run, "a0")) is Outcome.CREATED
    old_uid = resources_of(custom_objects, run)["a0"]["metadata"]["uid"]
    cluster.delete(resource_name(run))
    wait_for(lambda: "a0" not in resources_of(custom_objects, run), what="the parent to go")
    assert harness.reconciler.materialise(harness.record(run, "a0")) is Outcome.CREATED
    assert harness.reconciler.materialise(harness.record(run, "n1")) is Outcome.CREATED
    resources = resources_of(custom_objects, run)
    new_uid = resources["a0"]["metadata"]["uid"]
    assert new_uid != old_uid and resources["n1"]["metadata"]["ownerReferences"][0]["uid"] == new_uid


def snapshot(harness: Harness, custom_objects, run: str, tree) -> tuple:
    resources = resources_of(custom_objects, run)
    cluster_state = sorted(
        (name, r["metadata"]["uid"], r["metadata"]["resourceVersion"], str(r["metadata"].get("ownerReferences")))
        for name, r in resources.items()
    )
    table_state = [harness.record(run, name) for name in sorted(tree)]
    return cluster_state, table_state


def test_faults_a_crash_mid_batch_and_replays_end_exactly_right(moto_server, kube, custom_objects):
    endpoints = kube.endpoints
    plan = FaultPlan(failures_per_request=1, timeout_hold_seconds=1.5)
    with FaultyApiServerProxy(
        upstream=endpoints.server, token=endpoints.token, ca_file=endpoints.ca_file, plan=plan
    ) as proxy:
        faulty = kube_client(proxy.endpoint, "unused-the-proxy-authenticates", timeout=1.0)
        harness = make_harness(moto_server, faulty, max_attempts=8)
        run, tree = harness.new_tree(fanout=3, depth=3)  # 13 actions
        processor = RunOrderedBatchProcessor(concurrency=8)
        crashes = []

        def crashing_handler(event, context):
            if not crashes:  # the first invocation dies halfway, after real side effects
                crashes.append(len(event["Records"]))
                half = {"Records": event["Records"][: len(event["Records"]) // 2]}
                process_batch(half, context, reconciler=harness.reconciler, processor=processor)
                raise RuntimeError("reconcile killed mid-batch")
            return process_batch(event, context, reconciler=harness.reconciler, processor=processor)

        poller = harness.poller(handler=crashing_handler, max_retries=20)
        poller.drain()

        assert crashes and poller.on_failure == []
        assert {"500", "429", "timeout"} <= set(plan.injected)
        assert_owner_chain(resources_of(custom_objects, run), tree)
        assert all(harness.record(run, name).phase == phases.QUEUED for name in tree)
        before = snapshot(harness, custom_objects, run, tree)

        for _ in range(2):  # the whole stream again, from the start
            harness.poller().drain()
        assert snapshot(harness, custom_objects, run, tree) == before
