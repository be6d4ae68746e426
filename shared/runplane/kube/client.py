"""TaskActions over the Kubernetes API, with errors classified: create/get/delete for reconcile;
list, watch and label patches for the status mirror.

One ``TaskActionClient`` per container (its ApiClient keeps the TLS connection and credentials).
Failures split into two kinds, because they need opposite treatment under at-least-once delivery:

- ``ResourceRejected``: the API server refused the object itself (400/422). Retrying cannot help;
  the action is marked FAILED with the reason.
- anything else (5xx, 429, 403, timeouts, connection errors): transient. The exception escapes the
  record handler, the batch reports the record failed, and the stream redelivers it.

Reconcile's calls for every record, create and get, go straight over the ApiClient's connection
pool, with its credentials (``_Requests``): the generated ``CustomObjectsApi`` validates every
argument with pydantic and builds and parses each call in layers, about a millisecond of Python a
call, and with 16 records in flight that CPU and the GIL bounded how fast reconcile created
resources (a quarter of a batch's time on 2 cores). The other calls keep the generated client.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, cast
from urllib.parse import quote

from runplane.kube.resources import GROUP, PLURAL, VERSION

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

CONNECT_TIMEOUT_SECONDS = 3
_PERMANENT_STATUSES = frozenset({400, 422})


# A watch asks the server to end it after this long at most, so a stopped caller is never stuck
# on a silent connection; the client's read timeout is a little longer.
WATCH_READ_MARGIN_SECONDS = 5
LIST_PAGE_SIZE = 500  # the API server's default chunk; a 10,000-resource shard is 20 pages


class ClusterSettings(Protocol):
    """What a function that talks to the cluster is configured with (read-only: the settings
    are frozen dataclasses)."""

    @property
    def namespace(self) -> str: ...
    @property
    def kubeconfig(self) -> str: ...
    @property
    def eks_cluster_name(self) -> str: ...
    @property
    def kube_timeout_seconds(self) -> float: ...


class _Watch(Protocol):
    """What is used of ``kubernetes.watch.Watch``, which is unannotated."""

    def stream(self, func: Callable[..., object], *args: object, **kwargs: object) -> Iterator[dict[str, Any]]: ...

    def stop(self) -> None: ...


class AlreadyExists(Exception):
    pass


class ResourceVersionGone(Exception):
    """The watch's resourceVersion is older than the server keeps (410 Gone): relist."""


@dataclass(frozen=True)
class WatchEvent:
    type: str  # ADDED | MODIFIED | DELETED | BOOKMARK
    resource: dict[str, Any]

    @property
    def resource_version(self) -> str:
        return str(self.resource.get("metadata", {}).get("resourceVersion", ""))


class ResourceRejected(Exception):
    """The API server rejected the resource; the message carries its reason."""


