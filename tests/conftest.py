"""Session fixtures: the real components, started once and shared by the tests that need them.

- ``moto_server``: moto's server on loopback; boto3 in this process is pointed at it.
- ``aws``: a table (defined by template.yaml) and a bucket with *no* stream consumer, for tests
  that drive the store, the services and reconcile themselves.
- ``kube``: the real Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager).
- ``stack``: the whole local stack (API front, stream poller, reconcile) on the same components,
  with its own table and bucket.

Unit tests use none of these.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from local_stack.aws import AwsResources, MotoServer, aws_environment, provision
from local_stack.kube import KubeControlPlane
from local_stack.stack import LocalStack, StackConfig

NAMESPACE = "flyte"


def unique_name(prefix: str = "t") -> str:
    """A fresh DNS-1035 run name, so tests sharing a table and a namespace never collide."""
    return f"{prefix}{uuid.uuid4().hex[:14]}"


def wait_for(
    predicate: Callable[[], Any], *, timeout: float = 15.0, interval: float = 0.1, what: str = "condition"
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def _scratch_dir(prefix: str) -> Path:
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None  # etcd on tmpfs, as measured
    return Path(tempfile.mkdtemp(prefix=prefix, dir=base))


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    server = MotoServer().start()
    environment = aws_environment(server.endpoint)
    saved = {name: os.environ.get(name) for name in environment}
    os.environ.update(environment)
    yield server
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    server.stop()


@pytest.fixture(scope="session")
def aws(moto_server: MotoServer) -> AwsResources:
    return provision(endpoint=moto_server.endpoint, table_name="it-actions", bucket="it-data")


@pytest.fixture(scope="session")
def kube() -> Iterator[KubeControlPlane]:
    state_dir = _scratch_dir("kube-")
    control_plane = KubeControlPlane(state_dir=state_dir, namespaces=(NAMESPACE,))
    control_plane.start()
    yield control_plane
    control_plane.stop()
    shutil.rmtree(state_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def custom_objects(kube: KubeControlPlane):
    from kubernetes import client, config

    api_client = config.new_client_from_config(config_file=str(kube.endpoints.kubeconfig))
    yield client.CustomObjectsApi(api_client)
    api_client.close()


@pytest.fixture(scope="session")
def get_taskaction(custom_objects) -> Callable[[str], dict | None]:
    return taskaction_getter(custom_objects, NAMESPACE)


def taskaction_getter(custom_objects, namespace: str) -> Callable[[str], dict | None]:
    """A TaskAction of ``namespace`` by name, read as admin; None once it is gone."""
    from kubernetes.client.exceptions import ApiException

    def get(name: str) -> dict | None:
        try:
            return custom_objects.get_namespaced_custom_object("flyte.org", "v1", namespace, "taskactions", name)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    return get


@pytest.fixture(scope="session")
def stack(moto_server: MotoServer, kube: KubeControlPlane) -> Iterator[LocalStack]:
    state_dir = _scratch_dir("stack-")
    local = LocalStack(
        StackConfig(
            state_dir=state_dir,
            api_port=0,
            stream_max_retries=2,
            stream_retry_backoff_seconds=0.05,
            watch_window_seconds=2,
            # Most tests play the executor and the informer themselves; the loop tests turn the
            # data plane on with ``stack.data_plane()``.
            data_plane=False,
            tick_seconds=5,
            mirror_timeout_seconds=60,
            mirror_idle_grace_seconds=3,
            executor_ttl_seconds=3600,
        ),
        moto=moto_server,
        kube=kube,
    )
    local.start()
    yield local
    local.stop()
    shutil.rmtree(state_dir, ignore_errors=True)
