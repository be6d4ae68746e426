"""TaskActionClient's calls for every record (create, get), made over the ApiClient's pool with
its credentials, and the pool kept large enough for the calls in flight."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from runplane.kube.client import AlreadyExists, ResourceRejected, TaskActionClient, keep_connections

HOST = "https://kube.example:6443"
COLLECTION = f"{HOST}/apis/flyte.org/v1/namespaces/flyte/taskactions"


@dataclass
class Answer:
    status: int
    payload: dict[str, Any]
    reason: str = ""
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def data(self) -> bytes:
        return json.dumps(self.payload).encode()


class Pool:
    """The urllib3 pool manager, as far as the calls use it: the requests made, canned answers."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = list(answers)
        self.requests: list[dict[str, Any]] = []

    def request(self, method: str, url: str, **kwargs: Any) -> Answer:
        self.requests.append({"method": method, "url": url, **kwargs})
        return self.answers.pop(0)


def api_client(pool_size: int = 4) -> k8s.ApiClient:
    configuration = k8s.Configuration()
    configuration.host = HOST
    configuration.api_key = {"authorization": "token-1"}
    configuration.api_key_prefix = {"authorization": "Bearer"}
    configuration.connection_pool_maxsize = pool_size
    return k8s.ApiClient(configuration)


def cluster_with(*answers: Answer) -> tuple[TaskActionClient, Pool]:
    api = api_client()
    pool = Pool(*answers)
    api.rest_client.pool_manager = pool  # type: ignore[assignment]  # what the calls use of it
    return TaskActionClient(api_client=api, namespace="flyte", timeout_seconds=7), pool


def test_the_pool_keeps_a_connection_for_each_call_in_flight_and_never_shrinks():
    api = api_client(pool_size=4)
    keep_connections(api, 16)
    assert api.rest_client.pool_manager.connection_pool_kw["maxsize"] == 16
    keep_connections(api, 8)
    assert api.rest_client.pool_manager.connection_pool_kw["maxsize"] == 16
    client = TaskActionClient(api_client=api_client(pool_size=4), namespace="flyte", connections=24)
    assert client._requests._client.rest_client.pool_manager.connection_pool_kw["maxsize"] == 24


def test_a_pool_size_set_on_the_configuration_after_the_client_was_built_is_not_taken_for_the_pool():
    api = api_client(pool_size=4)
    api.configuration.connection_pool_maxsize = 32  # too late: the pool was built with 4
    keep_connections(api, 16)
    assert api.rest_client.pool_manager.connection_pool_kw["maxsize"] == 16


def test_a_create_posts_the_body_with_the_bearer_token_and_returns_the_resource():
    body = {"metadata": {"name": "r1-a0"}, "spec": {"runName": "r1"}}
    created = {**body, "metadata": {"name": "r1-a0", "uid": "u-1"}}
    cluster, pool = cluster_with(Answer(201, created))
    assert cluster.create(body) == created
    [request] = pool.requests
    assert request["method"] == "POST" and request["url"] == COLLECTION
    assert json.loads(request["body"]) == body
    assert request["headers"]["authorization"] == "Bearer token-1"
    assert request["headers"]["Content-Type"] == "application/json"
    assert request["headers"]["User-Agent"].startswith("OpenAPI-Generator/")
    assert (request["timeout"].connect_timeout, request["timeout"].read_timeout) == (3, 7)


def test_answers_are_classified_as_the_generated_client_classifies_them():
    cluster, _ = cluster_with(
        Answer(409, {"reason": "AlreadyExists"}),
        Answer(422, {"message": 'TaskAction "x" is invalid: metadata.labels'}),
        Answer(500, {"message": "etcd timed out"}, reason="Internal Server Error"),
    )
    body = {"metadata": {"name": "x"}}
    with pytest.raises(AlreadyExists):
        cluster.create(body)
    with pytest.raises(ResourceRejected, match=r"metadata\.labels"):
        cluster.create(body)
    with pytest.raises(ApiException) as failure:  # transient: the record is retried
        cluster.create(body)
    assert failure.value.status == 500 and "etcd timed out" in failure.value.body


def test_a_get_names_the_resource_and_a_missing_one_is_none():
    cluster, pool = cluster_with(Answer(200, {"metadata": {"name": "r1-a0"}}), Answer(404, {"reason": "NotFound"}))
    assert cluster.get("r1-a0") == {"metadata": {"name": "r1-a0"}}
    assert cluster.get("r1-b1") is None
    assert [(r["method"], r["url"], r["body"]) for r in pool.requests] == [
        ("GET", f"{COLLECTION}/r1-a0", None),
        ("GET", f"{COLLECTION}/r1-b1", None),
    ]


def test_every_call_takes_the_token_the_refresh_hook_gives():
    cluster, pool = cluster_with(Answer(200, {}), Answer(200, {}))
    tokens = iter(["token-2", "token-3"])

    def refresh(configuration: k8s.Configuration) -> None:  # what EKS's client does before each call
        configuration.api_key["authorization"] = next(tokens)

    cluster._requests._client.configuration.refresh_api_key_hook = refresh
    cluster.get("a")
    cluster.get("b")
    assert [r["headers"]["authorization"] for r in pool.requests] == ["Bearer token-2", "Bearer token-3"]
