"""A real Kubernetes control plane on loopback: etcd, kube-apiserver and kube-controller-manager.

Built from Debian's ``kubernetes`` source package by ``scripts/build-k8s-testbins.sh`` (cached
outside the repo) and run as a real cluster runs them: HTTPS with static bearer tokens, RBAC
authorization, what ``deploy/kubernetes`` installs (Flyte's TaskAction CRD, the namespace, the
control plane's Role and RoleBinding, the events relay's objects: the kustomization's resources
and generated ConfigMaps, parsed with yaml, no kubectl; with no scheduler or kubelet, the relay's
Deployment runs no pod, and the stack runs its script itself, local_stack.relay)
applied *before* the controller-manager starts (its garbage collector discovers resources only
every 30 s), and only the garbage-collector and namespace controllers, with a high API QPS so
cascades finish in well under a second.

Two identities, two kubeconfigs:

- **admin** (``system:masters``): the controller-manager, the local executor (Flyte's executor is
  a component of its own, with its own rights) and the tests' inspection;
- **the control plane** (``control_plane_kubeconfig``): a user in the group the RoleBinding names,
  as the EKS access entries map reconcile's and the status mirror's IAM roles to it. The local
  stack gives reconcile and the status mirror this one, so every call they make is authorized by
  exactly the Role that is deployed.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from local_stack.private import private_directory, write_secret
from local_stack.template import REPO_ROOT

CLUSTER_RESOURCES_DIR = REPO_ROOT / "deploy" / "kubernetes"  # what `kubectl apply -k` installs on EKS
CRD_PATH = CLUSTER_RESOURCES_DIR / "taskactions.flyte.org.yaml"  # the project's copy of Flyte's CRD
CRD_NAME = "taskactions.flyte.org"
BUILD_SCRIPT = REPO_ROOT / "scripts" / "build-k8s-testbins.sh"
# The static tokens are drawn per control plane (secrets.token_urlsafe) and kept in 0600 files of
# its state folder: never a constant anyone on the host could send to the apiserver. The control
# plane's is a user in the group the deployed RoleBinding binds (read from rbac.yaml, so the local
# identity is bound exactly as EKS access entries bind the functions' roles).
CONTROL_PLANE_USER = "flyte-serverless-control-plane"
START_TIMEOUT_SECONDS = 90
# How long a component may take to exit on SIGTERM before it is killed (Ctrl-C stops the stack in
# 5 s): the stateless servers briefly (the API server would drain its watches for a minute), etcd
# long enough to close its data directory, which is kept across restarts.
SERVER_STOP_GRACE_SECONDS = 0.5
ETCD_STOP_GRACE_SECONDS = 2.0


class ControlPlaneError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def testbin_dir() -> Path:
    """The cached kube-apiserver/kube-controller-manager, building them on first use."""
    override = os.environ.get("K8S_TESTBINS")
    if override:
        return Path(override)
    result = subprocess.run(["bash", str(BUILD_SCRIPT)], check=True, capture_output=True, text=True)
    return Path(result.stdout.strip().splitlines()[-1])


@dataclass
class KubeEndpoints:
    server: str
    token: str
    kubeconfig: Path  # admin
    ca_file: Path
    control_plane_kubeconfig: Path  # the Role of deploy/kubernetes/rbac.yaml, nothing more


def cluster_resources(directory: Path = CLUSTER_RESOURCES_DIR) -> list[dict[str, Any]]:
    """The objects ``kubectl apply -k <directory>`` creates, in the kustomization's order: plain
    ``resources`` (files, or folders with a kustomization of their own) and ``configMapGenerator``
    entries (``files`` and ``literals``). No transformers. A generated ConfigMap is named without
    the content hash kustomize appends (tests/infrastructure compares the names modulo that suffix)."""
    import yaml

    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unsupported = set(kustomization) - {"apiVersion", "kind", "resources", "configMapGenerator"}
    if unsupported:
        raise ControlPlaneError(
            f"the local stack applies plain resources and ConfigMaps only; found {sorted(unsupported)}"
        )
    objects: list[dict[str, Any]] = []
    for resource in kustomization.get("resources") or []:
        path = directory / resource
        if path.is_dir():
            objects.extend(cluster_resources(path))
        else:
            objects.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    for generator in kustomization.get("configMapGenerator") or []:
        data = {Path(name).name: (directory / name).read_text() for name in generator.get("files") or []}
        data.update(literal.split("=", 1) for literal in generator.get("literals") or [])
        metadata: dict[str, Any] = {"name": generator["name"]}
        if generator.get("namespace"):
            metadata["namespace"] = generator["namespace"]
        labels = (generator.get("options") or {}).get("labels")
        if labels:
            metadata["labels"] = dict(labels)
        objects.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data})
    return objects


def control_plane_groups(objects: list[dict[str, Any]]) -> list[str]:
    """The groups the control plane's RoleBindings bind (what the EKS access entries map
    reconcile and the mirror to). The local stack's functions share one process and one
    kubeconfig, so its control-plane user is in all of them: their union is what it may do."""
    groups = [
        subject["name"]
        for obj in objects
        if obj["kind"] == "RoleBinding"
        for subject in obj.get("subjects", [])
        if subject["kind"] == "Group"
    ]
    if not groups or len(set(groups)) != len(groups):
        raise ControlPlaneError(
            f"expected distinct Group subjects in the RoleBindings of deploy/kubernetes, got {groups}"
        )
    return groups


class KubeControlPlane:
    def __init__(self, *, state_dir: Path, apiserver_port: int = 0, namespaces: tuple[str, ...] = ("flyte",)) -> None:
        self.state_dir = state_dir
        self.apiserver_port = apiserver_port or free_port()
        self.namespaces = namespaces
        self._processes: list[subprocess.Popen] = []
        self._endpoints: KubeEndpoints | None = None
        self._admin_token = secrets.token_urlsafe(32)
        self._control_plane_token = secrets.token_urlsafe(32)

    @property
    def endpoints(self) -> KubeEndpoints:
        """Where the started control plane listens, and its kubeconfigs."""
        assert self._endpoints is not None, "the control plane is not started"
        return self._endpoints

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> KubeEndpoints:
        if not CRD_PATH.exists():
            raise ControlPlaneError(f"Flyte's CRD is missing at {CRD_PATH}")
        resources = cluster_resources()
        bin_dir = testbin_dir()
        etcd = shutil.which("etcd")
        if etcd is None:
            raise ControlPlaneError("etcd is not installed (apt-get install etcd-server)")
        private_directory(self.state_dir)  # its tokens and etcd's data: this user's alone
        try:
            self._start_etcd(etcd)
            self._start_apiserver(bin_dir / "kube-apiserver", groups=control_plane_groups(resources))
            self._apply_cluster_resources(resources)
            self._start_controller_manager(bin_dir / "kube-controller-manager")
        except BaseException:
            self.stop()
            raise
        return self.endpoints

    def stop(self) -> None:
        """The controller-manager and the API server first, then etcd, each given its grace before
        it is killed: what the API server still serves is of no use once the stack stops. etcd
        gets SIGTERM last, so its data directory is closed cleanly."""
        started = self._processes  # etcd, the API server, the controller-manager: in that order
        groups = [(list(reversed(started[1:])), SERVER_STOP_GRACE_SECONDS), (started[:1], ETCD_STOP_GRACE_SECONDS)]
        for group, grace in groups:
            for process in group:
                if process.poll() is None:
                    process.terminate()
            deadline = time.monotonic() + grace
            for process in group:
                try:
                    process.wait(timeout=max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self._processes.clear()

    # --- the three processes ----------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        log = open(self.state_dir / f"{name}.log", "wb")  # noqa: SIM115 - the process writes it for its whole life
        process = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.state_dir,
            start_new_session=True,  # Ctrl-C in a terminal reaches us, and we stop them in order
            preexec_fn=_die_with_parent,
        )
        self._processes.append(process)
        return process

    def _start_etcd(self, etcd: str) -> None:
        client, peer = free_port(), free_port()
        self._etcd_url = f"http://127.0.0.1:{client}"
        self._spawn(
            "etcd",
            [
                etcd,
                f"--data-dir={self.state_dir / 'etcd'}",
                f"--listen-client-urls={self._etcd_url}",
                f"--advertise-client-urls={self._etcd_url}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=default=http://127.0.0.1:{peer}",
                "--log-level=error",
            ],
        )

    def _start_apiserver(self, binary: Path, *, groups: list[str]) -> None:
        write_secret(
            self.state_dir / "tokens.csv",
            f"{self._admin_token},admin,admin,system:masters\n"
            f'{self._control_plane_token},{CONTROL_PLANE_USER},{CONTROL_PLANE_USER},"{",".join(groups)}"\n',
        )
        key, pub = self.state_dir / "sa.key", self.state_dir / "sa.pub"
        if not key.exists():
            subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
            subprocess.run(
                ["openssl", "rsa", "-in", str(key), "-pubout", "-out", str(pub)], check=True, capture_output=True
            )
        process = self._spawn(
            "kube-apiserver",
            [
                str(binary),
                f"--etcd-servers={self._etcd_url}",
                f"--token-auth-file={self.state_dir / 'tokens.csv'}",
                f"--secure-port={self.apiserver_port}",
                "--insecure-port=0",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--cert-dir={self.state_dir / 'certs'}",
                "--authorization-mode=Node,RBAC",  # as EKS: every call is checked against RBAC
                "--service-account-issuer=https://kubernetes.default.svc",
                f"--service-account-signing-key-file={key}",
                f"--service-account-key-file={pub}",
                "--api-audiences=https://kubernetes.default.svc",
                "--service-cluster-ip-range=10.96.0.0/24",
                "--disable-admission-plugins=ServiceAccount",
                "--enable-priority-and-fairness=false",
            ],
        )
        server = f"https://127.0.0.1:{self.apiserver_port}"
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not self._ready(server):
            if process.poll() is not None:
                raise ControlPlaneError(f"kube-apiserver exited; see {self.state_dir / 'kube-apiserver.log'}")
            if time.monotonic() > deadline:
                raise ControlPlaneError(f"kube-apiserver not ready after {START_TIMEOUT_SECONDS}s")
            time.sleep(0.2)
        ca_file = self.state_dir / "certs" / "apiserver.crt"
        kubeconfig = self.state_dir / "kubeconfig"
        write_secret(kubeconfig, _kubeconfig(server=server, user="admin", token=self._admin_token, ca_file=ca_file))
        control_plane = self.state_dir / "control-plane.kubeconfig"
        write_secret(
            control_plane,
            _kubeconfig(server=server, user=CONTROL_PLANE_USER, token=self._control_plane_token, ca_file=ca_file),
        )
        self._endpoints = KubeEndpoints(
            server=server,
            token=self._admin_token,
            kubeconfig=kubeconfig,
            ca_file=ca_file,
            control_plane_kubeconfig=control_plane,
        )

    def _ready(self, server: str) -> bool:
        request = urllib.request.Request(f"{server}/readyz", headers={"Authorization": f"Bearer {self._admin_token}"})
        try:
            with urllib.request.urlopen(request, timeout=2, context=ssl._create_unverified_context()) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def _apply_cluster_resources(self, resources: list[dict[str, Any]]) -> None:
        """What ``kubectl apply -k deploy/kubernetes`` does, then the stack's other namespaces."""
        from kubernetes import client, config
        from kubernetes.client.exceptions import ApiException

        api_client = config.new_client_from_config(config_file=str(self.endpoints.kubeconfig))
        extensions = client.ApiextensionsV1Api(api_client)
        core = client.CoreV1Api(api_client)
        rbac = client.RbacAuthorizationV1Api(api_client)
        apps = client.AppsV1Api(api_client)
        networking = client.NetworkingV1Api(api_client)

        def namespace_of(body: dict[str, Any]) -> str:
            return str(body["metadata"]["namespace"])

        # The events relay's objects are applied too; with no scheduler or kubelet here, its
        # Deployment never runs a pod: the local stack runs the same script itself (local_stack.relay).
        create = {
            "CustomResourceDefinition": lambda body: extensions.create_custom_resource_definition(body),
            "Namespace": lambda body: core.create_namespace(body),
            "Role": lambda body: rbac.create_namespaced_role(namespace_of(body), body),
            "RoleBinding": lambda body: rbac.create_namespaced_role_binding(namespace_of(body), body),
            "ConfigMap": lambda body: core.create_namespaced_config_map(namespace_of(body), body),
            "ServiceAccount": lambda body: core.create_namespaced_service_account(namespace_of(body), body),
            "Service": lambda body: core.create_namespaced_service(namespace_of(body), body),
            "Deployment": lambda body: apps.create_namespaced_deployment(namespace_of(body), body),
            "NetworkPolicy": lambda body: networking.create_namespaced_network_policy(namespace_of(body), body),
        }
        extra_namespaces = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}} for n in self.namespaces]
        for body in [*resources, *extra_namespaces]:
            if body["kind"] not in create:
                raise ControlPlaneError(f"the local stack cannot apply a {body['kind']} (deploy/kubernetes)")
            try:
                create[body["kind"]](body)
            except ApiException as exc:
                if exc.status != 409:
                    raise
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            status = extensions.read_custom_resource_definition(CRD_NAME).status
            assert status is not None  # the API server reports a CRD's status with it
            if any(c.type == "Established" and c.status == "True" for c in (status.conditions or [])):
                break
            if time.monotonic() > deadline:
                raise ControlPlaneError("the TaskAction CRD never became Established")
            time.sleep(0.1)
        api_client.close()

    def _start_controller_manager(self, binary: Path) -> None:
        process = self._spawn(
            "kube-controller-manager",
            [
                str(binary),
                f"--kubeconfig={self.endpoints.kubeconfig}",
                "--controllers=garbagecollector,namespace",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                "--secure-port=0",
                "--port=0",
                "--concurrent-gc-syncs=20",
                # The default 20 QPS makes a 300-child cascade take ~30 s instead of ~2 s.
                "--kube-api-qps=1000",
                "--kube-api-burst=1000",
            ],
        )
        log = self.state_dir / "kube-controller-manager.log"
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while b"all resource monitors have synced" not in log.read_bytes():
            if process.poll() is not None:
                raise ControlPlaneError(f"kube-controller-manager exited; see {log}")
            if time.monotonic() > deadline:
                raise ControlPlaneError(f"the garbage collector did not sync within {START_TIMEOUT_SECONDS}s")
            time.sleep(0.2)


def _die_with_parent() -> None:
    """Even if the stack is killed with SIGKILL, its control plane must not outlive it."""
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _kubeconfig(*, server: str, user: str, token: str, ca_file: Path) -> str:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": {"server": server, "certificate-authority": str(ca_file)}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "local", "context": {"cluster": "local", "user": user}}],
        "current-context": "local",
    }
    return json.dumps(config, indent=2)  # JSON is YAML; no dumper needed
