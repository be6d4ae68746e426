"""deploy/kubernetes: what `kubectl apply -k deploy/kubernetes` installs, and what the local stack
applies from the same files (local_stack.kube.cluster_resources)."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys

import pytest
import yaml

from local_stack.kube import CLUSTER_RESOURCES_DIR, cluster_resources, control_plane_groups
from local_stack.template import load_template

# What reconcile (create, get, delete) and the status mirror (list, watch, patch for the terminal
# label) do to TaskActions; runplane.kube.client is the only code that calls the cluster.
RECONCILE, MIRROR = "flyte-serverless-reconcile", "flyte-serverless-status-mirror"


def _of_kind(kind: str) -> list[dict]:
    return [obj for obj in cluster_resources() if obj["kind"] == kind]


RELAY = "flyte-events-relay"
RELAY_DIR = CLUSTER_RESOURCES_DIR / "events-relay"
# The namespace Flyte's executor is installed in (its executor/config/default kustomization).
EXECUTOR_NAMESPACE = "executor-system"


def test_the_kustomization_installs_the_crd_the_namespace_the_control_planes_rbac_and_the_events_relay():
    kinds = [(obj["kind"], obj["metadata"]["name"]) for obj in cluster_resources()]
    namespace = load_template()["Parameters"]["TaskActionNamespace"]["Default"]
    assert kinds == [
        ("CustomResourceDefinition", "taskactions.flyte.org"),
        ("Namespace", namespace),
        ("Role", RECONCILE),
        ("RoleBinding", RECONCILE),
        ("Role", MIRROR),
        ("RoleBinding", MIRROR),
        ("ServiceAccount", RELAY),
        ("Deployment", RELAY),
        ("Service", RELAY),
        ("NetworkPolicy", RELAY),
        ("ConfigMap", f"{RELAY}-script"),
        ("ConfigMap", f"{RELAY}-settings"),
    ]
    relay_objects = [obj for obj in cluster_resources() if obj["metadata"]["name"].startswith(RELAY)]
    assert {obj["metadata"]["namespace"] for obj in relay_objects} == {namespace}


def test_each_role_grants_exactly_what_its_function_does_in_one_namespace():
    roles = {role["metadata"]["name"]: role for role in _of_kind("Role")}
    bindings = {binding["metadata"]["name"]: binding for binding in _of_kind("RoleBinding")}
    assert set(roles) == set(bindings) == {RECONCILE, MIRROR}  # the relay is given no rights in the cluster
    rule, status = roles[RECONCILE]["rules"]
    assert rule == {"apiGroups": ["flyte.org"], "resources": ["taskactions"], "verbs": ["create", "get", "delete"]}
    # the status subresource: patch only (reconcile relays a condition's signal, as Flyte's actions service)
    assert status == {"apiGroups": ["flyte.org"], "resources": ["taskactions/status"], "verbs": ["patch"]}
    (mirror,) = roles[MIRROR]["rules"]  # list, watch and the one label's patch; nothing of the status
    assert mirror == {"apiGroups": ["flyte.org"], "resources": ["taskactions"], "verbs": ["list", "watch", "patch"]}
    parameters = load_template()["Parameters"]
    namespace = parameters["TaskActionNamespace"]["Default"]
    for name, role in roles.items():
        binding = bindings[name]
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name}
        assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == namespace
    assert not _of_kind("ClusterRole") and not _of_kind("ClusterRoleBinding")
    # the groups the template's access entries map the two roles to, one each
    assert control_plane_groups(cluster_resources()) == [
        parameters["ReconcileGroup"]["Default"],
        parameters["MirrorGroup"]["Default"],
    ]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_builds_the_same_objects_the_local_stack_applies():
    built = subprocess.run(
        ["kubectl", "kustomize", str(CLUSTER_RESOURCES_DIR)], check=True, capture_output=True, text=True
    ).stdout
    # kustomize appends a hash of its content to a generated ConfigMap's name (and rewrites the
    # references to it); the local stack names it without, as the same object
    by_kubectl = sorted(
        (d["kind"], _unhashed(d), d["metadata"].get("namespace")) for d in yaml.safe_load_all(built) if d
    )
    locally = sorted((d["kind"], d["metadata"]["name"], d["metadata"].get("namespace")) for d in cluster_resources())
    assert by_kubectl == locally


def _unhashed(obj: dict) -> str:
    name = obj["metadata"]["name"]
    return re.sub(r"-[a-z0-9]{10}$", "", name) if obj["kind"] == "ConfigMap" else name


# --- the events relay ----------------------------------------------------------------------------


def test_the_relay_runs_its_script_from_a_configmap_on_a_stock_python_image():
    (deployment,) = _of_kind("Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "python:3.13-slim"  # no image of our own to build
    assert container["command"][-1] == "/opt/relay/relay.py"
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/opt/relay"]
    assert volumes[mount["name"]]["configMap"]["name"] == f"{RELAY}-script"
    (script,) = [cm for cm in _of_kind("ConfigMap") if cm["metadata"]["name"] == f"{RELAY}-script"]
    assert script["data"]["relay.py"] == (RELAY_DIR / "relay.py").read_text()
    # its credentials come from a Secret the operator creates, as a file; none is in the repository
    assert any(volume.get("secret", {}).get("secretName") == f"{RELAY}-client" for volume in pod["volumes"])
    assert not _of_kind("Secret")
    assert pod["automountServiceAccountToken"] is False  # it never calls the Kubernetes API
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_the_relay_script_imports_the_standard_library_only():
    tree = ast.parse((RELAY_DIR / "relay.py").read_text())
    imported = {
        alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    } | {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert imported - {"__future__"} <= set(sys.stdlib_module_names), imported - set(sys.stdlib_module_names)


def test_the_relay_forwards_exactly_the_executors_unauthenticated_procedures():
    """Record (setup.go's events client) and the four procedures of Flyte's cache client
    (catalog/cache_service/client.go), both built on http.DefaultClient; nothing else of the API."""
    from local_stack.relay import relay_module

    cache = "/flyteidl2.cacheservice.v2.CacheService"
    expected = (
        "/flyteidl2.workflow.EventsProxyService/Record",
        f"{cache}/Get",
        f"{cache}/Put",
        f"{cache}/GetOrExtendReservation",
        f"{cache}/ReleaseReservation",
    )
    forwarded = relay_module().FORWARDED_PROCEDURES
    assert forwarded == expected
    # the deploy guide points both of the executor's URLs at the relay's Service
    guide = (CLUSTER_RESOURCES_DIR.parents[1] / "docs" / "deploy.md").read_text()
    service = f"http://{RELAY}.flyte.svc.cluster.local"
    assert f"EventsServiceURL: {service}" in guide and f"cacheServiceURL: {service}" in guide


def test_only_the_executors_namespace_reaches_the_relay():
    (policy,) = _of_kind("NetworkPolicy")
    (service,) = _of_kind("Service")
    (deployment,) = _of_kind("Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    (rule,) = policy["spec"]["ingress"]
    # one peer, a namespace selector alone: not the task pods of the TaskActions' namespace
    assert rule["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": EXECUTOR_NAMESPACE}}}]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert [port["port"] for port in rule["ports"]] == [container["ports"][0]["name"]]
