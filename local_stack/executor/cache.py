"""The local executor's use of the task cache, as Flyte's executor uses its cache service
(``executor/pkg/controller/taskaction_cache.go`` over ``catalog/cache_service/client.go``).

For a task whose template is ``discoverable``:

- before running (not when resuming an attempt already running): ``Get``; a hit copies the cached
  outputs into the attempt's output path and the action succeeds with CACHE_HIT, without a process;
- a ``cache_serializable`` task then takes the reservation (``GetOrExtendReservation``, owner
  ``<namespace>/<resource>``); while another owner holds it the action waits (Flyte's
  WaitingForCache, CACHE_MISS), looking again every ``WAIT_POLL_SECONDS``: the holder's entry is a
  hit, an expired reservation is taken over;
- while the task runs, its reservation is extended every heartbeat;
- after a success, ``Put`` of the outputs' URI (AlreadyExists counts as populated; another failure
  is CACHE_PUT_FAILURE), then the reservation is released; after a failure it is released too.

The key is built from what ``buildCacheKey`` hashes: the task's identifier without its version, its
interface, its inputs (less ``cache_ignore_input_vars``) and the cache version the SDK sent
(``spec.cacheKey``). Calls go to the CacheService over Connect (binary proto) without credentials,
as Flyte's cache client (``http.DefaultClient``): the local stack sends them through the events
relay, which adds the data-plane token (``authorization`` is for callers that talk to the API
directly, such as tests); one that fails is a look-up failure and the task simply runs, as
in Flyte.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flyteidl2.cacheservice import cacheservice_pb2 as base
from flyteidl2.cacheservice.v2 import cacheservice_pb2 as v2
from flyteidl2.core import tasks_pb2
from flyteidl2.core.catalog_pb2 import CatalogCacheStatus
from flyteidl2.task import common_pb2 as task_common_pb2
from google.protobuf.message import Message

logger = logging.getLogger(__name__)

SERVICE_PATH = "/flyteidl2.cacheservice.v2.CacheService"
CALL_TIMEOUT_SECONDS = 5.0
# Flyte's executor requests its requeue interval as the heartbeat; the cache service clamps it to 10 s.
HEARTBEAT_SECONDS = 10.0
# How often a waiting action looks again for the holder's entry or an expired reservation.
WAIT_POLL_SECONDS = 1.0
OWNER_METADATA_KEY = "flyte.org/cache-owner"  # functions.cache_service: the put names its owner
ORG = "local"  # the local executor's org (local_stack.executor.environment.ORG_NAME)


class CacheCallFailed(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


class CacheClient:
    """CacheService over Connect's unary protocol, binary proto."""

    def __init__(self, endpoint: str, *, authorization: Callable[[], str] | None = None) -> None:
        self.base = endpoint.rstrip("/") + SERVICE_PATH
        self._authorization = authorization

    def call(self, method: str, request: Message, answer: type[Message]) -> Any:
        headers = {"Content-Type": "application/proto", "Connect-Protocol-Version": "1"}
        if self._authorization is not None:
            headers["Authorization"] = self._authorization()
        http = urllib.request.Request(
            f"{self.base}/{method}", data=request.SerializeToString(), method="POST", headers=headers
        )
        try:
            with urllib.request.urlopen(http, timeout=CALL_TIMEOUT_SECONDS) as response:
                return answer.FromString(response.read())
        except urllib.error.HTTPError as exc:
            import json

            try:
                error = json.loads(exc.read() or b"{}")
            except ValueError:
                error = {}
            raise CacheCallFailed(str(error.get("code") or exc.code), str(error.get("message") or "")) from None
        except (urllib.error.URLError, OSError) as exc:
            raise CacheCallFailed("unavailable", str(exc)) from None


@dataclass(frozen=True)
class CacheOutcome:
    """What the look-up before running decided."""

    hit: bool
    status: int  # CatalogCacheStatus


def cache_key(*, template: tasks_pb2.TaskTemplate, inputs: bytes, cache_version: str) -> str:
    """The executor's key: identifier (less version), interface, inputs (less ignored vars), version."""
    identifier = type(template.id)()
    identifier.CopyFrom(template.id)
    identifier.version = ""
    ignored = set(template.metadata.cache_ignore_input_vars)
    literals = task_common_pb2.Inputs.FromString(inputs) if inputs else task_common_pb2.Inputs()
    kept = task_common_pb2.Inputs(literals=[named for named in literals.literals if named.name not in ignored])
    parts = (
        identifier.SerializeToString(deterministic=True),
        template.interface.SerializeToString(deterministic=True),
        kept.SerializeToString(deterministic=True),
    )
    hashes = [hashlib.sha256(part).hexdigest()[:16] for part in parts]
    return "-".join([*hashes, cache_version])


