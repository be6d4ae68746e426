"""The Kubernetes side of reconcile: TaskAction create/get/delete, with errors classified.

One ``TaskActionClient`` per container (its ApiClient keeps the TLS connection and credentials).
Failures split into two kinds, because they need opposite treatment under at-least-once delivery:

- ``ResourceRejected``: the API server refused the object itself (400/422). Retrying cannot help;
  the action is marked FAILED with the reason.
- anything else (5xx, 429, 403, timeouts, connection errors): transient. The exception escapes the
  record handler, the batch reports the record failed, and the stream redelivers it.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from functions.reconcile.taskaction import GROUP, PLURAL, VERSION

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

    from runplane.settings import ReconcileSettings

CONNECT_TIMEOUT_SECONDS = 3
_PERMANENT_STATUSES = frozenset({400, 422})


class AlreadyExists(Exception):
    pass


class ResourceRejected(Exception):
    """The API server rejected the resource; the message carries its reason."""


class TaskActionClient:
    def __init__(self, *, api_client: ApiClient, namespace: str, timeout_seconds: float = 10.0) -> None:
        from kubernetes.client import CustomObjectsApi

        self.namespace = namespace
        self._api = CustomObjectsApi(api_client)
        # (connect, read): a stuck API server must fail the record, not the whole invocation.
        self._timeout = (min(CONNECT_TIMEOUT_SECONDS, timeout_seconds), timeout_seconds)

    @classmethod
    def from_settings(cls, settings: ReconcileSettings) -> TaskActionClient:
        if settings.kubeconfig:
            from kubernetes import config

            api_client = config.new_client_from_config(config_file=settings.kubeconfig)
        else:
            from functions.reconcile.eks_auth import eks_api_client

            api_client = eks_api_client(settings.eks_cluster_name)
        return cls(api_client=api_client, namespace=settings.namespace, timeout_seconds=settings.kube_timeout_seconds)

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        from kubernetes.client.exceptions import ApiException

        try:
            return self._api.create_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, body, _request_timeout=self._timeout
            )
        except ApiException as exc:
            if exc.status == 409:
                raise AlreadyExists(body["metadata"]["name"]) from None
            if exc.status in _PERMANENT_STATUSES:
                raise ResourceRejected(_status_message(exc)) from None
            raise

    def get(self, name: str) -> dict[str, Any] | None:
        from kubernetes.client.exceptions import ApiException

        try:
            return self._api.get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, name, _request_timeout=self._timeout
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise


    def delete(self, name: str) -> bool:
        """Delete with background propagation: the resource goes now, the garbage collector
        removes its dependents. Returns False if it was already gone. The API answers a Status or
        the object itself (when finalizers hold it): both mean the deletion was accepted."""
        from kubernetes.client import V1DeleteOptions
        from kubernetes.client.exceptions import ApiException

        try:
            self._api.delete_namespaced_custom_object(
                GROUP,
                VERSION,
                self.namespace,
                PLURAL,
                name,
                body=V1DeleteOptions(propagation_policy="Background"),
                _request_timeout=self._timeout,
            )
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
