"""The calls the local executor makes on TaskAction resources (the Kubernetes client, lazily imported)."""

from __future__ import annotations

import time
from typing import Any, cast

from local_stack.executor.status import FINALIZER
from runplane.kube.resources import GROUP, PLURAL, VERSION

API_TIMEOUT_SECONDS = 10.0
# A status or finalizer write that fails for a transient reason is retried this often.
API_RETRIES = 5
API_RETRY_SECONDS = 0.2


class TaskActions:
    """The calls the executor makes on TaskActions: status, finalizer, labels, list, watch, delete."""

    def __init__(self, api_client: Any, namespace: str) -> None:
        from kubernetes.client import CustomObjectsApi

        self.namespace = namespace
        self.api = CustomObjectsApi(api_client)

    def get(self, name: str, uid: str) -> dict[str, Any] | None:
        """The resource, or None if it is gone (or the name now belongs to another resource)."""
        from kubernetes.client.exceptions import ApiException

        try:
            resource = self.api.get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, name, _request_timeout=API_TIMEOUT_SECONDS
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        resource = cast("dict[str, Any]", resource)  # the decoded JSON object, typed ``object`` by the client
        return resource if resource["metadata"].get("uid") == uid else None

    def patch_status(self, name: str, status: dict[str, Any]) -> bool:
        return self._patch(self.api.patch_namespaced_custom_object_status, name, {"status": status})

    def patch_labels(self, name: str, labels: dict[str, str]) -> bool:
        return self._patch(self.api.patch_namespaced_custom_object, name, {"metadata": {"labels": labels}})

    def set_finalizer(self, name: str, uid: str, *, present: bool) -> bool:
        """Add or remove the executor's finalizer (read, then write guarded by resourceVersion, as
        others may hold finalizers too). False if the resource is gone."""
        from kubernetes.client.exceptions import ApiException

        for _ in range(API_RETRIES):
            resource = self.get(name, uid)
            if resource is None:
                return False
            current = list(resource["metadata"].get("finalizers") or [])
            wanted = [f for f in current if f != FINALIZER] + ([FINALIZER] if present else [])
            if sorted(wanted) == sorted(current):
                return True
            patch = {"metadata": {"finalizers": wanted, "resourceVersion": resource["metadata"]["resourceVersion"]}}
            try:
                self.api.patch_namespaced_custom_object(
                    GROUP, VERSION, self.namespace, PLURAL, name, patch, _request_timeout=API_TIMEOUT_SECONDS
                )
                return True
            except ApiException as exc:
                if exc.status == 404:
                    return False
                if exc.status != 409:
                    raise
        raise RuntimeError(f"finalizer of {name} kept conflicting")

    def list_page(self, *, label_selector: str = "", token: str | None = None) -> dict[str, Any]:
        page = self.api.list_namespaced_custom_object(
            GROUP,
            VERSION,
            self.namespace,
            PLURAL,
            label_selector=label_selector,
            limit=500,
            _continue=token,
            _request_timeout=API_TIMEOUT_SECONDS,
        )
        return cast("dict[str, Any]", page)  # the decoded JSON object, typed ``object`` by the client

    def delete(self, name: str, uid: str) -> bool:
        """Delete with background propagation, only if the name still holds ``uid``."""
        from kubernetes.client import V1DeleteOptions, V1Preconditions
        from kubernetes.client.exceptions import ApiException

        try:
            self.api.delete_namespaced_custom_object(
                GROUP,
                VERSION,
                self.namespace,
                PLURAL,
                name,
                body=V1DeleteOptions(propagation_policy="Background", preconditions=V1Preconditions(uid=uid)),
                _request_timeout=API_TIMEOUT_SECONDS,
            )
        except ApiException as exc:
            if exc.status in (404, 409):
                return False
            raise
        return True

    def _patch(self, call: Any, name: str, body: dict[str, Any]) -> bool:
        from kubernetes.client.exceptions import ApiException

        for attempt in range(API_RETRIES):
            try:
                call(GROUP, VERSION, self.namespace, PLURAL, name, body, _request_timeout=API_TIMEOUT_SECONDS)
                return True
            except ApiException as exc:
                if exc.status == 404:
                    return False
                if exc.status in (400, 422) or attempt == API_RETRIES - 1:
                    raise
            except OSError:
                if attempt == API_RETRIES - 1:
                    raise
            time.sleep(API_RETRY_SECONDS * 2**attempt)
        return False