def write_object(s3: Any, uri: str, body: bytes) -> None:
    """Write ``body`` at an ``s3://`` (or ``file://``) URI (the cached outputs, into this attempt's path)."""
    scheme, _, rest = uri.partition("://")
    if scheme == "file":
        from pathlib import Path

        path = Path("/" + rest.lstrip("/"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
        return
    bucket, _, key = rest.partition("/")
    s3.put_object(Bucket=bucket, Key=key, Body=body)


class ActionCache:
    """One TaskAction's dealings with the cache (see the module docstring)."""

    def __init__(
        self,
        client: CacheClient,
        *,
        spec: dict[str, Any],
        template: tasks_pb2.TaskTemplate,
        owner: str,
        inputs_uri: str,
        read: Callable[[str], bytes | None],
        write: Callable[[str, bytes], None],
    ) -> None:
        self._client = client
        self._template = template
        self._owner = owner
        self._read = read
        self._write = write
        self._identifier = v2.Identifier(org=ORG, project=spec["project"], domain=spec["domain"])
        self._serializable = template.metadata.cache_serializable
        self._key = cache_key(
            template=template, inputs=read(inputs_uri) or b"", cache_version=str(spec.get("cacheKey") or "")
        )
        self._heartbeat: threading.Event | None = None

    @classmethod
    def of(
        cls, client: CacheClient | None, *, spec: dict[str, Any], template: tasks_pb2.TaskTemplate, **rest: Any
    ) -> ActionCache | None:
        """The cache of a discoverable task (buildTaskCacheConfig); None for any other."""
        if client is None or not template.metadata.discoverable:
            return None
        return cls(client, spec=spec, template=template, **rest)

    @property
    def key(self) -> str:
        return self._key

    # --- before the task runs -----------------------------------------------------------------

    def look_up(self, *, outputs_uri: str) -> bool:
        """Get: on a hit, the cached outputs are written to ``outputs_uri``; True for a hit."""
        request = v2.GetCacheRequest(base_request=base.GetCacheRequest(key=self._key), identifier=self._identifier)
        try:
            answer = self._client.call("Get", request, base.GetCacheResponse)
        except CacheCallFailed as exc:
            if exc.code != "not_found":
                logger.warning("cache look-up of %s failed (%s); running the task", self._key, exc)
            return False
        cached = self._read(answer.output.output_uri)
        if cached is None:  # the entry outlived its outputs: a miss, and the run repopulates it
            logger.warning("cache entry %s points at missing outputs %s", self._key, answer.output.output_uri)
            return False
        self._write(outputs_uri, cached)
        return True

    def reserve(self) -> str:
        """GetOrExtendReservation: the holder's owner id (ours if we may run now)."""
        request = v2.GetOrExtendReservationRequest(
            base_request=base.GetOrExtendReservationRequest(key=self._key, owner_id=self._owner),
            identifier=self._identifier,
        )
        request.base_request.heartbeat_interval.FromMilliseconds(int(HEARTBEAT_SECONDS * 1000))
        answer = self._client.call("GetOrExtendReservation", request, base.GetOrExtendReservationResponse)
        return str(answer.reservation.owner_id)

    def before(
        self, *, outputs_uri: str, resuming: bool, waiting: Callable[[str], None], stopped: threading.Event
    ) -> bool:
        """Flyte's evaluateCacheBeforeExecution, to the end of any wait: True if the action is
        done (a hit), False if the task is to run. ``waiting(holder)`` is called once when the
        action starts waiting for another owner."""
        if not resuming and self.look_up(outputs_uri=outputs_uri):
            return True
        if not self._serializable:
            return False
        announced = False
        while not stopped.is_set():
            try:
                holder = self.reserve()
            except CacheCallFailed as exc:
                logger.warning("cache reservation of %s failed (%s); running the task", self._key, exc)
                return False
            if holder == self._owner:
                self._start_heartbeat(stopped)
                return False
            if not announced:
                waiting(holder)
                announced = True
            if stopped.wait(WAIT_POLL_SECONDS):
                break
            if self.look_up(outputs_uri=outputs_uri):
                return True
        raise InterruptedError("stopped while waiting for the cache")

    def _start_heartbeat(self, stopped: threading.Event) -> None:
        done = self._heartbeat = threading.Event()

        def beat() -> None:
            while not done.wait(HEARTBEAT_SECONDS) and not stopped.is_set():
                try:
                    self.reserve()
                except CacheCallFailed as exc:
                    logger.warning("extending the cache reservation of %s failed: %s", self._key, exc)

        threading.Thread(target=beat, name=f"cache-heartbeat-{self._owner}", daemon=True).start()

    # --- after the task ran --------------------------------------------------------------------

    def after_success(self, *, outputs_uri: str) -> int:
        """Put the outputs (then release): CACHE_POPULATED or CACHE_PUT_FAILURE."""
        status = CatalogCacheStatus.CACHE_POPULATED
        metadata = base.Metadata(source_identifier=self._template.id)
        metadata.key_map.values[OWNER_METADATA_KEY] = self._owner
        request = v2.PutCacheRequest(
            base_request=base.PutCacheRequest(
                key=self._key, output=base.CachedOutput(output_uri=outputs_uri, metadata=metadata)
            ),
            identifier=self._identifier,
        )
        try:
            self._client.call("Put", request, base.PutCacheResponse)
        except CacheCallFailed as exc:
            if exc.code != "already_exists":
                logger.warning("cache put of %s failed: %s", self._key, exc)
                status = CatalogCacheStatus.CACHE_PUT_FAILURE
        self.release()
        return int(status)

    def release(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.set()
        if not self._serializable:
            return
        request = v2.ReleaseReservationRequest(
            base_request=base.ReleaseReservationRequest(key=self._key, owner_id=self._owner),
            identifier=self._identifier,
        )
        try:
            self._client.call("ReleaseReservation", request, base.ReleaseReservationResponse)
        except CacheCallFailed as exc:
            logger.warning("releasing the cache reservation of %s failed: %s", self._key, exc)
