"""deploy/kubernetes: what `kubectl apply -k deploy/kubernetes` installs, and what the local stack
applies from the same files (local_stack.kube.cluster_resources)."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from local_stack.kube import CLUSTER_RESOURCES_DIR, cluster_resources, control_plane_group
from local_stack.template import load_template

# What reconcile (create, get, delete) and the status mirror (list, watch, patch for the terminal
# label) do to TaskActions; runplane.kube.client is the only code that calls the cluster.
CONTROL_PLANE_VERBS = {"create", "get", "delete", "list", "watch", "patch"}


def _of_kind(kind: str) -> list[dict]:
    return [obj for obj in cluster_resources() if obj["kind"] == kind]


def test_the_kustomization_installs_the_crd_the_namespace_and_the_control_planes_rbac():
    kinds = [(obj["kind"], obj["metadata"]["name"]) for obj in cluster_resources()]
    namespace = load_template()["Parameters"]["TaskActionNamespace"]["Default"]
    assert kinds == [
        ("CustomResourceDefinition", "taskactions.flyte.org"),
        ("Namespace", namespace),
        ("Role", "flyte-serverless-control-plane"),
        ("RoleBinding", "flyte-serverless-control-plane"),
    ]


def test_the_role_grants_exactly_what_reconcile_and_the_mirror_do_in_one_namespace():
    (role,) = _of_kind("Role")
    (binding,) = _of_kind("RoleBinding")
    (rule,) = role["rules"]
    assert rule["apiGroups"] == ["flyte.org"] and rule["resources"] == ["taskactions"]  # not taskactions/status
    assert set(rule["verbs"]) == CONTROL_PLANE_VERBS  # no update, no deletecollection, no "*"
    assert set(rule) == {"apiGroups", "resources", "verbs"}  # no resourceNames to widen or narrow it
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert (
        role["metadata"]["namespace"]
        == binding["metadata"]["namespace"]
        == load_template()["Parameters"]["TaskActionNamespace"]["Default"]
    )
    assert not _of_kind("ClusterRole") and not _of_kind("ClusterRoleBinding")
    # the group the template's access entries map the two roles to
    assert control_plane_group(cluster_resources()) == load_template()["Parameters"]["ControlPlaneGroup"]["Default"]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_builds_the_same_objects_the_local_stack_applies():
    built = subprocess.run(
        ["kubectl", "kustomize", str(CLUSTER_RESOURCES_DIR)], check=True, capture_output=True, text=True
    ).stdout
    by_kubectl = sorted(
        (d["kind"], d["metadata"]["name"], d["metadata"].get("namespace")) for d in yaml.safe_load_all(built) if d
    )
    locally = sorted((d["kind"], d["metadata"]["name"], d["metadata"].get("namespace")) for d in cluster_resources())
    assert by_kubectl == locally