class TaskActionClient:
    def __init__(
        self, *, api_client: ApiClient, namespace: str, timeout_seconds: float = 10.0, connections: int | None = None
    ) -> None:
        """``connections``: the calls the caller makes at once (reconcile's record workers); the
        client keeps that many connections open for reuse (see ``keep_connections``)."""
        from kubernetes.client import CustomObjectsApi

        if connections is not None:
            keep_connections(api_client, connections)
        self.namespace = namespace
        self._api = CustomObjectsApi(api_client)
        # (connect, read): a stuck API server must fail the record, not the whole invocation.
        self._timeout = (min(CONNECT_TIMEOUT_SECONDS, timeout_seconds), timeout_seconds)
        self._requests = _Requests(api_client, namespace=namespace, timeout=self._timeout)

    @classmethod
    def from_settings(cls, settings: ClusterSettings, *, connections: int | None = None) -> TaskActionClient:
        if settings.kubeconfig:
            from kubernetes import config

            api_client: ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]  # unannotated
                config_file=settings.kubeconfig
            )
        else:
            from runplane.kube.eks_auth import eks_api_client

            api_client = eks_api_client(settings.eks_cluster_name)
        return cls(
            api_client=api_client,
            namespace=settings.namespace,
            timeout_seconds=settings.kube_timeout_seconds,
            connections=connections,
        )

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        from kubernetes.client.exceptions import ApiException

        try:
            return self._requests.call("POST", body=body)
        except ApiException as exc:
            if exc.status == 409:
                raise AlreadyExists(body["metadata"]["name"]) from None
            if exc.status in _PERMANENT_STATUSES:
                raise ResourceRejected(_status_message(exc)) from None
            raise

    def get(self, name: str) -> dict[str, Any] | None:
        from kubernetes.client.exceptions import ApiException

        try:
            return self._requests.call("GET", name=name)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def list(self, *, label_selector: str, limit: int | None = None) -> tuple[list[dict[str, Any]], str]:
        """The resources matching ``label_selector`` (paged by the server), and the list's
        resourceVersion to watch from. ``limit`` stops after that many."""
        items: list[dict[str, Any]] = []
        token = None
        while True:
            page = cast(  # the decoded JSON object, typed ``object`` by the client
                "dict[str, Any]",
                self._api.list_namespaced_custom_object(
                    GROUP,
                    VERSION,
                    self.namespace,
                    PLURAL,
                    label_selector=label_selector,
                    limit=min(limit or LIST_PAGE_SIZE, LIST_PAGE_SIZE),
                    _continue=token,
                    _request_timeout=self._timeout,
                ),
            )
            items.extend(page.get("items") or [])
            metadata = page.get("metadata") or {}
            token = metadata.get("continue")
            if not token or (limit is not None and len(items) >= limit):
                return items[:limit] if limit is not None else items, str(metadata.get("resourceVersion", ""))

    def watch(self, *, label_selector: str, resource_version: str, timeout_seconds: int) -> Iterator[WatchEvent]:
        """Events after ``resource_version``, bookmarks included, until the server ends the watch
        after ``timeout_seconds``. Raises ``ResourceVersionGone`` on 410."""
        from kubernetes.client.exceptions import ApiException
        from kubernetes.watch import Watch

        watch = cast("Callable[[], _Watch]", Watch)()
        try:
            for event in watch.stream(
                self._api.list_namespaced_custom_object,
                GROUP,
                VERSION,
                self.namespace,
                PLURAL,
                label_selector=label_selector,
                resource_version=resource_version,
                allow_watch_bookmarks=True,
                timeout_seconds=timeout_seconds,
                _request_timeout=(self._timeout[0], timeout_seconds + WATCH_READ_MARGIN_SECONDS),
            ):
                yield WatchEvent(type=event["type"], resource=event["raw_object"])
        except ApiException as exc:
            if exc.status == 410:
                raise ResourceVersionGone(str(exc.reason)) from None
            raise
        finally:
            watch.stop()

    def label(self, name: str, labels: dict[str, str]) -> bool:
        """Merge-patch labels onto a resource; False if it is gone."""
        return _unless_gone(
            lambda: self._api.patch_namespaced_custom_object(
                GROUP,
                VERSION,
                self.namespace,
                PLURAL,
                name,
                {"metadata": {"labels": labels}},
                _request_timeout=self._timeout,
            )
        )

    def signal(self, name: str, *, value: str, signalled_by: str, signalled_at: str) -> bool:
        """Write a condition's signal into its status (``signalValue``: the base64 of a serialized
        Literal, ``signalledBy``, ``signalledAt``), as Flyte's actions service does; only those
        three fields (a merge patch), never the executor's conditions. False if it is gone."""
        from kubernetes.client.exceptions import ApiException

        body = {"status": {"signalValue": value, "signalledBy": signalled_by, "signalledAt": signalled_at}}
        try:
            self._api.patch_namespaced_custom_object_status(
                GROUP, VERSION, self.namespace, PLURAL, name, body, _request_timeout=self._timeout
            )
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def delete(self, name: str) -> bool:
        """Delete with background propagation: the resource goes now, the garbage collector
        removes its dependents. Returns False if it was already gone. The API answers a Status or
        the object itself (when finalizers hold it): both mean the deletion was accepted."""
        from kubernetes.client import V1DeleteOptions

        return _unless_gone(
            lambda: self._api.delete_namespaced_custom_object(
                GROUP,
                VERSION,
                self.namespace,
                PLURAL,
                name,
                body=V1DeleteOptions(propagation_policy="Background"),
                _request_timeout=self._timeout,
            )
        )


