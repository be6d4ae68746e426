"""The control plane's rights in the cluster: what deploy/kubernetes grants, on a real RBAC apiserver.

The local control plane authorizes with RBAC and binds a user of the control plane's group with
the Role of ``deploy/kubernetes/rbac.yaml`` (as the EKS access entries bind reconcile's and the
status mirror's IAM roles). Here that identity does everything reconcile and the status mirror
do, through their own client, and is refused (403) everything else.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from functions.create_run.service import CreateRunService
from functions.reconcile.reconciler import Outcome, Reconciler
from functions.update_action.service import ActionLifecycleService
from runplane.aws.blobs import BlobStore
from runplane.flyte.identifiers import RunKey
from runplane.kube.resources import GROUP, LABEL_MIRROR_SHARD, LABEL_RUN, LABEL_TERMINAL_RECORDED, PLURAL, VERSION
from runplane.table.actions import ActionStore
from tests.builders import DOMAIN, PROJECT, child_task_action, create_run_request, resource_name
from tests.conftest import NAMESPACE, unique_name

pytestmark = pytest.mark.integration

FORBIDDEN = 403


@pytest.fixture
def materialised(aws, cluster) -> Callable[[], tuple[str, str]]:
    """A run with one child, materialised by the real reconciler under the control plane's Role;
    returns the run's name and the child's TaskAction name."""
    store = ActionStore(table_name=aws.table_name)
    reconciler = Reconciler(cluster=cluster, store=store)

    def make() -> tuple[str, str]:
        name = unique_name("rbac")
        CreateRunService(store=store, blobs=BlobStore(), storage_prefix=f"s3://{aws.bucket}").create_run(
            create_run_request(name)
        )
        run = RunKey(PROJECT, DOMAIN, name)
        root = store.get_action(run.action("a0"))
        assert root is not None and reconciler.materialise(root) is Outcome.CREATED
        ActionLifecycleService(store=store).enqueue(child_task_action(name, "c1"))
        # a child carries an owner reference to its parent (blockOwnerDeletion): created as well
        child = store.get_action(run.action("c1"))
        assert child is not None and reconciler.materialise(child) is Outcome.CREATED
        return name, resource_name(name, "c1")

    return make


def _status(call: Callable[[], object]) -> int:
    from kubernetes.client.exceptions import ApiException

    try:
        call()
    except ApiException as exc:
        return exc.status
    return 200


def test_the_deployed_role_is_enough_for_reconcile_and_the_status_mirror(materialised, cluster):
    run, name = materialised()
    resource = cluster.get(name)
    assert resource is not None and resource["metadata"]["ownerReferences"]

    selector = f"{LABEL_MIRROR_SHARD}=0,{LABEL_RUN}={run}"  # what the status mirror lists and watches
    items, version = cluster.list(label_selector=selector)
    assert {item["metadata"]["name"] for item in items} == {name, resource_name(run)}
    assert cluster.label(name, {LABEL_TERMINAL_RECORDED: "true"}) is True
    events = list(cluster.watch(label_selector=selector, resource_version=version, timeout_seconds=1))
    assert [e.resource["metadata"]["name"] for e in events if e.type == "MODIFIED"] == [name]  # the label patch
    assert cluster.delete(name) is True
    assert cluster.delete(name) is False


def test_verbs_outside_the_grant_are_refused(materialised, control_plane_api):
    from kubernetes import client

    _, name = materialised()
    objects = client.CustomObjectsApi(control_plane_api)
    core = client.CoreV1Api(control_plane_api)
    status_patch = {"status": {"conditions": [{"type": "Succeeded", "status": "True", "reason": "Succeeded"}]}}
    refused = {
        # the status is patched (a condition's signal), never replaced
        "replace status": lambda: objects.replace_namespaced_custom_object_status(
            GROUP,
            VERSION,
            NAMESPACE,
            PLURAL,
            name,
            {**objects.get_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, name), **status_patch},
        ),
        # no full-object writes: labels go by patch
        "replace": lambda: objects.replace_namespaced_custom_object(
            GROUP,
            VERSION,
            NAMESPACE,
            PLURAL,
            name,
            objects.get_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, name),
        ),
        "delete every TaskAction": lambda: objects.delete_collection_namespaced_custom_object(
            GROUP, VERSION, NAMESPACE, PLURAL
        ),
        "list TaskActions of every namespace": lambda: objects.list_cluster_custom_object(GROUP, VERSION, PLURAL),
        "create a TaskAction in another namespace": lambda: objects.create_namespaced_custom_object(
            GROUP,
            VERSION,
            "default",
            PLURAL,
            {"apiVersion": f"{GROUP}/{VERSION}", "kind": "TaskAction", "metadata": {"name": "x"}},
        ),
        "list secrets": lambda: core.list_namespaced_secret(NAMESPACE),
        "read pods": lambda: core.list_namespaced_pod(NAMESPACE),
        "delete the namespace": lambda: core.delete_namespace(NAMESPACE),
    }
    assert {what: _status(call) for what, call in refused.items()} == dict.fromkeys(refused, FORBIDDEN)
