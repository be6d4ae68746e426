"""The fixtures the integration tests share: the functions' services, built as their handlers
build them, over the session's moto table and bucket (``tests/conftest.py``) and the real cluster.

A module that needs one of these made differently defines a fixture of the same name; pytest
prefers the module's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest

from functions.create_run.service import CreateRunService
from functions.read_runs.service import RunReader
from functions.update_action.service import ActionLifecycleService
from runplane.aws.blobs import BlobStore
from runplane.connect.pages import PageTokens
from runplane.kube.client import TaskActionClient
from runplane.table.actions import ActionStore
from tests.builders import create_run_request
from tests.conftest import NAMESPACE, unique_name

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

# Watches end after their first change or this window: long enough for a change a test makes
# after the first frame, short enough that a watch with no change does not slow the suite.
WATCH_WINDOW_SECONDS = 1.0


@pytest.fixture
def store(aws) -> ActionStore:
    """The actions' store as the functions build it: large specs offloaded to the data bucket."""
    return ActionStore(table_name=aws.table_name, blobs=BlobStore(), spec_prefix=f"s3://{aws.bucket}")


@pytest.fixture
def inline_store(aws) -> ActionStore:
    """A store with no bucket for specs: every spec stays on the item, so the item size limit is reached."""
    return ActionStore(table_name=aws.table_name)


@pytest.fixture
def lifecycle(store) -> ActionLifecycleService:
    return ActionLifecycleService(store=store)


@pytest.fixture
def reader(store) -> RunReader:
    return RunReader(store=store, tokens=PageTokens(secret=b"test"), watch_window_seconds=WATCH_WINDOW_SECONDS)


@pytest.fixture
def new_run(aws, store) -> Callable[[], str]:
    """Creates a run (its root QUEUED) through CreateRun's service; returns its name."""
    service = CreateRunService(store=store, blobs=BlobStore(), storage_prefix=f"s3://{aws.bucket}")

    def create() -> str:
        name = unique_name()
        service.create_run(create_run_request(name))
        return name

    return create


@pytest.fixture
def run(new_run) -> str:
    """One run of the test's own."""
    return new_run()


@pytest.fixture(scope="module")
def control_plane_api(kube) -> Iterator[ApiClient]:
    """An ApiClient with the control plane's identity: the Role deploy/kubernetes grants, what
    reconcile and the status mirror act under (the tests inspect and write status as admin)."""
    from kubernetes import config

    api_client = config.new_client_from_config(config_file=str(kube.endpoints.control_plane_kubeconfig))
    yield api_client
    api_client.close()


@pytest.fixture(scope="module")
def cluster(control_plane_api) -> TaskActionClient:
    """The TaskAction client reconcile and the status mirror use, with their identity."""
    return TaskActionClient(api_client=control_plane_api, namespace=NAMESPACE)