class _Requests:
    """One call on the namespace's TaskActions as the generated client makes it (the same pool,
    so the same TLS settings, client certificate, proxy and retries; the same headers; the bearer
    token from the configuration, whose hook refreshes it on EKS), without its layers. An answer
    outside 2xx raises the ``ApiException`` the generated client raises."""

    def __init__(self, api_client: ApiClient, *, namespace: str, timeout: tuple[float, float]) -> None:
        import urllib3

        self._client = api_client
        self._collection = (
            f"{api_client.configuration.host}/apis/{GROUP}/{VERSION}/namespaces/{quote(namespace, safe='')}/{PLURAL}"
        )
        self._headers = {
            **api_client.default_headers,  # the User-Agent
            "Accept": "application/json",
            "Content-Type": "application/json",
        }
        self._timeout = urllib3.Timeout(connect=timeout[0], read=timeout[1])

    def call(self, method: str, *, name: str = "", body: dict[str, Any] | None = None) -> dict[str, Any]:
        from kubernetes.client.exceptions import ApiException

        headers = dict(self._headers)
        # What the generated client sends for its "BearerToken" setting; the configuration's
        # refresh hook (EKS's token, a kubeconfig's exec plugin) runs inside, as it does there.
        for setting in self._client.configuration.auth_settings().values():
            if setting.get("in") == "header" and setting.get("value"):
                headers[setting["key"]] = setting["value"]
        response = self._client.rest_client.pool_manager.request(
            method,
            f"{self._collection}/{quote(name, safe='')}" if name else self._collection,
            body=json.dumps(body).encode() if body is not None else None,
            headers=headers,
            timeout=self._timeout,
        )
        if not 200 <= response.status <= 299:
            raise ApiException(http_resp=response)
        return cast("dict[str, Any]", json.loads(response.data))


def keep_connections(api_client: ApiClient, connections: int) -> None:
    """Let the client keep ``connections`` connections to the API server between calls. urllib3
    keeps at most the pool's ``maxsize`` per host and closes every connection returned beyond it
    ("Connection pool is full, discarding connection"); the kubernetes client sizes it 5 per CPU
    when the client is built, 10 on a 2-vCPU Lambda, so with 16 calls in flight 6 connections were
    closed after each wave and opened again with a TLS handshake. The pool is built with the
    client, so it is rebuilt here, before the first call, from the same configuration."""
    from kubernetes.client.rest import RESTClientObject

    configuration = api_client.configuration
    built = api_client.rest_client.pool_manager.connection_pool_kw.get("maxsize") or 1  # urllib3's default: 1
    if built >= connections:  # the pool as built: setting the configuration afterwards changes nothing
        return
    configuration.connection_pool_maxsize = connections
    previous, api_client.rest_client = api_client.rest_client, RESTClientObject(configuration)
    previous.close()


def _unless_gone(call: Callable[[], object]) -> bool:
    """Make ``call`` on a resource: True, or False when the resource is gone (404)."""
    from kubernetes.client.exceptions import ApiException

    try:
        call()
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def _status_message(exc: Any) -> str:
    try:
        return json.loads(exc.body).get("message") or str(exc.reason)
    except (TypeError, ValueError):
        return f"{exc.status} {exc.reason}"
